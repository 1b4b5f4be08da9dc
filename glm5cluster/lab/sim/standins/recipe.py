"""The recipe records: a Debian package (``Deb``) and a repository (``Repo``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FILES = Path(__file__).resolve().parent / "files"
KEYRING = "@KEYRING@"  # a file whose content is the lab archive keyring (binary OpenPGP)


@dataclass(frozen=True)
class File:
    """One file in a package: ``dest`` (absolute), content from ``source`` (a name under
    ``files/``, with ``@VERSION@``/``@BRANCH@``/... substituted) or ``text``, and a mode."""

    dest: str
    source: str = ""
    text: str = ""
    mode: int = 0o644
    link: str = ""  # non-empty: a symbolic link to this target instead of a file


@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    description: str
    arch: str = "amd64"
    depends: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    section: str = "non-free/admin"
    files: tuple[File, ...] = ()
    scripts: dict[str, str] = field(default_factory=dict)  # postinst, prerm, postrm, preinst
    subst: dict[str, str] = field(default_factory=dict)  # @KEY@ -> value in sourced files

    @property
    def filename(self) -> str:
        ver = self.version.split(":", 1)[-1]
        return f"{self.name}_{ver}_{self.arch}.deb"

    def content(self, f: File) -> bytes:
        if f.source == KEYRING:
            raise ValueError("the keyring is filled in by the builder")
        return self.render((FILES / f.source).read_text() if f.source else f.text).encode()

    def render(self, text: str) -> str:
        """``text`` with ``@VERSION@`` (upstream version), ``@PACKAGE@`` and ``subst`` filled in."""
        for key, value in {"VERSION": self.version.split(":", 1)[-1].rsplit("-", 1)[0],
                           "PACKAGE": self.name, **self.subst}.items():
            text = text.replace(f"@{key}@", value)
        return text


@dataclass(frozen=True)
class Repo:
    """An apt repository under the mirror's HTTP root: ``flat`` (``deb URL/path /``, as NVIDIA's
    CUDA and container-toolkit repositories are) or with ``dists/<suite>/<component>``."""

    path: str
    packages: tuple[Deb, ...]
    suite: str = ""  # empty: a flat repository
    component: str = "main"
    origin: str = "glm5lab"
    label: str = "glm5lab stand-ins"

    @property
    def flat(self) -> bool:
        return not self.suite
