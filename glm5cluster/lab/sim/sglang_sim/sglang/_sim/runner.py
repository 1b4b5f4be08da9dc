"""One node of a simulated SGLang TP group: the lifecycle from argv to serving and exit."""

import os
import signal
import threading
import time

from sglang._sim import gpus, http_api, model_check, rendezvous, slog, tracebacks as tb
from sglang._sim.faults import Faults
from sglang._sim.slog import c10d_stamp, emit, hostname, raw
from sglang.srt.server_args import prepare_server_args

GLM5_PARAMS = 744e9
CONFIG_FRAMES = [
    ("launch_server.py", 32, "<module>", "server_args = prepare_server_args(sys.argv[1:])"),
    ("srt/server_args.py", 5563, "prepare_server_args", "return ServerArgs.from_cli_args(raw_args)"),
    ("srt/server_args.py", 5063, "get_model_config", "self.model_config = ModelConfig.from_server_args(self)"),
    ("srt/configs/model_config.py", 127, "__init__", "self.hf_config = get_config("),
]
KEYERROR_TEXT = """Traceback (most recent call last):
  File "/usr/local/lib/python3.11/dist-packages/transformers/models/auto/configuration_auto.py", line 1360, in from_pretrained
    config_class = CONFIG_MAPPING[config_dict["model_type"]]
  File "/usr/local/lib/python3.11/dist-packages/transformers/models/auto/configuration_auto.py", line 1048, in __getitem__
    raise KeyError(key)
KeyError: 'glm_moe_dsa'

During handling of the above exception, another exception occurred:
"""
KEYERROR_FINAL = (
    "ValueError: The checkpoint you are trying to load has model type `glm_moe_dsa` but Transformers "
    "does not recognize this architecture. This could be because of an issue with the checkpoint, or "
    "because your version of Transformers is out of date.\n\nYou can update Transformers with the command "
    "`pip install --upgrade transformers`.")


