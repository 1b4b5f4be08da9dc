"""The kept results: ``~/.glm5cluster/bench/<cluster>/<stamp>.json``, one file per run, written
atomically (a temporary file in the same directory, fsync, ``os.replace``), so an interrupted
run leaves either nothing or a whole record, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from glm5cluster.bench.records import BenchRun


def bench_root() -> Path:
    return Path(os.environ.get("GLM5CLUSTER_HOME") or Path.home() / ".glm5cluster") / "bench"


def utc_stamp(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def _order(path: Path) -> tuple[str, int]:
    stamp, _, n = path.stem.partition("-")
    return stamp, int(n) if n.isdigit() else 1


class History:
    def __init__(self, cluster: str, root: Path | None = None) -> None:
        self.dir = (root or bench_root()) / cluster

    def save(self, run: BenchRun) -> Path:
        """Write ``run`` under a name not used yet (``<stamp>.json``, ``<stamp>-2.json``...)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(run.to_json(), indent=2, sort_keys=True).encode() + b"\n"
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            n = 1
            while True:
                dest = self.dir / (f"{run.stamp}.json" if n == 1 else f"{run.stamp}-{n}.json")
                try:  # link refuses to overwrite: two runs in one second keep both
                    os.link(tmp, dest)
                    break
                except FileExistsError:
                    n += 1
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest

    def paths(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted((p for p in self.dir.glob("*.json") if not p.name.startswith(".")), key=_order)

    def load(self) -> list[BenchRun]:
        """Every kept run, oldest first; unreadable files are skipped (see ``unreadable``)."""
        runs = []
        for p in self.paths():
            run = self._read(p)
            if run is not None:
                runs.append(run)
        return runs

    def unreadable(self) -> list[Path]:
        return [p for p in self.paths() if self._read(p) is None]

    @staticmethod
    def _read(path: Path) -> BenchRun | None:
        try:
            return BenchRun.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
