"""What an SGLang container image reference says about the SGLang release inside it."""

from __future__ import annotations

import re

_TAG_RELEASE = re.compile(r"^v?(\d+\.\d+\.\d+(?:\.post\d+)?)(?:-.*)?$")


def release_of_image(image: str) -> str | None:
    """The SGLang release an image's tag names (``lmsysorg/sglang:v0.5.10-cu130`` -> ``0.5.10``,
    ``rocm/sgl-dev:v0.5.8.post1-rocm720-mi30x-20260219`` -> ``0.5.8.post1``), else None: no tag
    (a bare name or a digest), or a tag such as ``latest`` or ``glm5-hopper`` (a launch-week
    custom build, not a release) names none."""
    ref = image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:  # no tag (the colon belonged to a registry port)
        return None
    m = _TAG_RELEASE.match(tag)
    return m.group(1) if m else None
