"""The Python API gives the CLI's reports: same engine, same JSON, same
numbers to the last digit (only the timing differs)."""

import json
import math
import threading
import time
import warnings

import numpy as np
import pytest

import perplex
from conftest import FIXTURES, TEXTS, TINY, TOKENIZER, without_timing

CASES = [
    ("chunks", [], {"context": 16}),
    ("sliding", ["--protocol", "sliding", "--context", "16", "--stride", "4"],
     {"protocol": "sliding", "context": 16, "stride": 4}),
    ("truncate", ["--protocol", "truncate", "--max-length", "8", "--bos", "none"],
     {"protocol": "truncate", "max_length": 8, "bos": "none"}),
    ("llama-cpp", ["--protocol", "llama-cpp", "--context", "16", "--batch-size", "3"],
     {"protocol": "llama-cpp", "context": 16, "batch_size": 3}),
    ("join", ["--context", "16", "--join", "--max-tokens", "20"],
     {"context": 16, "join": True, "max_tokens": 20}),
]


@pytest.mark.parametrize("name,flags,options", CASES, ids=[c[0] for c in CASES])
def test_evaluate_equals_the_cli_json(tiny, cli_json, name, flags, options):
    flags = flags if "--context" in flags or name == "truncate" else ["--context", "16", *flags]
    expected = cli_json("eval", "-m", TINY, *TEXTS, *flags)
    report = tiny.evaluate(TEXTS, **options)
    assert without_timing(report.to_json()) == without_timing(expected)
    got, want = report.to_dict(), json.loads(expected)
    del got["timing"], want["timing"]
    assert got == want


@pytest.mark.parametrize("spec", ["tiny-llama-q8_0.gguf", "tiny-llama+lora/tiny-llama-lora"])
def test_other_formats_and_adapters_equal_the_cli(cli_json, spec):
    spec = "+".join(str(FIXTURES / s) for s in spec.split("+"))
    expected = cli_json("eval", "-m", spec, *TEXTS, "--context", "32")
    report = perplex.load(spec, threads=1).evaluate(TEXTS, context=32)
    assert without_timing(report.to_json()) == without_timing(expected)


