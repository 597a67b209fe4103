#!/usr/bin/env python3
"""Helpers for scripts/bench: the peers' runners and the comparison table.

Subcommands (scripts/bench calls them; each can be run alone):

  extract-llama-cpp SDIST_DIR DEST
      unpack vendor/llama.cpp from the llama-cpp-python sdist in SDIST_DIR into DEST
  transformers --model GGUF|DIR --text FILE --threads N --chunks C --context L --json-out PATH
               [--dtype f32|bf16]
      the transformers peer (f32 unless --dtype) on a GGUF or an HF folder: one process,
      writes its figures as JSON
  run --threads N --model GGUF --text FILE [--perplex-bin B] [--llama-bin B] ...
      run every tool one at a time as a child process (wall time and peak RSS from
      os.wait4), then print the markdown table

Protocol for every tool: llama.cpp's perplexity protocol, C chunks of L tokens, the second
half of each chunk scored (positions L/2 .. L-2 predict L/2+1 .. L-1: L/2 - 1 per chunk),
BOS in place of each chunk's first token only when the GGUF says add-BOS. Processed tokens =
C x L for all three; tokens/s = processed tokens / seconds of the evaluation loop.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

TOOLS = ("perplex", "perplex-fast", "transformers", "llama.cpp")


# ---------------------------------------------------------------------------- llama.cpp source


def extract_llama_cpp(sdist_dir: str, dest: str) -> None:
    """Unpacks <sdist>/vendor/llama.cpp into dest and records the vendored commit."""
    archives = sorted(glob.glob(os.path.join(sdist_dir, "llama_cpp_python-*.tar.gz")))
    if not archives:
        sys.exit(f"bench: no llama_cpp_python-*.tar.gz in {sdist_dir}")
    dest_path = Path(dest)
    tmp = Path(tempfile.mkdtemp(prefix="llama-src-", dir=dest_path.parent))
    commit = None
    with tarfile.open(archives[-1]) as tar:
        members = []
        for m in tar.getmembers():
            parts = m.name.split("/", 1)
            if len(parts) < 2:
                continue
            rel = parts[1]
            if rel.startswith("vendor/llama.cpp/"):
                members.append(m)
            elif rel == ".git/modules/vendor/llama.cpp/HEAD":
                commit = tar.extractfile(m).read().decode().strip()
        if not members:
            sys.exit(f"bench: {archives[-1]} carries no vendor/llama.cpp")
        tar.extractall(tmp, members=members, filter="data")
    root = next(tmp.iterdir()) / "vendor" / "llama.cpp"
    if dest_path.exists():
        shutil.rmtree(dest_path)
    root.rename(dest_path)
    shutil.rmtree(tmp)
    sdist = os.path.basename(archives[-1])[: -len(".tar.gz")]
    (dest_path / ".bench-origin").write_text(f"{sdist} vendor/llama.cpp {commit or 'unknown'}\n")
    print(f"bench: llama.cpp sources ({commit or 'commit unknown'}) from {sdist} in {dest}",
          file=sys.stderr)


# ---------------------------------------------------------------------------- transformers peer


def gguf_fields(path: str) -> dict:
    """The few GGUF metadata fields the peer needs (gguf package)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    out = {}
    for key in ("tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.bos_token_id",
                "general.architecture"):
        field = reader.fields.get(key)
        if field is None:
            continue
        value = field.parts[field.data[0]]
        if field.types and field.types[0].name == "STRING":
            out[key] = bytes(value).decode()
        else:
            out[key] = value.tolist()[0]
    return out


