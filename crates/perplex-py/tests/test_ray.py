"""The Ray recipe (examples/ray/score_ray.py) on a real local Ray: two CPUs,
two worker processes, each with its own perplex.Scorer, against one
`perplex score` process on the same corpus: the same documents, every
nll_sum equal, the same corpus perplexity.

Skipped when ray cannot be imported; under CI (CI=true) that fails instead,
since requirements-test.txt installs it."""

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest

from conftest import ROOT, TOKENIZER

EXAMPLE = ROOT / "examples" / "ray"
MODEL = f"mock:hash:{TOKENIZER}"


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but ray cannot be imported ({e}); requirements-test.txt installs it")
        pytest.skip(f"needs ray[data] ({e})")
    return ray


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _corpus(folder: Path, parts: int) -> list:
    """The corpus maker's documents, written as ``parts`` Parquet files (the
    corpus of several files a real run reads)."""
    import pyarrow.parquet as pq

    maker = _load(ROOT / "scripts" / "make-score-corpus.py", "make_score_corpus")
    shared = Path(os.environ.get("PERPLEX_SHARED") or ROOT.parent / "shared") / "reference" / "wiki.test.raw"
    source = [] if shared.is_file() else ["--source", str(ROOT / "examples" / "sample.txt")]
    whole = folder / "whole.parquet"
    assert maker.main(["--docs", "160", "--out", str(whole), *source]) == 0
    table = pq.read_table(whole)
    paths = []
    step = math.ceil(table.num_rows / parts)
    for i in range(parts):
        path = folder / f"corpus-{i}.parquet"
        pq.write_table(table.slice(i * step, step), path)
        paths.append(path)
    return paths


def test_ray_recipe_matches_one_process(tmp_path, cli, monkeypatch):
    ray = _ray()
    import pyarrow.parquet as pq

    paths = _corpus(tmp_path, parts=4)
    inputs = [arg for p in paths for arg in ("--parquet", str(p))]
    code, _, err = cli("score", "-m", MODEL, *inputs, "--id-column", "id", "--keep-columns", "source_len",
                       "-o", tmp_path / "single.parquet", "-q")
    assert code == 0, err
    single = pq.read_table(tmp_path / "single.parquet").to_pydict()
    single_summary = json.loads((tmp_path / "single.parquet.summary.json").read_text())

    # Ray's workers are new processes: they import the example from PYTHONPATH
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")]))
    import score_ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = score_ray.score_corpus(
            [str(p) for p in paths],
            str(tmp_path / "ray"),
            MODEL,
            workers=2,
            worker_cpus=0.5,  # the read tasks need a CPU of the two
            batch_size=16,
            blocks=8,  # Ray reads small files as one block, which one worker would get
            keep_columns=["source_len"],
            worker_column="worker",
        )
    finally:
        ray.shutdown()

    rows = pq.read_table(tmp_path / "ray").to_pydict()
    workers = set(rows["worker"])
    assert len(workers) >= 2, f"every batch went to one worker process ({workers})"
    assert sorted(rows["id"]) == sorted(single["id"]) and len(rows["id"]) == 160
    position = {doc: j for j, doc in enumerate(single["id"])}
    for k, doc in enumerate(rows["id"]):
        j = position[doc]
        got, want = rows["nll_sum"][k], single["nll_sum"][j]
        assert got == want or abs(got - want) <= 1e-12 * abs(want), f"{doc}: nll_sum {got!r} by Ray, {want!r} alone"
        for column in ("status", "tokens", "scored_tokens", "bytes", "words"):
            assert rows[column][k] == single[column][j], f"{doc}: {column} differs"
        assert str(rows["source_len"][k]) == str(single["source_len"][j])
    assert "index" not in rows  # Ray's blocks do not know their corpus position
    assert summary["documents"] == 160
    assert summary["scored_tokens"] == single_summary["totals"]["stats"]["count"]
    want = single_summary["figures"]["perplexity"]
    assert abs(summary["perplexity"] - want) <= 1e-12 * want
