"""Build the simulated `sglang-0.5.23-py3-none-any.whl` (written directly as a zip: offline,
no build backend needed, byte-for-byte reproducible).

    python glm5cluster/lab/sim/sglang_sim/build.py OUT_DIR
    from glm5cluster.lab.sim.sglang_sim.build import build_wheel; build_wheel(out_dir)
"""

import base64
import hashlib
import os
import sys
import zipfile

NAME = "sglang"
VERSION = "0.5.23"
HERE = os.path.dirname(os.path.abspath(__file__))
DIST_INFO = f"{NAME}-{VERSION}.dist-info"
EPOCH = (2026, 1, 1, 0, 0, 0)

METADATA = f"""Metadata-Version: 2.1
Name: {NAME}
Version: {VERSION}
Summary: glm5cluster lab simulator of the SGLang {VERSION} server (not the real SGLang)
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


def build_wheel(out_dir):
    """Write the wheel into out_dir; return its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{NAME}-{VERSION}-py3-none-any.whl")
    entries = []
    for arcname, full in _package_files():
        with open(full, "rb") as f:
            entries.append((arcname, f.read()))
    for name, text in (("METADATA", METADATA), ("WHEEL", WHEEL), ("entry_points.txt", ENTRY_POINTS),
                       ("top_level.txt", NAME + "\n")):
        entries.append((f"{DIST_INFO}/{name}", text.encode()))
    record = [_record_line(a, d) for a, d in entries] + [f"{DIST_INFO}/RECORD,,"]
    entries.append((f"{DIST_INFO}/RECORD", ("\n".join(record) + "\n").encode()))
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
    print(build_wheel(sys.argv[1] if len(sys.argv) > 1 else "."))
