#!/usr/bin/env python3
"""Score every document of a Parquet corpus with Ray Data and perplex.

    python examples/ray/score_ray.py -m model.gguf corpus.parquet --out scores/
    python examples/ray/score_ray.py -m model.gguf data/*.parquet --out scores/ \\
        --workers 8 --threads 4 --protocol chunks --context 512 --keep-columns url,lang

The pipeline is ``ray.data.read_parquet`` → ``map_batches`` with a callable
class, :class:`PerplexScorer`, whose actors each hold one loaded
:class:`perplex.Scorer` (the model is loaded once per worker, not once per
batch) → ``write_parquet``. Each output row is the row ``perplex score``
writes for that document (columns ``id``, ``status``, ``bytes``, ``words``,
``tokens``, ``scored_tokens``, ``nll_sum``, ``mean_nll``, ``perplexity``,
``bits_per_byte``, ``token_accuracy``, then the kept columns): a document is
scored alone, exactly as ``perplex eval`` scores it, whichever worker and
batch it lands in, so every ``nll_sum`` equals the single-process one.

Ray's blocks do not know their position in the corpus, so the rows are
keyed by the corpus's id column (``--id-column``, default ``id``), and the
output has an ``index`` column only when the corpus has one to give
(``--index-column``); the order of the output files is Ray's. The corpus
figures are exact sums over the rows: perplexity ``exp(Σ nll_sum /
Σ scored_tokens)``, printed at the end as JSON.

Sizing: ``--workers`` actors, each using ``--threads`` threads for its
matrix products and reserving as many of Ray's CPUs (``--worker-cpus`` to
reserve otherwise). Ray reads the corpus with tasks that need a CPU too:
leave at least one of the cluster's CPUs unreserved, or the read never
starts and the run waits forever (on a 2-CPU machine, ``--workers 2
--worker-cpus 0.5``). ``--batch-size`` documents go to a worker at a time;
a worker gets whole blocks of the corpus, and Ray reads a Parquet file as
one block (and small files together), so a corpus of fewer files than
workers leaves some idle: ``--blocks N`` repartitions it into N blocks
first.

Connects to the Ray cluster of ``RAY_ADDRESS`` when it is set, else starts a
local one (``--num-cpus`` CPUs). Needs ``ray[data]``, ``pyarrow``,
``aiohttp`` and ``perplex-lm`` (the ``perplex`` module) on every node: Ray
2.60 lists several input files on threads that may fail with "cannot import
name 'HTTPFileSystem'" when aiohttp is not installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import pyarrow as pa


class PerplexScorer:
    """The ``map_batches`` callable: one loaded model per Ray actor.

    Called with a ``pyarrow.Table`` batch of the corpus, returns a table of
    the batch's score rows. ``worker_column``, when set, adds a column with
    the actor's process id, to see how the work was spread.
    """

    def __init__(
        self,
        model: str,
        *,
        text_column: str = "text",
        id_column: str = "id",
        index_column: Optional[str] = None,
        keep_columns: Sequence[str] = (),
        protocol: str = "chunks",
        context: int = 512,
        bos: str = "auto",
        threads: Optional[int] = None,
        worker_column: Optional[str] = None,
    ) -> None:
        import perplex

        options: Dict[str, Any] = {"protocol": protocol, "context": context, "bos": bos}
        if threads is not None:
            options["threads"] = threads
        self.scorer = perplex.Scorer(model, **options)
        self.text_column = text_column
        self.id_column = id_column
        self.index_column = index_column
        self.keep_columns = list(keep_columns)
        self.worker_column = worker_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        for name in [self.text_column, self.id_column, self.index_column, *self.keep_columns]:
            if name is not None and name not in batch.column_names:
                raise KeyError(f"the corpus has no column {name!r} (its columns: {', '.join(batch.column_names)})")
        # a null text is an empty document, as perplex score reads it
        texts = ["" if t is None else t for t in batch[self.text_column].to_pylist()]
        ids = [str(i) for i in batch[self.id_column].to_pylist()]
        indices = batch[self.index_column].to_pylist() if self.index_column else None
        rows = self.scorer.score(texts, ids=ids, indices=indices)
        if not self.index_column:
            rows.pop("index", None)
        table = pa.table(rows)
        for name in self.keep_columns:
            table = table.append_column(name, batch[name])
        if self.worker_column:
            table = table.append_column(self.worker_column, pa.array([os.getpid()] * table.num_rows, pa.int64()))
        return table


def score_corpus(
    paths: Sequence[str],
    out: str,
    model: str,
    *,
    workers: int = 2,
    threads: int = 1,
    batch_size: int = 64,
    blocks: Optional[int] = None,
    worker_cpus: Optional[float] = None,
    **scorer_options: Any,
) -> Dict[str, Any]:
    """Scores the Parquet files ``paths`` into Parquet files under ``out``
    (a folder) on the current Ray cluster (``ray.init`` first), and returns
    the corpus summary: documents, scored tokens, NLL sum and perplexity.

    Each worker reserves ``worker_cpus`` of Ray's CPUs (default: ``threads``).
    Ray's file listing and reading tasks need a CPU of their own: when the
    workers reserve every CPU of the cluster, those never start and the run
    waits forever, so leave one free (or reserve a fraction per worker)."""
    import ray

    ds = ray.data.read_parquet(list(paths))
    if blocks:
        # Ray reads a Parquet file (or several small ones) as one block, and a
        # block goes to one worker
        ds = ds.repartition(blocks)
    scored = ds.map_batches(
        PerplexScorer,
        fn_constructor_args=(model,),
        fn_constructor_kwargs={"threads": threads, **scorer_options},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=threads if worker_cpus is None else worker_cpus,
    ).materialize()
    scored.write_parquet(out)
    return summary(scored.select_columns(["status", "scored_tokens", "nll_sum"]).iter_rows())


def summary(rows) -> Dict[str, Any]:
    """The corpus figures from rows with ``status``, ``scored_tokens`` and
    ``nll_sum``; the NLLs are added with ``math.fsum`` (exactly rounded), so
    the order Ray returns the rows in does not change the result."""
    documents = scored_documents = tokens = 0
    nlls: List[float] = []
    for row in rows:
        documents += 1
        if row["status"] == "scored":
            scored_documents += 1
            tokens += row["scored_tokens"]
            nlls.append(row["nll_sum"])
    nll = math.fsum(nlls)
    return {
        "documents": documents,
        "scored_documents": scored_documents,
        "scored_tokens": tokens,
        "nll_sum": nll,
        "mean_nll": nll / tokens if tokens else None,
        "perplexity": math.exp(nll / tokens) if tokens else None,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", nargs="+", help="Parquet files (or folders of them)")
    ap.add_argument("-m", "--model", required=True, help="a model, as perplex -m takes it")
    ap.add_argument("--out", required=True, help="the folder to write the score rows into (Parquet files)")
    ap.add_argument("--workers", type=int, default=2, help="Ray actors, each with its own model (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="CPUs per worker, and perplex's threads (default 1)")
    ap.add_argument("--worker-cpus", type=float, default=None, help="Ray CPUs each worker reserves (default: --threads)")
    ap.add_argument("--batch-size", type=int, default=64, help="documents per batch (default 64)")
    ap.add_argument("--blocks", type=int, default=None, help="split the corpus into this many blocks (default: Ray's choice)")
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--id-column", default="id")
    ap.add_argument("--index-column", default=None, help="an integer column giving each document's corpus position")
    ap.add_argument("--keep-columns", default="", help="columns to copy into the rows, comma-separated")
    ap.add_argument("--protocol", default="chunks", help="as perplex score --protocol (default chunks)")
    ap.add_argument("--context", type=int, default=512, help="as perplex score --context (default 512)")
    ap.add_argument("--bos", default="auto", help="as perplex score --bos (default auto)")
    ap.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray started when RAY_ADDRESS is not set")
    args = ap.parse_args(argv)

    import ray

    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        ray.init(num_cpus=args.num_cpus)
    try:
        result = score_corpus(
            args.corpus,
            args.out,
            args.model,
            workers=args.workers,
            threads=args.threads,
            batch_size=args.batch_size,
            blocks=args.blocks,
            worker_cpus=args.worker_cpus,
            text_column=args.text_column,
            id_column=args.id_column,
            index_column=args.index_column,
            keep_columns=[c for c in args.keep_columns.split(",") if c],
            protocol=args.protocol,
            context=args.context,
            bos=args.bos,
        )
    finally:
        ray.shutdown()
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
