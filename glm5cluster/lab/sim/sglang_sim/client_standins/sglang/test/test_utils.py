"""Lab stand-in for ``sglang.test.test_utils`` of the real 0.5.23 wheel: only ``dump_metric``
(``test/test_utils.py:2707-2800``), which ``run_eval.py:117`` and ``sgl_eval_utils.py:91`` import
after scoring. The real module imports torch at the top (``test_utils.py:34``).

Same contract: ``[METRIC] name=value [labels=...]`` on stdout, a JSON line per metric in
``${SGLANG_TEST_METRICS_OUTPUT}.<pid>.jsonl`` when that variable is set, never raises.
"""

import json
import logging
import os
import time


def dump_metric(metric_name, value, labels=None):
    try:
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, bool):
            value = int(value)
        elif not isinstance(value, (int, float, str)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = str(value)
        record = {"filename": "", "test_case": "", "metric_name": metric_name, "value": value, "ts": time.time()}
        shown = ""
        if labels:
            try:
                json.dumps(labels, ensure_ascii=False)
                record["labels"] = labels
                shown = f" labels={json.dumps(labels, ensure_ascii=False)}"
            except (TypeError, ValueError):
                record["labels"] = str(labels)
                shown = f" labels='{labels}'"
        base = os.getenv("SGLANG_TEST_METRICS_OUTPUT")
        if base:
            with open(f"{base}.{os.getpid()}.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"[METRIC] {metric_name}={value}{shown}")
    except Exception as e:  # never fails the caller, as the real one
        logging.warning(f"sglang.test.dump_metric: failed to dump metric '{metric_name}': {e}")
