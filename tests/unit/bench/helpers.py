"""A scripted node 0 for bench tests: answers the client probe and each client with outputs
derived from the real 0.5.23 clients (tests/facts/bench)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from glm5cluster.bench.records import BenchRun, HardwareRow, Suite, SuiteRun
from glm5cluster.commands import CommandResult, Shell, Upload

CAPTURES = Path(__file__).resolve().parents[2] / "facts" / "bench"
WORKDIR = "/tmp/glm5cluster-bench.Ab12Cd34"  # what the scripted node's mktemp -d makes
ALL_MODULES = ("sglang.bench_serving", "sglang.test.few_shot_gsm8k", "sglang.test.run_eval",
               "sglang.test.sgl_eval_utils", "sgl_eval")


def probe_output(version: str = "0.5.23", modules: tuple[str, ...] = ALL_MODULES) -> str:
    lines = [f"version {version}"] + [f"module {m} {'yes' if m in modules else 'no'}" for m in ALL_MODULES]
    return "\n".join(lines) + "\n"


@dataclass
class FakeNode:
    host: str = "n0"
    probe: str = field(default_factory=probe_output)
    outputs: dict[str, str] = field(default_factory=dict)  # first text found in the command -> stdout
    ran: list[Shell] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)

    def run(self, cmd: Shell) -> CommandResult:
        self.ran.append(cmd)
        line = cmd.command_line()
        if "find_spec" in line:
            return CommandResult(line, 0, self.probe)
        if line.startswith("mktemp -d"):
            return CommandResult(line, 0, WORKDIR + "\n")
        for module, out in self.outputs.items():
            if module in line:
                return CommandResult(line, 0, out)
        return CommandResult(line, 0, "")

    def put(self, upload: Upload) -> CommandResult:
        self.uploads.append(upload)
        return CommandResult(f"put {upload.dest}", 0)

    def close(self) -> None:
        pass


def capture(name: str) -> str:
    return (CAPTURES / name).read_text()


def all_outputs(gsm8k: str = "gsm8k_few_shot.txt") -> dict[str, str]:
    return {"--max-concurrency 100": capture("serving_throughput.txt"),
            "sglang.bench_serving": capture("serving_latency.txt"), "few_shot_gsm8k": capture(gsm8k),
            "run_eval": capture("gsm8k_run_eval.txt"), "sgl_eval_utils": capture("mmlu_sgl_eval.txt")}


H200_FP8 = HardwareRow("H200", 8, 1, 8, "fp8", True)


def bench_run(stamp: str, metrics: dict[Suite, dict[str, float]], digest: str = "d1",
              hw: HardwareRow = H200_FP8, params: dict[Suite, dict[str, str]] | None = None,
              gate_passed: bool | None = True) -> BenchRun:
    from glm5cluster.bench.suites import SuiteParams

    p = params or {}
    res = tuple(SuiteRun(s, 0, f"client {s.value}", p.get(s, SuiteParams().for_suite(s)), m)
                for s, m in metrics.items())
    return BenchRun("c", stamp, digest, "0.5.23", hw, res, gate_passed=gate_passed)
