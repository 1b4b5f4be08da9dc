"""Run the selected suites on node 0 of each selected replica, over an open connection, and
gather one ``BenchRun``. Executes commands but decides nothing remote-specific beyond
``suites`` (commands) and ``parse`` (results)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from glm5cluster.bench.parse import ParseError, parse_gsm8k, parse_serving, parse_sgl_eval
from glm5cluster.bench.records import BenchRun, HardwareRow, Suite, SuiteRun
from glm5cluster.bench.suites import (
    WORKDIR_TEMPLATE,
    Installed,
    SuiteParams,
    Target,
    client_argv,
    client_script,
    parse_probe,
    probe_argv,
)
from glm5cluster.commands import CommandResult, Secret, Shell, Upload
from glm5cluster.connect.base import Connection
from glm5cluster.errors import GlmError, InputError
from glm5cluster.model.inventory import Inventory
from glm5cluster.runtime import Runtime, for_inventory, rank_stem
from glm5cluster.topology import Replica, Topology

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchRequest:
    suites: tuple[Suite, ...]
    params: SuiteParams = field(default_factory=SuiteParams)
    replicas: tuple[int, ...] | None = None  # None: every replica
    via_router: bool = False
    data_files: Mapping[str, bytes] = field(default_factory=dict)  # "gsm8k" / "sharegpt" / "mmlu" -> content
    timeout: float = 6 * 3600.0  # per suite


def served_model(inv: Inventory) -> str:
    return inv.serving.features.served_model_name or inv.model.repo


def hardware_row(inv: Inventory, topo: Topology) -> HardwareRow:
    rep = topo.replicas[0]
    dep = rep.deployment
    spec = inv.serving.features.speculative_decoding
    return HardwareRow(gpu=rep.gpu_kind.value, gpus_per_node=rep.tp_size // rep.nnodes, nnodes=rep.nnodes,
                       tp=rep.tp_size, precision=topo.precision.value,
                       speculative=dep.eagle_supported if spec is None else spec)


def config_digest(inv: Inventory, topo: Topology) -> str:
    """What decides the numbers: model, serving settings (no secrets), hardware row, replicas."""
    serving = inv.serving.model_dump(mode="json", exclude={"secrets", "readiness_timeout", "package_index",
                                                           "image_archive"})
    doc = {"model": inv.model.model_dump(mode="json", include={"repo", "precision", "revision"}),
           "serving": serving, "hardware": hardware_row(inv, topo).label(),
           "replicas": len(topo.replicas)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def target_for(inv: Inventory, topo: Topology, rep: Replica, via_router: bool, api_key: bool,
               workdir: str, data_files: Mapping[str, str]) -> Target:
    if via_router:
        if topo.router is None:
            raise InputError("--via-router: this inventory has no router (replicas.router)",
                           hint="drop --via-router, or add replicas.router to the inventory")
        host, port = topo.router.node.ssh.address, topo.router.port
    else:
        host, port = "127.0.0.1", inv.serving.http_port
    rt = for_inventory(inv)
    env = (("OPENAI_API_KEY",) if api_key else ()) + (("HF_HUB_OFFLINE",) if "sharegpt" in data_files else ())
    prefix = rt.exec_argv(rt.target(rank_stem(inv.cluster.name, rep.index)), env=env, workdir=workdir)
    return Target(prefix=tuple(prefix), host=host, port=port, model=served_model(inv),
                  tokenizer=inv.model.weights_dir, workdir=workdir, api_key=api_key, data_files=data_files)


def parse_result(suite: Suite, text: str) -> dict[str, float]:
    if suite.is_serving:
        return parse_serving(text).metrics()
    if suite is Suite.GSM8K:
        return parse_gsm8k(text).metrics()
    return parse_sgl_eval(text, "mmlu").metrics()


def _tail(text: str, n: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def probe(conn: Connection, runtime: Runtime, target: str) -> Installed:
    res = conn.run(Shell.cmd(*probe_argv(runtime.exec_argv(target)), sudo=True, timeout=120,
                             description="which SGLang clients are installed"))
    if not res.ok:
        raise GlmError(f"{conn.host}: cannot run the SGLang runtime ({target}): {_tail(res.stdout + res.stderr, 3)}",
                       hint="is the replica deployed? `glm5cluster status INVENTORY`")
    return parse_probe(res.stdout)


def make_workdir(conn: Connection) -> str:
    """A private directory for this run on node 0 (``mktemp -d``: mode 0700, a fresh name)."""
    res = conn.run(Shell.cmd("mktemp", "-d", WORKDIR_TEMPLATE, sudo=True, timeout=30,
                             description="private directory for the benchmark run"))
    path = res.stdout.strip()
    if not res.ok or not re.fullmatch(r"/tmp/glm5cluster-bench\.[A-Za-z0-9]+", path):
        raise GlmError(f"{conn.host}: cannot make a private directory under /tmp: {_tail(res.stdout + res.stderr, 3)}")
    return path


def remove_workdir(conn: Connection, runtime: Runtime, target: str, workdir: str) -> None:
    """Best effort: the run's directory on node 0 and in the runtime."""
    script = "; ".join(s for s in (runtime.unshare_dir_script(target, workdir),
                                    f"rm -rf {shlex.quote(workdir)}") if s)
    with contextlib.suppress(Exception):
        conn.run(Shell.sh(script, sudo=True, timeout=60, description="remove the benchmark run's directory"))


