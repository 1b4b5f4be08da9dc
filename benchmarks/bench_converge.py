"""The converged re-run benchmark of reference/lab.md, against the rehearsal lab.

The same 7 checks (gather facts, a probe, a directory, a 0600 env file, a systemd unit, the unit
running, disk free) as a glm5cluster playbook (playbooks/converge.yaml), an Ansible playbook
(pipelining on, forks 20, ControlPersist) and a pyinfra deploy, run against the same lab hosts in
one session, with the raw OpenSSH floor: one ``ssh`` per host in parallel running, in one shell,
exactly the checks glm5cluster's converged run executes (its one facts script per host).
pyinfra and Ansible run the same host-facts script as their "gather facts" step (Ansible with
its own fact gathering off), so every tool does the same remote work. Every tool is first run
once to converge the hosts; then the tools' converged re-runs are timed in interleaved rounds
(wall clock of the whole command, interpreter start included; and the CPU time the control
machine spent, which a shared machine's load disturbs much less), median of ``--runs``.

    .venv/bin/python benchmarks/bench_converge.py --inventory LAB_INV.yaml --sizes 4,16 --runs 5

Writes benchmarks/results/converge.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PLAYBOOK = ROOT / "playbooks" / "converge.yaml"
RESULTS = ROOT / "benchmarks" / "results"


def _converge_content() -> dict[str, Any]:
    data = yaml.safe_load(PLAYBOOK.read_text())
    steps = {s["name"]: s["params"] for s in data["steps"]}
    return {"probe": steps["probe"]["cmd"], "dir": steps["state directory"]["path"],
            "env_dest": steps["env file"]["dest"], "env": steps["env file"]["content"],
            "unit_name": steps["unit file"]["name"], "unit": steps["unit file"]["content"],
            "disk_path": steps["disk free"]["path"]}


def subset_inventory(inv_path: Path, n: int, out_dir: Path) -> Path:
    data = yaml.safe_load(inv_path.read_text())
    if len(data["hosts"]) < n:
        raise SystemExit(f"{inv_path} has {len(data['hosts'])} hosts; need {n} (lab up --hosts {n})")
    data["hosts"] = data["hosts"][:n]
    data.pop("groups", None)
    out = out_dir / f"inventory-{n}.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def lab_hosts(inv: Path) -> tuple[list[tuple[str, str]], dict[str, str]]:
    data = yaml.safe_load(inv.read_text())
    ssh = data["ssh"]
    return [(h["name"], h["address"]) for h in data["hosts"]], ssh


# -- the tools -------------------------------------------------------------------------------
def floor_script(inv: Path) -> str:
    """The one shell script per host that glm5cluster's converged run executes."""
    sys.path.insert(0, str(ROOT))
    from glm5cluster.engine.playbook import load_playbook
    from glm5cluster.facts.batch import FactBatch
    from glm5cluster.model.loader import load_inventory
    from glm5cluster.tasks.base import HostContext

    loaded = load_inventory(inv)
    pb = load_playbook(PLAYBOOK)
    ctx = HostContext(node=loaded.nodes[0], inventory=loaded.inventory)
    wanted: dict[str, Any] = {}
    for step in pb.steps:
        for fact in step.task.facts(step.params, ctx).values():
            wanted.setdefault(fact.key(), fact)
    return FactBatch(wanted).command().command_line()


def host_facts_script(inv: Path) -> str:
    """The remote part of the playbook's "gather facts" step (OS, GPUs, driver, Python, Docker,
    systemd, disk): pyinfra and Ansible run it as their facts step too, so every tool does the
    same remote work and the comparison measures orchestration alone."""
    sys.path.insert(0, str(ROOT))
    from glm5cluster.engine.playbook import load_playbook
    from glm5cluster.model.loader import load_inventory
    from glm5cluster.tasks.base import HostContext

    loaded = load_inventory(inv)
    step = load_playbook(PLAYBOOK).steps[0]
    ctx = HostContext(node=loaded.nodes[0], inventory=loaded.inventory)
    (fact,) = step.task.facts(step.params, ctx).values()
    return str(fact.command().command_line())


