"""Fact scripts run through a real local ``sh`` (cheap, no host needed): sections, batches,
path state, disk free, and the bundle with fake GPU tools that print real captured outputs."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.amd import AmdGpus
from glm5cluster.facts.batch import FactBatch
from glm5cluster.facts.bundle import HostFactsFact
from glm5cluster.facts.command import CommandFact
from glm5cluster.facts.disk import DiskFreeFact
from glm5cluster.facts.gpu_types import GpuStatus
from glm5cluster.facts.nvidia import NvidiaGpus
from glm5cluster.facts.paths import PathStateFact
from glm5cluster.facts.sections import TOKEN, section_script, split_sections
from glm5cluster.model.inventory import GpuKind

HERE = Path(__file__).parent
HOSTILE = "a b'c\"d;$(touch PWNED)`touch PWNED2`\\e"


def sh(cmd: Shell, path_prefix: Path | None = None, cwd: Path | None = None) -> CommandResult:
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    p = subprocess.run(["sh", "-c", cmd.command_line()], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=60, check=False)
    return CommandResult(cmd.command_line(), p.returncode, p.stdout, p.stderr)


def fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_sections_split_back_exactly() -> None:
    parts = [
        ("one", "printf 'no newline'"),
        ("two", "echo out; echo err >&2; exit 3"),
        ("three", f"echo '@@{TOKEN}:one:end:0@@ in the middle of a line'; printf '\\n\\n'"),
        ("four", "cat"),  # stdin is /dev/null: must not hang or eat the script
    ]
    res = sh(Shell.sh(section_script(parts)))
    assert res.ok
    got = split_sections(res, [n for n, _ in parts] + ["never"])
    assert (got["one"].stdout, got["one"].exit_code) == ("no newline", 0)
    assert (got["two"].stdout, got["two"].stderr, got["two"].exit_code) == ("out\n", "err\n", 3)
    assert got["three"].stdout == f"@@{TOKEN}:one:end:0@@ in the middle of a line\n\n\n"
    assert got["four"].stdout == "" and got["four"].exit_code == 0
    assert got["never"].exit_code == -1


def test_section_names_are_checked() -> None:
    with pytest.raises(ValueError):
        section_script([("Bad Name", "true")])
    with pytest.raises(ValueError):
        section_script([("a", "true"), ("a", "true")])


def test_a_killed_section_reports_missing() -> None:
    res = sh(Shell.sh(section_script([("a", "echo hi"), ("b", "echo partial; kill -9 $$")])))
    got = split_sections(res, ["a", "b"])
    assert got["a"].stdout == "hi\n" and got["a"].exit_code == 0
    assert got["b"].exit_code == -1


def test_fact_batch_parses_each_fact_as_alone(tmp_path: Path) -> None:
    batch = FactBatch({"x": CommandFact("echo x; exit 2"), "disk": DiskFreeFact(str(tmp_path / "new")),
                       "file": PathStateFact(str(tmp_path / "missing"))})
    cmd = batch.command()
    value = batch.parse(sh(cmd))
    assert value["x"].stdout == "x\n" and value["x"].exit_code == 2
    assert value["disk"].checked == str(tmp_path) and value["disk"].avail_bytes > 0
    assert value["file"].exists is False


def test_command_fact_timeout_kills_only_itself() -> None:
    batch = FactBatch({"slow": CommandFact("sleep 30", timeout=1), "after": CommandFact("echo after")})
    value = batch.parse(sh(batch.command()))
    assert value["slow"].exit_code == 124
    assert value["after"].stdout == "after\n"


def test_path_state_with_a_hostile_name(tmp_path: Path) -> None:
    target = tmp_path / HOSTILE
    target.write_bytes(b"old content\n")
    target.chmod(0o600)
    import hashlib
    want = hashlib.sha256(b"new\n").hexdigest()
    state = PathStateFact(str(target), expect_sha256=want).parse(sh(PathStateFact(str(target), want).command(), cwd=tmp_path))
    assert state.exists and state.is_file and state.mode == 0o600 and state.size == 12
    assert state.sha256 == hashlib.sha256(b"old content\n").hexdigest()
    assert state.content == b"old content\n"  # differs: read back for the diff
    same = hashlib.sha256(b"old content\n").hexdigest()
    state2 = PathStateFact(str(target), same).parse(sh(PathStateFact(str(target), same).command(), cwd=tmp_path))
    assert state2.content is None  # converged: nothing read
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()
    assert not Path("PWNED").exists()


def test_path_state_directory_symlink_and_missing(tmp_path: Path) -> None:
    d = tmp_path / "dir x"
    d.mkdir(mode=0o750)
    d.chmod(0o750)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    for path, exists, kind in ((d, True, "directory"), (link, True, "symbolic link"),
                               (tmp_path / "gone" / "deeper", False, None)):
        fact = PathStateFact(str(path))
        state = fact.parse(sh(fact.command()))
        assert (state.exists, state.type) == (exists, kind)
    fact = PathStateFact(str(d))
    assert fact.parse(sh(fact.command())).mode == 0o750


def test_path_state_needs_an_absolute_path() -> None:
    with pytest.raises(ValueError):
        PathStateFact("relative")
    with pytest.raises(ValueError):
        PathStateFact("/a\nb")


def test_disk_free_walks_up_to_an_existing_parent(tmp_path: Path) -> None:
    path = tmp_path / HOSTILE / "more" / "deeper"
    fact = DiskFreeFact(str(path))
    free = fact.parse(sh(fact.command(), cwd=tmp_path))
    assert free.ok and free.checked == str(tmp_path) and free.avail_bytes and free.avail_bytes > 0
    assert free.path == str(path)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()
    assert "'" in shlex.split(fact.command().command_line().splitlines()[0].split("=", 1)[1])[0]


def test_nvidia_fact_through_a_fake_nvidia_smi(tmp_path: Path) -> None:
    rows = ("0, NVIDIA H200, GPU-ccb6b08d-a3ef-fd3d-46f4-f3f3ab66d96e, 00000000:00:06.0, 143771, 580.159.04, 9.0, Enabled\n"
            "1, NVIDIA H200, GPU-49517ccb-16e1-42fc-653e-b45238f7dd4f, 00000000:00:07.0, 143771, 580.159.04, 9.0, Enabled\n")
    (tmp_path / "rows.csv").write_text(rows)
    fake_tool(tmp_path / "bin", "nvidia-smi", f"cat {shlex.quote(str(tmp_path / 'rows.csv'))}")
    state = NvidiaGpus().parse(sh(NvidiaGpus().command(), tmp_path / "bin"))
    assert state.ok and state.count == 2 and state.kinds == {GpuKind.H200}
    assert state.driver_version == "580.159.04" and all(g.persistence for g in state.gpus)


def test_nvidia_fact_falls_back_to_the_table(tmp_path: Path) -> None:
    table = HERE / "nvidia_gpus" / "h200x8_nvidia-smi_570.158.01.txt"
    fake_tool(tmp_path / "bin", "nvidia-smi",
              'case "$1" in --query-gpu=*) echo \'Field "compute_cap" is not a valid field to query.\'; exit 2;; esac\n'
              f"cat {shlex.quote(str(table))}")
    state = NvidiaGpus().parse(sh(NvidiaGpus().command(), tmp_path / "bin"))
    assert state.ok and state.count == 8 and state.driver_version == "570.158.01"


def test_nvidia_fact_mismatch(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "nvidia-smi",
              "echo 'Failed to initialize NVML: Driver/library version mismatch'\n"
              "echo 'NVML library version: 570.133'\nexit 18")
    state = NvidiaGpus().parse(sh(NvidiaGpus().command(), tmp_path / "bin"))
    assert state.status is GpuStatus.MISMATCH and state.driver_version == "570.133"


def test_amd_fact_with_amd_smi_and_with_rocminfo_only(tmp_path: Path) -> None:
    static = HERE / "amd" / "mi325x-vf_amd-smi-static-g0_snipped.txt"
    version = HERE / "amd" / "amd-smi-version_25.4.2_rocm-6.4.1.txt"
    fake_tool(tmp_path / "a", "amd-smi", f'case "$1" in version) cat {shlex.quote(str(version))};; '
              f"static) cat {shlex.quote(str(static))};; esac")
    state = AmdGpus().parse(sh(AmdGpus().command(), tmp_path / "a"))
    assert state.ok and state.kinds == {GpuKind.MI325X} and state.gpus[0].arch == "gfx942"
    assert state.driver_version == "6.10.5" and state.cuda_version == "6.4.1"
    rocminfo = HERE / "amd" / "mi300x-x4_rocminfo.txt"
    fake_tool(tmp_path / "r", "rocminfo", f"cat {shlex.quote(str(rocminfo))}")
    state = AmdGpus().parse(sh(AmdGpus().command(), tmp_path / "r"))
    assert state.ok and state.count == 4 and state.kinds == {GpuKind.MI300X}


def test_bundle_is_one_command_and_parses(tmp_path: Path) -> None:
    table = HERE / "nvidia_gpus" / "b200x8_nvidia-smi_575.57.08.txt"
    fake_tool(tmp_path / "bin", "nvidia-smi", 'case "$1" in --query-gpu=*) exit 2;; esac\n'
              f"cat {shlex.quote(str(table))}")
    fact = HostFactsFact(disk_paths=("/", str(tmp_path / HOSTILE)), gpu_vendor="auto")
    cmd = fact.command()
    assert cmd.sudo and cmd.script is not None
    facts = fact.parse(sh(cmd, tmp_path / "bin", cwd=tmp_path))
    assert facts.gpu.vendor == "nvidia" and facts.gpu.count == 8 and facts.gpu.kinds == {GpuKind.B200}
    assert facts.amd is not None and facts.amd.status is GpuStatus.NO_DRIVER
    assert facts.os.id and facts.os.kernel and facts.python.present
    assert facts.disk[str(tmp_path / HOSTILE)].checked == str(tmp_path)
    assert facts.systemd.state and facts.docker.daemon in ("up", "down", "denied", "absent", "error")
    assert "8x NVIDIA B200, driver 575.57.08" in facts.summary()
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()
    assert stat.S_ISDIR(os.stat(tmp_path).st_mode)


def test_bundle_nested_in_the_engines_batch() -> None:
    from glm5cluster.facts.system import OsFact
    batch = FactBatch({"os": OsFact(), "host": HostFactsFact(("/",), gpu_vendor="none"), "x": CommandFact("echo x")})
    value = batch.parse(sh(batch.command()))
    assert value["os"] == value["host"].os and value["x"].stdout == "x\n"
    assert value["host"].gpu.status is GpuStatus.NO_DRIVER and value["host"].disk["/"].ok
