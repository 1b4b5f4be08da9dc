"""Python tracebacks with the real frames and final exception lines from the fixtures."""

from sglang._sim.slog import emit, raw

SITE = "/usr/local/lib/python3.11/dist-packages/sglang"

SCHEDULER_FRAMES = [
    ("srt/managers/scheduler.py", 2937, "run_scheduler_process", "scheduler = Scheduler("),
    ("srt/managers/scheduler.py", 346, "__init__", "self.init_model_worker()"),
    ("srt/managers/scheduler.py", 535, "init_model_worker", "self.init_tp_model_worker()"),
    ("srt/managers/scheduler.py", 497, "init_tp_model_worker", "self.tp_worker = TpModelWorker("),
    ("srt/managers/tp_worker.py", 246, "__init__", "self._init_model_runner()"),
    ("srt/managers/tp_worker.py", 329, "_init_model_runner", "self._model_runner = ModelRunner("),
]
DIST_FRAMES = [
    ("srt/model_executor/model_runner.py", 365, "__init__", "min_per_gpu_memory = self.init_torch_distributed()"),
    ("srt/model_executor/model_runner.py", 766, "init_torch_distributed", "initialize_model_parallel("),
    ("srt/distributed/parallel_state.py", 1590, "initialize_model_parallel", "_TP = init_model_parallel_group("),
    ("srt/distributed/parallel_state.py", 1359, "init_model_parallel_group", "return GroupCoordinator("),
]
NCCL_FRAMES = DIST_FRAMES + [
    ("srt/distributed/parallel_state.py", 330, "__init__", "self.pynccl_comm = PyNcclCommunicator("),
    ("srt/distributed/device_communicators/pynccl.py", 113, "__init__",
     "self.comm: ncclComm_t = self.nccl.ncclCommInitRank("),
    ("srt/distributed/device_communicators/pynccl_wrapper.py", 374, "NCCL_CHECK",
     'raise RuntimeError(f"NCCL error: {error_str}")'),
]
LOAD_FRAMES = [
    ("srt/model_executor/model_runner.py", 383, "__init__", "self.initialize(min_per_gpu_memory)"),
    ("srt/model_executor/model_runner.py", 460, "initialize", "self.load_model()"),
    ("srt/model_executor/model_runner.py", 889, "load_model", "self.model = self.loader.load_model("),
    ("srt/model_loader/loader.py", 657, "load_model", "model = _initialize_model("),
]
WEIGHTS_FRAMES = [
    ("srt/model_executor/model_runner.py", 383, "__init__", "self.initialize(min_per_gpu_memory)"),
    ("srt/model_executor/model_runner.py", 460, "initialize", "self.load_model()"),
    ("srt/model_executor/model_runner.py", 889, "load_model", "self.model = self.loader.load_model("),
    ("srt/model_loader/loader.py", 672, "load_model", "self.load_weights_and_postprocess("),
    ("srt/model_loader/weight_utils.py", 712, "safetensors_weights_iterator",
     'with safe_open(st_file, framework="pt") as f:'),
]
FORWARD_FRAMES = [
    ("srt/managers/scheduler.py", 3012, "run_scheduler_process", "scheduler.event_loop_overlap()"),
    ("srt/managers/scheduler.py", 1104, "event_loop_overlap", "batch_result = self.run_batch(batch)"),
    ("srt/model_executor/model_runner.py", 2417, "forward", "output = self._forward_raw("),
]


def frames_text(frames):
    out = []
    for path, line, func, code in frames:
        out.append(f'  File "{SITE}/{path}", line {line}, in {func}\n    {code}')
    return "\n".join(out)


def scheduler_exception(tp, frames, final):
    """`[ts TPn] Scheduler hit an exception: Traceback ...` as the real scheduler logs it."""
    emit("scheduler_exception", tp=tp,
         traceback="Traceback (most recent call last):\n" + frames_text(frames) + "\n" + final + "\n")


def sigquit():
    emit("sigquit_child")


def main_traceback(frames, final):
    raw("Traceback (most recent call last):\n" + frames_text(frames) + "\n" + final)