def load_tokenizer(model: str, tokenizer_json: str | None, meta: dict):
    """transformers' tokenizer for the GGUF, with llama.cpp's `smollm` digit split restored.

    transformers' GGUF converter builds the GPT-2 byte-level BPE but drops the pre-tokenizer
    variant; llama.cpp's `smollm` pre-tokenizer splits every digit on its own first. Without
    that step the ids differ from llama.cpp's (and perplex's) on runs of whitespace before a
    digit. A tokenizer.json given with --tokenizer-json is used as it is.
    """
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if tokenizer_json:
        return PreTrainedTokenizerFast(tokenizer_file=tokenizer_json), "tokenizer.json"
    tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(model)),
                                        gguf_file=os.path.basename(model))
    how = "gguf"
    if meta.get("tokenizer.ggml.pre") == "smollm":
        backend = tok.backend_tokenizer
        current = backend.pre_tokenizer
        digits = pre_tokenizers.Digits(individual_digits=True)
        backend.pre_tokenizer = (pre_tokenizers.Sequence([digits, current])
                                 if current is not None else digits)
        how = "gguf + smollm digit split"
    return tok, how


def transformers_peer(a: argparse.Namespace) -> None:
    """--model is a GGUF (dequantized by transformers) or an HF folder; --dtype f32 or bf16."""
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    t0 = time.perf_counter()
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(a.threads)
    folder = os.path.isdir(a.model)
    if folder:  # the folder's tokenizer; BOS as its tokenizer_config says
        tok = AutoTokenizer.from_pretrained(a.model)
        tok_how = "the folder's"
        add_bos = bool(getattr(tok, "add_bos_token", False)) and tok.bos_token_id is not None
        bos = tok.bos_token_id
    else:
        meta = gguf_fields(a.model)
        add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False))
        bos = meta.get("tokenizer.ggml.bos_token_id")
        tok, tok_how = load_tokenizer(a.model, a.tokenizer_json, meta)
    text = Path(a.text).read_text(encoding="utf-8")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    text_tokens = len(ids)
    if add_bos:  # as llama.cpp's tokenize(text, add_special=true)
        ids = [bos] + ids
    L = a.context
    n_chunks = min(a.chunks, len(ids) // L)
    if n_chunks < 1:
        sys.exit(f"bench: {a.text} has {len(ids)} tokens, fewer than one chunk of {L}")
    ids = torch.tensor(ids[: n_chunks * L], dtype=torch.long).view(n_chunks, L)
    if add_bos:
        ids[:, 0] = bos

    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    if folder:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(os.path.abspath(a.model)), gguf_file=os.path.basename(a.model),
            dtype=dtype)
    model.eval()
    load_seconds = time.perf_counter() - t0

    first = L // 2
    nll_sum = 0.0
    nll_sq = 0.0
    scored = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for c in range(n_chunks):
            window = ids[c : c + 1]
            logits = model(window).logits[0]  # [L, vocab], every position (the usual transformers recipe)
            lp = torch.log_softmax(logits[first : L - 1].float(), dim=-1)
            target = window[0, first + 1 : L]
            nll = -lp.gather(1, target[:, None])[:, 0].double()
            nll_sum += nll.sum().item()
            nll_sq += (nll * nll).sum().item()
            scored += nll.numel()
    seconds = time.perf_counter() - start

    mean = nll_sum / scored
    var = max(nll_sq / scored - mean * mean, 0.0)
    stderr = math.sqrt(var / (scored - 1)) if scored > 1 else 0.0
    out = {
        "tool": "transformers",
        "version": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        # the vector ISA torch's own kernels ran (ATEN_CPU_CAPABILITY caps it)
        "mode": f"{a.dtype} ({'HF folder' if folder else 'GGUF dequantized by transformers'}); "
                f"torch kernels {torch.backends.cpu.get_cpu_capability().lower()}",
        "tokenizer": tok_how,
        "text_tokens": text_tokens,
        "chunks": n_chunks,
        "processed_tokens": n_chunks * L,
        "scored_tokens": scored,
        "nll_sum": nll_sum,
        "perplexity": math.exp(mean),
        "perplexity_pm": math.exp(mean) * stderr,
        "seconds": seconds,
        "tokens_per_second": n_chunks * L / seconds,
        "load_seconds": load_seconds,
        "timed": "forward + log_softmax + gather over the windows (load, tokenising excluded)",
        "bos": "replace-first" if add_bos else "none",
        "numpy": np.__version__,
    }
    Path(a.json_out).write_text(json.dumps(out, indent=2))


