"""``weights.stage``: list once, check disk everywhere, fetch once from the hub, fan out node to
node over the cluster network (pipelined per file), verify everywhere, stamp.

The node side is the weights agent (``tasks/agents/weights/``, one file), run detached so a long
download survives one command's timeout; the controller polls each node's ``progress.json``.
Peer copies are one long-lived ssh stream per receiver worker (AES-GCM, no compression) with a
per-run key pair, authorized on source nodes only for the agent's ``gate`` -> ``serve`` (it
sends verified files of the weights directory, waiting for those still arriving) from the
receivers' addresses, and removed at the end even on failure; the receiver hashes the bytes as
they arrive and checks them against the hub's metadata. Host keys between nodes are checked
against a known_hosts built from what the controller read over its own verified connections.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glm5cluster.commands import Secret, Shell, Upload
from glm5cluster.engine.events import Transfer
from glm5cluster.engine.procedure import ClusterContext, Params
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.model.inventory import HubSource, PathSource
from glm5cluster.tasks import weights as W

STATE = ".glm5cluster"
KEY_TAG = "glm5cluster-ephemeral"
AGENT_NAME = "glm5-weights-agent"  # in the agent's command line (tasks/agents/weights/)
HASH_RATE = 50e6  # bytes/s a node reads and hashes at the least (sizes the check's timeout)
SILENT_POLLS = 60.0  # seconds a node may not answer progress polls before it is dropped


class StageParams(Params):
    verify_weights: bool = False  # re-hash every file (``--verify-weights``)
    workers: int = 4  # parallel hub downloads per node (`each`, and a seed with no receivers)
    peer_streams: int = 2  # ssh streams per receiver (each one copies file after file)
    seed_workers: int = 2  # parallel hub downloads on the fan-out seed: two at a time, so files
    # complete in order and the other nodes start copying the first while the rest download
    # (the hub link is the bottleneck; more parallel downloads only finish them all later)
    poll_interval: float = 3.0  # progress is read at least this often (at once when an agent ends)
    fanout: int = 2
    key_ttl_hours: float = 24.0  # the run's transfer key expires (expiry-time) even if never removed
    tools_dir: str = W.TOOLS_DIR


def _json(res: Any, what: str, host: str) -> dict[str, Any]:
    try:
        doc = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"{host}: {what} failed (exit {res.exit_code}): {res.tail(5)}") from None
    if not isinstance(doc, dict) or "error" in doc:
        raise RuntimeError(f"{host}: {what}: {doc.get('error') if isinstance(doc, dict) else doc}")
    return doc


class StageWeights:
    name = "weights.stage"
    Params = StageParams

    def run(self, params: StageParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        inv = ctx.inventory
        if isinstance(inv.model.source, PathSource):
            return self._verify_path(params, ctx)
        return _Stage(params, ctx).run()

    def _verify_path(self, params: StageParams, ctx: ClusterContext) -> Mapping[str, StepResult]:
        wdir = ctx.inventory.model.weights_dir
        code = ("import json,os,sys;d=sys.argv[1];ix=json.load(open(os.path.join(d,'model.safetensors.index.json')));"
                "fs=sorted(set(ix['weight_map'].values()));"
                "bad=[f for f in fs+['config.json'] if not os.path.isfile(os.path.join(d,f))];"
                "print(json.dumps({'files':len(fs),'missing':bad}))")

        def one(host: str) -> StepResult:
            r = ctx.run(host, Shell.cmd("python3", "-c", code, wdir, sudo=True, description="verify staged weights"))
            if not r.ok:
                return StepResult(Status.FAILED, message=f"weights at {wdir} unreadable: {r.tail(3)}")
            doc = json.loads(r.stdout.strip().splitlines()[-1])
            if doc["missing"]:
                return StepResult(Status.FAILED, message=f"{len(doc['missing'])} files missing in {wdir}: {', '.join(doc['missing'][:5])}")
            return StepResult(Status.OK, f"{doc['files']} shards present at {wdir} (path source)")

        got = ctx.fan_out(one)
        return {h: (r.value if r.ok and r.value else StepResult(Status.FAILED, message=str(r.error))) for h, r in got.items()}


class _Stage:
    def __init__(self, params: StageParams, ctx: ClusterContext) -> None:
        self.p, self.ctx = params, ctx
        inv = ctx.inventory
        src = inv.model.source
        assert isinstance(src, HubSource), "a path source is handled before staging"
        self.inv, self.src, self.wdir = inv, src, inv.model.weights_dir
        self.hosts = list(ctx.hosts)
        seed = self.src.seed_host
        self.seed = seed if seed in self.hosts else self.hosts[0]
        self.token = W.hub_token(inv, os.environ)
        self.run_id = uuid.uuid4().hex[:12]
        self.results: dict[str, StepResult] = {}
        self.how: dict[str, str] = {}
        self.commit = ""
        self.verify = params.verify_weights or bool(getattr(ctx, "verify_weights", False))

    # -- helpers --
    def agent(self, host: str, *args: str, stdin: str | Secret | None = None, env_token: bool = False,
              timeout: float | None = 600) -> Any:
        script = W.agent_cmd(self.p.tools_dir, *args)
        if env_token:
            script = W.token_prelude() + script
        env = {"HF_ENDPOINT": self.src.endpoint} if self.src.endpoint else {}
        return self.ctx.run(host, Shell.sh(script, sudo=True, env=env, stdin=stdin, timeout=timeout,
                                           description=f"weights agent {args[0]}"))

    def with_token(self, payload: str) -> Secret:
        return Secret(self.token.name if self.token else "HF_TOKEN", (self.token.value if self.token else "") + "\n" + payload)

    def state_path(self, name: str) -> str:
        return f"{self.wdir}/{STATE}/{name}"

    # -- the run --
    def run(self) -> dict[str, StepResult]:
        ctx = self.ctx
        ctx.progress(self.seed, f"weights: listing {self.inv.model.repo}@{self.inv.model.revision}")
        req = {"repo": self.inv.model.repo, "revision": self.inv.model.revision, "endpoint": self.src.endpoint}
        listing = _json(self.agent(self.seed, "list", stdin=self.with_token(json.dumps(req)), env_token=True),
                        "listing the hub", self.seed)
        commit, files = listing["commit"], listing["files"]
        self.commit = commit
        by_path = {f["path"]: f for f in files}
        total = sum(f["size"] for f in files)
        creq = {"dir": self.wdir, "repo": self.inv.model.repo, "commit": commit, "files": files,
                "full": self.verify, "mark": not ctx.check}
        # the check may hash every byte (--verify-weights, unstamped files): sized to that work
        check_timeout = 600 + total / HASH_RATE
        checks = ctx.fan_out(lambda h: _json(self.agent(h, "check", stdin=json.dumps(creq), timeout=check_timeout), "check", h))
        state: dict[str, dict[str, Any]] = {}
        for h, r in checks.items():
            if r.ok and r.value is not None:
                state[h] = r.value
            else:
                self.results[h] = StepResult(Status.UNREACHABLE if r.unreachable else Status.FAILED, message=str(r.error))
        needs = {h: [p for p, s in st["status"].items() if s != "ok"] for h, st in state.items()}
        problems = {h: W.disk_problem(h, state[h]["need"], state[h]["free"], self.wdir) for h in state}
        bad = {h: m for h, m in problems.items() if m}
        if bad:
            for h in state:
                self.results[h] = (StepResult(Status.FAILED, message=bad[h], hint="free space or point model.weights_dir at a larger disk")
                                   if h in bad else StepResult(Status.SKIPPED, f"nothing downloaded: {'; '.join(bad.values())}"))
            return self.results
        todo = {h: n for h, n in needs.items() if n}
        if ctx.check:
            for h in state:
                self.results[h] = (StepResult(Status.CHANGED, f"would fetch {len(todo[h])} files ({W.human(sum(by_path[p]['size'] for p in todo[h]))})")
                                   if h in todo else StepResult(Status.OK, f"{len(files)} files verified at commit {commit[:12]}"))
            return self.results
        if self.results and todo:  # a node could not be checked: do not start moving bytes
            for h in state:
                self.results.setdefault(h, StepResult(Status.SKIPPED, "not started: another node could not be checked"))
            return self.results
        started = time.monotonic()
        if todo:
            self._transfer(state, todo, files, by_path)
        fresh = {h for h, st in state.items() if h not in self.results
                 and (st["stamp_commit"] != commit or st["hashed"] > 0 or h in todo)}
        sreq = json.dumps({"dir": self.wdir, "repo": self.inv.model.repo, "commit": commit, "files": files})
        stamped = ctx.fan_out(lambda h: _json(self.agent(h, "stamp", stdin=sreq), "stamp", h), sorted(fresh))
        for h, sr in stamped.items():
            if not sr.ok:
                self.results[h] = StepResult(Status.FAILED, message=str(sr.error))
        for h in state:
            if h in self.results:
                continue
            if h in todo:
                moved = sum(by_path[p]["size"] for p in todo[h])
                how = self.how.get(h, "hub")
                self.results[h] = StepResult(Status.CHANGED, f"fetched {len(todo[h])} files ({W.human(moved)}) from {how} "
                                             f"in {time.monotonic() - started:.0f}s; {len(files)} files ({W.human(total)}) verified, commit {commit[:12]}")
            elif h in fresh:
                self.results[h] = StepResult(Status.CHANGED, f"{len(files)} files verified by hash, stamp written (commit {commit[:12]})")
            else:
                self.results[h] = StepResult(Status.OK, f"{len(files)} files ({W.human(total)}) verified by stamp, commit {commit[:12]}")
        return self.results

    def _transfer(self, state: dict[str, Any], todo: dict[str, list[str]], files: list[dict[str, Any]],
                  by_path: dict[str, dict[str, Any]]) -> None:
        base = {"dir": self.wdir, "repo": self.inv.model.repo, "commit": "", "endpoint": self.src.endpoint,
                "stall_timeout": self.src.stall_timeout, "retries": self.src.retries, "workers": self.p.workers}
        plan: dict[str, dict[str, Any]] = {}
        peers: dict[str, str] = {}
        commit = self.commit
        if self.src.mode == "each":
            for h, paths in todo.items():
                plan[h] = {**base, "commit": commit, "files": [by_path[p] for p in paths], "kind": "fetch"}
        else:
            needs = [W.NodeNeeds(h, tuple(todo.get(h, ()))) for h in state]
            order, hub_first = W.source_order(needs, self.seed)
            if hub_first:
                plan[order[0]] = {**base, "commit": commit, "files": [by_path[p] for p in todo[order[0]]], "kind": "fetch",
                                  "workers": self.p.seed_workers if len(order) > 1 else self.p.workers}
            peers = W.fanout_parents(order, self.p.fanout)
            for child, parent in peers.items():
                self.how[child] = f"peer {parent}"
        keydir = tempfile.mkdtemp(prefix="glm5-xfer-")
        sources = sorted(set(peers.values()))
        self.ctx.on_interrupt(lambda: self._abort(list(plan), sources if peers else [], list(peers)))
        try:
            if peers:
                self._setup_trust(keydir, peers, sources, base, by_path, todo, plan, commit)
            self._start_and_wait(plan)
        finally:
            if peers:
                self._teardown_trust(sources, list(peers))
            subprocess.run(["rm", "-rf", keydir], check=False)  # noqa: S603,S607

    def _setup_trust(self, keydir: str, peers: dict[str, str], sources: list[str], base: dict[str, Any],
                     by_path: dict[str, Any], todo: dict[str, list[str]], plan: dict[str, dict[str, Any]], commit: str) -> None:
        ctx = self.ctx
        key = Path(keydir) / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{KEY_TAG}-{self.run_id}", "-f", str(key)],  # noqa: S603,S607
                       check=True, capture_output=True)
        pub = (Path(keydir) / "id.pub").read_text().strip()
        gate = W.agent_cmd(self.p.tools_dir, "gate", self.wdir)

        def authorize(s: str) -> list[str]:
            node = ctx.nodes[s]
            names = [ctx.nodes[c].cluster_address for c, p in peers.items() if p == s]
            resolved: dict[str, list[str]] = {}
            if not all(W.is_address(n) for n in names):
                rr = ctx.run(s, Shell.sh(W.resolve_script([n for n in names if not W.is_address(n)]),
                                         description="resolve the receivers' addresses (from= matches addresses)"))
                resolved = W.parse_resolved(rr.stdout)
            line = W.authorized_key_line(pub, gate, W.from_addresses(names, resolved))
            expiry = W.expiry_prefix_script(int(time.time() + self.p.key_ttl_hours * 3600))
            script = (f"umask 077; mkdir -p ~/.ssh; sed -i '/{KEY_TAG}-/d' ~/.ssh/authorized_keys 2>/dev/null; "
                      f"printf '%s%s\\n' \"$({expiry})\" {shlex.quote(line)} >> ~/.ssh/authorized_keys && cat /etc/ssh/ssh_host_*_key.pub")
            r = ctx.run(s, Shell.sh(script, description="authorize the run's transfer key (serve verified weights only); read host keys"))
            if not r.ok:
                raise RuntimeError(f"{s}: could not authorize the transfer key: {r.tail(3)}")
            addr = node.cluster_address if node.ssh.port == 22 else f"[{node.cluster_address}]:{node.ssh.port}"
            return [f"{addr} {' '.join(ln.split()[:2])}" for ln in r.stdout.splitlines() if ln.strip()]

        got = ctx.fan_out(authorize, sources)
        known: list[str] = []
        for s in sources:
            if not got[s].ok or got[s].value is None:
                raise RuntimeError(f"{s}: {got[s].error}")
            known += got[s].value or []
        xdir = f"/run/glm5cluster-xfer-{self.run_id}"
        priv, kh = key.read_bytes(), ("\n".join(known) + "\n").encode()

        def hand_key(child: str) -> None:
            ctx.run(child, Shell.cmd("install", "-d", "-m", "0700", xdir, sudo=True))
            for dest, data, what in ((f"{xdir}/id", priv, "transfer key (this run only)"), (f"{xdir}/known_hosts", kh, "peer host keys")):
                r = ctx.put(child, Upload(dest, data, 0o600, sudo=True, description=what))
                if not r.ok:
                    raise RuntimeError(f"{child}: could not write {dest}: {r.tail(3)}")

        handed = ctx.fan_out(hand_key, list(peers))
        for child, parent in peers.items():
            if not handed[child].ok:
                raise RuntimeError(f"{child}: {handed[child].error}")
            pn = ctx.nodes[parent]
            plan[child] = {**base, "commit": commit, "files": [by_path[p] for p in todo[child]], "kind": "pull",
                           "workers": self.p.peer_streams, "source": f"{pn.ssh.user}@{pn.cluster_address}",
                           "source_name": parent, "port": pn.ssh.port, "key": f"{xdir}/id", "known_hosts": f"{xdir}/known_hosts"}

    def _teardown_trust(self, sources: list[str], receivers: list[str]) -> None:
        ctx = self.ctx
        tag = f"{KEY_TAG}-{self.run_id}"
        ctx.fan_out(lambda s: ctx.run(s, Shell.sh(f"sed -i '/{tag}/d' ~/.ssh/authorized_keys", description="remove the transfer key")), sources)
        ctx.fan_out(lambda c: ctx.run(c, Shell.cmd("rm", "-rf", f"/run/glm5cluster-xfer-{self.run_id}", sudo=True)), receivers)

    def _abort(self, agents: list[str], sources: list[str], receivers: list[str]) -> None:
        """Ctrl-C: stop the detached agents (their whole process group) and take the run's
        transfer key back out of authorized_keys; a re-run resumes from what was verified."""
        ctx = self.ctx
        pidf = shlex.quote(self.state_path("agent.pid"))
        # its whole process group (setsid: the agent's pid), its ssh/copy children with it; only
        # while the pid still is the agent (a stale file's number may be another process now)
        stop = (f"p=$(cat {pidf} 2>/dev/null); case \"$p\" in ''|*[!0-9]*) ;; *) "
                f"if tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q {AGENT_NAME}; then "
                f"kill -TERM -\"$p\" 2>/dev/null || kill -TERM \"$p\" 2>/dev/null; sleep 1; "
                f"kill -KILL -\"$p\" 2>/dev/null; fi;; esac; rm -f {pidf}; true")
        ctx.fan_out(lambda h: ctx.run(h, Shell.sh(stop, sudo=True, timeout=30, description="stop the weights agent")),
                    agents, timeout=60)
        if sources or receivers:
            self._teardown_trust(sources, receivers)

    def _start_and_wait(self, plan: dict[str, dict[str, Any]]) -> None:
        ctx = self.ctx

        def start(h: str) -> str:
            req = dict(plan[h])
            kind = req.pop("kind")
            sd = self.state_path("")
            pidf, logf, reqf = f"{sd}agent.pid", f"{sd}agent.log", f"{sd}req-{kind}.json"
            kill_old = W.kill_agent_script(pidf)
            ctx.run(h, Shell.cmd("install", "-d", "-m", "0755", sd, sudo=True))
            ctx.put(h, Upload(reqf, json.dumps(req).encode(), 0o600, sudo=True))
            launch = (W.token_prelude() + kill_old + "cd / && umask 022 && "
                      + f"setsid nohup {W.agent_cmd(self.p.tools_dir, kind, reqf)} </dev/null >>{shlex.quote(logf)} 2>&1 & "
                      + f"echo $! > {shlex.quote(pidf)}; echo started")
            env = {"HF_ENDPOINT": self.src.endpoint} if self.src.endpoint else {}
            stdin = self.with_token("") if kind == "fetch" else "\n"
            r = ctx.run(h, Shell.sh(launch, sudo=True, env=env, stdin=stdin, description=f"start weights {kind}"))
            if not r.ok:
                raise RuntimeError(f"could not start the agent: {r.tail(3)}")
            return kind

        started = ctx.fan_out(start, list(plan))
        running = set()
        for h, sr in started.items():
            if sr.ok:
                running.add(h)
            else:
                self.results[h] = StepResult(Status.FAILED, message=str(sr.error))
        # waits on the node until the agent ends or poll_interval passes: few round trips, no lag
        poll = (f"p=$(cat {shlex.quote(self.state_path('agent.pid'))} 2>/dev/null); "
                f"if [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; then "
                f"timeout {self.p.poll_interval:g} tail -s 0.2 --pid=\"$p\" -f /dev/null 2>/dev/null; fi; "
                f"cat {shlex.quote(self.state_path('progress.json'))} 2>/dev/null; echo; "
                f"[ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null && echo ALIVE; "
                f"tail -n 3 {shlex.quote(self.state_path('agent.log'))} 2>/dev/null | sed 's/^/LOG /'")
        silent: dict[str, float] = {}  # host -> when it stopped answering the polls
        while running:
            got = ctx.fan_out(lambda h: ctx.run(h, Shell.sh(poll, sudo=True, timeout=self.p.poll_interval + 30,
                                                            description="weights progress")), sorted(running))
            if any(not r.ok or r.value is None for r in got.values()):
                time.sleep(self.p.poll_interval)  # a host did not answer: do not spin
            for h, r in got.items():
                if not r.ok or r.value is None:
                    since = silent.setdefault(h, time.monotonic())
                    if time.monotonic() - since >= SILENT_POLLS:  # dropped and named, never polled forever
                        self.results[h] = StepResult(
                            Status.UNREACHABLE if r.unreachable else Status.FAILED,
                            message=f"{h} stopped answering during weights staging "
                                    f"({time.monotonic() - since:.0f}s): {getattr(r.error, 'message', None) or r.error}",
                            hint="check the host; a re-run resumes from the verified files")
                        running.discard(h)
                    continue
                silent.pop(h, None)
                out = r.value.stdout
                rec: dict[str, Any] = {}
                for ln in out.splitlines():
                    if ln.startswith("{"):
                        try:
                            rec = json.loads(ln)
                        except ValueError:
                            rec = {}
                alive = "ALIVE" in out.splitlines()
                if rec:
                    ctx.progress(h, W.progress_text(rec), transfer_of(rec))
                if rec.get("phase") == "done" and not alive:
                    running.discard(h)
                elif not alive:
                    logs = [ln[4:] for ln in out.splitlines() if ln.startswith("LOG ")]
                    msg = rec.get("error") or (logs[-1] if logs else "the weights agent stopped")
                    self.results[h] = StepResult(Status.FAILED, message=f"weights transfer failed: {msg}",
                                                 hint=f"see {self.state_path('agent.log')} on {h}; a re-run resumes")
                    ctx.run(h, Shell.sh(f"grep -q '^done' {shlex.quote(self.state_path('ready/.state'))} || "
                                        f"echo 'failed: agent stopped' > {shlex.quote(self.state_path('ready/.state'))}", sudo=True))
                    running.discard(h)
            if ctx.expired():
                for h in running:
                    ctx.run(h, Shell.sh(W.kill_agent_script(self.state_path("agent.pid")), sudo=True))
                    self.results[h] = StepResult(Status.FAILED, message="weights transfer did not finish before the step timeout")
                running.clear()
        # the agents have ended: their pid files name nothing (a later pid could reuse the number)
        ctx.fan_out(lambda h: ctx.run(h, Shell.cmd("rm", "-f", self.state_path("agent.pid"), sudo=True,
                                                   description="remove the agent's pid file")), sorted(started))


def transfer_of(rec: Mapping[str, Any]) -> Transfer | None:
    """The agent's progress record as bytes for the display's progress bar."""
    try:
        total = float(rec.get("total") or 0)
        eta = rec.get("eta")
        eta_s = float(eta) if eta is not None and math.isfinite(float(eta)) else None
        return Transfer(float(rec.get("done") or 0), total, float(rec.get("rate") or 0), eta_s) if total else None
    except (TypeError, ValueError):
        return None