def ssh_base(ssh: dict[str, str], control: Path | None = None) -> list[str]:
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={ssh['known_hosts']}", "-i", ssh["identity_file"]]
    if control is not None:
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}/%C", "-o", "ControlPersist=120"]
    return argv


def run_floor(inv: Path, script: str) -> Callable[[], None]:
    hosts, ssh = lab_hosts(inv)
    remote = f"sh -c {shlex.quote(script)}"

    def go(strict: bool = True) -> None:
        procs = [subprocess.Popen([*ssh_base(ssh), f"{ssh.get('user', 'root')}@{addr}", remote],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _, addr in hosts]
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"floor ssh failed: {err.decode()[-300:]}")

    return go


def without_keys(inv: Path, dotted: str, out: Path) -> Path:
    """A copy of ``inv`` without the dotted keys (for an older checkout whose schema lacks them)."""
    if not dotted:
        return inv
    doc = yaml.safe_load(inv.read_text())
    for key in dotted.split(","):
        *parents, last = key.strip().split(".")
        node = doc
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def run_glm5cluster(inv: Path, home: Path, transport: str, venv_bin: Path = VENV_BIN) -> Callable[[], None]:
    env = {**os.environ, "GLM5CLUSTER_HOME": str(home), "GLM5CLUSTER_TRANSPORT": transport}
    argv = [str(venv_bin / "glm5cluster"), "run", str(inv), str(PLAYBOOK), "--yes"]

    def go(strict: bool = True) -> None:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if p.returncode != 0 or strict and ("changed=0" not in p.stdout or re.search(r"changed=[1-9]", p.stdout)):
            raise RuntimeError(f"glm5cluster run failed or changed something:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")

    return go


def write_ansible(inv: Path, work: Path) -> tuple[Path, Path, Path]:
    hosts, ssh = lab_hosts(inv)
    c = _converge_content()
    (work / "cp").mkdir(exist_ok=True)
    ini = work / "hosts.ini"
    ini.write_text("[lab]\n" + "".join(f"{n} ansible_host={a}\n" for n, a in hosts)
                   + f"[lab:vars]\nansible_user={ssh.get('user', 'root')}\n"
                   + f"ansible_ssh_private_key_file={ssh['identity_file']}\n"
                   + "ansible_python_interpreter=/usr/bin/python3\n")
    cfg = work / "ansible.cfg"
    cfg.write_text(
        "[defaults]\nforks = 20\nhost_key_checking = True\ngathering = implicit\n"
        "interpreter_python = /usr/bin/python3\nstdout_callback = default\n"
        "[ssh_connection]\npipelining = True\n"
        f"ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile={ssh['known_hosts']} "
        "-o StrictHostKeyChecking=yes\n"
        f"control_path_dir = {work}/cp\n")
    facts = work / "host_facts.sh"
    facts.write_text(host_facts_script(inv))
    play = [{
        "hosts": "lab", "become": True, "gather_facts": False,
        "tasks": [
            {"name": "gather facts", "shell": f"{{{{ lookup('file', '{facts}') }}}}",
             "args": {"executable": "/bin/sh"}, "changed_when": False},
            {"name": "probe", "shell": c["probe"], "changed_when": False},
            {"name": "state directory", "file": {"path": c["dir"], "state": "directory", "mode": "0755",
                                                 "owner": "root", "group": "root"}},
            {"name": "env file", "copy": {"dest": c["env_dest"], "content": c["env"], "mode": "0600",
                                          "owner": "root", "group": "root"}},
            {"name": "unit file", "copy": {"dest": f"/etc/systemd/system/{c['unit_name']}",
                                           "content": c["unit"], "mode": "0644"}},
            {"name": "unit running", "systemd": {"name": c["unit_name"], "state": "started",
                                                 "enabled": True}},
            {"name": "disk free", "shell": f"df -Pk {c['disk_path']} | tail -1", "changed_when": False},
        ],
    }]
    pb = work / "converge.yml"
    pb.write_text(yaml.safe_dump(play, sort_keys=False))
    return ini, cfg, pb