def stage_data(conn: Connection, runtime: Runtime, target: str, workdir: str,
               files: Mapping[str, bytes]) -> dict[str, str]:
    """Copy local data files into the run's directory on node 0 (and make the directory
    visible inside the runtime): name -> path the client reads."""
    out: dict[str, str] = {}
    for name, content in files.items():
        path = f"{workdir}/{name}.json{'' if name == 'sharegpt' else 'l'}"
        res = conn.put(Upload(path, content, mode=0o600, sudo=True, description=f"bench data {name}"))
        if not res.ok:
            raise GlmError(f"{conn.host}: could not copy the {name} data file: {_tail(res.stdout + res.stderr, 3)}")
        out[name] = path
    share = runtime.share_dir_script(target, workdir)
    if share:
        res = conn.run(Shell.sh(share, sudo=True, timeout=120, description="benchmark directory into the runtime"))
        if not res.ok:
            raise GlmError(f"{conn.host}: could not share the benchmark directory with {target}: "
                           f"{_tail(res.stdout + res.stderr, 3)}")
    return out


def run_suite(conn: Connection, suite: Suite, params: Mapping[str, str], t: Target, api_key: str | None,
              replica: int, timeout: float) -> SuiteRun:
    script = client_script(suite, params, t)
    stdin: str | Secret = Secret("API key", api_key + "\n") if api_key else ""
    started = time.monotonic()
    res: CommandResult = conn.run(Shell.sh(script, sudo=True, stdin=stdin, timeout=timeout,
                                           description=f"bench {suite.value} on replica {replica}"))
    took = time.monotonic() - started
    command = shlex.join(client_argv(suite, params, t))  # the exact client command (no secret in it)
    try:
        metrics = parse_result(suite, res.stdout)
    except ParseError as e:
        why = f"{e}; exit {res.exit_code}; last lines:\n{_tail(res.stdout + res.stderr)}"
        return SuiteRun(suite, replica, command, dict(params), error=why, duration_s=took)
    return SuiteRun(suite, replica, command, dict(params), metrics, duration_s=took)


def run_bench(inv: Inventory, topo: Topology, connect: Callable[[str], Connection], req: BenchRequest,
              api_key: str | None, stamp: str, progress: Progress | None = None) -> BenchRun:
    """Every selected suite on node 0 of every selected replica, one after the other (the
    suites would disturb each other's numbers if run at once)."""
    say = progress or (lambda _m: None)
    reps = [r for r in topo.replicas if req.replicas is None or r.index in req.replicas]
    if req.via_router:
        reps = reps[:1]
    results: list[SuiteRun] = []
    version = ""
    rt = for_inventory(inv)
    for rep in reps:
        conn = connect(rep.head.node.name)
        target = rt.target(rank_stem(inv.cluster.name, rep.index))
        installed = probe(conn, rt, target)
        version = installed.version or version
        for suite in req.suites:
            missing = installed.missing(suite, bool(api_key))
            if missing:
                raise GlmError(
                    f"replica {rep.index} ({rep.head.node.name}): SGLang {installed.version or '(unknown)'} "
                    f"has no {', '.join(missing)}: the {suite.value} client is missing from the installed version",
                    hint=("MMLU is scored by the separate sgl-eval package: install it into the runtime "
                          "(pip install sgl-eval), or leave mmlu out (--suite)") if "sgl_eval" in missing
                    else "use an SGLang release that ships the client, or leave the suite out (--suite)")
            failing = installed.failing(suite, bool(api_key))
            if failing:
                mod, why = next(iter(failing.items()))
                raise GlmError(
                    f"replica {rep.index} ({rep.head.node.name}): SGLang {installed.version or '(unknown)'} "
                    f"ships the {suite.value} client {mod}, but it cannot be imported in {target}: {why}",
                    hint=_import_fix(why, suite, installed.version or inv.serving.sglang_version))
        workdir = make_workdir(conn)
        try:
            staged = stage_data(conn, rt, target, workdir, req.data_files)
            t = target_for(inv, topo, rep, req.via_router, bool(api_key), workdir, staged)
            for suite in req.suites:
                params = req.params.for_suite(suite)
                say(f"replica {rep.index}: {suite.value} ({', '.join(f'{k}={v}' for k, v in params.items())})")
                results.append(run_suite(conn, suite, params, t, api_key, rep.index, req.timeout))
        finally:
            remove_workdir(conn, rt, target, workdir)
    return BenchRun(cluster=inv.cluster.name, stamp=stamp, config_digest=config_digest(inv, topo),
                    sglang_version=version or inv.serving.sglang_version, hardware=hardware_row(inv, topo),
                    results=tuple(results), via_router=req.via_router)


def selected(topo: Topology, replicas: Sequence[int] | None) -> list[int]:
    known = [r.index for r in topo.replicas]
    bad = [i for i in replicas or () if i not in known]
    if bad:
        raise InputError(f"--replica {bad[0]}: no such replica (this inventory has {known})")
    return list(replicas) if replicas else known


def _import_fix(why: str, suite: Suite, version: str) -> str:
    """What to do about a client that does not import: name the missing module when Python did."""
    m = re.search(r"No module named '([^']+)'", why)
    lacking = (f"the runtime lacks the Python module {m.group(1).split('.')[0]!r} (a full SGLang install "
               "brings it; a venv installed with --no-deps or a trimmed image does not)") if m else \
        "the runtime lacks what the client imports"
    return (f"{lacking}: add the package that provides it to the inventory's serving.extra_packages "
            + ("(and 'sgl-eval==0.1.3' for mmlu) " if suite is Suite.MMLU else "")
            + "and run `glm5cluster up INVENTORY`, or leave the suite out (--suite). In the rehearsal lab "
            f"the simulated wheel keeps the clients' dependencies under its extra: 'sglang[bench]=={version}'")
