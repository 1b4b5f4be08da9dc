"""A synthetic GLM-5-shaped repository, generated deterministically on disk, and its metadata.

Layout under the data dir: `<data>/<org>/<name>/<files>`; per-file sizes, git blob ids and
LFS sha256 are cached in `<data>/.meta/<org>__<name>.json` (recomputed when a file changes).
"""

import hashlib
import json
import os
import random
import struct

REPOS = ("zai-org/GLM-5", "zai-org/GLM-5-FP8")
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
LFS_MIN_SIZE = 10 * 1024 * 1024
CHUNK = 4 * 1024 * 1024


def glm5_config(fp8):
    config = {
        "architectures": ["GlmMoeDsaForCausalLM"],
        "model_type": "glm_moe_dsa",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "first_k_dense_replace": 3,
        "hidden_act": "silu",
        "hidden_size": 6144,
        "index_head_dim": 128,
        "index_n_heads": 32,
        "index_topk": 2048,
        "intermediate_size": 12288,
        "kv_lora_rank": 512,
        "max_position_embeddings": 202752,
        "moe_intermediate_size": 2048,
        "n_group": 1,
        "n_routed_experts": 256,
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": 64,
        "num_experts_per_tok": 8,
        "num_hidden_layers": 78,
        "num_key_value_heads": 64,
        "num_nextn_predict_layers": 1,
        "q_lora_rank": 2048,
        "qk_nope_head_dim": 192,
        "qk_rope_head_dim": 64,
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000,
        "routed_scaling_factor": 2.5,
        "tie_word_embeddings": False,
        "topk_group": 1,
        "torch_dtype": "bfloat16",
        "transformers_version": "5.19.0",
        "use_cache": True,
        "v_head_dim": 256,
        "vocab_size": 154880,
        "eos_token_id": [154820, 154827, 154829],
        "pad_token_id": 154820,
    }
    if fp8:
        config["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3",
                                         "quant_method": "fp8", "weight_block_size": [128, 128]}
    return config