def run_ansible(inv: Path, work: Path) -> Callable[[], None]:
    ini, cfg, pb = write_ansible(inv, work)
    env = {**os.environ, "ANSIBLE_CONFIG": str(cfg)}
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(ini), str(pb)]

    def go(strict: bool = True) -> None:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise RuntimeError(f"ansible failed:\n{p.stdout[-2000:]}{p.stderr[-1000:]}")

    return go


def write_pyinfra(inv: Path, work: Path) -> tuple[Path, Path]:
    hosts, ssh = lab_hosts(inv)
    c = _converge_content()
    inventory = work / "pyinfra_inventory.py"
    data = {"ssh_user": ssh.get("user", "root"), "ssh_key": ssh["identity_file"],
            "ssh_known_hosts_file": ssh["known_hosts"], "ssh_strict_host_key_checking": "yes",
            "_sudo": False}
    inventory.write_text("lab = [\n" + "".join(
        f"    ({a!r}, {data!r}),\n" for _, a in hosts) + "]\n")
    deploy = work / "pyinfra_deploy.py"
    facts = work / "host_facts.sh"
    facts.write_text(host_facts_script(inv))
    deploy.write_text(f'''from io import StringIO
from pathlib import Path
from pyinfra.operations import files, server, systemd

server.shell(name="gather facts", commands=[Path({str(facts)!r}).read_text()])
server.shell(name="probe", commands=[{c["probe"]!r}])
files.directory(name="state directory", path={c["dir"]!r}, mode="755", user="root", group="root")
files.put(name="env file", src=StringIO({c["env"]!r}), dest={c["env_dest"]!r}, mode="600",
          user="root", group="root")
files.put(name="unit file", src=StringIO({c["unit"]!r}), dest="/etc/systemd/system/{c["unit_name"]}",
          mode="644", user="root", group="root")
systemd.service(name="unit running", service={c["unit_name"]!r}, running=True, enabled=True)
server.shell(name="disk free", commands=["df -Pk {c["disk_path"]} | tail -1"])
''')
    return inventory, deploy


def run_pyinfra(inv: Path, work: Path) -> Callable[[], None]:
    inventory, deploy = write_pyinfra(inv, work)
    argv = [str(VENV_BIN / "pyinfra"), "-y", "--parallel", "20", str(inventory), str(deploy)]

    def go(strict: bool = True) -> None:
        p = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=work)
        if p.returncode != 0:
            raise RuntimeError(f"pyinfra failed:\n{p.stdout[-2000:]}{p.stderr[-1000:]}")

    return go


