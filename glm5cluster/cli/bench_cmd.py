"""`glm5cluster bench INV`: the cookbook's benchmarks (latency, throughput, GSM8K, MMLU) run
with the installed SGLang's own clients on node 0 of each replica, parsed, kept under
~/.glm5cluster/bench/<cluster>/, compared with the cookbook's published figures and the last
good run of the same config; `--gate` exits 1 on a regression beyond tolerance."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import click

from glm5cluster.bench import data as bench_data
from glm5cluster.bench.gate import bench_and_gate
from glm5cluster.bench.history import History
from glm5cluster.bench.records import ALL_SUITES, Suite
from glm5cluster.bench.runner import BenchRequest, selected
from glm5cluster.bench.suites import SuiteParams
from glm5cluster.cli.bench_view import comparison_json, print_comparison, print_history
from glm5cluster.cli.inventory_io import load_and_check
from glm5cluster.cli.session import connect_options, transport_option
from glm5cluster.cli.verdict import bench_file
from glm5cluster.connect.pool import ConnectionPool
from glm5cluster.engine.procedures.status import collect
from glm5cluster.errors import GlmError, InputError


def parse_suites(text: str) -> tuple[Suite, ...]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    known = {s.value: s for s in ALL_SUITES}
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise click.BadParameter(f"unknown suite {bad[0] if bad else '(none)'!r}: use any of "
                                 f"{', '.join(known)} (comma-separated)", param_hint="--suite")
    return tuple(dict.fromkeys(known[n] for n in names))


def _local(base: str, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base) / p


def _pick(flag: str | None, field: str | None, base_dir: str) -> Path | None:
    if flag:
        return _local(os.getcwd(), flag)
    return Path(bench_file(base_dir, field)) if field else None


@click.command()
@click.argument("inventory", type=click.Path(dir_okay=False, path_type=str))
@click.option("--suite", "suites", default="latency,throughput,gsm8k,mmlu", show_default=True,
              help="Comma-separated suites: latency, throughput, gsm8k, mmlu.")
@click.option("--replica", "replicas", type=click.IntRange(0), multiple=True,
              help="Only this replica (repeatable; default all).")
@click.option("--via-router", is_flag=True, help="Measure through the router instead of node 0 directly.")
@click.option("--num-prompts", type=click.IntRange(1), help="Prompts per serving suite (cookbook: 10 latency, 1000 throughput).")
@click.option("--max-concurrency", type=click.IntRange(1), help="Concurrency of the serving suites (cookbook: 1 latency, 100 throughput).")
@click.option("--input-len", type=click.IntRange(1), default=1000, show_default=True, help="Random input length (tokens).")
@click.option("--output-len", type=click.IntRange(1), default=1000, show_default=True, help="Random output length (tokens).")
@click.option("--num-questions", type=click.IntRange(1), help="GSM8K/MMLU questions (cookbook: 200 GSM8K, all MMLU).")
@click.option("--data-path", help="Local GSM8K test file (JSON lines) instead of downloading it on node 0.")
@click.option("--sharegpt-path", help="Local ShareGPT JSON for the random dataset instead of downloading it.")
@click.option("--mmlu-data-path", help="Local MMLU file (sgl-eval's prepared test.jsonl) instead of downloading it.")
@click.option("--gate", is_flag=True, help="Exit 1 on a regression beyond tolerance (bench.tolerance).")
@click.option("--history", "show_history", is_flag=True, help="Show the kept runs and exit.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object on stdout for scripts.")
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys (changed keys are always refused).")
@transport_option
@click.pass_context
def command(ctx: click.Context, inventory: str, suites: str, replicas: tuple[int, ...], via_router: bool,
            num_prompts: int | None, max_concurrency: int | None, input_len: int, output_len: int,
            num_questions: int | None, data_path: str | None, sharegpt_path: str | None,
            mmlu_data_path: str | None, gate: bool,
            show_history: bool, fmt: str, accept_new_host_keys: bool, transport: str | None) -> None:
    """Run the SGLang cookbook's benchmarks on the cluster of INVENTORY and compare them."""
    checked = load_and_check(inventory)
    loaded, topo = checked.loaded, checked.topology
    inv = loaded.inventory
    store = History(inv.cluster.name)
    if show_history:
        runs = store.load()
        if fmt == "json":
            json.dump([r.to_json() for r in runs], sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print_history(runs, sys.stdout, shutil.get_terminal_size((120, 24)).columns)
        ctx.exit(0)
    chosen = parse_suites(suites)
    wanted = selected(topo, replicas or None)
    if via_router and topo.router is None:
        raise InputError("--via-router: this inventory has no router (replicas.router)",
                         hint="drop --via-router, or add replicas.router to the inventory")
    files: dict[str, bytes] = {}
    if data_path and Suite.GSM8K not in chosen:
        raise click.BadParameter("--data-path is the GSM8K test file: add gsm8k to --suite", param_hint="--data-path")
    if mmlu_data_path and Suite.MMLU not in chosen:
        raise click.BadParameter("--mmlu-data-path is the MMLU file: add mmlu to --suite",
                                 param_hint="--mmlu-data-path")
    # The flag (relative to the working folder) wins over the inventory's bench.* path
    # (relative to the inventory's folder).
    gsm8k_path = _pick(data_path, inv.bench.gsm8k_data_path, loaded.base_dir)
    if gsm8k_path and Suite.GSM8K in chosen:
        files["gsm8k"] = bench_data.gsm8k_file(gsm8k_path, num_questions or 200)
    sharegpt = _pick(sharegpt_path, inv.bench.sharegpt_path, loaded.base_dir)
    if sharegpt and (sharegpt_path or any(s.is_serving for s in chosen)):
        files["sharegpt"] = bench_data.sharegpt_file(sharegpt)
    mmlu = _pick(mmlu_data_path, inv.bench.mmlu_data_path, loaded.base_dir)
    if mmlu and Suite.MMLU in chosen:
        files["mmlu"] = bench_data.mmlu_file(mmlu, num_questions)
    key_env = inv.serving.secrets.api_key_env
    api_key = os.environ.get(key_env) if key_env else None
    if key_env and not api_key:
        raise GlmError(f"serving.secrets.api_key_env names {key_env}, which is not set here",
                       hint=f"export {key_env}=... (the server refuses requests without it)")
    req = BenchRequest(suites=chosen, params=SuiteParams(num_prompts, max_concurrency, input_len, output_len,
                                                         num_questions),
                       replicas=tuple(wanted), via_router=via_router, data_files=files)
    say = (lambda m: click.echo(f"bench: {m}", err=True)) if fmt == "text" else None
    with ConnectionPool(loaded.nodes, connect_options(accept_new_host_keys, transport)) as pool:
        status = collect(inv, topo, pool, api_key)
        for rep in status.replicas:
            if rep.index in wanted and rep.judgement.verdict != "serving":
                raise GlmError(f"replica {rep.index} ({rep.endpoint}) is not serving: "
                               f"{rep.judgement.verdict.value} ({rep.judgement.reason})",
                               hint=f"see `glm5cluster status {inventory}`; `glm5cluster up {inventory}` starts it")
        try:
            outcome = bench_and_gate(inv, topo, pool.get, api_key, req, store, say)
        except KeyboardInterrupt:
            click.echo("interrupted: no result of this run was kept", err=True)
            ctx.exit(130)
    gated = outcome.passed if gate else None
    if fmt == "json":
        json.dump(comparison_json(outcome.run, outcome.comparisons, gated), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_comparison(outcome.run, outcome.comparisons, sys.stdout, sys.stdout.isatty(), gated)
        if outcome.kept:
            sys.stdout.write(f"kept: {outcome.kept}\n")
    failed = any(not c.run.ok for c in outcome.comparisons)
    ctx.exit(1 if failed or (gate and not outcome.passed) else 0)
