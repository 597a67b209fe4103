"""PerplexityCallback in a real transformers.Trainer run (tiny-llama, CPU):
LoRA with peft and full fine-tuning; each checkpoint's logged
eval_perplexity is perplex sweep's on the same run folder, and is in
trainer_state.json's log history."""

import json
import math
import warnings

import pytest

import perplex
from conftest import FIXTURES, TINY, needs_torch

pytestmark = pytest.mark.torch

TEXT = json.loads((FIXTURES / "runs.json").read_text())["corpus"]["text"]
EVAL = [p for p in TEXT.split("\n\n") if p.strip()]


def dataset(tok, block=32):
    import torch

    ids = []
    for paragraph in EVAL * 3:
        ids += tok(paragraph)["input_ids"]
    out = []
    for b in range(len(ids) // block):
        x = torch.tensor(ids[b * block:(b + 1) * block])
        out.append({"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x.clone()})
    return out


def train(tmp_path, kind, callback, steps=24, **extra):
    needs_torch()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments
    from transformers import default_data_collator

    tok = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    if kind == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    args = TrainingArguments(
        output_dir=str(tmp_path / kind), max_steps=steps, learning_rate=0.05 if kind == "lora" else 1e-2,
        per_device_train_batch_size=4, save_strategy="steps", save_steps=8, logging_steps=4,
        save_only_model=True, report_to=[], use_cpu=True, seed=11, disable_tqdm=True,
        dataloader_num_workers=0, dataloader_pin_memory=False, **extra,
    )
    data = dataset(tok)
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:4],
                      data_collator=default_data_collator, processing_class=tok,
                      callbacks=[callback] if callback else [])
    if callback:
        callback.attach(trainer)
    trainer.train()
    return tmp_path / kind


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_the_logged_perplexity_is_perplex_sweep(tmp_path, kind):
    needs_torch()
    from perplex.integrations.transformers import PerplexityCallback

    callback = PerplexityCallback(EVAL, threads=1, context=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", perplex.PerplexWarning)
        run = train(tmp_path, kind, callback)
    state = json.loads((run / "trainer_state.json").read_text())
    logged = {e["step"]: e["eval_perplexity"] for e in state["log_history"] if "eval_perplexity" in e}
    assert sorted(logged) == [8, 16, 24]
    swept = perplex.sweep(run, EVAL, context=64, threads=1)
    points = {p.step: p.perplexity for p in swept.points}
    for step, ppl in logged.items():
        assert math.isclose(ppl, points[step], rel_tol=1e-6), (step, ppl, points[step])
    assert [p["step"] for p in callback.points] == [8, 16, 24]
    assert callback.curve is not None
    assert [p.perplexity for p in callback.curve.points] == [p.perplexity for p in swept.points]
    if kind == "lora":
        assert callback.curve.base is not None  # the base, evaluated as the reference


def test_every_n_steps_on_evaluate(tmp_path):
    needs_torch()
    from perplex.integrations.transformers import PerplexityCallback

    callback = PerplexityCallback(EVAL, every=8, threads=1, context=64, diagnose=False)
    run = train(tmp_path, "full", callback, steps=16, eval_strategy="steps", eval_steps=8,
                per_device_eval_batch_size=4)
    assert [p["step"] for p in callback.points] == [8, 16]
    swept = perplex.sweep(run, EVAL, context=64, threads=1)
    for p, q in zip(callback.points, swept.points):
        assert math.isclose(p["eval_perplexity"], q.perplexity, rel_tol=1e-6)
    assert not (run / ".perplex" / "step-8").exists()


def test_bad_arguments_are_usage_errors():
    needs_torch()
    from perplex.integrations.transformers import PerplexityCallback

    with pytest.raises(perplex.UsageError):
        PerplexityCallback()
    with pytest.raises(perplex.UsageError):
        PerplexityCallback(EVAL, every=0)
    with pytest.raises(perplex.UsageError):
        PerplexityCallback(EVAL, protocl="chunks")
    with pytest.raises(perplex.InputError):
        PerplexityCallback([1, 2])