def test_files_jsonl_and_splits_equal_the_cli(tiny, cli_json, tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("One paragraph here.\n\nAnother paragraph, a little longer.\n")
    records = tmp_path / "b.jsonl"
    records.write_text('{"body": "first record"}\n{"body": "second record"}\n')
    expected = cli_json("eval", "-m", TINY, "--file", text, "--split", "paragraphs",
                        "--jsonl", records, "--field", "body", "--context", "16")
    report = tiny.evaluate(text, split="paragraphs", jsonl=records, field="body", context=16)
    assert without_timing(report.to_json()) == without_timing(expected)


def test_per_token_columns_equal_the_cli_jsonl(tiny, cli, tmp_path):
    path = tmp_path / "tokens.jsonl"
    code, _, err = cli("eval", "-m", TINY, *TEXTS, "--context", "16", "--per-token", path,
                       "--threads", "1", "--quiet")
    assert code == 0, err
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    cols = tiny.evaluate(TEXTS, context=16, per_token=True).per_token
    assert {k: v.dtype.kind for k, v in cols.items()} == {
        "document": "u", "position": "u", "token": "u", "argmax": "u", "nll": "f"}
    assert cols["nll"].tolist() == [r["nll"] for r in rows]
    assert cols["document"].tolist() == [r["doc"] for r in rows]
    assert cols["position"].tolist() == [r["position"] for r in rows]
    assert cols["token"].tolist() == [r["token"] for r in rows]
    assert cols["argmax"].tolist() == [r["argmax"] for r in rows]
    assert tiny.token_texts(cols["token"][:5]) == [r["text"] for r in rows[:5]]


def test_report_objects_read_like_the_schema(tiny):
    report = tiny.evaluate(TEXTS, context=16)
    s = report.summary
    assert report.perplexity == s.perplexity == report["summary"]["perplexity"]
    assert s.perplexity_ci95[0] < s.perplexity < s.perplexity_ci95[1]
    assert s.bits_per_byte is not None and s.word_perplexity is not None
    assert [d.status for d in report.documents] == ["scored", "scored", "scored", "empty"]
    assert math.isclose(s.perplexity, math.exp(s.nll_sum / s.scored_tokens), rel_tol=1e-12)
    assert report.model.spec == str(TINY)
    with pytest.raises(AttributeError):
        report.summary = None
    d = report.to_dict()
    d["summary"]["perplexity"] = 0  # a copy
    assert report.perplexity != 0
    assert tiny.identity == report.to_dict()["model"]


def test_a_model_is_reused_without_reload(tiny):
    t = time.perf_counter()
    a = tiny.evaluate(TEXTS, context=16)
    b = tiny.evaluate(TEXTS[:2], context=16)
    assert time.perf_counter() - t < 30
    assert a.documents[0].nll_sum == b.documents[0].nll_sum
    assert a.model.hash == b.model.hash


def test_score_gives_one_row_per_document(tiny):
    report = tiny.evaluate(TEXTS, context=16)
    cols = tiny.score(TEXTS, context=16, format="numpy")
    assert cols["nll_sum"].tolist() == [d.nll_sum for d in report.documents]
    assert cols["scored_tokens"].tolist() == [d.scored_tokens for d in report.documents]
    assert cols["perplexity"][0] == report.documents[0].perplexity
    assert np.isnan(cols["perplexity"][3])
    total = cols["nll_sum"].sum() / (cols["bytes"].sum() * math.log(2))
    assert math.isclose(total, report.summary.bits_per_byte, rel_tol=1e-12)


def test_score_gives_an_arrow_table_when_pyarrow_is_installed(tiny):
    pa = pytest.importorskip("pyarrow")
    table = tiny.score(TEXTS, context=16)
    assert isinstance(table, pa.Table)
    assert table.num_rows == len(TEXTS)
    assert table.column("nll_sum").to_pylist() == tiny.score(TEXTS, context=16, format="numpy")["nll_sum"].tolist()


def test_compare_equals_the_cli(tiny, cli_json):
    other = FIXTURES / "tiny-llama-q8_0.gguf"
    expected = cli_json("compare", TINY, other, *sum((["--text", t] for t in TEXTS), []), "--context", "16")
    report = perplex.compare(tiny, other, texts=TEXTS, context=16, threads=1)
    assert without_timing(report.to_json()) == without_timing(expected)
    assert report.pairs[0].base == 0


@pytest.mark.parametrize("run", ["lora-run", "full-run"])
def test_sweep_equals_the_cli(cli_json, run):
    folder = FIXTURES / "runs" / run
    text = json.loads((FIXTURES / "runs.json").read_text())["corpus"]["text"]
    expected = cli_json("sweep", folder, "--text", text, "--context", "64")
    report = perplex.sweep(folder, [text], context=64, threads=1)
    assert without_timing(report.to_json()) == without_timing(expected)
    assert [p.step for p in report.points] == sorted(p.step for p in report.points)


def test_progress_reaches_a_callback_and_tqdm(tiny):
    seen = []
    tiny.evaluate(TEXTS * 20, context=16, batch_size=1, progress=lambda p, t: seen.append((p, t)))
    assert len(seen) > 1 and seen[-1][0] == seen[-1][1]
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    pytest.importorskip("tqdm")
    tiny.evaluate(TEXTS, context=16, progress=True)


def test_an_exception_in_the_progress_callback_stops_the_run(tiny):
    def boom(p, t):
        raise ValueError("stop here")

    with pytest.raises(ValueError, match="stop here"):
        tiny.evaluate(TEXTS * 20, context=16, batch_size=1, progress=boom)


def test_the_gil_is_released_during_a_run():
    slow = perplex.load(f"mock:slow:{TOKENIZER}")
    ticks = []
    done = threading.Event()

    def run():
        slow.evaluate(["a b c d e f g h i j k l m n o p"] * 4, context=8, batch_size=1)
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.005)
    thread.join()
    # the run takes about 20 ms a window over a dozen windows; Python kept running
    assert len(ticks) > 10


def test_warnings_become_python_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gemma = perplex.load(FIXTURES / "tiny-gemma", threads=1)
        gemma.evaluate(TEXTS[:2], context=16, bos="none")
    assert any(issubclass(w.category, perplex.PerplexWarning) for w in caught)
