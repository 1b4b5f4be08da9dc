"""Build the simulated `sglang-<version>-py3-none-any.whl` (written directly as a zip: offline,
no build backend needed, byte-for-byte reproducible).

    python glm5cluster/lab/sim/sglang_sim/build.py OUT_DIR [VERSION]
    from glm5cluster.lab.sim.sglang_sim.build import build_wheel; build_wheel(out_dir, "0.5.9")

The version is what the simulator reports (`sglang version`, `/server_info`, `/v1/loads`) and
picks the log wording family (`sglang/_sim/log_templates.json`), so a lab can install one
version, then another, and a rollout shows. Default: 0.5.23. Where the project ships the real
option table of that version (`glm5cluster/sglang/data/server-options-<version>.json`), the wheel's
parser is built from it; otherwise from the 0.5.23 table.
"""

import base64
import hashlib
import os
import sys
import zipfile

NAME = "sglang"
VERSION = "0.5.23"
HERE = os.path.dirname(os.path.abspath(__file__))
OPTIONS_DIR = os.path.join(HERE, "..", "..", "..", "sglang", "data")
EPOCH = (2026, 1, 1, 0, 0, 0)

METADATA = """Metadata-Version: 2.1
Name: {name}
Version: {version}
Summary: glm5cluster lab simulator of the SGLang {version} server (not the real SGLang)
Requires-Python: >=3.10
"""
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


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _options_table(version, options_dir):
    path = os.path.join(options_dir, f"server-options-{version}.json")
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    return None


def build_wheel(out_dir, version=VERSION, options_dir=OPTIONS_DIR):
    """Write the wheel of the given simulated version into out_dir; return its path."""
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
    metadata = METADATA.format(name=NAME, version=version)
    for name, text in (("METADATA", metadata), ("WHEEL", WHEEL), ("entry_points.txt", ENTRY_POINTS),
                       ("top_level.txt", NAME + "\n")):
        entries.append((f"{dist_info}/{name}", text.encode()))
    record = [_record_line(a, d) for a, d in entries] + [f"{dist_info}/RECORD,,"]
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    print(build_wheel(sys.argv[1] if len(sys.argv) > 1 else ".", *sys.argv[2:3]))
