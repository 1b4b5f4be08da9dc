"""The cookbook's benchmark commands, built for the installed runtime on node 0 (pure).

Every suite runs the INSTALLED SGLang's own client inside the deployed runtime, with the
argv prefix the runtime seam gives (``Runtime.exec_argv``: the venv's python, or ``docker exec``
into the running container, which uses host networking, so 127.0.0.1:<port> is the server),
in a private directory made for the run (``mktemp -d``, mode 0700) and removed after it. The
API key never reaches argv: the script reads it from standard input into ``OPENAI_API_KEY``,
the variable the clients read (``sglang/benchmark/serving.py:131-139``,
``sglang/test/run_eval.py:137``, ``sglang/test/sgl_eval_utils.py:156``); the container runtime
passes it by name.

Clients (SGLang 0.5.23):
- latency / throughput: ``python -m sglang.bench_serving`` (a shim of
  ``sglang.benchmark.serving``) with the cookbook's ``--dataset-name random`` parameters.
- gsm8k: ``python -m sglang.test.few_shot_gsm8k`` (the cookbook's ``bench_sglang.py`` format).
  It sends no API key (``few_shot_gsm8k.py:64``: ``RuntimeEndpoint`` without ``api_key``), so
  with a key ``python -m sglang.test.run_eval --eval-name gsm8k`` (OpenAI client) is used.
- mmlu: ``sglang.test.sgl_eval_utils.run_sgl_eval`` (``run_eval`` refuses mmlu in 0.5.23,
  ``run_eval.py:125-134``); it needs the separate ``sgl-eval`` package in the runtime (the
  wheel's ``test`` extra pins ``sgl-eval==0.1.3``). Its results go into the run's directory
  (``sgl_eval_out_dir``, ``sgl_eval_utils.py:176``). Offline, the staged MMLU file (sgl-eval's
  own prepared ``test.jsonl``) is put where sgl-eval caches it, ``$HOME/.cache/sgl_eval/mmlu/
  test.jsonl`` with its ``.sha256`` marker (sgl_eval ``evals/_loader.py`` ``_cache_is_valid``),
  with ``HOME`` the run's directory, so nothing is downloaded and nothing outlives the run.

With a staged ShareGPT file (an air-gapped site) the serving clients run with
``HF_HUB_OFFLINE=1``: the tokenizer is node 0's weights directory, and transformers' hub look-ups
would otherwise wait for network time-outs (about 50 s per client start, measured).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from glm5cluster.bench.records import Suite

WORKDIR_TEMPLATE = "/tmp/glm5cluster-bench.XXXXXXXX"  # mktemp -d on node 0: one private dir per run

# module each suite needs, by client; (suite, with_api_key) -> module
SERVING_MODULE = "sglang.bench_serving"
GSM8K_MODULE = "sglang.test.few_shot_gsm8k"
GSM8K_KEY_MODULE = "sglang.test.run_eval"
MMLU_MODULES = ("sglang.test.sgl_eval_utils", "sgl_eval")
PROBE_MODULES = (SERVING_MODULE, GSM8K_MODULE, GSM8K_KEY_MODULE, *MMLU_MODULES)


@dataclass(frozen=True)
class SuiteParams:
    """The parameters that make two runs of a suite comparable (the cookbook's by default)."""

    num_prompts: int | None = None
    max_concurrency: int | None = None
    input_len: int = 1000
    output_len: int = 1000
    num_questions: int | None = None

    def for_suite(self, suite: Suite) -> dict[str, str]:
        if suite is Suite.LATENCY or suite is Suite.THROUGHPUT:
            prompts, conc = (10, 1) if suite is Suite.LATENCY else (1000, 100)
            return {"dataset": "random", "input_len": str(self.input_len),
                    "output_len": str(self.output_len),
                    "num_prompts": str(self.num_prompts or prompts),
                    "max_concurrency": str(self.max_concurrency or conc), "request_rate": "inf"}
        if suite is Suite.GSM8K:
            return {"num_questions": str(self.num_questions or 200)}
        return {"num_questions": str(self.num_questions) if self.num_questions else "all"}


@dataclass(frozen=True)
class Target:
    """Where and how the client runs: node 0's runtime and the server it measures."""

    prefix: tuple[str, ...]  # runs the runtime's python beside the server (runtime seam: exec_argv)
    host: str  # the server the client talks to (127.0.0.1, or the router's address)
    port: int
    model: str  # the served model id
    tokenizer: str  # node 0's weights directory (holds the tokenizer: no hub download)
    workdir: str  # this run's private directory on node 0 (and in the container): data, client files
    api_key: bool = False  # a key is fed on stdin
    data_files: Mapping[str, str] = field(default_factory=dict)  # "gsm8k"/"sharegpt"/"mmlu" -> path on node 0


def offline(t: Target) -> bool:
    """Everything the clients read is on node 0 (a ShareGPT file was staged)."""
    return "sharegpt" in t.data_files


def _key_prelude(t: Target) -> str:
    key = "IFS= read -r OPENAI_API_KEY || true\nexport OPENAI_API_KEY\n" if t.api_key else ""
    return key + ("HF_HUB_OFFLINE=1\nexport HF_HUB_OFFLINE\n" if offline(t) else "")


def client_argv(suite: Suite, params: Mapping[str, str], t: Target) -> list[str]:
    """The client's argv inside the runtime (no secret in it)."""
    pre = list(t.prefix)
    if suite.is_serving:
        argv = [*pre, "-m", SERVING_MODULE, "--backend", "sglang", "--host", t.host, "--port", str(t.port),
                "--model", t.model, "--tokenizer", t.tokenizer,
                "--dataset-name", params["dataset"],
                "--random-input-len", params["input_len"], "--random-output-len", params["output_len"],
                "--num-prompts", params["num_prompts"], "--max-concurrency", params["max_concurrency"],
                "--request-rate", params["request_rate"]]
        if "sharegpt" in t.data_files:
            argv += ["--dataset-path", t.data_files["sharegpt"]]
        return argv
    if suite is Suite.GSM8K:
        n = params["num_questions"]
        data = ["--data-path", t.data_files["gsm8k"]] if "gsm8k" in t.data_files else []
        if t.api_key:
            data = ["--gsm8k-data-path", t.data_files["gsm8k"]] if "gsm8k" in t.data_files else []
            return [*pre, "-m", GSM8K_KEY_MODULE, "--eval-name", "gsm8k", "--host", t.host,
                    "--port", str(t.port), "--model", t.model, "--num-examples", n, *data]
        return [*pre, "-m", GSM8K_MODULE, "--host", t.host, "--port", str(t.port),
                "--num-questions", n, *data]
    n = params["num_questions"]
    num = "None" if n == "all" else str(int(n))
    seed = ""
    if "mmlu" in t.data_files:
        seed = (f"import hashlib, os, shutil; os.environ['HOME'] = {t.workdir!r}; "
                f"c = os.path.join({t.workdir!r}, '.cache', 'sgl_eval', 'mmlu'); os.makedirs(c, exist_ok=True); "
                f"shutil.copyfile({t.data_files['mmlu']!r}, os.path.join(c, 'test.jsonl')); "
                "open(os.path.join(c, 'test.jsonl.sha256'), 'w').write(hashlib.sha256(open(os.path.join("
                "c, 'test.jsonl'), 'rb').read()).hexdigest()); ")
    code = (f"{seed}import types; from sglang.test.sgl_eval_utils import run_sgl_eval; "
            f"run_sgl_eval(types.SimpleNamespace(eval_name='mmlu', host={t.host!r}, port={t.port}, "
            f"model={t.model!r}, num_examples={num}, sgl_eval_out_dir={t.workdir!r}))")
    return [*pre, "-c", code]


def client_script(suite: Suite, params: Mapping[str, str], t: Target) -> str:
    """The POSIX sh script node 0 runs (key from stdin, then the client in the run's private
    directory; output to stdout)."""
    return (_key_prelude(t) + f"cd {shlex.quote(t.workdir)} && exec "
            + shlex.join(client_argv(suite, params, t)) + " 2>&1\n")


def required_modules(suite: Suite, api_key: bool) -> tuple[str, ...]:
    if suite.is_serving:
        return (SERVING_MODULE,)
    if suite is Suite.GSM8K:
        return (GSM8K_KEY_MODULE if api_key else GSM8K_MODULE,)
    return MMLU_MODULES


def probe_argv(prefix: Sequence[str]) -> list[str]:
    """Print the installed SGLang version and, per client module, whether it imports: ``no``
    (not shipped), ``yes``, or ``broken <error>`` (shipped, but an import inside it fails, e.g.
    ``ModuleNotFoundError: No module named 'aiohttp'``: the client's dependencies are missing)."""
    code = ("import importlib, importlib.metadata as m, importlib.util as u\n"
            "try:\n    print('version', m.version('sglang'))\n"
            "except Exception:\n    print('version none')\n"
            "for mod in " + repr(list(PROBE_MODULES)) + ":\n"
            "    try:\n        ok = u.find_spec(mod) is not None\n"
            "    except Exception:\n        ok = False\n"
            "    if not ok:\n        print('module', mod, 'no')\n        continue\n"
            "    try:\n        importlib.import_module(mod)\n"
            "    except BaseException as e:\n"
            "        why = (type(e).__name__ + ': ' + str(e)).replace(chr(10), ' ')[:300]\n"
            "        print('module', mod, 'broken', why)\n        continue\n"
            "    print('module', mod, 'yes')\n")
    return [*prefix, "-c", code]


@dataclass(frozen=True)
class Installed:
    version: str | None
    modules: frozenset[str]
    broken: Mapping[str, str] = field(default_factory=dict)  # module -> the import error it raised

    def missing(self, suite: Suite, api_key: bool) -> tuple[str, ...]:
        return tuple(m for m in required_modules(suite, api_key) if m not in self.modules and m not in self.broken)

    def failing(self, suite: Suite, api_key: bool) -> dict[str, str]:
        """The suite's client modules that are shipped but do not import: module -> error."""
        return {m: self.broken[m] for m in required_modules(suite, api_key) if m in self.broken}


def parse_probe(text: str) -> Installed:
    version: str | None = None
    mods = set()
    broken: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "version":
            version = None if parts[1] == "none" else parts[1]
        elif len(parts) == 3 and parts[0] == "module" and parts[2] == "yes":
            mods.add(parts[1])
        elif len(parts) >= 3 and parts[0] == "module" and parts[2] == "broken":
            broken[parts[1]] = " ".join(parts[3:]) or "import failed"
    return Installed(version, frozenset(mods), broken)
