"""SGLang runtime tasks (docker image, venv) and the installed-parser flag check."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glm5cluster.commands import CommandResult, Shell, Upload
from glm5cluster.model.catalog import gpu_profile
from glm5cluster.model.inventory import GpuKind, Inventory
from glm5cluster.model.nodes import resolve_nodes
from glm5cluster.runtime.rank import rank_command
from glm5cluster.tasks.base import Change, HostContext, NoOp, Skip
from glm5cluster.tasks.sglang_runtime import (
    EXTRAS_STAMP,
    FLAGCHECK_SNIPPET,
    ImageFact,
    RuntimeParams,
    SglangImage,
    SglangVenv,
    VenvFact,
    extras_stamp,
    flagcheck_command,
    flagcheck_verdict,
)
from glm5cluster.topology import plan_topology

SIM = Path(__file__).resolve().parents[3] / "glm5cluster" / "lab" / "sim" / "sglang_sim"


def inv(**serving: Any) -> Inventory:
    return Inventory.model_validate({
        "cluster": {"name": "c", "gpu": {"kind": "H200", "count": 8}},
        "hosts": [{"name": "n1", "address": "10.0.0.1"}],
        "model": {"repo": "zai-org/GLM-5-FP8", "weights_dir": "/models/glm5"},
        "serving": serving,
        "stack": {"registry_mirror": "mirror.lab:5000"} if serving.pop("_mirror", False) else {},
    })


@dataclass
class Node:
    gpu_kind: GpuKind = GpuKind.H200


def Ctx(inventory: Inventory, node: Node | None = None) -> HostContext:  # noqa: N802
    return HostContext(node=node or Node(), inventory=inventory)  # type: ignore[arg-type]


def res(out: str, code: int = 0) -> CommandResult:
    return CommandResult("x", code, out, "")


def test_image_pull_via_mirror_and_tag() -> None:
    i = inv(runtime="docker", _mirror=True)
    st = ImageFact("lmsysorg/sglang:v0.5.23").parse(res("", 1))
    out = SglangImage().plan(RuntimeParams(), Ctx(i), {"image": st})
    assert isinstance(out, Change)
    cmds = [c.command_line() for c in out.commands if isinstance(c, Shell)]
    assert cmds[:2] == ["docker pull mirror.lab:5000/lmsysorg/sglang:v0.5.23",
                        "docker tag mirror.lab:5000/lmsysorg/sglang:v0.5.23 lmsysorg/sglang:v0.5.23"]
    # the tag is resolved to its image ID and registry digests, recorded on the node
    assert "docker image inspect --format '{{.Id}} {{json .RepoDigests}}' lmsysorg/sglang:v0.5.23" in cmds[2]
    assert f"> /etc/glm5cluster/{i.cluster.name}/image.digest.tmp" in cmds[2]


def test_image_present_is_noop_and_venv_runtime_skips() -> None:
    st = ImageFact("x").parse(res('sha256:abc ["lmsysorg/sglang@sha256:def"]'))
    assert isinstance(SglangImage().plan(RuntimeParams(), Ctx(inv(runtime="docker")), {"image": st}), NoOp)
    assert isinstance(SglangImage().plan(RuntimeParams(), Ctx(inv(runtime="venv")), {"image": st}), Skip)


def test_image_pinned_digest_must_match() -> None:
    i = inv(runtime="docker", sglang_version="0.5.23", image="lmsysorg/sglang@sha256:" + "1" * 64)
    st = ImageFact("x").parse(res('sha256:abc ["lmsysorg/sglang@sha256:' + "2" * 64 + '"]'))
    assert isinstance(SglangImage().plan(RuntimeParams(), Ctx(i), {"image": st}), Change)


def test_venv_install_from_index_and_noop_when_same_version() -> None:
    i = inv(runtime="venv", package_index="http://mirror.lab:8081/simple")
    fact = VenvFact("/opt/glm5cluster/venv")
    out = SglangVenv().plan(RuntimeParams(), Ctx(i), {"venv": fact.parse(res("", 3))})
    assert isinstance(out, Change)
    text = "\n".join(c.command_line() for c in out.commands if isinstance(c, Shell))
    assert "python3 -m venv /opt/glm5cluster/venv" in text
    assert "--index-url http://mirror.lab:8081/simple --trusted-host mirror.lab sglang==0.5.23" in text
    assert isinstance(SglangVenv().plan(RuntimeParams(), Ctx(i), {"venv": fact.parse(res("0.5.23\n"))}), NoOp)
    upgrade = SglangVenv().plan(RuntimeParams(), Ctx(i), {"venv": fact.parse(res("0.5.10\n"))})
    assert isinstance(upgrade, Change) and "was 0.5.10" in upgrade.summary


def test_flagcheck_argv_travels_on_stdin_not_argv() -> None:
    h200 = gpu_profile(GpuKind.H200)
    cmd = flagcheck_command(inv(runtime="venv"), h200, ["--model-path", "/m", "--nsa-decode-backend", "x"])
    assert "--nsa-decode-backend" not in cmd.command_line() and "--nsa-decode-backend" in str(cmd.stdin)
    assert cmd.argv[0] == "/opt/glm5cluster/venv/bin/python"
    d = flagcheck_command(inv(runtime="docker"), h200, ["--tp-size", "8"])
    assert d.argv[:3] == ("docker", "run", "--rm") and "lmsysorg/sglang:v0.5.23" in d.argv
    amd = flagcheck_command(inv(runtime="docker"), gpu_profile(GpuKind.MI300X), ["--tp-size", "8"])
    assert "lmsysorg/sglang:v0.5.23-rocm700-mi30x" in amd.argv


def test_amd_docker_pulls_the_image_the_launch_runs() -> None:
    # Without serving.image the image step once pulled lmsysorg/sglang:vX while the launch ran
    # lmsysorg/sglang:vX-rocm700-mi35x; both now ask the runtime for the one rule.
    for kind, tag in ((GpuKind.MI355X, "v0.5.23-rocm700-mi35x"), (GpuKind.MI300X, "v0.5.23-rocm700-mi30x"),
                      (GpuKind.H200, "v0.5.23")):
        i = Inventory.model_validate({
            "cluster": {"name": "c", "gpu": {"kind": kind.value, "count": 8}},
            "hosts": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}],
            "model": {"repo": "zai-org/GLM-5", "weights_dir": "/models/glm5"},
            "serving": {"runtime": "docker"}})
        nodes = resolve_nodes(i)
        topo = plan_topology(i, nodes)
        rep = topo.replicas[0]
        launched = rank_command(i, topo, rep, rep.ranks[0])
        pulled = SglangImage().facts(RuntimeParams(), Ctx(i, Node(kind)))["image"]
        assert isinstance(pulled, ImageFact) and pulled.image == f"lmsysorg/sglang:{tag}"
        assert pulled.image in launched and launched[launched.index(pulled.image) + 1] == "python3"
        out = SglangImage().plan(RuntimeParams(), Ctx(i, Node(kind)), {"image": pulled.parse(res("", 1))})
        assert isinstance(out, Change) and out.summary == f"pull lmsysorg/sglang:{tag}"


def run_snippet(argv: list[str]) -> CommandResult:
    import json

    env = {**os.environ, "PYTHONPATH": str(SIM)}
    p = subprocess.run([sys.executable, "-c", FLAGCHECK_SNIPPET], input=json.dumps(argv), env=env,
                       capture_output=True, text=True, check=False)
    return CommandResult("snippet", p.returncode, p.stdout, p.stderr)


def test_snippet_against_the_simulated_parser_names_flag_and_version() -> None:
    ok, msg, ver = flagcheck_verdict(run_snippet(["--model-path", "/m", "--tp-size", "8"]), "head")
    assert ok, msg
    ok, msg, ver = flagcheck_verdict(run_snippet(["--model-path", "/m", "--nsa-decode-backend", "trtllm"]), "head")
    assert not ok and "--nsa-decode-backend" in msg and ver in msg and ver != "?"


FAKE_SERVER_ARGS = '''
import dataclasses

@dataclasses.dataclass
class ServerArgs:
    model_path: str = None
    served_model_name: str = None
    tp_size: int = 1
    chunked_prefill_size: int = None

    @staticmethod
    def add_cli_args(parser):
        parser.add_argument("--model-path")
        parser.add_argument("--served-model-name")
        parser.add_argument("--tp-size", type=int, default=1)

    @classmethod
    def from_cli_args(cls, args):
        return cls(**vars(args))

    def check_server_args(self):
        # as 0.5.23 arg_groups/validation_hook.py:213-219, then a field only resolution fills in
        assert ":" not in self.served_model_name, "served_model_name cannot contain a colon (':') character."
        assert self.chunked_prefill_size > 0
'''


def run_fake_snippet(tmp_path, argv: list[str]) -> CommandResult:
    import json

    pkg = tmp_path / "sglang" / "srt"
    pkg.mkdir(parents=True, exist_ok=True)
    (tmp_path / "sglang" / "__init__.py").write_text("__version__ = '0.5.23'\n")
    (pkg / "__init__.py").write_text("")
    (pkg / "server_args.py").write_text(FAKE_SERVER_ARGS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    p = subprocess.run([sys.executable, "-c", FLAGCHECK_SNIPPET], input=json.dumps(argv), env=env,
                       capture_output=True, text=True, check=False, cwd=tmp_path)
    return CommandResult("snippet", p.returncode, p.stdout, p.stderr)


def test_snippet_runs_the_installed_post_parse_check(tmp_path) -> None:
    ok, msg, _ = flagcheck_verdict(run_fake_snippet(tmp_path, ["--model-path", "/m", "--served-model-name", "a:b"]), "h")
    assert not ok and "post-parse check" in msg and "colon" in msg
    ok, msg, _ = flagcheck_verdict(run_fake_snippet(tmp_path, ["--model-path", "/m", "--served-model-name", "ab"]), "h")
    assert ok and "post-parse check: incomplete (TypeError)" in msg  # stopped at an unresolved field


def test_snippet_without_post_parse_check_says_so() -> None:
    ok, msg, _ = flagcheck_verdict(run_snippet(["--model-path", "/m", "--tp-size", "8"]), "head")
    assert ok and "not available" in msg


def test_venv_extra_packages_installed_with_sglang_recorded_and_converged(tmp_path: Path) -> None:
    i = inv(runtime="venv", package_index="http://mirror.lab:8081/simple",
            extra_packages=["sglang[bench]==0.5.23", "sgl-eval==0.1.3"])
    fact = VenvFact(str(tmp_path / "venv"))
    # the fact's own command, against a venv whose python prints the sglang version
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    py = tmp_path / "venv" / "bin" / "python"
    py.write_text("#!/bin/sh\necho 0.5.23\n")
    py.chmod(0o755)

    def observe() -> Any:
        r = subprocess.run(["sh", "-c", fact.command().command_line()], capture_output=True, text=True, timeout=30)
        return fact.parse(CommandResult("x", r.returncode, r.stdout, r.stderr))

    st = observe()
    assert st.sglang == "0.5.23" and st.extras is None
    out = SglangVenv().plan(RuntimeParams(), Ctx(i), {"venv": st})  # sglang there, extras never installed
    assert isinstance(out, Change)
    pip = [c.command_line() for c in out.commands if isinstance(c, Shell)]
    assert pip == ["/opt/glm5cluster/venv/bin/pip install --disable-pip-version-check -q --index-url "
                   "http://mirror.lab:8081/simple --trusted-host mirror.lab sglang==0.5.23 'sglang[bench]==0.5.23' "
                   "sgl-eval==0.1.3"]
    stamp = [c for c in out.commands if isinstance(c, Upload)]
    assert [s.dest for s in stamp] == [extras_stamp("/opt/glm5cluster/venv")]
    (tmp_path / "venv" / EXTRAS_STAMP).write_bytes(stamp[0].content)  # what the install leaves behind
    st = observe()
    assert st.extras == ("sglang[bench]==0.5.23", "sgl-eval==0.1.3")
    again = SglangVenv().plan(RuntimeParams(), Ctx(i), {"venv": st})
    assert isinstance(again, NoOp) and "with sglang[bench]==0.5.23, sgl-eval==0.1.3" in again.reason
    more = inv(runtime="venv", extra_packages=["sglang[bench]==0.5.23", "sgl-eval==0.1.4"])
    assert isinstance(SglangVenv().plan(RuntimeParams(), Ctx(more), {"venv": st}), Change)  # a changed list installs
    assert isinstance(SglangVenv().plan(RuntimeParams(), Ctx(inv(runtime="venv")), {"venv": st}), NoOp)


def test_extra_packages_are_part_of_the_rank_digest_only_when_set() -> None:
    from glm5cluster.runtime import for_inventory
    from glm5cluster.runtime.rank import rank_launch

    def digest(**serving: Any) -> str:
        i = inv(runtime="venv", **serving)
        topo = plan_topology(i, resolve_nodes(i))
        rep = topo.replicas[0]
        return rank_launch(i, topo, rep, rep.head, None, for_inventory(i)).digest

    plain = digest()
    assert plain == digest(extra_packages=[])
    assert digest(extra_packages=["sgl-eval==0.1.3"]) not in (plain, digest(extra_packages=["sgl-eval==0.1.4"]))
