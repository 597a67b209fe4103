#!/usr/bin/env python3
"""The measurements behind `scripts/bench-score` (run that; it builds the
binary and finds a Python with pyarrow). Three benchmarks of `perplex score`,
one process at a time:

memory      peak RSS of `score` on a corpus and on the same corpus 10 times
            over: bounded memory means the larger run's peak is within 10 %
            of the smaller's. Twice: with the deterministic mock model
            (`mock:hash`, no weights: the peak is the reader, tokenizer,
            blocks in flight, rows and journal, so any growth shows) on the
            mixed-length WikiText corpus of 5,000 documents and 50,000; and
            with the real model on 300 documents and 3,000 under the
            truncate protocol (64 tokens a document, so that the pair runs
            in minutes). Both smaller corpora span more than one block of
            256 documents and fill whole batches, so what they hold in
            flight is what any larger run holds.
pipeline    the rate of the one thread that reads, hashes and tokenises:
            `score` with `mock:uniform` (a model that costs nothing) and a
            real tokenizer (Qwen3's, 151,643 tokens) on the 50,000
            documents; the ceiling of one process, whatever the model.
throughput  `score` on many short documents (about 200 tokens each) against
            `eval --join` on the same documents joined into one text, both
            in chunks of --context, at each thread count: padding and
            per-document work should cost at most 15 % (score's tokens/s at
            least 0.85x eval's).

tokens/s is each tool's own figure: text tokens / `timing.seconds` of its
JSON output. For `score` that clock runs from the model being loaded to the
last row written (reading, tokenising, scoring, writing); for `eval` from
the tokenised corpus to the report, so `eval` is not charged for
tokenising. Wall seconds (load included) are printed beside them. Peak RSS
is the process's ru_maxrss (os.wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_peers import run_child  # one way of measuring a child's peak RSS for every bench

ROOT = Path(__file__).resolve().parents[1]


def measure(cmd: list[str], env: dict[str, str]) -> tuple[dict, float, float]:
    """Runs `cmd` to the end, returning its JSON stdout, its wall seconds and its
    peak RSS in MiB (ru_maxrss of that one process)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code, wall, peak = run_child(cmd, 0, env, stdout=out, stderr=err)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        sys.exit(f"bench-score: {' '.join(cmd)} failed ({code}):\n{stderr.decode(errors='replace')}")
    return json.loads(stdout), wall, peak


def corpus(python: str, out: Path, *args: str) -> Path:
    if not out.exists():
        subprocess.run([python, str(ROOT / "scripts/make-score-corpus.py"), "--out", str(out), *args], check=True)
    return out


def score_cmd(perplex: str, model: str, inputs: list[str], output: Path, extra: list[str]) -> list[str]:
    for p in (output, Path(f"{output}.summary.json")):
        p.unlink(missing_ok=True)
    shutil.rmtree(f"{output}.partial", ignore_errors=True)
    return [perplex, "score", "-m", model, *inputs, "-o", str(output), "--format", "json", "-q", *extra]


def memory(args, env: dict[str, str], work: Path, lines: list[str], results: dict) -> bool:
    ok = True
    tokenizer = ROOT / "tests/fixtures/tiny-llama/tokenizer.json"
    cases = [
        ("mock:hash (no weights), mixed WikiText documents", f"mock:hash:{tokenizer}", args.mock_docs, []),
        (
            f"{Path(args.model).name}, mixed WikiText documents, truncate --max-length 64",
            args.model,
            args.model_docs,
            ["-p", "truncate", "--max-length", "64"],
        ),
    ]
    lines += ["", "### Peak memory of `perplex score`: a corpus and 10 times that corpus", ""]
    lines += ["| model | documents | tokens | peak RSS (MiB) | wall (s) | larger / smaller |", "|---|---|---|---|---|---|"]
    for label, model, docs, extra in cases:
        rss = []
        for repeat in (1, 10):
            parquet = corpus(
                args.python, work / f"mixed-{docs}x{repeat}.parquet", "--docs", str(docs), "--repeat", str(repeat)
            )
            cmd = score_cmd(
                args.perplex, model, ["--parquet", str(parquet), "--id-column", "id"], work / "memory.parquet", extra
            )
            summary, wall, peak = measure(cmd + ["--threads", str(args.threads[-1])], env)
            rss.append(peak)
            ratio = f"{rss[1] / rss[0]:.3f}" if repeat == 10 else ""
            lines.append(
                f"| {label} | {summary['totals']['documents']:,} | {summary['totals']['tokens']:,} | "
                f"{peak:.1f} | {wall:.1f} | {ratio} |"
            )
            results.setdefault("memory", []).append(
                {"model": label, "documents": summary["totals"]["documents"], "tokens": summary["totals"]["tokens"],
                 "peak_rss_mib": peak, "wall_seconds": wall}
            )
            print(f"bench-score: memory, {label}, {docs * repeat} documents: {peak:.1f} MiB", file=sys.stderr)
        within = rss[1] <= 1.10 * rss[0]
        ok &= within
        lines.append(f"| | | | | | {'within' if within else 'NOT within'} 10 % |")
    return ok


