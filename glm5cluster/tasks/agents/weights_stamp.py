"""The weights manifest stamp (written after verified staging) and which listed files are gone.

Usage: ``python3 weights_stamp.py WEIGHTS_DIR MANIFEST_NAME``; prints one JSON line:
``{"present": false}`` or ``{"present": true, "repo", "commit", "files", "missing"}``
(``"error"`` when the manifest is unreadable).
"""

from __future__ import annotations

import json
import os
import sys


def read_stamp(weights_dir: str, manifest: str) -> dict[str, object]:
    path = os.path.join(weights_dir, manifest)
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {"present": False}
    except Exception as e:  # noqa: BLE001 - unreadable in any way: say why
        return {"present": True, "error": str(e)}
    files = doc.get("files", [])
    missing = []
    for entry in files:
        full = os.path.join(weights_dir, entry["path"])
        if not os.path.isfile(full) or os.path.getsize(full) != entry.get("size"):
            missing.append(entry["path"])
    return {"present": True, "repo": doc.get("repo"), "commit": doc.get("commit"),
            "files": len(files), "missing": missing}


def main() -> None:
    print(json.dumps(read_stamp(sys.argv[1], sys.argv[2])))


if __name__ == "__main__":
    main()