class Node:
    def __init__(self, args, argv, faults):
        self.args, self.argv, self.faults = args, argv, faults
        self.rank = args.node_rank
        self.nnodes = args.nnodes
        self.gpn = max(1, args.tp_size // max(1, args.nnodes))
        self.ranks = list(range(self.rank * self.gpn, (self.rank + 1) * self.gpn))
        self.head = None
        self.member = None
        self.state = None
        self.config = {}
        self.mem_gib = 139.8
        self.vendor = "CUDA"
        self.tps = self.ranks if args.tp_size > 1 else [None]  # no TP prefix with one rank
        self.server = None
        self.stopping = False

    # ---- failure paths -------------------------------------------------------------------
    def die(self, frames, final, code=1):
        for tp in self.tps:
            tb.scheduler_exception(tp, frames, final)
        tb.sigquit()
        os._exit(code)

    def main_exception(self, final, prefix=""):
        if prefix:
            raw(prefix)
        tb.main_traceback(CONFIG_FRAMES, final)
        os._exit(1)

    def peer_lost(self, rank=None, addr=None):
        if self.stopping:
            return
        where = addr or (self.args.dist_init_addr or "").rsplit(":", 1)[0]
        emit("nccl_peer_closed", hostname=hostname(), pid=os.getpid(), dev=0, peer=where, port=self.args.port)
        self.die(tb.SCHEDULER_FRAMES + tb.NCCL_FRAMES,
                 "RuntimeError: NCCL error: remote process exited or there was a network error")

    def crash(self):
        self.die(tb.SCHEDULER_FRAMES[:1] + tb.FORWARD_FRAMES,
                 "RuntimeError: CUDA error: an illegal memory access was encountered\nCUDA kernel errors "
                 "might be asynchronously reported at some other API call, so the stacktrace below might "
                 "be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1")

    # ---- signals -------------------------------------------------------------------------
    def on_signal(self, signum, frame):
        if signum == signal.SIGINT:  # KeyboardInterrupt in the real launcher
            self.stopping = True
            os._exit(130)
        if self.rank == 0:
            # the tokenizer manager's handler, added with loop.add_signal_handler (no arguments)
            emit("sigterm_head", signum=None, frame=None)
            if not self.stopping:
                self.stopping = True
                threading.Thread(target=self.drain_and_exit, daemon=True).start()
            return
        if not slog.has("sigterm_follower"):  # older releases: no handler, SIGTERM kills
            self.stopping = True
            os._exit(128 + signum)
        # rank-0's ShutdownReq stops this node; the unit's kill timeout is the backstop
        emit("sigterm_follower", node_rank=self.rank)

    def drain_and_exit(self):
        """sigterm_watchdog: poll, then log the remaining requests until none is left."""
        time.sleep(self.faults.drain_poll_seconds)
        st = self.state
        if st is not None:
            st.gracefully_exit = True
        while True:
            rids = st.inflight_rids() if st is not None else []
            emit("graceful_exit", remain_num_req=len(rids), remaining_rids=rids)
            if not rids:
                break
            time.sleep(self.faults.drain_poll_seconds)
        if self.head is not None:
            self.head.shutdown()  # ShutdownReq to every rank
        if self.server is not None:
            self.server.shutdown()
            emit("uvicorn_shutting_down")
            emit("uvicorn_waiting_shutdown")
            emit("uvicorn_shutdown_complete")
            emit("uvicorn_finished", pid=os.getpid())
        os._exit(0)

    def on_shutdown_from_head(self):
        self.stopping = True
        os._exit(0)

    # ---- phases --------------------------------------------------------------------------
    def prepare(self):
        a = self.args
        if a.tp_size % a.nnodes != 0:
            self.main_exception(f"AssertionError: tp_size ({a.tp_size}) must be divisible by nnodes "
                                f"({a.nnodes}); every node runs tp_size / nnodes GPUs")
        if a.nnodes > 1 and not a.dist_init_addr:
            self.main_exception("ValueError: --dist-init-addr must be set when --nnodes > 1")
        if not 0 <= a.node_rank < a.nnodes:
            self.main_exception(f"AssertionError: node_rank ({a.node_rank}) must be in [0, nnodes={a.nnodes})")
        try:
            self.config = model_check.read_config(a.model_path)
        except model_check.ModelError as e:
            self.main_exception(e.final)
        if self.faults.old_transformers and self.config.get("model_type") == "glm_moe_dsa":
            self.main_exception(KEYERROR_FINAL, prefix=KEYERROR_TEXT)
        if self.faults.old_transformers:
            self.main_exception("KeyError: 'glm_moe_dsa'", prefix=KEYERROR_TEXT)
        emit("server_args", server_args=a.log_repr(slog.FAMILY))

    def check_gpus(self):
        if self.faults.skip_gpu_check:
            return
        try:
            count, self.mem_gib, self.vendor = gpus.probe()
        except gpus.GpuError as e:
            self.die(tb.SCHEDULER_FRAMES, e.final)
        if count < self.gpn:
            self.die(tb.SCHEDULER_FRAMES, "torch.AcceleratorError: CUDA error: invalid device ordinal\n"
                     "CUDA kernel errors might be asynchronously reported at some other API call, so the "
                     "stacktrace below might be incorrect.")

    def form_group(self):
        self.t_dist = time.monotonic()
        slog.emit_ranks(self.tps, "dist_begin")
        if self.nnodes > 1:
            host, port = rendezvous.split_addr(self.args.dist_init_addr)
            timeout = self.faults.rendezvous_timeout(self.args.dist_timeout)
            if self.faults.hang_rendezvous:
                while True:
                    time.sleep(3600)
            try:
                if self.rank == 0:
                    self.head = rendezvous.Head(host, port, self.nnodes, self.args.tp_size)
                    self.head.wait_for_all(timeout)
                else:
                    self.member = rendezvous.Member(host, port, self.rank, self.nnodes, self.args.tp_size)
                    self.member.join(timeout)
            except rendezvous.Stopped:
                os._exit(0)
            except rendezvous.RendezvousError as e:
                if self.stopping:
                    os._exit(0)
                self.die(tb.SCHEDULER_FRAMES + tb.DIST_FRAMES[:2], str(e))
            if self.head:
                self.head.monitor(self.peer_lost)
            if self.member:
                self.member.monitor(self.peer_lost, self.on_shutdown_from_head)
            for tp in self.ranks:
                emit("gloo_connected", rank=tp, peers=self.args.tp_size - 1)
        if self.faults.gloo_fail:
            msg = "Gloo connectFullMesh failed with [../third_party/gloo/gloo/transport/tcp/pair.cc:144] no error"
            for tp in self.ranks:
                emit("gloo_fullmesh_failed", rank=tp, stamp=c10d_stamp())
            self.die(tb.SCHEDULER_FRAMES + tb.DIST_FRAMES, "RuntimeError: " + msg)
        slog.emit_ranks(self.tps, "dist_end", elapsed=time.monotonic() - self.t_dist, mem_usage=1.14)

    def weights_per_gpu(self, real=False):
        """GiB of weights per GPU as the real model would need (GLM-5: 744B parameters)."""
        if self.config.get("model_type") != "glm_moe_dsa":
            need = 16.0
        else:
            fp8 = bool(self.config.get("quantization_config"))
            need = GLM5_PARAMS * (1 if fp8 else 2) / self.args.tp_size / 1024**3
        if self.faults.skip_gpu_check and not real:
            need = min(need, self.mem_gib * 0.6)  # no GPU facts: keep the numbers plausible
        return need

    def load(self):
        avail = self.mem_gib - 1.3
        t0 = time.monotonic()
        slog.emit_ranks(self.tps, "load_begin", avail_mem=avail)
        need = self.weights_per_gpu()
        if self.faults.oom_at_load or (not self.faults.skip_gpu_check and need > self.mem_gib):
            self.die(tb.SCHEDULER_FRAMES + tb.LOAD_FRAMES,
                     f"torch.OutOfMemoryError: {self.vendor} out of memory. Tried to allocate 12.00 GiB. GPU 3 has "
                     f"a total capacity of {self.mem_gib:.2f} GiB of which 3.88 GiB is free. Of the "
                     f"allocated memory {self.mem_gib - 4.5:.2f} GiB is allocated by PyTorch, and 6.32 MiB "
                     f"is reserved by PyTorch but unallocated. If reserved but unallocated memory is large "
                     f"try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.")
        try:
            model_check.check_weights(self.args.model_path)
        except model_check.ModelError as e:
            self.die(tb.SCHEDULER_FRAMES + tb.WEIGHTS_FRAMES, e.final)
        time.sleep(self.faults.load_seconds)
        arch = (self.config.get("architectures") or ["?"])[0]
        slog.emit_ranks(self.tps, "load_end", elapsed=time.monotonic() - t0, model_class=arch,
                        quant=self.quant_log_str(), dtype="torch.bfloat16", avail_mem=avail - need, mem_usage=need)
        fraction = self.args.mem_fraction_static
        if fraction and not self.faults.skip_gpu_check and need > self.mem_gib * fraction:
            # the KV cache gets what --mem-fraction-static leaves after the weights: nothing here
            self.die(tb.SCHEDULER_FRAMES + tb.LOAD_FRAMES[:2],
                     "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.")

    def barrier(self):
        if self.head:
            self.head.wait_loaded()
        elif self.member:
            self.member.report_loaded()
            self.member.go.wait()

    def quant_log_str(self):
        """ModelConfig.get_quantization_config_log_str (model_config.py:1899): `quant=fp8, fmt=e4m3, `."""
        q = self.config.get("quantization_config") or {}
        if not q:
            return ""
        parts = [f"quant={q.get('quant_method', 'quantized')}"]
        parts += [f"{k}={q[k]}" for k in ("bits", "quant_algo", "fmt", "requantization_method") if k in q]
        return ", ".join(parts) + ", "

    def finish_init(self):
        kv = max(1.0, self.mem_gib * (self.args.mem_fraction_static or 0.85) - self.weights_per_gpu())
        free = self.mem_gib * 0.1
        bs = [1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64]
        slog.emit_ranks(self.tps, "kv_allocated", cache_name="KV Cache", dtype="torch.bfloat16",
                        num_tokens=1021440, kv_size=kv)
        slog.emit_ranks(self.tps, "memory_pool_end", avail_mem=free)
        graph = "CUDA graph" if slog.FAMILY != "0.5.9" else "cuda graph"
        t0 = time.monotonic()
        slog.emit_ranks(self.tps, "graph_begin", capture_name="target decode", graph_backend=graph,
                        backend="full", num_tokens_per_req=1, avail_mem=free)
        if slog.has("graph_bs"):
            emit("graph_bs", tp=self.tps[0], bs=bs)
        time.sleep(0.2)
        slog.emit_ranks(self.tps, "graph_end", capture_name="target decode", graph_backend=graph, bs=bs,
                        elapsed=time.monotonic() - t0, mem_usage=0.82, avail_mem=free - 0.82)

    def serve(self):
        a = self.args
        try:
            if self.rank == 0:
                self.state = http_api.State(a, self.config, self.argv, self.tps,
                                            self.faults.request_seconds)
                emit("uvicorn_started", pid=os.getpid())
                emit("uvicorn_waiting_startup")
                emit("uvicorn_startup_complete")
                self.server = http_api.serve_api(a.host, a.port, self.state)
                emit("uvicorn_running", host_port=http_api.host_port(a.host, a.port))
            else:
                self.server = http_api.serve_dummy(a.host, a.port, a.enable_metrics)
                emit("dummy_health_started", address=http_api.host_port(a.host, a.port))
        except OSError as e:
            emit("uvicorn_bind_error", errno=e.errno, address=repr((a.host, a.port)),
                 reason=e.strerror.lower() if e.strerror else e)
            os._exit(1)
        if self.rank == 0:
            time.sleep(self.faults.warmup_seconds)
            if self.stopping:
                return
            self.state.phase = "ready"
            emit("ready")

    def run(self):
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        if self.faults.crash_after is not None:
            threading.Timer(self.faults.crash_after, self.crash).start()
        self.prepare()
        self.check_gpus()
        self.form_group()
        self.load()
        self.barrier()
        self.finish_init()
        self.serve()
        while True:
            time.sleep(3600)


def run(argv, prog=None):
    args = prepare_server_args(argv, prog)
    node = Node(args, list(argv), Faults(args.node_rank))
    node.run()
    return 0
