"""Fault injection and timing knobs, read from the process environment.

SGLANG_SIM_LOAD_SECONDS       weight-load delay (default 3)
SGLANG_SIM_WARMUP_SECONDS     node 0: HTTP up but 503 before ready (default 1)
SGLANG_SIM_DRAIN_POLL_SECONDS node 0 after SIGTERM: the drain watchdog's poll interval (default 5,
                              as the real sigterm_watchdog)
SGLANG_SIM_REQUEST_SECONDS    how long one chat completion takes (default 0)
SGLANG_SIM_RENDEZVOUS_TIMEOUT seconds to form the group (default: --dist-timeout, else 60)
SGLANG_SIM_CRASH_AFTER=<s>    exit 1 with a traceback s seconds after start
SGLANG_SIM_HANG_RENDEZVOUS=1  never join (rank >= 1) / never open the store (node 0)
SGLANG_SIM_OOM_AT_LOAD=1      torch.OutOfMemoryError right after "Load weight begin"
SGLANG_SIM_OLD_TRANSFORMERS=1 KeyError: 'glm_moe_dsa' while preparing server args
SGLANG_SIM_GLOO_FAIL=1        "Gloo connectFullMesh failed" during init torch distributed
SGLANG_SIM_FAULT_RANK=<n>     apply the faults above only on node rank n
SGLANG_SIM_SKIP_GPU_CHECK=1   do not ask nvidia-smi / amd-smi for the GPUs
"""

import os


def _num(name, default):
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        return default


class Faults:
    def __init__(self, node_rank):
        target = os.environ.get("SGLANG_SIM_FAULT_RANK", "").strip()
        self.active = not target or target == str(node_rank)
        self.load_seconds = _num("SGLANG_SIM_LOAD_SECONDS", 3.0)
        self.warmup_seconds = _num("SGLANG_SIM_WARMUP_SECONDS", 1.0)
        self.drain_poll_seconds = _num("SGLANG_SIM_DRAIN_POLL_SECONDS", 5.0)
        self.request_seconds = _num("SGLANG_SIM_REQUEST_SECONDS", 0.0)
        self.crash_after = _num("SGLANG_SIM_CRASH_AFTER", None) if self.active else None
        self.hang_rendezvous = self._flag("SGLANG_SIM_HANG_RENDEZVOUS")
        self.oom_at_load = self._flag("SGLANG_SIM_OOM_AT_LOAD")
        self.old_transformers = self._flag("SGLANG_SIM_OLD_TRANSFORMERS")
        self.gloo_fail = self._flag("SGLANG_SIM_GLOO_FAIL")
        self.skip_gpu_check = os.environ.get("SGLANG_SIM_SKIP_GPU_CHECK", "") not in ("", "0")

    def _flag(self, name):
        return self.active and os.environ.get(name, "") not in ("", "0", "false", "False")

    def rendezvous_timeout(self, dist_timeout):
        env = _num("SGLANG_SIM_RENDEZVOUS_TIMEOUT", None)
        if env is not None:
            return env
        return float(dist_timeout) if dist_timeout else 60.0