def pipeline(args, env: dict[str, str], work: Path, lines: list[str], results: dict) -> bool:
    """The reader's rate: `score` with a model that costs nothing, so the
    clock is the one thread that reads, hashes and tokenises (and the
    writing of rows)."""
    parquet = corpus(args.python, work / f"mixed-{args.mock_docs}x10.parquet", "--docs", str(args.mock_docs), "--repeat", "10")
    tokenizer = Path(args.tokenizer)
    lines += ["", f"### One process's reading and tokenising: `score` with a weightless model (`mock:uniform`, {tokenizer.parent.name}'s tokenizer)", ""]
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    # the text bytes of the whole corpus, which every run reads whatever its shard
    corpus_bytes = pc.sum(pq.read_table(parquet, columns=["source_len"])["source_len"]).as_py()
    lines += ["| run | documents read | tokens tokenised and scored | tokens/s | MB/s of text read | wall (s) |", "|---|---|---|---|---|---|"]
    results["pipeline"] = []
    for label, shard in (("every document", []), ("shard 0/100: reads and hashes every document, tokenises 1 %", ["--shard", "0/100"])):
        cmd = score_cmd(args.perplex, f"mock:uniform:{tokenizer}", ["--parquet", str(parquet), "--id-column", "id"], work / "pipeline.parquet", shard)
        s, wall, _ = measure(cmd, env)
        t = s["totals"]
        seconds = s["timing"]["seconds"]
        rate = t["tokens"] / seconds
        lines.append(f"| {label} | {s['corpus']['documents']:,} | {t['tokens']:,} | {rate:,.0f} | {corpus_bytes / seconds / 1e6:.2f} | {wall:.1f} |")
        results["pipeline"].append({"case": label, "tokenizer": str(tokenizer), "documents": s["corpus"]["documents"],
                                    "tokens": t["tokens"], "tokens_per_second": rate, "seconds": seconds, "wall_seconds": wall})
    print(f"bench-score: pipeline, {rate:,.0f} tokens/s", file=sys.stderr)
    return True


def throughput(args, env: dict[str, str], work: Path, lines: list[str], results: dict) -> bool:
    ok = True
    jsonl = work / f"short-{args.short_docs}x{args.words}.jsonl"
    corpus(
        args.python, work / f"short-{args.short_docs}x{args.words}.parquet",
        "--docs", str(args.short_docs), "--words", str(args.words), "--jsonl", str(jsonl),
    )
    protocol = ["-p", "chunks", "-c", str(args.context)]
    lines += ["", f"### `score` on short documents against `eval --join` on the same documents ({Path(args.model).name}, chunks of {args.context})", ""]
    lines += [
        "| threads | tool | documents | text tokens | padding | tokens/s | tokens/s per thread | wall (s) | perplexity | score / eval |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for threads in args.threads:
        t = ["--threads", str(threads)]
        s, s_wall, _ = measure(score_cmd(args.perplex, args.model, ["--jsonl", str(jsonl)], work / "short-scores.jsonl", protocol + t), env)
        e, e_wall, _ = measure(
            [args.perplex, "eval", "-m", args.model, "--jsonl", str(jsonl), "--join", *protocol, *t, "--format", "json"], env
        )
        s_rate = s["totals"]["tokens"] / s["timing"]["seconds"]
        e_rate = e["summary"]["tokens"] / e["timing"]["seconds"]
        ratio = s_rate / e_rate
        ok &= ratio >= 0.85
        lines.append(
            f"| {threads} | score | {s['totals']['documents']:,} | {s['totals']['tokens']:,} | "
            f"{100 * s['figures']['padding_fraction']:.1f} % | {s_rate:.1f} | {s_rate / threads:.1f} | {s_wall:.1f} | "
            f"{s['figures']['perplexity']:.4f} | {ratio:.3f}{'' if ratio >= 0.85 else ' (below 0.85)'} |"
        )
        lines.append(
            f"| {threads} | eval --join | 1 | {e['summary']['tokens']:,} | — | {e_rate:.1f} | {e_rate / threads:.1f} | "
            f"{e_wall:.1f} | {e['summary']['perplexity']:.4f} | |"
        )
        results.setdefault("throughput", []).append(
            {"threads": threads, "score_tokens": s["totals"]["tokens"], "score_tokens_per_second": s_rate,
             "score_padding_fraction": s["figures"]["padding_fraction"], "score_wall_seconds": s_wall,
             "eval_tokens": e["summary"]["tokens"], "eval_tokens_per_second": e_rate, "eval_wall_seconds": e_wall,
             "ratio": ratio}
        )
        print(f"bench-score: throughput, {threads} thread(s): score {s_rate:.1f} tokens/s, eval {e_rate:.1f}", file=sys.stderr)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--perplex", required=True)
    ap.add_argument("--python", required=True, help="a Python with pyarrow, for the corpora")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--only", default="memory,pipeline,throughput")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json for the pipeline rate")
    ap.add_argument("--mock-docs", type=int, default=5000)
    ap.add_argument("--model-docs", type=int, default=300)
    ap.add_argument("--short-docs", type=int, default=250)
    ap.add_argument("--words", type=int, default=150)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--output", type=Path, default=None)
    ap.add_argument("--cpu", default="")
    args = ap.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    only = set(args.only.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    lines = [
        f"`scripts/bench-score` on {args.cpu}, {time.strftime('%Y-%m-%d')}, "
        f"{subprocess.run([args.perplex, '--version'], capture_output=True, text=True).stdout.strip()}"
    ]
    results: dict = {"cpu": args.cpu, "date": time.strftime("%Y-%m-%d")}
    ok = True
    if "memory" in only:
        ok &= memory(args, env, args.work, lines, results)
    if "pipeline" in only:
        ok &= pipeline(args, env, args.work, lines, results)
    if "throughput" in only:
        ok &= throughput(args, env, args.work, lines, results)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.output:
        args.output.write_text(table)
        Path(f"{args.output}.json").write_text(json.dumps(results, indent=2) + "\n")
    if not ok:
        print("bench-score: a target was missed (see the table)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
