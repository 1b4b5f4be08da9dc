"""Suites on a scripted node 0: the clients' argv per runtime, the key only on stdin, missing
clients named with the version, data files staged, results parsed and compared."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from glm5cluster.bench.gate import QUICK, bench_and_gate
from glm5cluster.bench.history import History
from glm5cluster.bench.records import ALL_SUITES, Suite
from glm5cluster.bench.runner import BenchRequest, config_digest, hardware_row, run_bench
from glm5cluster.bench.suites import SuiteParams
from glm5cluster.commands import CommandResult, Secret
from glm5cluster.errors import GlmError
from tests.unit.conftest import make_inventory, plan

from .helpers import ALL_MODULES, WORKDIR, FakeNode, all_outputs, capture, probe_output

KEY = "sk-very-secret"


def inv(**kw):  # type: ignore[no-untyped-def]
    return make_inventory(**kw)


def run(node: FakeNode, req: BenchRequest, api_key: str | None = None, **kw):  # type: ignore[no-untyped-def]
    i = inv(**kw)
    return run_bench(i, plan(i), lambda _h: node, req, api_key, "20260101T000000Z")


def test_all_four_suites_venv_runtime() -> None:
    node = FakeNode(outputs=all_outputs())
    r = run(node, BenchRequest(ALL_SUITES))
    assert [s.suite for s in r.results] == list(ALL_SUITES)
    assert all(s.ok for s in r.results), [s.error for s in r.results]
    assert r.sglang_version == "0.5.23"
    assert r.hardware.label() == "8xH200 FP8 tp8, EAGLE"
    lat = r.results[0]
    assert lat.command.startswith("/opt/glm5cluster/venv/bin/python -m sglang.bench_serving --backend sglang")
    for flag in ("--dataset-name random", "--random-input-len 1000", "--random-output-len 1000",
                 "--num-prompts 10", "--max-concurrency 1", "--request-rate inf", "--tokenizer /models/glm5",
                 "--model zai-org/GLM-5-FP8", "--host 127.0.0.1", "--port 30000"):
        assert flag in lat.command
    assert "--num-prompts 1000 --max-concurrency 100" in r.results[1].command
    assert "sglang.test.few_shot_gsm8k" in r.results[2].command and "--num-questions 200" in r.results[2].command
    assert r.results[2].metrics["accuracy"] == 0.955
    assert r.results[3].metrics["accuracy"] == 0.877


def test_api_key_only_on_stdin_and_run_eval_for_gsm8k() -> None:
    node = FakeNode(outputs=all_outputs())
    r = run(node, BenchRequest((Suite.LATENCY, Suite.GSM8K)), api_key=KEY)
    clients = [c for c in node.ran if "sglang." in c.command_line() and "find_spec" not in c.command_line()]
    for c in clients:
        assert KEY not in c.command_line() and KEY not in c.display()
        assert isinstance(c.stdin, Secret) and c.stdin.value == KEY + "\n"
        assert c.command_line().startswith("IFS= read -r OPENAI_API_KEY")
    assert "sglang.test.run_eval --eval-name gsm8k" in r.results[1].command
    assert r.results[1].metrics["accuracy"] == 0.955


def test_docker_runtime_execs_into_the_container_with_the_key_by_name() -> None:
    node = FakeNode(outputs=all_outputs())
    r = run(node, BenchRequest((Suite.LATENCY,)), api_key=KEY, serving={"runtime": "docker"})
    assert r.results[0].command.startswith(
        f"docker exec -w {WORKDIR} -e OPENAI_API_KEY glm5-t-r0 python3 -m sglang.bench_serving")
    assert KEY not in r.results[0].command


def test_missing_client_names_version_and_module() -> None:
    node = FakeNode(outputs=all_outputs(), probe=probe_output("0.5.23", ALL_MODULES[:3]))
    with pytest.raises(GlmError, match=r"SGLang 0\.5\.23 has no sglang\.test\.sgl_eval_utils, sgl_eval: the mmlu client") as e:
        run(node, BenchRequest((Suite.LATENCY, Suite.MMLU)))
    assert "pip install sgl-eval" in (e.value.hint or "")
    assert not [c for c in node.ran if "bench_serving --backend" in c.command_line()]  # nothing ran


def test_failed_client_is_a_failed_suite_with_its_last_lines() -> None:
    node = FakeNode(outputs={"few_shot_gsm8k": capture("gsm8k_failed.txt")})
    r = run(node, BenchRequest((Suite.GSM8K,)))
    assert not r.results[0].ok
    assert "HTTP Error 401" in r.results[0].error


def test_data_file_is_staged_and_passed() -> None:
    node = FakeNode(outputs=all_outputs())
    r = run(node, BenchRequest((Suite.GSM8K,), data_files={"gsm8k": b'{"question": "q", "answer": "#### 1"}\n'}))
    assert [u.dest for u in node.uploads] == [f"{WORKDIR}/gsm8k.jsonl"]
    assert node.uploads[0].mode == 0o600
    assert f"--data-path {WORKDIR}/gsm8k.jsonl" in r.results[0].command


def test_docker_data_file_is_copied_into_the_container() -> None:
    node = FakeNode(outputs=all_outputs())
    run(node, BenchRequest((Suite.GSM8K,), data_files={"gsm8k": b"x"}), serving={"runtime": "docker"})
    lines = [c.command_line() for c in node.ran]
    assert f"docker exec glm5-t-r0 mkdir -p -m 0700 {WORKDIR} && docker cp {WORKDIR}/. glm5-t-r0:{WORKDIR}" in lines
    assert lines[-1] == f"docker exec glm5-t-r0 rm -rf {WORKDIR} || true; rm -rf {WORKDIR}"


def test_each_run_gets_a_private_directory_removed_afterwards() -> None:
    node = FakeNode(outputs=all_outputs())
    r = run(node, BenchRequest((Suite.LATENCY, Suite.GSM8K)))
    lines = [c.command_line() for c in node.ran]
    made = lines.index("mktemp -d /tmp/glm5cluster-bench.XXXXXXXX")
    clients = [i for i, line in enumerate(lines) if "exec " in line and "find_spec" not in line]
    assert made < clients[0] and all(lines[i].startswith(f"cd {WORKDIR} && exec ") for i in clients)
    assert lines[-1] == f"rm -rf {WORKDIR}" and all(s.ok for s in r.results)


def test_directory_is_removed_when_the_run_is_interrupted() -> None:
    class Interrupted(FakeNode):
        def run(self, cmd):  # type: ignore[no-untyped-def]
            if cmd.command_line().startswith("cd ") and "few_shot" in cmd.command_line():
                self.ran.append(cmd)
                raise KeyboardInterrupt
            return super().run(cmd)

    node = Interrupted(outputs=all_outputs())
    with pytest.raises(KeyboardInterrupt):
        run(node, BenchRequest((Suite.LATENCY, Suite.GSM8K)))
    assert node.ran[-1].command_line() == f"rm -rf {WORKDIR}"


def test_no_private_directory_is_a_clear_error() -> None:
    class NoTmp(FakeNode):
        def run(self, cmd):  # type: ignore[no-untyped-def]
            if cmd.command_line().startswith("mktemp"):
                self.ran.append(cmd)
                return CommandResult(cmd.command_line(), 1, "", "mktemp: failed to create directory: No space left")
            return super().run(cmd)

    with pytest.raises(GlmError, match="cannot make a private directory under /tmp: mktemp: failed"):
        run(NoTmp(outputs=all_outputs()), BenchRequest((Suite.LATENCY,)))


def test_params_override_the_cookbook() -> None:
    node = FakeNode(outputs=all_outputs())
    r = run(node, BenchRequest((Suite.THROUGHPUT, Suite.GSM8K),
                               SuiteParams(num_prompts=20, max_concurrency=4, input_len=64, output_len=32,
                                           num_questions=5)))
    assert "--random-input-len 64 --random-output-len 32 --num-prompts 20 --max-concurrency 4" in r.results[0].command
    assert r.results[0].params["num_prompts"] == "20"
    assert "--num-questions 5" in r.results[1].command


def test_config_digest_follows_serving_not_secrets() -> None:
    a = inv()
    b = inv(serving={"secrets": {"api_key_env": "K"}})
    c = inv(serving={"features": {"dp_attention": True}})
    assert config_digest(a, plan(a)) == config_digest(b, plan(b)) != config_digest(c, plan(c))
    amd = inv(kind="MI355X", repo="zai-org/GLM-5")
    assert hardware_row(amd, plan(amd)).label() == "8xMI355X BF16 tp8"


def test_gate_hook_keeps_the_run_and_gates_on_history(tmp_path: Path) -> None:
    i = inv()
    store = History("t", tmp_path)
    good = FakeNode(outputs=all_outputs())
    first = bench_and_gate(i, plan(i), lambda _h: good, None, QUICK.with_replicas((0,)), store)
    assert first.passed and first.kept is not None and first.kept.exists()
    slow = FakeNode(outputs={"bench_serving": capture("serving_latency.txt").replace(
        "Output token throughput (tok/s):         117.96", "Output token throughput (tok/s):         80.00")})
    second = bench_and_gate(i, plan(i), lambda _h: slow, None, QUICK.request, store)
    assert not second.passed
    assert len(store.load()) == 2 and store.load()[1].gate_passed is False


def test_offline_site_serving_clients_skip_the_hub() -> None:
    node = FakeNode(outputs=all_outputs())
    r = run(node, BenchRequest((Suite.LATENCY,), data_files={"sharegpt": b"[]"}), serving={"runtime": "docker"})
    script = next(c.command_line() for c in node.ran if "bench_serving --backend" in c.command_line())
    assert script.startswith("HF_HUB_OFFLINE=1\nexport HF_HUB_OFFLINE\n")
    assert r.results[0].command.startswith(f"docker exec -w {WORKDIR} -e HF_HUB_OFFLINE glm5-t-r0 python3 -m")
    assert f"--dataset-path {WORKDIR}/sharegpt.json" in r.results[0].command
    online = FakeNode(outputs=all_outputs())
    run(online, BenchRequest((Suite.LATENCY,)))
    assert not any("HF_HUB_OFFLINE" in c.command_line() for c in online.ran)


def test_mmlu_file_is_put_where_sgl_eval_caches_it_and_results_stay_in_the_run_directory() -> None:
    node = FakeNode(outputs=all_outputs())
    r = run(node, BenchRequest((Suite.MMLU,), data_files={"mmlu": b'{"problem": "p", "expected_answer": "A"}\n'}))
    assert [u.dest for u in node.uploads] == [f"{WORKDIR}/mmlu.jsonl"]
    cmd = shlex.split(r.results[0].command)[-1]  # the python -c code
    assert f"os.environ['HOME'] = '{WORKDIR}'" in cmd
    assert f"shutil.copyfile('{WORKDIR}/mmlu.jsonl', os.path.join(c, 'test.jsonl'))" in cmd
    assert "'test.jsonl.sha256'" in cmd and f"sgl_eval_out_dir='{WORKDIR}'" in cmd
    assert r.results[0].metrics["accuracy"] == 0.877
    plain = FakeNode(outputs=all_outputs())
    r = run(plain, BenchRequest((Suite.MMLU,)))
    code = shlex.split(r.results[0].command)[-1]
    assert "HOME" not in code and f"sgl_eval_out_dir='{WORKDIR}'" in code