def export_hf(a: argparse.Namespace) -> None:
    """Writes the GGUF as an HF folder (f32 safetensors + tokenizer.json): the weights and tokens
    transformers runs, so perplex can be timed on the same model in HF form."""
    import torch
    from transformers import AutoModelForCausalLM

    meta = gguf_fields(a.model)
    tok, _ = load_tokenizer(a.model, None, meta)
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(a.model)), gguf_file=os.path.basename(a.model),
        dtype=torch.float32)
    dest = Path(a.dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # save_pretrained refuses a model loaded from GGUF; its tensors are plain f32 by now
    from safetensors.torch import save_file
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    tmp.mkdir(parents=True)
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(tmp)
    tok.backend_tokenizer.save(str(tmp / "tokenizer.json"))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


# ---------------------------------------------------------------------------- running the tools


def run_child(cmd: list[str], nice: int, env: dict | None = None, stdout=None, stderr=None):
    """Runs cmd to completion; returns (exit status, wall seconds, peak RSS in MB)."""
    if nice:
        cmd = ["nice", "-n", str(nice)] + cmd
    print("bench: $ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux; `nice` execs the tool, so this is the tool's own.
    return proc.returncode, wall, usage.ru_maxrss / 1024.0


def run_perplex(a, workdir: Path, model: str, fast: bool) -> dict:
    name = f"perplex-{'fast' if fast else 'exact'}-{Path(model).name}"
    out_json = workdir / f"{name}.json"
    err = workdir / f"{name}.stderr"
    cmd = [a.perplex_bin, "eval", "-m", model, "--file", a.text, "--protocol", "llama-cpp",
           "--context", str(a.context), "--max-tokens", str(a.chunks * a.context),
           "--threads", str(a.threads), "--format", "json", "--quiet"]
    if fast:
        cmd.append("--fast")
    with open(out_json, "wb") as so, open(err, "wb") as se:
        rc, wall, rss = run_child(cmd, a.nice, stdout=so, stderr=se)
    if rc != 0:
        raise RuntimeError(f"perplex exited {rc}: {err.read_text()[-2000:]}")
    r = parse_perplex(out_json.read_text(), wall, rss)
    r["tool"] = "perplex --fast" if fast else "perplex"
    r["model_file"] = Path(model).name
    r["key"] = ("perplex-fast" if fast else "perplex") + (":gguf" if model.endswith(".gguf") else ":hf")
    return r


def parse_perplex(text: str, wall: float, rss: float) -> dict:
    r = json.loads(text)
    s = r["summary"]
    p = r.get("protocol", {})
    lo_hi = s.get("perplexity_ci95")
    dtype = r["model"].get("compute_dtype", "f32")
    return {
        "tool": "perplex",
        "version": f"perplex {r['tool']['version']}",
        "threads": p.get("threads"),
        "mode": (f"{'exact' if dtype == 'f32' else 'fast'}: {dtype} "
                 f"products on {r['model'].get('kernels', '?')} kernels; "
                 f"weights {r['model'].get('weights', '')}"),
        "text_tokens": s.get("tokens"),
        "chunks": s.get("windows"),
        "processed_tokens": s.get("processed_tokens"),
        "scored_tokens": s.get("scored_tokens"),
        "nll_sum": s.get("nll_sum"),
        "perplexity": s.get("perplexity"),
        "perplexity_ci95": lo_hi,
        "perplexity_pm": (s["perplexity"] * s["mean_nll_stderr"]
                          if s.get("perplexity") and s.get("mean_nll_stderr") is not None else None),
        "seconds": r["timing"]["seconds"],
        "tokens_per_second": r["timing"]["tokens_per_second"],
        "timed": "report timing: tokenised corpus to scores (load, tokenising excluded)",
        "bos": (p.get("bos") or {}).get("policy"),
        "wall_seconds": wall,
        "peak_rss_mb": rss,
    }


def run_transformers(a, workdir: Path) -> dict:
    out_json = workdir / "transformers.json"
    cmd = [sys.executable, os.path.abspath(__file__), "transformers", "--model", a.model,
           "--text", a.text, "--threads", str(a.threads), "--chunks", str(a.chunks),
           "--context", str(a.context), "--json-out", str(out_json)]
    dtype = getattr(a, "dtype", "f32")
    if dtype != "f32":
        cmd += ["--dtype", dtype]
    if getattr(a, "tokenizer_json", None):
        cmd += ["--tokenizer-json", a.tokenizer_json]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads),
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    err = workdir / "transformers.stderr"
    with open(err, "wb") as se:
        rc, wall, rss = run_child(cmd, a.nice, env=env, stderr=se)
    if rc != 0:
        raise RuntimeError(f"transformers peer exited {rc}: {err.read_text()[-3000:]}")
    r = json.loads(out_json.read_text())
    as_dtype = "" if os.path.isdir(a.model) else f" (as {dtype})"
    r.update(wall_seconds=wall, peak_rss_mb=rss, model_file=Path(a.model).name + as_dtype,
             key="transformers")
    return r


LLAMA_PPL = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")
LLAMA_TOTAL = re.compile(r"total time =\s*([0-9.]+) ms /\s*(\d+) tokens")
LLAMA_PROMPT = re.compile(r"prompt eval time =\s*([0-9.]+) ms /\s*(\d+) tokens")
LLAMA_VERSION = re.compile(r"version: (.+)")
LLAMA_CHUNKS = re.compile(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), n_seq=(\d+)")
LLAMA_HAVE = re.compile(r"have (\d+) tokens|tokenizes to only (\d+) tokens")


def llama_binary_version(binary: str) -> str:
    """`llama-perplexity --version`'s version line (a build from an sdist says commit unknown)."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
        m = LLAMA_VERSION.search(out.stdout + out.stderr)
        return m.group(1).strip() if m else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def run_llama(a, workdir: Path) -> dict:
    log = workdir / "llama-perplexity.log"
    cmd = [a.llama_bin, "-m", a.model, "-f", a.text, "-c", str(a.context), "-b", str(a.llama_batch),
           "-t", str(a.threads), "-tb", str(a.threads), "--chunks", str(a.chunks),
           "-lv", "4"]  # verbosity 4 lets llama_perf_context_print's timings through
    with open(log, "wb") as out:
        rc, wall, rss = run_child(cmd, a.nice, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    if rc != 0:
        raise RuntimeError(f"llama-perplexity exited {rc}: {text[-3000:]}")
    return parse_llama(text, wall, rss, a)


def parse_llama(text: str, wall: float, rss: float, a) -> dict:
    ppl = LLAMA_PPL.search(text)
    chunks = LLAMA_CHUNKS.search(text)
    total = LLAMA_TOTAL.search(text)
    prompt = LLAMA_PROMPT.search(text)
    if not (ppl and chunks):
        raise RuntimeError("llama-perplexity printed no final estimate:\n" + text[-3000:])
    n_chunks, n_ctx, n_batch, n_seq = (int(x) for x in chunks.groups())
    processed = n_chunks * n_ctx
    if total:
        seconds = float(total.group(1)) / 1000.0
        timed = ("llama_perf total time: tokenising + decode + log-softmax "
                 "(load and warm-up excluded)")
    else:
        seconds = wall
        timed = "process wall time (no perf line found)"
    version = "llama.cpp " + (a.llama_version or llama_binary_version(a.llama_bin))
    r = {
        "tool": "llama.cpp",
        "version": version,
        "threads": a.threads,
        "mode": f"llama-perplexity -c {n_ctx} -b {n_batch} (n_seq={n_seq}), quantized activations",
        "chunks": n_chunks,
        "processed_tokens": processed,
        "scored_tokens": n_chunks * (n_ctx - n_ctx // 2 - 1),
        "perplexity": float(ppl.group(1)),
        "perplexity_pm": float(ppl.group(2)),
        "seconds": seconds,
        "tokens_per_second": processed / seconds,
        "timed": timed,
        "wall_seconds": wall,
        "peak_rss_mb": rss,
        "model_file": Path(a.model).name,
        "key": "llama.cpp",
    }
    if prompt:
        # its "prompt eval" counter: the graph computes only, which undercounts on the CPU
        # (on 2 cores it showed about half of the per-pass time); kept in the JSON only
        r["perf_prompt_eval_seconds"] = float(prompt.group(1)) / 1000.0
        r["perf_prompt_eval_tokens_per_second"] = int(prompt.group(2)) / r["perf_prompt_eval_seconds"]
    return r


# ---------------------------------------------------------------------------- the table


def machine_info() -> dict:
    model = "?"
    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
            if f in flags]
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "simd": " ".join(simd), "memory": mem,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}


def fmt(x, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def flops_per_token(config_path: str, context: int) -> float:
    """FLOPs per processed token of a Llama-style model on windows of `context`: 2 per weight of
    every matrix product (layers and head) plus causal attention (q·k and p·v over the
    (context + 1) / 2 keys a position sees on average)."""
    c = json.loads(Path(config_path).read_text())
    h, layers, ffn = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
    heads, kv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    d = c.get("head_dim") or h // heads
    per_layer = h * heads * d * 2 + 2 * h * kv * d + 3 * h * ffn
    weights = layers * per_layer + c["vocab_size"] * h
    attention = 4 * layers * heads * d * (context + 1) / 2
    return 2 * weights + attention


# (row, peer, target ratio) of the issue's targets
TARGETS = [("perplex:hf", "transformers", 1.2), ("perplex:gguf", "transformers", 1.2),
           ("perplex-fast:hf", "transformers", 2.0), ("perplex-fast:gguf", "transformers", 2.0),
           ("perplex:gguf", "llama.cpp", 2.0), ("perplex-fast:gguf", "llama.cpp", None)]


# What `scripts/bench --cpu avx2` sets so that every tool runs as on a CPU without AVX-512.
AVX2_CAPS = ("perplex PERPLEX_CPU=avx2; torch ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, "
             "MKL_ENABLE_INSTRUCTIONS=AVX2; llama.cpp built with GGML_NATIVE=OFF, GGML_AVX2=ON, "
             "GGML_FMA=ON, GGML_F16C=ON, GGML_AVX512=OFF")


def table(results: list[dict], a, machine: dict) -> str:
    peak = a.peak or {}
    flops = flops_per_token(a.config, a.context) if a.config else None
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores ({machine['simd']}), "
        f"{machine['memory']}, {machine['os']}; {machine['date']}.",
        *([f"CPU class: AVX2 + FMA. Every tool was capped to it on this CPU: {AVX2_CAPS}."]
          if a.cpu == "avx2" else []),
        f"Text `{os.path.basename(a.text)}`, llama.cpp's protocol: {a.chunks} chunks of {a.context}, "
        f"second half scored; {a.threads} threads, one tool at a time.",
    ]
    if flops:
        lines.append(f"Work: {flops / 1e9:.3f} GFLOP per processed token; measured peak on "
                     f"{peak.get('threads', '?')} threads: f32 {fmt(peak.get('f32_gflops'), '.0f')} "
                     f"GFLOP/s, bf16 {fmt(peak.get('bf16_gflops'), '.0f')} GFLOP/s.")
    lines += [
        "",
        "| tool | model | mode | tokens/s | GFLOP/s | of peak | wall s | peak RSS MB | perplexity |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['tool']} | | failed: {r['error'][:80]} | | | | | | |")
            continue
        gflops = r["tokens_per_second"] * flops / 1e9 if flops else None
        mode = r.get("mode", "")
        roof = (peak.get("bf16_gflops") if "bf16" in mode
                else None if "int16" in mode else peak.get("f32_gflops"))
        ppl = fmt(r.get("perplexity"), ".4f")
        if r.get("perplexity_pm") is not None:
            ppl += f" ± {r['perplexity_pm']:.4f}"
        mode = r["mode"].split(";")[0]
        lines.append(
            f"| {r['tool']} | {r.get('model_file', '?')} | {mode} | "
            f"{fmt(r['tokens_per_second'], '.1f')} | {fmt(gflops, '.0f')} | "
            f"{fmt(gflops / roof * 100 if gflops and roof else None, '.0f')}{'%' if gflops and roof else ''} | "
            f"{fmt(r.get('wall_seconds'), '.1f')} | {fmt(r.get('peak_rss_mb'), '.0f')} | {ppl} |")
    by_key = {r["key"]: r for r in results if "error" not in r and "key" in r}
    lines += ["", "| perplex run | peer | speed ratio | target |", "|---|---|---|---|"]
    for row, peer, target in TARGETS:
        if row in by_key and peer in by_key:
            ratio = by_key[row]["tokens_per_second"] / by_key[peer]["tokens_per_second"]
            verdict = "—" if target is None else f"≥ {target:.1f}x: {'met' if ratio >= target else 'MISSED'}"
            lines.append(f"| {by_key[row]['tool']} on {by_key[row]['model_file']} | {peer} | "
                         f"{ratio:.2f}x | {verdict} |")
    for kind in ("hf", "gguf"):
        exact, fast = by_key.get(f"perplex:{kind}"), by_key.get(f"perplex-fast:{kind}")
        if exact and fast and exact.get("perplexity") and fast.get("perplexity"):
            delta = (fast["perplexity"] / exact["perplexity"] - 1) * 100
            lines.append(f"| --fast vs exact perplexity on {exact['model_file']} | | {delta:+.3f} % | "
                         f"within 0.1 %: {'met' if abs(delta) <= 0.1 else 'MISSED'} |")
    lines.append("")
    lines.append("tokens/s = processed tokens (chunks × context) / seconds of the evaluation loop:")
    for r in results:
        if "error" in r:
            continue
        lines.append(f"- {r['tool']} ({r.get('model_file', '?')}): {r['processed_tokens']} processed, "
                     f"{r['scored_tokens']} scored in {r['seconds']:.1f} s — {r['timed']}; {r['mode']}.")
    lines.append("- GFLOP/s = tokens/s × the work per token above (the same nominal work for every tool); "
                 "of peak = against the measured peak of the precision the products use.")
    lines.append("- wall s and peak RSS are the whole process (ru_maxrss), load included.")
    ok = [r for r in results if "error" not in r]
    if len({(r["processed_tokens"], r["scored_tokens"]) for r in ok}) > 1:
        lines.append("- WARNING: the tools did not process and score the same number of tokens.")
    busy = ", ".join(f"{r['tool']} {r['busy_before'] * 100:.0f} %" for r in results if "busy_before" in r)
    if busy:
        lines.append(f"- CPU busy in the {a.pause:.0f} s before each run (other processes; ≈ 0 on an idle "
                     f"machine): {busy}.")
        if any(r.get("busy_before", 0) > 0.1 for r in results):
            lines.append("- WARNING: the machine was busy; these speeds are not comparable with "
                         "an idle machine's, nor with each other.")
    return "\n".join(lines)


def busy_fraction(seconds: float) -> float:
    """Share of all CPUs' time spent not idle over the next `seconds` (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(x) for x in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
        return 1.0 - (i1 - i0) / max(t1 - t0, 1)
    except OSError:
        time.sleep(seconds)
        return 0.0


def run_all(a: argparse.Namespace) -> None:
    wanted = a.only.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="perplex-bench-"))
    machine = machine_info()
    runs = []
    for fast, key in ((False, "perplex"), (True, "perplex-fast")):
        if key in wanted:
            if a.hf_model:
                runs.append((key, lambda fast=fast: run_perplex(a, workdir, a.hf_model, fast)))
            runs.append((key, lambda fast=fast: run_perplex(a, workdir, a.model, fast)))
    if "transformers" in wanted:
        runs.append(("transformers", lambda: run_transformers(a, workdir)))
    if "llama.cpp" in wanted:
        runs.append(("llama.cpp", lambda: run_llama(a, workdir)))
    results = []
    for tool, runner in runs:
        try:
            # rest, and measure how busy the machine is meanwhile: anything but an idle
            # machine makes the figures incomparable
            busy = busy_fraction(a.pause)
            r = runner()
            r["busy_before"] = busy
            print(f"bench: {r['tool']} ({r.get('model_file')}): {r['tokens_per_second']:.1f} tok/s, "
                  f"ppl {r.get('perplexity')}, peak RSS {r['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
        except Exception as e:  # one failing tool still leaves the others' figures
            print(f"bench: {tool} failed: {e}", file=sys.stderr)
            r = {"tool": tool, "error": str(e).splitlines()[0] if str(e) else repr(e)}
        results.append(r)
    md = table(results, a, machine)
    print(md)
    if a.output:
        Path(a.output).write_text(md + "\n")
        Path(a.output + ".json").write_text(json.dumps(
            {"machine": machine, "cpu_class": a.cpu, "threads": a.threads, "chunks": a.chunks, "context": a.context,
             "model": a.model, "hf_model": a.hf_model, "text": a.text, "peak": a.peak,
             "flops_per_token": flops_per_token(a.config, a.context) if a.config else None,
             "results": results}, indent=2) + "\n")
    print(f"bench: logs in {workdir}", file=sys.stderr)
    if any("error" in r for r in results):
        sys.exit(1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    e = sub.add_parser("extract-llama-cpp")
    e.add_argument("sdist_dir")
    e.add_argument("dest")

    def common(p):
        p.add_argument("--model", required=True)
        p.add_argument("--text", required=True)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--chunks", type=int, default=80)
        p.add_argument("--context", type=int, default=512)
        p.add_argument("--tokenizer-json", default=None,
                       help="transformers peer: use this tokenizer.json instead of the GGUF's")

    x = sub.add_parser("export-hf")
    x.add_argument("--model", required=True)
    x.add_argument("--dest", required=True)

    t = sub.add_parser("transformers")
    common(t)
    t.add_argument("--json-out", required=True)
    t.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                   help="weights and activations (bf16: the weights as the folder stores them)")

    r = sub.add_parser("run")
    common(r)
    r.add_argument("--only", default=",".join(TOOLS))
    r.add_argument("--perplex-bin")
    r.add_argument("--llama-bin")
    r.add_argument("--llama-version", default="")
    r.add_argument("--llama-batch", type=int, default=None)
    r.add_argument("--nice", type=int, default=0)
    r.add_argument("--output")
    r.add_argument("--hf-model", help="the model as an HF f32 folder (perplex runs on it too)")
    r.add_argument("--peak-json", help="the peak example's output (for the roofline columns)")
    r.add_argument("--pause", type=float, default=5.0, help="seconds of rest before each tool")
    r.add_argument("--cpu", choices=("native", "avx2"), default="native",
                   help="the CPU class the tools were capped to (set by scripts/bench)")

    a = ap.parse_args(argv)
    if a.cmd == "extract-llama-cpp":
        extract_llama_cpp(a.sdist_dir, a.dest)
    elif a.cmd == "export-hf":
        export_hf(a)
    elif a.cmd == "transformers":
        transformers_peer(a)
    else:
        if a.context < 4 or a.chunks < 1 or a.threads < 1:
            sys.exit("bench: --context ≥ 4, --chunks ≥ 1, --threads ≥ 1")
        a.llama_batch = a.llama_batch or a.context
        a.peak = json.loads(Path(a.peak_json).read_text()) if a.peak_json else None
        a.config = str(Path(a.hf_model) / "config.json") if a.hf_model else None
        if ("perplex" in a.only.split(",") or "perplex-fast" in a.only.split(",")) and not a.perplex_bin:
            sys.exit("bench: --perplex-bin is needed to run perplex")
        if "llama.cpp" in a.only.split(",") and not a.llama_bin:
            sys.exit("bench: --llama-bin is needed to run llama.cpp")
        run_all(a)


if __name__ == "__main__":
    main()
