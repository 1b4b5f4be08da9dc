"""The lab package index: a PEP 503 simple index of the simulated ``sglang`` wheel plus
``huggingface_hub``, the real ``sglang-router`` and their dependencies (wheels for CPython 3.11 on x86-64 Linux: Debian 12's
python3, what lab hosts run), downloaded from PyPI once into ``~/.cache/glm5cluster/wheels``.

The simulated ``sglang`` carries the real benchmark clients, copied at build time from the real
``sglang`` wheel of the same version (downloaded once into the same cache, never served), with
their dependencies under the extra ``bench`` (``sim/sglang_sim/build.py``); the index also offers
those dependencies and the separate ``sgl-eval`` package that scores MMLU (``bench_requirements``)."""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

from glm5cluster.errors import GlmError
from glm5cluster.lab.sim.sglang_sim.build import BENCH_REQUIRES, CLIENT_FILES, VERSION, build_wheel
from glm5cluster.lab.sim.sglang_sim.build import STANDINS as _STANDINS

from .cache import cache_root, locked, tree_hash

PYTHON_VERSION = "3.11"
ROUTER_VERSION = "0.3.2"  # replicas.router.version's default (model/inventory.py)
SGL_EVAL = "sgl-eval==0.1.3"  # the real sglang 0.5.23 METADATA: Requires-Dist: sgl-eval==0.1.3; extra == "test"
STANDINS_DIR = Path(_STANDINS)


def requirements() -> tuple[str, ...]:
    """What the index offers from PyPI: huggingface_hub pinned to the version this machine runs."""
    try:
        import huggingface_hub

        hub = f"huggingface_hub=={huggingface_hub.__version__}"
    except ImportError:  # pragma: no cover - a dependency of glm5cluster
        hub = "huggingface_hub"
    # The real router (replicas.router): the pinned release the inventory defaults to.
    return (hub, "pip", "setuptools", "wheel", f"sglang-router=={ROUTER_VERSION}")


def bench_requirements() -> tuple[str, ...]:
    """The benchmark clients' dependencies (``sglang[bench]``) and sgl-eval, the MMLU scorer the
    real 0.5.23 wheel's ``test`` extra pins; resolved together, apart from the rest."""
    return (*BENCH_REQUIRES, SGL_EVAL)


def real_sglang_wheel() -> Path:
    """The real ``sglang`` wheel the simulated one takes its clients from (no dependencies)."""
    found = sorted(download_wheels((f"sglang=={VERSION}",), deps=False).glob("sglang-*.whl"))
    if not found:  # pragma: no cover - pip succeeded without writing it
        raise GlmError(f"pip download sglang=={VERSION} wrote no wheel")
    return found[0]


def download_wheels(reqs: tuple[str, ...], deps: bool = True) -> Path:
    """``~/.cache/glm5cluster/wheels/<hash>``: the wheels of ``reqs`` and all their dependencies."""
    key = hashlib.sha256("\n".join((PYTHON_VERSION, *reqs, *(() if deps else ("--no-deps",)))).encode()).hexdigest()[:16]
    final = cache_root() / "wheels" / key
    if final.is_dir():
        return final
    with locked(final.parent / f".{key}.lock"):
        if final.is_dir():
            return final
        tmp = final.with_name(key + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--only-binary=:all:", "--python-version", PYTHON_VERSION, "-d", str(tmp),
                *(() if deps else ("--no-deps",)), *reqs]
        res = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise GlmError(f"pip download {' '.join(reqs)} failed:\n{res.stderr[-1500:]}",
                           hint="the lab package index needs PyPI (or a configured index) once")
        tmp.rename(final)
    return final


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def write_index(root: Path, wheels: list[Path]) -> None:
    """``root/simple/<project>/index.html`` (PEP 503) linking ``root/files/<wheel>#sha256=``."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[tuple[str, str]]] = {}
    for whl in sorted(wheels):
        project = normalize(whl.name.split("-", 1)[0])
        if project == "glm5cluster":
            continue
        shutil.copyfile(whl, files / whl.name)
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        projects.setdefault(project, []).append((whl.name, digest))
    simple = root / "simple"
    links = []
    for project, dists in sorted(projects.items()):
        (simple / project).mkdir(parents=True, exist_ok=True)
        body = "".join(f'    <a href="../../files/{html.escape(n)}#sha256={d}">{html.escape(n)}</a><br/>\n'
                       for n, d in dists)
        (simple / project / "index.html").write_text(
            f"<!DOCTYPE html>\n<html>\n  <body>\n    <h1>Links for {project}</h1>\n{body}  </body>\n</html>\n")
        links.append(f'    <a href="{project}/">{project}</a><br/>\n')
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html>\n  <body>\n" + "".join(links) + "  </body>\n</html>\n")


def build_index(out: Path) -> None:
    """The whole index into ``out`` (the simulated sglang wheel built fresh, the rest cached)."""
    wheel_dir = out / "build"
    sglang = Path(build_wheel(str(wheel_dir), clients=str(real_sglang_wheel())))
    wheels = {w.name: w for reqs in (requirements(), bench_requirements())
              for w in sorted(download_wheels(reqs).glob("*.whl"))}
    write_index(out, [sglang, *wheels.values()])
    shutil.rmtree(wheel_dir)


def index_key() -> str:
    """The index's cache key: the requirements and the simulated sglang wheel's bytes."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(build_wheel(tmp)).read_bytes()
    clients = tree_hash([STANDINS_DIR], VERSION, *CLIENT_FILES)
    return hashlib.sha256("\n".join((*requirements(), *bench_requirements(), clients)).encode()
                          + data).hexdigest()[:16]
