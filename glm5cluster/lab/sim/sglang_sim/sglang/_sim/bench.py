"""What the benchmark clients measure: latency knobs and question answering (stdlib only).

Read from a JSON file (``$SGLANG_SIM_BENCH_CONFIG``, default ``/etc/glm5lab/sglang-sim-bench.json``),
re-read whenever it changes, so a lab test sets the knobs on a node without a restart::

    {"ttft_ms": 40, "tpot_ms": 5, "accept_length": 3.2, "accuracy": 0.95,
     "questions": ["/srv/bench/gsm8k.jsonl"]}

- ``ttft_ms`` / ``tpot_ms``: time to the first token and per further token of every ``/generate``
  and chat completion (defaults 30 / 4 ms); ``accept_length``: the EAGLE accept length reported
  when the server runs speculative decoding (``meta_info.spec_accept_length`` and
  ``/server_info`` ``internal_states[0].avg_spec_accept_length``).
- ``questions``: question files (absent: the lab's own, ``bench_questions.json`` beside this
  module, which ``glm5cluster lab up`` also writes on the controller) in the clients' formats: GSM8K (JSON lines with ``question`` and
  ``answer`` ending in ``#### <number>``) and MMLU as sgl-eval prepares it (JSON lines with
  ``problem`` and ``expected_answer``, a letter A-D). A prompt that contains one of their
  questions gets an answer; of the questions, the fraction ``accuracy`` (default 1.0) is
  answered correctly, spread evenly over each file's order (question i is right when
  ``floor((i+1)*acc) > floor(i*acc)``), so any first n questions score within 1/n of it,
  deterministically. A wrong answer is the right number plus one, or the next letter; a prompt
  with no known question gets no number at all (the clients count it invalid).
"""

import json
import math
import os
import re
import threading

DEFAULT_PATH = "/etc/glm5lab/sglang-sim-bench.json"
# The lab's question files ({"gsm8k": rows, "mmlu": rows}); `lab up`
# writes the same rows on the controller for the default inventory's bench.* paths.
QUESTIONS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_questions.json")
FILLER = ("the", "model", "serves", "tokens", "quickly", "and", "every", "answer", "is", "checked")


class Knobs:
    def __init__(self, doc=None):
        doc = doc or {}
        self.present = bool(doc)
        self.ttft = float(doc.get("ttft_ms", 30.0)) / 1000.0
        self.tpot = float(doc.get("tpot_ms", 4.0)) / 1000.0
        self.accept_length = float(doc.get("accept_length", 3.2))
        self.accuracy = min(1.0, max(0.0, float(doc.get("accuracy", 1.0))))
        self.questions = {}  # question text -> (index in its file, gold number or letter)
        if "questions" not in doc:  # the lab's own question files (bench_questions.json)
            self._load_default()
        for path in doc.get("questions") or ():
            self._load(path)

    def _load_default(self):
        try:
            with open(QUESTIONS_PATH, encoding="utf-8") as f:
                doc = json.load(f)
            self._add(doc["gsm8k"])
            self._add(doc["mmlu"])
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            pass

    def _load(self, path):
        try:
            with open(path, encoding="utf-8") as f:
                self._add(json.loads(line) for line in f if line.strip())
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # an unreadable file answers nothing

    def _add(self, rows):
        for i, row in enumerate(rows):
            if "problem" in row:  # MMLU, sgl-eval's prepared format
                self.questions[row["problem"].strip()] = (i, str(row["expected_answer"]).strip())
                continue
            nums = re.findall(r"-?\d+", row["answer"].split("####")[-1].replace(",", ""))
            if nums:
                self.questions[row["question"].strip()] = (i, int(nums[-1]))

    def right(self, index):
        return math.floor((index + 1) * self.accuracy + 1e-9) > math.floor(index * self.accuracy + 1e-9)

    def answer(self, prompt):
        """The answer text for the last known question in ``prompt``, or None."""
        best, found = -1, None
        for q, meta in self.questions.items():
            pos = prompt.rfind(q)
            if pos > best:
                best, found = pos, meta
        if found is None:
            return None
        index, gold = found
        if isinstance(gold, str):  # a letter, in the format the MMLU prompt asks for (mcq-4choices-boxed)
            letter = gold if self.right(index) else "ABCD"[("ABCD".find(gold) + 1) % 4]
            return f" Weighing each option against the question.\nAnswer: \\boxed{{{letter}}}"
        value = gold if self.right(index) else gold + 1
        return f" Working through the numbers step by step, the result is {value}.\n#### {value}"


_lock = threading.Lock()
_cache = {"key": None, "knobs": Knobs()}


def knobs():
    path = os.environ.get("SGLANG_SIM_BENCH_CONFIG", DEFAULT_PATH)
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    with _lock:
        if key != _cache["key"]:
            doc = {}
            if key is not None:
                try:
                    with open(path, encoding="utf-8") as f:
                        doc = json.load(f)
                except (OSError, ValueError):
                    doc = {}
            _cache["key"], _cache["knobs"] = key, Knobs(doc if isinstance(doc, dict) else {})
        return _cache["knobs"]


def count_tokens(text):
    return max(1, len((text or "").split()))


def completion_words(prompt, max_new_tokens, ignore_eos, stop):
    """The words of the output: the answer to a known question (cut at a stop string), else filler
    up to ``max_new_tokens`` (all of them when ``ignore_eos``, as the random benchmark asks)."""
    k = knobs()
    text = None if ignore_eos else k.answer(prompt)
    if text is None:
        n = max(1, int(max_new_tokens or 16))
        if not ignore_eos:
            n = min(n, 24)
        return [" " + FILLER[i % len(FILLER)] for i in range(n)], "length" if ignore_eos else "stop"
    for s in stop or ():
        if s and s in text:
            text = text[: text.index(s)]
    words = [w for w in re.split(r"(?=\s)", text) if w]
    limit = int(max_new_tokens) if max_new_tokens else len(words)
    return words[:limit], "stop" if len(words) <= limit else "length"
