"""The HF ``evaluate`` perplexity drop-in: the metric's numbers where they
are defined, plus the token-weighted corpus perplexity; checked against
transformers (the metric's algorithm) and, when it can be loaded, against
``evaluate``'s own metric."""

import math

import numpy as np
import pytest

import perplex
from perplex.integrations import evaluate as perplex_evaluate
from conftest import FIXTURES, TINY, needs_torch

TEXTS = [
    "The cat sat on the mat. It was a sunny day, and the cat was happy.",
    "Rust is a language empowering everyone to build reliable software.",
    "Short one.",
    "A longer text: " + "words keep coming and the window has to cut them somewhere. " * 6,
]


def test_the_drop_in_uses_the_engine_and_keeps_the_model():
    metric = perplex_evaluate.load("perplexity")
    r = metric.compute(model_id=str(TINY), predictions=TEXTS)
    report = r["report"]
    assert report.protocol.protocol.name == "truncate"
    assert r["perplexities"] == [d.perplexity for d in report.documents]
    assert math.isclose(r["mean_perplexity"], float(np.mean(r["perplexities"])), rel_tol=1e-12)
    total = report.summary
    assert r["corpus_perplexity"] == total.perplexity
    assert math.isclose(r["corpus_perplexity"], math.exp(total.nll_sum / total.scored_tokens), rel_tol=1e-12)
    # loaded once for the same model id
    again = perplex_evaluate.compute(model_id=str(TINY), predictions=TEXTS)
    assert again["perplexities"] == r["perplexities"]
    assert len(perplex_evaluate._models) == 1


def test_empty_texts_get_nan_and_stay_out_of_the_mean():
    r = perplex_evaluate.compute(model_id=str(TINY), predictions=TEXTS[:2] + [""])
    assert math.isnan(r["perplexities"][2])
    assert math.isclose(r["mean_perplexity"], float(np.mean(r["perplexities"][:2])), rel_tol=1e-12)


def test_wrong_use_raises_usage_errors():
    with pytest.raises(perplex.UsageError):
        perplex_evaluate.load("bleu")
    with pytest.raises(perplex.UsageError):
        perplex_evaluate.compute(model_id=str(TINY), predictions="one text")


def reference(model_id, texts, add_start_token, max_length, batch_size):
    """The metric's algorithm in transformers: texts tokenised without
    special tokens, cut to max_length (minus one for BOS), BOS prepended,
    right-padded batches, exp of each text's masked mean NLL."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_id)
    model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch.float32).eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    limit = max_length - 1 if (add_start_token and max_length) else max_length
    enc = tok(texts, add_special_tokens=False, padding=True, truncation=limit is not None,
              max_length=limit, return_tensors="pt", return_attention_mask=True)
    out = []
    for start in range(0, len(texts), batch_size):
        ids = enc.input_ids[start:start + batch_size]
        mask = enc.attention_mask[start:start + batch_size]
        if add_start_token:
            bos = torch.full((ids.shape[0], 1), tok.bos_token_id)
            ids = torch.cat([bos, ids], dim=1)
            mask = torch.cat([torch.ones_like(bos), mask], dim=1)
        with torch.no_grad():
            logits = model(ids, attention_mask=mask).logits
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2).double(), ids[:, 1:], reduction="none")
        m = mask[:, 1:].double()
        out += torch.exp((nll * m).sum(1) / m.sum(1)).tolist()
    return out


@pytest.mark.torch
@pytest.mark.parametrize("add_start_token,max_length,batch_size",
                         [(True, None, 16), (True, 12, 2), (False, None, 3), (False, 10, 1)])
def test_the_same_per_text_perplexities_as_transformers(add_start_token, max_length, batch_size):
    needs_torch()
    want = reference(str(TINY), TEXTS, add_start_token, max_length, batch_size)
    got = perplex_evaluate.compute(model_id=str(TINY), predictions=TEXTS, batch_size=batch_size,
                                   add_start_token=add_start_token, max_length=max_length)
    for g, w in zip(got["perplexities"], want):
        assert abs(g - w) <= 1e-4 * w, (g, w)
    assert abs(got["mean_perplexity"] - np.mean(want)) <= 1e-4 * np.mean(want)


@pytest.mark.torch
def test_the_same_numbers_as_hf_evaluate_itself():
    needs_torch()
    hf_evaluate = pytest.importorskip("evaluate")
    try:
        metric = hf_evaluate.load("perplexity", module_type="metric")
    except Exception as e:  # the metric's script comes from the Hugging Face Hub
        pytest.skip(f"HF evaluate's perplexity metric could not be loaded (offline?): {type(e).__name__}")
    for add_start_token, max_length in [(True, None), (False, 10)]:
        want = metric.compute(model_id=str(TINY), predictions=TEXTS, batch_size=2,
                              add_start_token=add_start_token, max_length=max_length)
        got = perplex_evaluate.compute(model_id=str(TINY), predictions=TEXTS,
                                       add_start_token=add_start_token, max_length=max_length)
        for g, w in zip(got["perplexities"], want["perplexities"]):
            assert abs(g - w) <= 1e-4 * w
        assert abs(got["mean_perplexity"] - want["mean_perplexity"]) <= 1e-4 * want["mean_perplexity"]
