#!/usr/bin/env python3
"""Training's wall time with perplex's PerplexityCallback against without.

Trains tiny-llama (tests/fixtures) with transformers.Trainer on the CPU, full
fine-tuning and LoRA, saving every 10 of 60 steps, with and without the
callback (scoring each checkpoint in its background thread on 1 thread),
alternating, several times; prints the median wall times and their ratio,
and exits 1 when the callback costs more than 10 %.

    python scripts/bench-callback.py [--repeats 3]

Needs torch, transformers, peft and the perplex-lm wheel (scripts/test-python's
torch environment: target/python/torch/bin/python).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, default_data_collator

import perplex
from perplex.integrations.transformers import PerplexityCallback

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny-llama"
TEXT = json.loads((ROOT / "tests" / "fixtures" / "runs.json").read_text())["corpus"]["text"]
EVAL = [p for p in TEXT.split("\n\n") if p.strip()]


def run(kind: str, with_callback: bool, out: Path) -> float:
    tok = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    if kind == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    ids = []
    for p in EVAL * 6:
        ids += tok(p)["input_ids"]
    data = []
    for b in range(len(ids) // 64):
        x = torch.tensor(ids[b * 64:(b + 1) * 64])
        data.append({"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x.clone()})
    args = TrainingArguments(
        output_dir=str(out), max_steps=60, learning_rate=1e-2, per_device_train_batch_size=8,
        save_strategy="steps", save_steps=10, logging_steps=10, save_only_model=True, report_to=[],
        use_cpu=True, seed=3, disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=False,
    )
    callbacks = [PerplexityCallback(EVAL, threads=1, context=64, diagnose=False)] if with_callback else []
    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tok,
                      data_collator=default_data_collator, callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    if with_callback:
        assert [p["step"] for p in callbacks[0].points] == [10, 20, 30, 40, 50, 60]
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    warnings.simplefilter("ignore")
    worst = 0.0
    for kind in ("full", "lora"):
        times = {False: [], True: []}
        for i in range(repeats):
            for with_callback in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    times[with_callback].append(run(kind, with_callback, Path(tmp) / "run"))
        base, cb = statistics.median(times[False]), statistics.median(times[True])
        ratio = cb / base
        worst = max(worst, ratio)
        print(f"{kind}: without {base:.2f} s, with PerplexityCallback {cb:.2f} s (median of {repeats}): "
              f"{100 * (ratio - 1):+.1f} %")
    print(f"torch threads {torch.get_num_threads()}, perplex {perplex.__version__}")
    return 0 if worst <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
