"""perplex.Scorer: batches of in-memory documents give `perplex score`'s
rows, whatever the batch."""

import json

import pytest

import perplex
from conftest import TEXTS, TINY, TOKENIZER

COLUMNS = [
    "index", "id", "status", "bytes", "words", "tokens", "scored_tokens",
    "nll_sum", "mean_nll", "perplexity", "bits_per_byte", "token_accuracy",
]


def _cli_rows(cli, tmp_path, model, texts, *flags):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "rows.jsonl"
    code, _, err = cli("score", "-m", model, "--jsonl", corpus, "--id-column", "id", "-o", out, "-q", *flags)
    assert code == 0, err
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("model", [str(TINY), f"mock:hash:{TOKENIZER}"])
def test_rows_are_perplex_score_rows(cli, tmp_path, model):
    want = _cli_rows(cli, tmp_path, model, TEXTS, "--context", "16", "--threads", "1")
    scorer = perplex.Scorer(model, context=16, threads=1)
    got = scorer.score(TEXTS, ids=[f"d{i}" for i in range(len(TEXTS))])
    assert list(got) == COLUMNS
    for column in COLUMNS:
        assert got[column] == [r[column] for r in want], column


def test_a_document_scores_the_same_in_any_batch():
    scorer = perplex.Scorer(f"mock:hash:{TOKENIZER}", context=8)
    alone = [scorer.score([t], indices=[i]) for i, t in enumerate(TEXTS)]
    together = scorer.score(TEXTS)
    reversed_ = scorer.score(TEXTS[::-1], indices=list(range(len(TEXTS)))[::-1])
    for i in range(len(TEXTS)):
        assert together["nll_sum"][i] == alone[i]["nll_sum"][0] == reversed_["nll_sum"][len(TEXTS) - 1 - i]
        assert together["index"][i] == i and together["id"][i] == str(i)


def test_defaults_nulls_and_integer_ids():
    scorer = perplex.Scorer(f"mock:hash:{TOKENIZER}")
    rows = scorer.score(["one two", None], ids=[7, "x"], indices=[10, 11])
    assert rows["id"] == ["7", "x"] and rows["index"] == [10, 11]
    assert rows["status"][1] == "empty" and rows["perplexity"][1] is None and rows["bytes"] == [7, 0]
    assert scorer.score([]) == {c: [] for c in COLUMNS}


def test_bad_arguments_are_refused_with_a_hint():
    with pytest.raises(perplex.UsageError, match="not a protocol"):
        perplex.Scorer(f"mock:hash:{TOKENIZER}", protocol="nope")
    with pytest.raises(perplex.UsageError, match="batch"):
        perplex.Scorer(f"mock:hash:{TOKENIZER}", batch_size=0)
    scorer = perplex.Scorer(f"mock:hash:{TOKENIZER}")
    with pytest.raises(perplex.InputError, match="2 texts, 1 ids"):
        scorer.score(["a", "b"], ids=["a"])
    with pytest.raises(perplex.InputError, match="not a string"):
        scorer.score(["a", b"b"])
    with pytest.raises(perplex.InputError, match="not a corpus position"):
        scorer.score(["a"], indices=[-1])
    with pytest.raises(perplex.InputError, match="not a list"):
        scorer.score("a text")