def _byte_symbols():
    """GPT-2's byte-to-character table (printable bytes map to themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def byte_tokenizer():
    """A small byte-level BPE ``tokenizer.json`` (one token per byte, no merges): any text encodes
    and decodes back, so clients that tokenize (``sglang.bench_serving``'s random dataset, with
    ``--tokenizer`` the weights directory) work offline."""
    vocab = {c: i for i, c in enumerate(_byte_symbols())}
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": 256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True}],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": vocab, "merges": []}}


def _text_files(repo_id, fp8):
    chat_template = ("[gMASK]<sop>{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                     "{% endfor %}{% if add_generation_prompt %}<|assistant|>"
                     "{% if enable_thinking is defined and not enable_thinking %}</think>{% else %}<think>"
                     "{% endif %}{% endif %}")
    return {
        ".gitattributes": "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
                          "tokenizer.json filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": f"---\nlicense: mit\nlibrary_name: transformers\npipeline_tag: text-generation\n---\n"
                     f"# {repo_id.split('/')[1]}\n\nSynthetic GLM-5-shaped repository served by the "
                     f"glm5cluster lab hub. The weights are filler bytes.\n",
        "config.json": json.dumps(glm5_config(fp8), indent=2) + "\n",
        "generation_config.json": json.dumps({"_from_model_config": True,
                                              "eos_token_id": [154820, 154827, 154829],
                                              "pad_token_id": 154820, "temperature": 1.0,
                                              "top_p": 0.95}, indent=2) + "\n",
        "tokenizer_config.json": json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                             "model_max_length": 202752, "eos_token": "<|endoftext|>",
                                             "pad_token": "<|endoftext|>",
                                             "chat_template": chat_template}, indent=2) + "\n",
        "tokenizer.json": json.dumps(byte_tokenizer()) + "\n",
    }


def _shard_header(index, count, payload, fp8):
    dtype, esize = ("F8_E4M3", 1) if fp8 else ("BF16", 2)
    small = 64 * 64 * 2
    big = (payload - small) // esize * esize
    tensors = {
        f"model.layers.{index}.self_attn.q_a_layernorm.weight": {
            "dtype": "BF16", "shape": [64, 64], "data_offsets": [0, small]},
        f"model.layers.{index}.mlp.experts.down_proj.weight": {
            "dtype": dtype, "shape": [big // esize], "data_offsets": [small, small + big]},
    }
    return tensors, small + big


def _write_shard(path, seed, shard_bytes, index, count, fp8):
    """A valid safetensors file of exactly shard_bytes bytes; returns (tensor names, tensor bytes)."""
    probe = json.dumps(_shard_header(index, count, 1 << 20, fp8)[0]).encode()
    header_len = (len(probe) + 64 + 7) // 8 * 8
    payload = max(64 * 64 * 2 + 16, shard_bytes - 8 - header_len)
    tensors, data_len = _shard_header(index, count, payload, fp8)
    head = json.dumps(tensors, separators=(",", ":")).encode()
    head += b" " * (header_len - len(head))
    rng = random.Random(seed)
    block = rng.randbytes(CHUNK)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        done = 0
        n = 0
        while done < data_len:
            piece = block[: min(CHUNK, data_len - done)]
            tag = struct.pack("<QQ", seed, n)
            f.write(tag[: len(piece)] + piece[len(tag):])
            done += len(piece)
            n += 1
    return list(tensors), data_len


def generate_repo(directory, shards=8, shard_bytes=4 * 1024 * 1024, repo_id="zai-org/GLM-5", fp8=None):
    """Write a GLM-5-shaped repository into `directory` (idempotent for the same parameters)."""
    fp8 = repo_id.endswith("FP8") if fp8 is None else fp8
    os.makedirs(directory, exist_ok=True)
    params = {"repo": repo_id, "shards": shards, "shard_bytes": shard_bytes, "fp8": fp8}
    stamp = os.path.join(directory, ".generated.json")
    if os.path.exists(stamp):
        with open(stamp, encoding="utf-8") as f:
            if json.load(f) == params:
                return directory
    for name, text in _text_files(repo_id, fp8).items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(text)
    weight_map = {}
    total = 0
    seed_base = int(hashlib.sha256(repo_id.encode()).hexdigest()[:8], 16)
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        names, nbytes = _write_shard(os.path.join(directory, name), seed_base + i, shard_bytes, i, shards, fp8)
        total += nbytes
        for t in names:
            weight_map[t] = name
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(directory, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    with open(stamp, "w", encoding="utf-8") as f:
        json.dump(params, f)
    return directory


def repo_files(directory):
    """Repository-relative paths of the files served (dotfiles other than .gitattributes hidden)."""
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") and name != ".gitattributes":
                continue
            out.append(os.path.relpath(os.path.join(root, name), directory).replace(os.sep, "/"))
    return sorted(out)


def _hash_file(path):
    size = os.path.getsize(path)
    sha1 = hashlib.sha1(f"blob {size}\0".encode())
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha1.update(chunk)
            sha256.update(chunk)
    return sha1.hexdigest(), sha256.hexdigest()


def is_lfs(path, size):
    return path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE or path == "tokenizer.json"


def file_metadata(directory, cache_path):
    """{path: {size, oid (git blob sha1), lfs: {sha256, size} or None}}, cached by size+mtime."""
    cache = {}
    if os.path.exists(cache_path):
        with open(cache_path, encoding="utf-8") as f:
            cache = json.load(f)
    out = {}
    changed = False
    for rel in repo_files(directory):
        st = os.stat(os.path.join(directory, rel))
        entry = cache.get(rel)
        if not entry or entry["size"] != st.st_size or entry["mtime_ns"] != st.st_mtime_ns:
            sha1, sha256 = _hash_file(os.path.join(directory, rel))
            lfs = {"sha256": sha256, "size": st.st_size} if is_lfs(rel, st.st_size) else None
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "oid": sha1, "lfs": lfs}
            changed = True
        out[rel] = entry
    if changed or set(cache) != set(out):
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        tmp = cache_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(out, f)
        os.replace(tmp, cache_path)
    return out


def commit_for(directory, repo_id):
    """A fixed 40-hex commit for `main`, derived from the generation parameters."""
    stamp = os.path.join(directory, ".generated.json")
    basis = repo_id
    if os.path.exists(stamp):
        with open(stamp, encoding="utf-8") as f:
            basis += f.read()
    return hashlib.sha1(basis.encode()).hexdigest()
