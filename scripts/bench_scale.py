#!/usr/bin/env python3
"""Scaling benchmark helper for scripts/bench-scale (see the comments there).

Subcommands:
  write SHAPE DIR         write a synthetic Llama-family HF folder of SHAPE (numpy only)
  params SHAPE            print SHAPE's parameter count
  perplex BIN MODEL TEXT  perplex (exact) on MODEL, a folder or a GGUF
  peer MODEL TEXT         transformers on the folder MODEL (--dtype bf16 or f32), run by this
                          interpreter, which needs torch and transformers
  llama BIN GGUF TEXT     llama.cpp's llama-perplexity BIN on GGUF
  table RESULTS.json      print the markdown table of the collected results

Every tool runs llama.cpp's perplexity protocol on one 512-token chunk (the first 512 tokens
of TEXT, the second half scored), through scripts/bench_peers.py's runners, the ones
scripts/bench uses. Each measuring subcommand first rests --pause seconds and measures how
busy the CPUs are meanwhile (other processes), then prints one JSON line: peak RSS
(ru_maxrss of the child, via os.wait4), wall seconds of the child (load + the chunk), the
chunk's tokens/s as the tool times it (load excluded) and the perplexity.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import bench_peers  # the peers' runners and parsers, shared with scripts/bench

CONTEXT = 512  # one chunk of llama.cpp's protocol

# Llama-family shapes. The vocabulary is SmolLM2's (49,152, its tokenizer.json is what the
# folders carry) for both: a real Llama-2 tokenizer is not available offline, so the "7b"
# shape has Llama-2-7B's body with a 49,152-row embedding and head instead of 32,000 rows
# (6.88 B parameters instead of 6.74 B).
SHAPES = {
    "small": {  # 186 M parameters: the whole pipeline in minutes; every row a multiple of 256
        "hidden_size": 1024,  # (Q4_K's block), so Q4_K_M quantizes every matrix as it would a 7B's
        "intermediate_size": 2816,
        "num_hidden_layers": 12,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 2048,
    },
    "1.7b": {  # SmolLM2-1.7B
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 24,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
        "rope_theta": 130000.0,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 8192,
    },
    "7b": {  # Llama-2-7B's body, SmolLM2's vocabulary
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 49152,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 4096,
    },
}

STD = 0.02  # small enough that 32 layers of random weights keep the logits finite
SEED = 20261207


def tensor_shapes(shape):
    """(name, shape) of every tensor of a LlamaForCausalLM with `shape`, in file order."""
    h = shape["hidden_size"]
    i = shape["intermediate_size"]
    v = shape["vocab_size"]
    head_dim = h // shape["num_attention_heads"]
    kv = shape["num_key_value_heads"] * head_dim
    out = [("model.embed_tokens.weight", (v, h))]
    for layer in range(shape["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        out += [
            (p + "input_layernorm.weight", (h,)),
            (p + "self_attn.q_proj.weight", (h, h)),
            (p + "self_attn.k_proj.weight", (kv, h)),
            (p + "self_attn.v_proj.weight", (kv, h)),
            (p + "self_attn.o_proj.weight", (h, h)),
            (p + "post_attention_layernorm.weight", (h,)),
            (p + "mlp.gate_proj.weight", (i, h)),
            (p + "mlp.up_proj.weight", (i, h)),
            (p + "mlp.down_proj.weight", (h, i)),
        ]
    out.append(("model.norm.weight", (h,)))
    if not shape["tie_word_embeddings"]:
        out.append(("lm_head.weight", (v, h)))
    return out


def parameter_count(shape):
    total = 0
    for _, dims in tensor_shapes(shape):
        n = 1
        for d in dims:
            n *= d
        total += n
    return total


def to_bf16_bytes(np, values):
    """f32 array -> little-endian bf16 bytes, rounded to nearest even (no NaNs here)."""
    bits = values.astype(np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return rounded.astype("<u2").tobytes()


def write_model(shape_name, out_dir, tokenizer, sparse=False):
    """Writes the folder; `sparse`: the matrices are zeros left as holes of a sparse file
    (no disk used for them; they are read, and cost memory and time, as any other values)."""
    import numpy as np

    shape = SHAPES[shape_name]
    tensors = tensor_shapes(shape)
    header = {}
    offset = 0
    for name, dims in tensors:
        n = 1
        for d in dims:
            n *= d
        header[name] = {"dtype": "BF16", "shape": list(dims), "data_offsets": [offset, offset + 2 * n]}
        offset += 2 * n
    header["__metadata__"] = {"format": "pt"}
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # data section 8-byte aligned

    tmp = out_dir + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    rng = np.random.default_rng(SEED)
    rows_per_block = 1 << 24  # elements per generated block: bounds the writer's memory
    with open(os.path.join(tmp, "model.safetensors"), "wb") as f:
        f.write(len(header_bytes).to_bytes(8, "little"))
        f.write(header_bytes)
        data_start = f.tell()
        for name, dims in tensors:
            if sparse:
                if len(dims) == 1:
                    f.seek(data_start + header[name]["data_offsets"][0])
                    f.write(to_bf16_bytes(np, np.ones(dims, dtype=np.float32)))
                continue
            if len(dims) == 1:  # norm weights: ones, as a trained model's are near
                f.write(to_bf16_bytes(np, np.ones(dims, dtype=np.float32)))
                continue
            rows, cols = dims
            step = max(1, rows_per_block // cols)
            for r in range(0, rows, step):
                block = rng.standard_normal((min(step, rows - r), cols), dtype=np.float32)
                block *= STD
                f.write(to_bf16_bytes(np, block))
        f.truncate(data_start + offset)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "mlp_bias": False,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
        "head_dim": shape["hidden_size"] // shape["num_attention_heads"],
        **shape,
    }
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    shutil.copyfile(tokenizer, os.path.join(tmp, "tokenizer.json"))
    with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "add_bos_token": False,
                "model_max_length": shape["max_position_embeddings"],
            },
            f,
            indent=1,
        )
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)


def runner_args(args, **extra):
    """The namespace bench_peers' runners read: one chunk of CONTEXT tokens, no nice."""
    return argparse.Namespace(text=args.text, threads=args.threads, chunks=1, context=CONTEXT,
                              llama_batch=CONTEXT, nice=0, tokenizer_json=None, **extra)