# -- measuring -------------------------------------------------------------------------------
def _children_cpu() -> float:
    """CPU seconds (user + system) used by finished child processes: the control machine's cost
    of a run, much less sensitive than wall time to other load on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", required=True, type=Path, help="the lab inventory (lab up --hosts 16)")
    ap.add_argument("--sizes", default="4,16")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tools", default="floor,glm5cluster,glm5cluster-openssh,pyinfra,ansible")
    ap.add_argument("--out", type=Path, default=RESULTS / "converge.json")
    ap.add_argument("--before", type=Path, default=None,
                    help="another checkout (with its .venv) to time as the tool glm5cluster-before, "
                         "in the same interleaved rounds: a change's before/after")
    ap.add_argument("--before-drop", default="",
                    help="dotted inventory keys the older checkout does not know (dropped from its copy "
                         "of the inventory only), e.g. serving.insecure,bench")
    args = ap.parse_args()
    tools = args.tools.split(",")
    work_root = Path(tempfile.mkdtemp(prefix="glm5bench-"))
    results: dict[str, dict[str, Any]] = {}
    for n in (int(x) for x in args.sizes.split(",")):
        work = work_root / str(n)
        work.mkdir()
        inv = subset_inventory(args.inventory, n, work)
        makers: dict[str, Callable[[], Callable[[], None]]] = {
            "floor": lambda inv=inv: run_floor(inv, floor_script(inv)),
            "glm5cluster": lambda inv=inv, w=work: run_glm5cluster(inv, w / "home", "paramiko"),
            "glm5cluster-openssh": lambda inv=inv, w=work: run_glm5cluster(inv, w / "home", "openssh"),
            "glm5cluster-before": lambda inv=inv, w=work: run_glm5cluster(
                without_keys(inv, args.before_drop, w / "inventory-before.yaml"), w / "home-before",
                "paramiko", (args.before or Path(".")) / ".venv" / "bin"),
            "pyinfra": lambda inv=inv, w=work: run_pyinfra(inv, w),
            "ansible": lambda inv=inv, w=work: run_ansible(inv, w),
        }
        row: dict[str, Any] = {}
        runners: dict[str, Callable[..., None]] = {}
        times: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for tool in tools:  # converge / warm up each tool once (not timed)
            try:
                runners[tool] = makers[tool]()
                runners[tool](strict=False)
                times[tool] = []
            except Exception as e:  # noqa: BLE001 - report and go on with the other tools
                print(f"{tool} at {n} hosts: {e}", file=sys.stderr)
                row[tool] = {"error": str(e)[-500:]}
        # Interleaved rounds: every tool sees the same share of the machine's load swings.
        for _ in range(args.runs):
            for tool in list(times):
                t0, c0 = time.monotonic(), _children_cpu()
                try:
                    runners[tool]()
                except Exception as e:  # noqa: BLE001
                    print(f"{tool} at {n} hosts: {e}", file=sys.stderr)
                    row[tool] = {"error": str(e)[-500:]}
                    del times[tool]
                    continue
                times[tool].append(time.monotonic() - t0)
                cpu.setdefault(tool, []).append(_children_cpu() - c0)
        for tool, ts in times.items():
            row[tool] = {"median_s": statistics.median(ts), "runs_s": ts,
                         "control_cpu_s": statistics.median(cpu[tool])}
            print(f"{n:>3} hosts  {tool:<20} median {statistics.median(ts):6.2f}s  "
                  f"cpu {statistics.median(cpu[tool]):5.2f}s  "
                  f"runs {' '.join(f'{t:.2f}' for t in ts)}  load {os.getloadavg()[0]:.1f}", flush=True)
        floor = row.get("floor", {}).get("median_s")
        for v in row.values():
            if floor and "median_s" in v:
                v["ratio_to_floor"] = v["median_s"] / floor
        results[str(n)] = row
    meta = {"cpus": os.cpu_count(), "runs": args.runs, "python": sys.version.split()[0],
            "load_avg_end": os.getloadavg()[0],
            "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    table = markdown(results, tools)
    (args.out.with_suffix(".md")).write_text(table)
    print(table)
    return 0


def markdown(results: dict[str, dict[str, Any]], tools: list[str]) -> str:
    sizes = list(results)
    head = "| tool | " + " | ".join(f"{s} hosts" for s in sizes) + " |\n"
    head += "|---|" + "---|" * len(sizes) + "\n"
    for tool in tools:
        cells = []
        for s in sizes:
            v = results[s].get(tool, {})
            if "median_s" in v:
                ratio = v.get("ratio_to_floor")
                cells.append(f"{v['median_s']:.2f} s" + (f" ({ratio:.2f}x)" if ratio else "")
                             + f", cpu {v['control_cpu_s']:.2f} s")
            else:
                cells.append("error" if v else "-")
        head += f"| {tool} | " + " | ".join(cells) + " |\n"
    return head


if __name__ == "__main__":
    sys.exit(main())
