"""With the docker runtime and no serving.sglang_version, the image tag names the release."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from glm5cluster.model.inventory import Inventory
from glm5cluster.sglang import profile_for


def inv(**serving: Any) -> Inventory:
    return Inventory.model_validate({
        "cluster": {"name": "c", "gpu": {"kind": "H200", "count": 8}},
        "hosts": [{"name": "n1", "address": "10.0.0.1"}],
        "model": {"repo": "zai-org/GLM-5-FP8", "weights_dir": "/models/glm5"},
        "serving": serving,
    })


@pytest.mark.parametrize(("image", "release", "family"), [
    ("lmsysorg/sglang:v0.5.10-cu130", "0.5.10", "launch-era"),
    ("lmsysorg/sglang:v0.5.14", "0.5.14", "transitional"),
    ("rocm/sgl-dev:v0.5.8.post1-rocm720-mi30x-20260219", "0.5.8.post1", "launch-era"),
    ("mirror.lab:5000/lmsysorg/sglang:v0.5.23", "0.5.23", "0.5.23"),
])
def test_versioned_tag_names_the_release(image, release, family):
    v = inv(runtime="docker", image=image).serving.sglang_version
    assert v == release and profile_for(v).family == family


@pytest.mark.parametrize("image", ["lmsysorg/sglang:glm5-hopper", "lmsysorg/sglang:glm5-blackwell",
                                   "lmsysorg/sglang:latest", "lmsysorg/sglang@sha256:" + "1" * 64])
def test_tag_naming_no_release_needs_the_version_written(image):
    with pytest.raises(ValidationError) as e:
        inv(runtime="docker", image=image)
    assert "does not name an SGLang release" in str(e.value) and "serving.sglang_version" in str(e.value)
    assert inv(runtime="docker", image=image, sglang_version="0.5.9").serving.sglang_version == "0.5.9"


def test_written_version_and_venv_runtime_are_left_alone():
    # a written version wins (the installed parser on the head checks the argv again after install)
    assert inv(runtime="docker", image="lmsysorg/sglang:v0.5.23", sglang_version="0.5.9").serving.sglang_version == "0.5.9"
    assert inv(runtime="venv", image="lmsysorg/sglang:glm5-hopper").serving.sglang_version == "0.5.23"
    assert inv(runtime="docker").serving.sglang_version == "0.5.23"  # no image: the default


def test_unsupported_release_in_the_tag_is_refused_by_the_profile():
    from glm5cluster.errors import PlanError

    v = inv(runtime="docker", image="lmsysorg/sglang:v0.5.6.post2").serving.sglang_version
    with pytest.raises(PlanError, match="predates GLM-5"):
        profile_for(v)