def emit(args, r, busy):
    print(json.dumps({
        "tool": r["tool"],
        "peak_rss": int(r["peak_rss_mb"] * 1024 * 1024),
        "wall_s": r["wall_seconds"],
        "tokens_per_second": r["tokens_per_second"],
        "window_s": r["seconds"],
        "processed_tokens": r["processed_tokens"],
        "scored_tokens": r["scored_tokens"],
        "perplexity": r["perplexity"],
        "busy_before": busy,
    }))


def logs(args, tool):
    """The run's own folder for its logs (the runners name theirs after the tool only)."""
    path = Path(args.workdir, f"{Path(args.model).name}-{tool.replace(' ', '-')}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def measured(args, tool, run):
    """Rests and samples the CPUs, runs `run` (given its log folder), prints its line; a
    failure stops with the end of the tool's log."""
    busy = bench_peers.busy_fraction(args.pause)
    try:
        r = run(logs(args, tool))
    except RuntimeError as e:
        sys.exit(f"bench-scale: {tool} on {args.model} failed: {e}")
    r["tool"] = tool
    emit(args, r, busy)


def measure_perplex(args):
    a = runner_args(args, perplex_bin=args.bin)
    measured(args, "perplex", lambda d: bench_peers.run_perplex(a, d, args.model, False))


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def measure_peer(args):
    # transformers holds every weight in the chosen dtype, plus torch itself: skip a run that
    # cannot fit rather than have the kernel kill it (or the machine swap)
    config = json.loads(Path(args.model, "config.json").read_text())
    shape = {k: config[k] for k in SHAPES["small"]}
    need = parameter_count(shape) * (4 if args.dtype == "f32" else 2) + 1_500_000_000
    have = mem_available()
    tool = f"transformers {args.dtype}"
    if have is not None and need > have:
        print(json.dumps({"tool": tool, "skipped": f"needs about {need / 1e9:.0f} GB of memory, "
                                                   f"{have / 1e9:.0f} GB available"}))
        return
    a = runner_args(args, model=args.model, dtype=args.dtype)
    measured(args, tool, lambda d: bench_peers.run_transformers(a, d))


def measure_llama(args):
    a = runner_args(args, model=args.model, llama_bin=args.bin, llama_version=args.llama_version)
    measured(args, "llama.cpp", lambda d: bench_peers.run_llama(a, d))


# (tool, the peer it is compared with, the target ratio of tokens/s, or None)
SPEED_TARGETS = {"safetensors": ("transformers f32", 1.2), "gguf": ("llama.cpp", None)}


def table(args):
    rows = [json.loads(line) for line in open(args.results, encoding="utf-8") if line.strip()]
    gb = 1e9
    peers = {(r["shape"], r["weights"], r["tool"]): r for r in rows if "skipped" not in r}
    out = ["| model | weights | tool | params | file GB | peak RSS GB | peak − file GB | "
           "load + chunk s | tokens/s | vs peer | perplexity | CPU busy before |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['shape']} | {r['weights']} | {r['tool']} | {r['params'] / 1e9:.2f} B | {r['file_bytes'] / gb:.2f} |"
        if "skipped" in r:
            out.append(head + f" skipped: {r['skipped']} | | | | | | | |")
            continue
        file_gb = r["file_bytes"] / gb
        peak_gb = r["peak_rss"] / gb
        over = f"{peak_gb - file_gb:+.2f}"
        vs = ""
        if r["tool"] == "perplex":
            # weights stay as the file stores them (bf16, or the GGUF's blocks): ≤ file + 1.5 GB
            over += " ok" if peak_gb <= file_gb + 1.5 else " **missed** (≤ +1.5)"
            kind = "gguf" if r["weights"].endswith("GGUF") else "safetensors"
            peer_tool, target = SPEED_TARGETS[kind]
            peer = peers.get((r["shape"], r["weights"], peer_tool))
            if peer:
                ratio = r["tokens_per_second"] / peer["tokens_per_second"]
                vs = f"{ratio:.2f}x {peer_tool}"
                if target:
                    vs += f" (≥ {target}x: {'met' if ratio >= target else '**missed**'})"
        out.append(head + f" {peak_gb:.2f} | {over} | {r['wall_s']:.1f} | {r['tokens_per_second']:.1f} | "
                   f"{vs} | {r['perplexity']:.1f} | {r['busy_before'] * 100:.0f} % |")
    print("\n".join(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("shape", choices=sorted(SHAPES))
    w.add_argument("dir")
    w.add_argument("--tokenizer", required=True)
    w.add_argument("--sparse", action="store_true")
    p = sub.add_parser("params")
    p.add_argument("shape", choices=sorted(SHAPES))
    def measuring(name, *positional):
        m = sub.add_parser(name)
        for p in positional:
            m.add_argument(p)
        m.add_argument("model")
        m.add_argument("text")
        m.add_argument("--threads", type=int, required=True)
        m.add_argument("--workdir", required=True, help="where the tools' logs go")
        m.add_argument("--pause", type=float, default=3.0,
                       help="seconds of rest before the run, measuring how busy the CPUs are")
        return m

    measuring("perplex", "bin")
    measuring("peer").add_argument("--dtype", choices=["bf16", "f32"], required=True)
    measuring("llama", "bin").add_argument("--llama-version", default="")
    t = sub.add_parser("table")
    t.add_argument("results")
    args = parser.parse_args()
    if args.command == "write":
        write_model(args.shape, args.dir, args.tokenizer, args.sparse)
    elif args.command == "params":
        print(parameter_count(SHAPES[args.shape]))
    elif args.command == "perplex":
        measure_perplex(args)
    elif args.command == "peer":
        measure_peer(args)
    elif args.command == "llama":
        measure_llama(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
