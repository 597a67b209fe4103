#!/usr/bin/env python3
"""Scaling benchmark helper for scripts/bench-scale (see the comments there).

Subcommands:
  write SHAPE DIR        write a synthetic Llama-family HF folder of SHAPE (numpy only)
  perplex BIN DIR TEXT   load DIR with the perplex binary and score one 512-token window
  peer PYTHON DIR TEXT   the same window with transformers (bf16 or f32), one process
  table RESULTS.json     print the markdown table of the collected results

Each measuring subcommand prints one JSON line: peak RSS (ru_maxrss of the child, via
os.wait4), wall seconds of the child (load + one window) and the window's tokens/s.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

from bench_peers import run_child  # one way of measuring a child's peak RSS for every bench

# Llama-family shapes. The vocabulary is SmolLM2's (49,152, its tokenizer.json is what the
# folders carry) for both: a real Llama-2 tokenizer is not available offline, so the "7b"
# shape has Llama-2-7B's body with a 49,152-row embedding and head instead of 32,000 rows
# (6.88 B parameters instead of 6.74 B).
SHAPES = {
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


def run_measured(argv, env=None):
    """Runs argv; returns (stdout, stderr, rc, peak RSS bytes, wall seconds)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc, wall, peak_mib = run_child(argv, 0, env, stdout=out, stderr=err)
        out.seek(0)
        err.seek(0)
        return out.read().decode(), err.read().decode(), rc, int(peak_mib * 1024 * 1024), wall


def measure_perplex(args):
    argv = [args.bin, "eval", "-m", args.model, "--max-tokens", "512", "-p", "chunks", "-c", "512",
            "--format", "json", "-f", args.text]
    if args.threads:
        argv += ["-t", str(args.threads)]
    out, err, rc, peak, wall = run_measured(argv)
    if rc != 0:
        sys.exit(f"perplex failed (exit {rc}) on {args.model}:\n{err[-4000:]}")
    report = json.loads(out)
    print(json.dumps({
        "tool": "perplex",
        "peak_rss": peak,
        "wall_s": wall,
        "tokens_per_second": report["timing"]["tokens_per_second"],
        "window_s": report["timing"]["seconds"],
        "perplexity": report["summary"]["perplexity"],
    }))


# One 512-token window through transformers, the tokens perplex scores (its tokenizer, no
# BOS, the first 512 of the text), NLL of positions 1..511; timed from the tokenised ids to
# the NLL, as perplex's report times it.
PEER_CHILD = r"""
import json, math, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, text_path, dtype, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if threads:
    torch.set_num_threads(threads)
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(
    model_dir, dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)
model.eval()
ids = tok(open(text_path, encoding="utf-8").read(), add_special_tokens=False)["input_ids"][:512]
x = torch.tensor([ids])
start = time.monotonic()
with torch.inference_mode():
    logits = model(x).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum").item()
seconds = time.monotonic() - start
print(json.dumps({"seconds": seconds, "perplexity": math.exp(nll / 511)}))
"""


def measure_peer(args):
    out, err, rc, peak, wall = run_measured(
        [args.python, "-c", PEER_CHILD, args.model, args.text, args.dtype, str(args.threads or 0)])
    if rc != 0:
        sys.exit(f"transformers {args.dtype} failed (exit {rc}):\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    print(json.dumps({
        "tool": f"transformers {args.dtype}",
        "peak_rss": peak,
        "wall_s": wall,
        "tokens_per_second": 512 / result["seconds"],
        "window_s": result["seconds"],
        "perplexity": result["perplexity"],
    }))


def table(args):
    rows = [json.loads(line) for line in open(args.results, encoding="utf-8") if line.strip()]
    gb = 1e9
    print("| model | tool | params | file GB | peak RSS GB | peak − file GB | load + window s | tokens/s | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        file_gb = r["file_bytes"] / gb
        peak_gb = r["peak_rss"] / gb
        target = ""
        if r["tool"] == "perplex":
            # bf16 weights stay 2 bytes an element: peak ≤ file + 1.5 GB
            target = "ok" if peak_gb <= file_gb + 1.5 else "**missed** (≤ file + 1.5)"
        print(f"| {r['shape']} | {r['tool']} | {r['params'] / 1e9:.2f} B | {file_gb:.2f} | {peak_gb:.2f} | "
              f"{peak_gb - file_gb:+.2f} | {r['wall_s']:.1f} | {r['tokens_per_second']:.1f} | {target} |")


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
    m = sub.add_parser("perplex")
    m.add_argument("bin")
    m.add_argument("model")
    m.add_argument("text")
    m.add_argument("--threads", type=int, default=0)
    q = sub.add_parser("peer")
    q.add_argument("python")
    q.add_argument("model")
    q.add_argument("text")
    q.add_argument("--dtype", choices=["bf16", "f32"], required=True)
    q.add_argument("--threads", type=int, default=0)
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
    else:
        table(args)


if __name__ == "__main__":
    main()
