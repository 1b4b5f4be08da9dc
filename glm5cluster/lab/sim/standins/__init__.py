"""Stand-in packages for the lab mirror's apt repositories (stdlib only).

Each stand-in carries a REAL package name and version scheme from the vendor repositories
(NVIDIA's CUDA repository, AMD's radeon repository), so the product's install path runs real apt and dpkg;
their maintainer scripts drive the lab's GPU simulators (``glm5lab-set-driver``, baked into the
lab image under ``/opt/glm5lab/bin``) instead of building kernel modules.

``repos()`` answers every repository the mirror serves, as data (``Repo`` of ``Deb``); the
mirror (``glm5cluster.lab.mirror``) turns them into signed repositories with dpkg-deb and gpg.
"""

from __future__ import annotations

from .recipe import KEYRING, Deb, Repo  # noqa: F401
from .repos import DRIVER_VERSIONS, TOOLKIT_VERSIONS, repos  # noqa: F401
