"""Build the simulated `sglang-<version>-py3-none-any.whl` (written directly as a zip: offline,
no build backend needed, byte-for-byte reproducible).

    python glm5cluster/lab/sim/sglang_sim/build.py OUT_DIR [VERSION]
    from glm5cluster.lab.sim.sglang_sim.build import build_wheel; build_wheel(out_dir, "0.5.9")

With ``clients=<the real sglang wheel of the same version>`` the wheel also carries the real
benchmark clients, copied verbatim from that wheel at build time (``CLIENT_FILES``; nothing of the
real wheel is committed here), plus the few leaf stand-ins in ``client_standins/`` (each cites the
real file:line it replaces), with the clients' dependencies declared under the extra ``bench``
(``BENCH_REQUIRES``): the real wheel requires them unconditionally; the lab keeps them optional
so that installing ``sglang`` on every other lab host stays small (67 wheels, about 30 s and
380 MB per host otherwise). ``pip install 'sglang[bench]'`` installs them from the lab index.

The version is what the simulator reports (`sglang version`, `/server_info`, `/v1/loads`) and
picks the log wording family (`sglang/_sim/log_templates.json`), so a lab can install one
version, then another, and a rollout shows. Default: 0.5.23. Where the project ships the real
option table of that version (`glm5cluster/sglang/data/server-options-<version>.json`), the wheel's
parser is built from it; otherwise from the 0.5.23 table.
"""

import fnmatch
import os
import sys
import zipfile

if __package__ in (None, ""):  # run as a script: the repository root onto the path
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))
from glm5cluster.lab.sim.wheelfile import write_wheel  # noqa: E402

NAME = "sglang"
VERSION = "0.5.23"
HERE = os.path.dirname(os.path.abspath(__file__))
OPTIONS_DIR = os.path.join(HERE, "..", "..", "..", "sglang", "data")
STANDINS = os.path.join(HERE, "client_standins")

# The real clients and what they import (module level, plus the lazy imports on the paths the
# suites take), as paths in the real wheel; fnmatch patterns. Stand-ins win over these.
CLIENT_FILES = (
    "sglang/bench_serving.py", "sglang/benchmark/__init__.py", "sglang/benchmark/serving.py",
    "sglang/benchmark/utils.py", "sglang/benchmark/goodput.py", "sglang/benchmark/datasets/*.py",
    "sglang/srt/utils/network.py", "sglang/srt/environ.py", "sglang/srt/debug_utils/__init__.py",
    "sglang/srt/debug_utils/cuda_coredump.py", "sglang/utils.py", "sglang/lang/*.py",
    "sglang/lang/backend/*.py", "sglang/test/__init__.py", "sglang/test/few_shot_gsm8k.py",
    "sglang/test/run_eval.py", "sglang/test/sgl_eval_utils.py", "sglang/test/simple_eval_common.py",
    "sglang/test/simple_eval_mixed_prefix_gsm8k.py",
)
# What those files import from outside the standard library (pins as the real 0.5.23 METADATA).
BENCH_REQUIRES = (
    "aiohttp", "msgspec", "numpy", "orjson", "requests", "tqdm", "transformers==5.19.0",
    "tokenizers==0.23.2", "psutil", "pyzmq>=25.1.2", "IPython", "pybase64", "pydantic", "openai==2.8.0",
    "httpx", "jinja2",
)

METADATA = """Metadata-Version: 2.1
Name: {name}
Version: {version}
Summary: glm5cluster lab simulator of the SGLang {version} server (not the real SGLang)
Requires-Python: >=3.10
{requires}"""
WHEEL = """Wheel-Version: 1.0
Generator: glm5cluster-sim-build
Root-Is-Purelib: true
Tag: py3-none-any
"""
ENTRY_POINTS = """[console_scripts]
sglang = sglang.cli.main:main
"""


def _package_files():
    root = os.path.join(HERE, NAME)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".py", ".json")):
                full = os.path.join(dirpath, name)
                yield os.path.relpath(full, HERE).replace(os.sep, "/"), full


def _options_table(version, options_dir):
    path = os.path.join(options_dir, f"server-options-{version}.json")
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    return None


def _standin_files():
    for dirpath, dirnames, filenames in os.walk(STANDINS):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                full = os.path.join(dirpath, name)
                yield os.path.relpath(full, STANDINS).replace(os.sep, "/"), full


def client_entries(real_wheel):
    """(arcname, bytes) of the real clients (verbatim from ``real_wheel``) and the stand-ins."""
    entries = {}
    with zipfile.ZipFile(real_wheel) as zf:
        for name in zf.namelist():
            if any(fnmatch.fnmatchcase(name, pat) and "/" not in name[len(pat.rsplit("/", 1)[0]) + 1:]
                   for pat in CLIENT_FILES):
                entries[name] = zf.read(name)
    missing = [p for p in CLIENT_FILES if not any(fnmatch.fnmatchcase(n, p) for n in entries)]
    if missing:
        raise ValueError(f"{real_wheel}: has no {', '.join(missing)}")
    for arcname, full in _standin_files():
        with open(full, "rb") as f:
            entries[arcname] = f.read()
    return sorted(entries.items())


def build_wheel(out_dir, version=VERSION, options_dir=OPTIONS_DIR, clients=None):
    """Write the wheel of the given simulated version into out_dir; return its path. ``clients``:
    the real wheel of the same version, whose benchmark clients the wheel then carries."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{NAME}-{version}-py3-none-any.whl")
    dist_info = f"{NAME}-{version}.dist-info"
    entries = []
    for arcname, full in _package_files():
        with open(full, "rb") as f:
            data = f.read()
        if arcname == f"{NAME}/version.py":
            data = f'__version__ = "{version}"\n'.encode()
        if arcname == f"{NAME}/srt/server_options.json":
            data = _options_table(version, options_dir) or data
        entries.append((arcname, data))
    requires = ""
    if clients:
        own = {a for a, _ in entries}
        entries += [(a, d) for a, d in client_entries(clients) if a not in own]
        requires = "Provides-Extra: bench\n" + "".join(f'Requires-Dist: {r}; extra == "bench"\n'
                                                         for r in BENCH_REQUIRES)
    metadata = METADATA.format(name=NAME, version=version, requires=requires)
    return write_wheel(path, entries, dist_info, [("METADATA", metadata), ("WHEEL", WHEEL),
                                                  ("entry_points.txt", ENTRY_POINTS),
                                                  ("top_level.txt", NAME + "\n")])

if __name__ == "__main__":
    print(build_wheel(sys.argv[1] if len(sys.argv) > 1 else ".", *sys.argv[2:3]))
