"""Check a model directory the way the config reader and the weight loader would.

Two stages, like the real server: the config (read while preparing server args, before
anything else) and the weights (read during "Load weight begin/end"). Every failure raises
ModelError with the final exception line the real stack prints.
"""

import json
import os
import struct

KNOWN_ARCHITECTURES = {
    "GlmMoeDsaForCausalLM", "DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM",
    "Glm4MoeForCausalLM", "Qwen2ForCausalLM", "Qwen3MoeForCausalLM", "LlamaForCausalLM",
}
DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1,
               "I32": 4, "I64": 8, "F64": 8, "BOOL": 1}


class ModelError(Exception):
    def __init__(self, final, stage, detail=None):
        super().__init__(final)
        self.final = final  # the last line of the traceback (exception type: message)
        self.stage = stage  # "config" or "weights"
        self.detail = detail  # an extra log line naming the file, where useful


def read_config(model_path):
    if not os.path.isdir(model_path):
        if os.path.exists(model_path):
            raise ModelError(f"NotADirectoryError: [Errno 20] Not a directory: '{model_path}'", "config")
        raise ModelError(
            f"OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't "
            f"find them in the cached files.\nCheck your internet connection or see how to run the "
            f"library in offline mode at "
            f"'https://huggingface.co/docs/transformers/installation#offline-mode'. "
            f"(model path: '{model_path}')", "config")
    path = os.path.join(model_path, "config.json")
    if not os.path.isfile(path):
        raise ModelError(
            f"OSError: {model_path} does not appear to have a file named config.json. Checkout "
            f"'https://huggingface.co/{model_path}/tree/None' for available files.", "config")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except ValueError as e:
        raise ModelError(f"OSError: It looks like the config file at '{path}' is not a valid JSON "
                         f"file. ({e})", "config") from None
    archs = config.get("architectures") or []
    if "model_type" not in config:
        raise ModelError(f"ValueError: Unrecognized model in {model_path}. Should have a `model_type` "
                         f"key in its config.json.", "config")
    if not any(a in KNOWN_ARCHITECTURES for a in archs):
        raise ModelError(f"ValueError: Model architectures {archs} are not supported for now. "
                         f"Supported architectures: {sorted(KNOWN_ARCHITECTURES)}", "config")
    return config


def _shard_tensor_bytes(path):
    """Size of the tensor data a safetensors file declares; raises like safetensors does."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelError("safetensors_rust.SafetensorError: Error while deserializing header: "
                             "HeaderTooSmall", "weights", path)
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000 or 8 + n > size:
            raise ModelError("safetensors_rust.SafetensorError: Error while deserializing header: "
                             "InvalidHeaderLength", "weights", path)
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise ModelError("safetensors_rust.SafetensorError: Error while deserializing header: "
                             "InvalidHeaderDeserialization", "weights", path) from None
    end = 0
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, stop = info["data_offsets"]
        end = max(end, stop)
        total += stop - begin
    if 8 + n + end != size:
        raise ModelError("safetensors_rust.SafetensorError: Error while deserializing header: "
                         "MetadataIncompleteBuffer", "weights", path)
    return total, [k for k in header if k != "__metadata__"]


def check_weights(model_path):
    """Every shard the index lists: present, a whole safetensors file; sizes add up."""
    index_path = os.path.join(model_path, "model.safetensors.index.json")
    if not os.path.isfile(index_path):
        single = os.path.join(model_path, "model.safetensors")
        if os.path.isfile(single):
            return _shard_tensor_bytes(single)[0], 1
        raise ModelError(f"RuntimeError: Cannot find any model weights with `{model_path}`", "weights")
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)
    shards = sorted(set(index.get("weight_map", {}).values()))
    total = 0
    for shard in shards:
        path = os.path.join(model_path, shard)
        if not os.path.isfile(path):
            raise ModelError(f"FileNotFoundError: [Errno 2] No such file or directory: '{path}'",
                             "weights", path)
        nbytes, names = _shard_tensor_bytes(path)
        total += nbytes
        missing = [k for k, v in index["weight_map"].items() if v == shard and k not in names]
        if missing:
            raise ModelError(f"KeyError: '{missing[0]}'", "weights", path)
    expected = index.get("metadata", {}).get("total_size")
    if expected is not None and int(expected) != total:
        raise ModelError(f"RuntimeError: checkpoint size mismatch: the index records total_size="
                         f"{expected} but the shards hold {total} bytes of tensors", "weights")
    return total, len(shards)
