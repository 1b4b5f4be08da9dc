"""The lab mirror host: the air-gapped site's apt repositories of stand-in packages,
registry, Python package index and model hub, in one container on the lab network.

    from glm5cluster.lab.mirror import ensure_mirror, HubSpec
    info = ensure_mirror(client, lab_name, network_name, mirror_address(subnet), lab_dir, console)
"""

from __future__ import annotations

from .content import HubSpec
from .host import MirrorInfo, container_name, ensure_mirror

__all__ = ["HubSpec", "MirrorInfo", "container_name", "ensure_mirror"]
