"""``teardown``: take a cluster's SGLang groups down and remove what launched them.

Per host, every service of this cluster is listed by name (``runtime.survey``: both runtimes,
any replica index, the router; nothing of another cluster matches), and each is stopped and
removed by its own runtime (``runtime.unit`` / ``runtime.container``), whichever runtime the
inventory names now. Then:
1. every head (rank 0) is stopped first: SIGTERM makes it drain in-flight requests and tell its
   group to shut down (unit ``TimeoutStopSec`` / ``docker stop -t``, bounded by ``drain_timeout``);
2. every other rank is given ``worker_grace`` seconds to follow its head (SGLang ranks >= 1 ignore
   SIGTERM), then SIGINT, then SIGKILL; units are stopped, disabled and their files removed
   (daemon-reload, reset-failed), containers removed, ``/etc/glm5cluster/<cluster>`` removed
   (env files, secrets file, launch stamps);
3. the footprint is listed again: anything left fails the host;
4. with ``purge``: the weights directory, the venv (venv runtime) or the image (docker runtime)
   are removed, except where another glm5cluster unit or container on the host still uses them.
Idempotent: a host with nothing of the cluster is ``ok``.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping

from glm5cluster.commands import Shell
from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.errors import GlmError, TransportError
from glm5cluster.model.inventory import Inventory
from glm5cluster.runtime import all_runtimes, by_kind, for_inventory
from glm5cluster.runtime.rank import cluster_dir
from glm5cluster.runtime.survey import Item, Survey, parse_survey, survey_script
from glm5cluster.runtime.unit import UNIT_DIR

# Never purged, whatever the inventory says.
PROTECTED = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
             "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/mnt", "/media", "/data"}


class TeardownParams(Params):
    purge: bool = False
    drain_timeout: float = 300.0
    worker_grace: float = 10.0
    keep_router: bool = False  # leave the router's service alone (`down --keep-router`, `down --limit`)


def _is_head(item: Item, host: str, ctx: ClusterContext) -> bool:
    if item.replica is None:  # the router: SIGTERM and drain like a head
        return True
    if item.rank is not None:
        return item.rank == 0
    topo = ctx.topology
    if topo is not None and item.replica < len(topo.replicas):
        return bool(topo.replicas[item.replica].head.node.name == host)
    return False


def drain_script(inv: Inventory, items: list[Item], timeout: float) -> str:
    """Stop heads: SIGTERM and wait (drain), SIGKILL when the deadline passes."""
    return "".join(by_kind(inv, it.kind).stop_script(it.name, head=True, drain=timeout, grace=0)
                   for it in items) + "true\n"


def remove_script(inv: Inventory, found: Survey, grace: float) -> str:
    """Stop what still runs (grace, SIGINT, SIGKILL), remove units, containers and the config dir."""
    out: list[str] = []
    for rt in all_runtimes(inv):
        mine = [it.name for it in found.items if it.kind == rt.kind]
        out += [rt.stop_script(name, head=False, drain=0, grace=grace) for name in mine]
        if mine:
            out.append(rt.remove_script(mine))
    if found.config_dir:
        out.append(f"rm -rf -- {shlex.quote(found.config_dir)}\n")
    return "".join(out) + "true\n"


def purge_targets(ctx: ClusterContext) -> tuple[list[str], list[str], list[str]]:
    """(paths to remove, images to remove, refusals) for --purge."""
    inv = ctx.inventory
    paths = [inv.model.weights_dir]
    images: list[str] = []
    rt = for_inventory(inv)
    venv = rt.venv()
    if venv:
        paths.append(venv)
    if ctx.topology is not None:
        images = sorted({img for rep in ctx.topology.replicas if (img := rt.image(rep.deployment.gpu))})
    keep, refused = [], []
    for p in paths:
        norm = "/" + "/".join(x for x in p.split("/") if x)
        if not p.startswith("/") or any(x in (".", "..") for x in p.split("/")) or any(c in p for c in "\n\r\0"):
            refused.append(f"refusing to purge {p!r} (not a plain absolute path)")
        elif norm in PROTECTED or norm.count("/") < 2:
            refused.append(f"refusing to purge {p} (a system directory)")
        else:
            keep.append(norm)
    return keep, images, refused


def purge_script(paths: list[str], images: list[str], protected: frozenset[str] = frozenset(PROTECTED)) -> str:
    """Remove each path/image unless another glm5cluster unit or container still refers to it.
    Each path is resolved ON THE HOST first (``realpath -e``: symlinks, ``..``) and refused when
    it resolves to a system directory, a top-level directory or a mount point; the resolved
    directory is what gets removed (then the link, if the inventory's path was one)."""
    guard = " | ".join(shlex.quote(d) for d in sorted(protected | {"/"}))
    lines = [
        "purge_path() {",
        '  p=$1; [ -e "$p" ] || [ -L "$p" ] || return 0',
        '  r=$(realpath -e -- "$p" 2>/dev/null) || { echo "refusing to purge $p: it does not resolve"; return 0; }',
        f'  case "$r" in {guard}) echo "refusing to purge $p: it resolves to the system directory $r"; return 0;; esac',
        '  case "$r" in /*/*) ;; *) echo "refusing to purge $p: it resolves to the top-level directory $r"; return 0;; esac',
        '  if command -v mountpoint >/dev/null 2>&1 && mountpoint -q -- "$r"; then'
        ' echo "refusing to purge $p: $r is a mount point (remove its contents yourself)"; return 0; fi',
        '  u=$(in_use "$p"); [ -n "$u" ] || u=$(in_use "$r")',
        '  if [ -n "$u" ]; then echo "kept $p: used by $u"; return 0; fi',
        '  rm -rf -- "$r" && { [ ! -L "$p" ] || rm -f -- "$p"; } && echo "removed $p"',
        "}",
        "in_use() {",
        f"  grep -lsF -- \"$1\" {UNIT_DIR}/glm5-*.service | head -n 1 | sed 's#.*/##'",
        "  command -v docker >/dev/null 2>&1 && docker ps -aq --filter label=glm5cluster.cluster 2>/dev/null |"
        " xargs -r docker inspect -f '{{.Name}} {{.Config.Image}} {{range .Mounts}}{{.Source}} {{end}}'"
        " 2>/dev/null | grep -F -- \"$1\" | head -n 1 | cut -d' ' -f1",
        "}",
    ]
    for p in paths:
        lines.append(f"purge_path {shlex.quote(p)}")
    for img in images:
        q = shlex.quote(img)
        lines.append(f"if command -v docker >/dev/null 2>&1 && docker image inspect {q} >/dev/null 2>&1; then "
                     f"u=$(in_use {q}); if [ -n \"$u\" ]; then echo \"kept image {img}: used by $u\"; "
                     f"else docker rmi {q} >/dev/null && echo 'removed image {img}'; fi; fi")
    return "\n".join(lines + ["true"])


class Teardown:
    name = "teardown"
    Params = TeardownParams

    def run(self, params: TeardownParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        cluster = ctx.inventory.cluster.name
        results: dict[str, StepResult] = {}
        found: dict[str, Survey] = {}
        for host, hr in ctx.fan_out(lambda h: self._footprint(ctx, h, cluster, params.keep_router)).items():
            if hr.error is not None:
                results[host] = _error(hr.error)
            elif hr.value is not None:
                found[host] = hr.value
        paths, images, refused = purge_targets(ctx) if params.purge else ([], [], [])
        purge_note = (" and purge " + ", ".join(paths + images)) if paths or images else ""
        if ctx.check:
            for host, fp in found.items():
                results[host] = self._plan(fp, cluster, purge_note)
            return results
        heads = {h: [i for i in fp.items if i.running and _is_head(i, h, ctx)] for h, fp in found.items()}
        heads = {h: items for h, items in heads.items() if items}
        for h in heads:
            ctx.progress(h, "draining the head (SIGTERM)")
        drained = ctx.fan_out(lambda h: ctx.run(h, Shell.sh(
            drain_script(ctx.inventory, heads[h], params.drain_timeout), sudo=True, timeout=params.drain_timeout + 60,
            description=f"drain {', '.join(i.name for i in heads[h])}")), list(heads), timeout=None)
        for h, dr in drained.items():
            if dr.error is not None:
                results[h] = _error(dr.error)
        todo = [h for h in found if h not in results]
        got = ctx.fan_out(lambda h: self._remove(ctx, h, cluster, found[h], params, paths, images, refused),
                          todo, timeout=None)
        for h, rr in got.items():
            results[h] = rr.value if rr.value is not None else _error(rr.error)
        return results

    def _footprint(self, ctx: ClusterContext, host: str, cluster: str, keep_router: bool = False) -> Survey:
        script = survey_script(cluster, cluster_dir(cluster))
        res = ctx.run(host, Shell.sh(script, sudo=True, timeout=60,
                                     description=f"list units/containers of cluster {cluster}"))
        if not res.ok:
            raise GlmError(f"cannot list the units/containers of {cluster}: {res.tail(3)}")
        found = parse_survey(cluster, res.stdout)
        if keep_router:  # the router is not a rank (replica None)
            found = dataclasses.replace(found, units=tuple(i for i in found.units if i.replica is not None),
                                        containers=tuple(i for i in found.containers if i.replica is not None))
        return found

    def _plan(self, fp: Survey, cluster: str, purge_note: str) -> StepResult:
        if fp.empty:
            return StepResult(Status.CHANGED if purge_note else Status.OK,
                              f"would{purge_note}" if purge_note else f"nothing of cluster {cluster} here")
        return StepResult(Status.CHANGED, f"would stop and remove {fp.describe()}{purge_note}")

    def _remove(self, ctx: ClusterContext, host: str, cluster: str, fp: Survey, params: TeardownParams,
                paths: list[str], images: list[str], refused: list[str]) -> StepResult:
        done: list[str] = []
        if not fp.empty:
            ctx.progress(host, "stopping and removing")
            res = ctx.run(host, Shell.sh(remove_script(ctx.inventory, fp, params.worker_grace), sudo=True,
                                         timeout=params.worker_grace * 3 + 120,
                                         description=f"stop and remove {fp.describe()}"))
            if not res.ok:
                return StepResult(Status.FAILED, message=f"removing {fp.describe()} failed",
                                  exit_code=res.exit_code, tail=res.tail())
            left = self._footprint(ctx, host, cluster, params.keep_router)
            if not left.empty:
                return StepResult(Status.FAILED, message=f"still there after down: {left.describe()}",
                                  hint="look at `systemctl status` / `docker ps -a` on the host")
            done.append(f"stopped and removed {fp.describe()}")
        if paths or images:
            ctx.progress(host, "purging")
            res = ctx.run(host, Shell.sh(purge_script(paths, images), sudo=True, timeout=1800,
                                         description="purge " + ", ".join(paths + images)))
            if not res.ok:
                return StepResult(Status.FAILED, "; ".join(done), message="purge failed",
                                  exit_code=res.exit_code, tail=res.tail())
            done += [line for line in res.stdout.splitlines() if line.strip()]
        done += refused
        if not any(d.startswith(("stopped", "removed")) for d in done):
            return StepResult(Status.OK, "; ".join(done) or f"nothing of cluster {cluster} here")
        return StepResult(Status.CHANGED, "; ".join(done))


def _error(err: BaseException | None) -> StepResult:
    if isinstance(err, TransportError):
        return StepResult(Status.UNREACHABLE, message=err.message, hint=err.hint)
    if isinstance(err, GlmError):
        return StepResult(Status.FAILED, message=err.message, hint=err.hint)
    return StepResult(Status.FAILED, message=f"internal error: {type(err).__name__}: {err}")
