#!/usr/bin/env python3
"""Write a Parquet corpus of real text for `perplex score`: documents of
mixed lengths cut from WikiText-2's test split.

    python3 scripts/make-score-corpus.py --out corpus.parquet             # 5,000 documents
    python3 scripts/make-score-corpus.py --docs 200 --out small.parquet
    python3 scripts/make-score-corpus.py --repeat 20 --out big.parquet    # the same 5,000, 20 times

The source is ``wiki.test.raw`` from the shared reference data
(``$PERPLEX_SHARED/reference`` when PERPLEX_SHARED is set, else
``../shared/reference`` beside the checkout), or the file given with
``--source``: one WikiText row per line (a heading such as `` = Title = ``
or a paragraph).

Each document is one of three kinds, drawn with a fixed seed so the same
arguments always write the same rows:

* a paragraph: one row of the source, as it is (headings included), about
  half of the documents;
* a line: one sentence of a paragraph (cut after " . "), short, about a
  quarter;
* a concatenation: 2 to 16 consecutive rows joined by newlines (a section),
  long, the rest.

Columns: ``id`` (string, ``wiki-0000000`` counting from 0 over the whole
file), ``text`` (string) and ``source_len`` (int64: the text's length in
UTF-8 bytes, which `perplex score` reports as ``bytes``, so a kept
``source_len`` column checks that rows and documents line up).

``--words N`` writes documents of consecutive text instead: the source's
rows in order, cut into pieces of N words give or take a fifth (drawn with
the seed), the short documents of a throughput benchmark (150 words are
about 200 tokens for SmolLM2's tokenizer).

``--jsonl FILE`` also writes the same documents as JSON lines with the same
fields, for tools that read JSONL (`perplex eval --jsonl`).

``--repeat K`` writes the ``--docs`` documents K times over (same texts,
new ids), for measuring memory and throughput on a larger corpus. Rows are
written in row groups of ``--row-group`` rows, so readers can stream them.

Needs python3 and pyarrow.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_source() -> Path:
    shared = os.environ.get("PERPLEX_SHARED") or str(ROOT.parent / "shared")
    return Path(shared) / "reference" / "wiki.test.raw"


def sentences(row: str) -> list[str]:
    """A paragraph's sentences: WikiText tokenises punctuation, so a sentence
    ends at " . "."""
    parts = [p.strip() for p in row.split(" . ")]
    out = []
    for i, p in enumerate(parts):
        if not p:
            continue
        out.append(p + " ." if i < len(parts) - 1 or row.rstrip().endswith(" .") else p)
    return out


def documents(rows: list[str], count: int, seed: int) -> list[str]:
    """``count`` documents of mixed kinds drawn from ``rows`` with ``seed``."""
    rng = random.Random(seed)
    paragraphs = [i for i, r in enumerate(rows) if not r.lstrip().startswith("=")]
    docs = []
    for _ in range(count):
        draw = rng.random()
        if draw < 0.5:
            docs.append(rows[rng.randrange(len(rows))].strip())
        elif draw < 0.75:
            # a sentence of a paragraph (headings have none worth taking)
            pieces = sentences(rows[paragraphs[rng.randrange(len(paragraphs))]])
            docs.append(pieces[rng.randrange(len(pieces))] if pieces else "")
        else:
            span = rng.randint(2, 16)
            start = rng.randrange(max(1, len(rows) - span))
            docs.append("\n".join(r.strip() for r in rows[start : start + span]))
    return docs


def pieces(rows: list[str], count: int, words: int, seed: int) -> list[str]:
    """``count`` documents of about ``words`` words each (within a fifth),
    cut from ``rows`` in order, wrapping around at the end."""
    rng = random.Random(seed)
    stream = [w for r in rows for w in r.split()]
    docs, at = [], 0
    for _ in range(count):
        n = rng.randint(max(1, words - words // 5), words + words // 5)
        piece = [stream[(at + i) % len(stream)] for i in range(n)]
        at = (at + n) % len(stream)
        docs.append(" ".join(piece))
    return docs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="the Parquet file to write")
    ap.add_argument("--docs", type=int, default=5000, help="documents (default 5000)")
    ap.add_argument("--repeat", type=int, default=1, help="write the documents K times over (default 1)")
    ap.add_argument("--seed", type=int, default=20261207, help="the random seed (default 20261207)")
    ap.add_argument("--source", type=Path, default=None, help="the WikiText file (default: the shared reference copy)")
    ap.add_argument("--words", type=int, default=None, help="documents of about N words of consecutive text")
    ap.add_argument("--jsonl", type=Path, default=None, help="also write the documents as JSON lines to this file")
    ap.add_argument("--row-group", type=int, default=1000, help="rows per Parquet row group (default 1000)")
    args = ap.parse_args(argv)

    if args.docs < 1 or args.repeat < 1 or args.row_group < 1 or (args.words is not None and args.words < 1):
        ap.error("--docs, --repeat, --row-group and --words must be at least 1")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        print("make-score-corpus: needs pyarrow (pip install pyarrow)", file=sys.stderr)
        return 2

    source = args.source or default_source()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as e:
        print(f"make-score-corpus: cannot read the source {source}: {e.strerror}", file=sys.stderr)
        print("hint: set PERPLEX_SHARED to the shared data folder, or pass --source FILE", file=sys.stderr)
        return 2
    rows = [r for r in text.split("\n") if r.strip()]
    if not rows:
        print(f"make-score-corpus: the source {source} has no non-empty line", file=sys.stderr)
        return 2

    if args.words is None:
        docs = documents(rows, args.docs, args.seed)
    else:
        docs = pieces(rows, args.docs, args.words, args.seed)
    lens = [len(d.encode("utf-8")) for d in docs]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("source_len", pa.int64())])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    # written beside the target and renamed, so a reader never sees half a corpus
    with pq.ParquetWriter(tmp, schema) as writer:
        n = 0
        for _ in range(args.repeat):
            for start in range(0, len(docs), args.row_group):
                part = docs[start : start + args.row_group]
                ids = [f"wiki-{n + i:07d}" for i in range(len(part))]
                n += len(part)
                writer.write_table(
                    pa.table({"id": ids, "text": part, "source_len": lens[start : start + len(part)]}, schema=schema),
                    row_group_size=args.row_group,
                )
    tmp.replace(args.out)
    if args.jsonl is not None:
        tmp = args.jsonl.with_name(args.jsonl.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            n = 0
            for _ in range(args.repeat):
                for doc, size in zip(docs, lens):
                    line = {"id": f"wiki-{n:07d}", "text": doc, "source_len": size}
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    n += 1
        tmp.replace(args.jsonl)
    total = sum(lens) * args.repeat
    print(f"make-score-corpus: wrote {args.out}: {len(docs) * args.repeat} documents, {total} bytes of text", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
