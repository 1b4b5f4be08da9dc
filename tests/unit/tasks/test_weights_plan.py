"""Pure pieces of weights staging: token, disk check, source tree, progress text, tools task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glm5cluster.commands import Shell, Upload
from glm5cluster.facts.weights import parse_tools
from glm5cluster.model.inventory import Inventory
from glm5cluster.tasks.base import Change, NoOp
from glm5cluster.tasks.weights import (
    NodeNeeds,
    ToolsParams,
    WeightsTools,
    agent_sha256,
    disk_problem,
    fanout_parents,
    hub_token,
    progress_text,
    source_order,
    token_prelude,
)


def inv(source: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None) -> Inventory:
    return Inventory.model_validate({
        "cluster": {"name": "c", "gpu": {"kind": "H200", "count": 8}},
        "hosts": [{"name": "n1", "address": "10.0.0.1"}],
        "model": {"repo": "zai-org/GLM-5-FP8", "weights_dir": "/models/glm5", **({"source": source} if source else {})},
        "serving": {"package_index": "http://mirror.lab:8081/simple", "secrets": secrets or {}},
    })


def test_token_comes_from_the_named_variable_and_is_masked() -> None:
    t = hub_token(inv({"kind": "hub", "token_env": "MY_HF"}), {"MY_HF": "hf_abc"})
    assert t is not None and t.value == "hf_abc" and "hf_abc" not in repr(t) + str(t)
    assert hub_token(inv(secrets={"hf_token_env": "HF_TOKEN"}), {"HF_TOKEN": "hf_x"}) is not None
    assert hub_token(inv(), {"HF_TOKEN": "hf_x"}) is None  # the inventory names no variable
    assert "read -r HF_TOKEN" in token_prelude() and "$HF_TOKEN" in token_prelude()


def test_disk_problem_names_node_need_and_free() -> None:
    msg = disk_problem("n3", 10 << 30, 5 << 30, "/models/glm5")
    assert msg is not None and "n3" in msg and "need 10.3 GiB" in msg and "free 5.0 GiB" in msg
    assert disk_problem("n3", 1 << 30, 100 << 30, "/m") is None
    assert disk_problem("n3", 0, 0, "/m") is None


def test_tree_and_source_order() -> None:
    assert fanout_parents(["a", "b", "c", "d"]) == {"b": "a", "c": "a", "d": "b"}
    assert fanout_parents(["a", "b", "c"], fanout=1) == {"b": "a", "c": "b"}
    order, hub = source_order([NodeNeeds("a", ("x",)), NodeNeeds("b", ("x",))], "a")
    assert order == ["a", "b"] and hub
    order, hub = source_order([NodeNeeds("a", ()), NodeNeeds("b", ()), NodeNeeds("c", ("x",))], "a")
    assert order == ["a", "c"] and not hub  # repair from a peer holding a verified copy


def test_progress_text() -> None:
    t = progress_text({"phase": "fetch", "done": 1 << 30, "total": 4 << 30, "rate": 50 << 20, "eta": 61, "files_done": 2, "files": 8})
    assert "1.0 GiB/4.0 GiB (25%)" in t and "50.0 MiB/s" in t and "ETA 1m01s" in t and "files 2/8" in t


@dataclass
class Ctx:
    inventory: Inventory
    node: Any = None


def test_tools_task_installs_venv_hub_agent_and_ssh_client() -> None:
    st = parse_tools("hub=\nagent=\nssh=\nvenv=\nfamily=debian\n")
    out = WeightsTools().plan(ToolsParams(), Ctx(inv()), {"tools": st})
    assert isinstance(out, Change)
    text = "\n".join(c.command_line() for c in out.commands if isinstance(c, Shell))
    assert "openssh-client python3-venv" in text and "python3 -m venv /opt/glm5cluster/tools" in text
    assert "--index-url http://mirror.lab:8081/simple" in text
    assert any(isinstance(c, Upload) and c.dest.endswith("glm5-weights-agent.py") for c in out.commands)
    done = parse_tools(f"hub=1.0.0\nagent={agent_sha256()}\nssh=/usr/bin/ssh\nvenv=1\nfamily=debian\n")
    assert isinstance(WeightsTools().plan(ToolsParams(), Ctx(inv()), {"tools": done}), NoOp)


def test_authorized_option_quotes_as_sshd_dequotes() -> None:
    from glm5cluster.tasks.weights import authorized_option

    # OpenSSH misc.c opt_dequote: only \" is an escape; any other backslash is literal
    assert authorized_option('/opt/t/bin/python /opt/a.py gate "/srv/m"') == '"/opt/t/bin/python /opt/a.py gate \\"/srv/m\\""'
    assert authorized_option("a\\b") == '"a\\b"'
    for bad in ("a\nb", "a\rb", "a\0b", "ends\\"):
        with pytest.raises(ValueError):
            authorized_option(bad)


def sshd_dequote(quoted: str) -> str:
    """OpenSSH misc.c opt_dequote, transcribed (to check the round trip)."""
    assert quoted[0] == '"'
    s, out, i = quoted[1:], [], 0
    while i < len(s) and s[i] != '"':
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] == '"':
            i += 1
        out.append(s[i])
        i += 1
    assert i < len(s), "missing end quote"
    assert s[i + 1:] == "", "text after the closing quote"
    return "".join(out)


@pytest.mark.parametrize("value", ['/srv/m"x', 'a\\"b', "plain", 'x"; rm -rf /; "', "back\\slash"])
def test_authorized_option_round_trip(value: str) -> None:
    from glm5cluster.tasks.weights import authorized_option

    assert sshd_dequote(authorized_option(value)) == value


def test_key_line_restricts_to_resolved_addresses_and_the_gate() -> None:
    from glm5cluster.tasks.weights import (
        authorized_key_line,
        from_addresses,
        is_address,
        parse_resolved,
        resolve_script,
    )

    text = "== node-2.cluster\n10.9.0.12       STREAM node-2.cluster\n10.9.0.12       DGRAM\n" \
           "fd00::12        STREAM\n== node-3\n"
    resolved = parse_resolved(text)
    assert resolved == {"node-2.cluster": ["10.9.0.12", "fd00::12"], "node-3": []}
    assert from_addresses(["10.9.0.11", "node-2.cluster", "[fd00::13]"], resolved) == \
        ["10.9.0.11", "10.9.0.12", "fd00::12", "fd00::13"]
    with pytest.raises(ValueError, match="node-3 does not resolve"):
        from_addresses(["node-3"], resolved)
    assert is_address("10.0.0.1") and is_address("[fd00::1]") and not is_address("node-1")
    line = authorized_key_line("ssh-ed25519 AAAA k", '/t/py /t/a.py gate "/m"', ["10.9.0.11", "10.9.0.12"])
    assert line == 'restrict,from="10.9.0.11,10.9.0.12",command="/t/py /t/a.py gate \\"/m\\"" ssh-ed25519 AAAA k'
    assert "'== node-1; x'" in resolve_script(["node-1; x"])


def test_expiry_prefix_is_the_nodes_local_time() -> None:
    import subprocess

    from glm5cluster.tasks.weights import expiry_prefix_script

    out = subprocess.run(["sh", "-c", expiry_prefix_script(86400 + 3600)], capture_output=True, text=True,
                         env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}, check=True).stdout.strip()
    assert out == 'expiry-time="19700102010000",'


def test_kill_agent_only_kills_the_agent_a_pid_file_names(tmp_path: Path) -> None:
    """A stale agent.pid may name an unrelated process by now: it is left alone; the file goes."""
    import subprocess
    import sys

    from glm5cluster.tasks.weights import kill_agent_script

    agent = tmp_path / "glm5-weights-agent.py"
    agent.write_text("import time\ntime.sleep(60)\n")
    other = subprocess.Popen(["sleep", "60"])
    real = subprocess.Popen([sys.executable, str(agent)])
    try:
        pidf = tmp_path / "agent.pid"
        for proc, killed in ((other, False), (real, True)):
            pidf.write_text(f"{proc.pid}\n")
            subprocess.run(["sh", "-c", kill_agent_script(str(pidf))], check=True, timeout=30)
            assert not pidf.exists()
            assert (proc.poll() is not None) is killed, proc.args
        pidf.write_text("1; touch /tmp/x\n")
        subprocess.run(["sh", "-c", kill_agent_script(str(pidf))], check=True, timeout=30)
        assert not pidf.exists()
    finally:
        for p in (other, real):
            p.kill()
            p.wait()
