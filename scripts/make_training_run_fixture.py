#!/usr/bin/env python3
"""Generate two small, real Hugging Face Trainer runs and the goldens of ``perplex sweep``.

Companion of ``scripts/make_fixtures.py`` and ``scripts/make_lora_fixtures.py`` (text, JSON
writer, model loading, PEFT helpers imported from there). It reads the committed base model
``tests/fixtures/tiny-llama/`` (made by make_fixtures.py; run that first) and writes only:

* ``tests/fixtures/runs/lora-run/``: a ``transformers.Trainer`` run fine-tuning a PEFT LoRA
  adapter (r=4, alpha=8, q/v/o/up/down_proj) on tiny-llama, 30 steps at a constant lr of 0.1,
  evaluated and saved every 6 steps: ``checkpoint-6`` ... ``checkpoint-30`` plus the run's final
  ``trainer_state.json``. Its eval_loss falls, bottoms out at step 18 and rises again (overfitting);
* ``tests/fixtures/runs/full-run/``: a full-weight fine-tune of tiny-llama, 12 steps at a constant
  lr of 0.01, evaluated and saved every 4 steps: ``checkpoint-4``, ``-8``, ``-12`` (each a loadable
  HF model folder) plus ``trainer_state.json``;
* ``tests/fixtures/runs.json``: per checkpoint, the transformers float32 (peft applied for the
  adapter run) perplexity of the fixed evaluation text, and the ``log_history`` numbers.

    python scripts/make_training_run_fixture.py

Everything in each checkpoint folder is what Trainer wrote (``save_only_model=True``, so no
optimizer, scheduler or RNG state), except:

* ``training_args.bin`` is deleted: it is a pickle of TrainingArguments (torch.save), which
  nobody should have to unpickle to read a run, and it embeds machine-specific values;
* PEFT's boilerplate ``README.md`` (model card) is deleted from adapter checkpoints;
* ``adapter_config.json`` is rewritten as make_lora_fixtures.py does: ``target_modules`` sorted
  (PEFT writes ``list(set)``, ordered by PYTHONHASHSEED) and ``base_model_name_or_path`` set to
  ``"tiny-llama"``, the base's path relative to ``tests/fixtures/`` (training runs with the
  working directory at tests/fixtures/ and loads the base as ``tiny-llama``, so PEFT already
  writes exactly that; the rewrite only sorts);
* in every ``trainer_state.json`` the wall-clock timing values of ``log_history`` (keys ending in
  ``_runtime`` or ``_per_second``) are set to 0.0, the one non-deterministic thing Trainer
  writes. The file is re-serialised the way Trainer writes it (``json.dumps(indent=2,
  sort_keys=True) + "\\n"``), so nothing else changes.

It is deterministic: seeded (Trainer's ``seed`` with ``full_determinism=True``, which also turns
on torch's deterministic algorithms; LoRA's lora_A initialisation is drawn after
``torch.manual_seed``), CPU only, one torch thread, no dataloader workers, no dropout anywhere
(tiny-llama's attention_dropout is 0, lora_dropout 0). It deletes and rewrites only
``tests/fixtures/runs/`` and ``tests/fixtures/runs.json`` and stops at the first failed self-check.

Data
----
Training split: ``mf.PARAGRAPHS[0]``, ``[3]``, ``[4]``, each tokenised by tiny-llama's tokenizer
(BOS added), concatenated and cut into blocks of 32 tokens (remainder dropped): 16 blocks.
Evaluation split: ``mf.PARAGRAPHS[1]`` and ``[2]`` the same way: 10 blocks. Those two paragraphs
are ``mf.EVAL_TEXT``, the goldens' fixed evaluation text, so the goldens measure held-out text
and their perplexity curve follows ``eval_loss`` (same text, other windows).

Goldens protocol
----------------
Tokens: ``[BOS] + tokenizer(mf.EVAL_TEXT, add_special_tokens=False)`` (= what the tokenizer gives
with its BOS template), 325 ids. Non-overlapping windows of 64 tokens starting at 0, 64, 128, ...;
the last, partial window (5 tokens) is kept. Each window is one forward pass from scratch; its
first token is not scored; every other token i is scored as ``-log_softmax(logits[i-1])[t_i]``
(float32 logits, float64 log_softmax). 5 * 63 + 4 = 319 scored tokens; ``perplexity =
exp(nll_sum / scored_tokens)``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import hashlib
import json
import math
import platform
import shutil
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as mf  # noqa: E402  (text, JSON writer, model loading, protocol windows)
import make_lora_fixtures as mlf  # noqa: E402  (adapter-config rewrite, numpy merge recipe)

import accelerate  # noqa: E402
import numpy as np  # noqa: E402
import peft  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from transformers import AutoTokenizer, Trainer, TrainingArguments, default_data_collator  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures"
RUNS = OUT / "runs"
OWNED = ["runs", "runs.json"]
BASE_REL = "tiny-llama"  # relative to tests/fixtures/, where training runs
BASE = OUT / BASE_REL

BLOCK = 32  # training / evaluation block length (tokens)
TRAIN_PARAGRAPHS = [0, 3, 4]
EVAL_PARAGRAPHS = [1, 2]  # = mf.EVAL_TEXT
GOLDEN_WINDOW = 64
SIZE_BUDGET = 2_500_000  # bytes, everything under tests/fixtures/runs/
TIMING_SUFFIXES = ("_runtime", "_per_second")
# What Trainer changes in a full model's config.json (key: [tiny-llama's value, checkpoint's]):
# it copies the tokenizer's pad id into the config, and training runs without the KV cache.
CONFIG_CHANGES_BY_TRAINER = {"pad_token_id": [None, 0], "use_cache": [True, False]}

LORA_TARGETS = ["down_proj", "o_proj", "q_proj", "up_proj", "v_proj"]

RUN_SPECS = {
    "lora-run": dict(
        kind="lora",
        seed=7101,
        lr=0.1,
        max_steps=30,
        every=6,
        lora=dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS),
        description="PEFT LoRA (r=4, alpha=8, q/v/o/up/down_proj) on tiny-llama; Trainer, 30 steps, "
                    "eval and save every 6 steps.",
    ),
    "full-run": dict(
        kind="full",
        seed=7202,
        lr=1e-2,
        max_steps=12,
        every=4,
        description="Full-weight fine-tune of tiny-llama; Trainer, 12 steps, eval and save every 4 steps.",
    ),
}
COMMON_ARGS = dict(
    per_device_train_batch_size=4,
    per_device_eval_batch_size=8,
    gradient_accumulation_steps=1,
    lr_scheduler_type="constant",
    warmup_steps=0,
    weight_decay=0.0,
    optim="adamw_torch",
    max_grad_norm=1.0,
    eval_strategy="steps",
    save_strategy="steps",
    logging_strategy="steps",
    logging_steps=1,
    save_only_model=True,
    report_to=[],
    use_cpu=True,
    full_determinism=True,
    dataloader_num_workers=0,
    dataloader_pin_memory=False,
    disable_tqdm=True,
)


def log(msg: str) -> None:
    print(msg, flush=True)


def blocks(tok, paragraphs: list[int]) -> list[dict]:
    ids: list[int] = []
    for i in paragraphs:
        ids += tok(mf.PARAGRAPHS[i])["input_ids"]  # BOS added by the tokenizer's template
    n = len(ids) // BLOCK
    out = []
    for b in range(n):
        x = torch.tensor(ids[b * BLOCK:(b + 1) * BLOCK], dtype=torch.long)
        out.append({"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x.clone()})
    return out


def scrub_trainer_state(path: Path) -> list[str]:
    """Zero the wall-clock timing values; re-serialise exactly as TrainerState.save_to_json does."""
    state = json.loads(path.read_text(encoding="utf-8"))
    zeroed = set()
    for entry in state["log_history"]:
        for k in list(entry):
            if k.endswith(TIMING_SUFFIXES):
                entry[k] = 0.0
                zeroed.add(k)
    path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return sorted(zeroed)


def train_run(name: str, spec: dict, tok, train_ds, eval_ds) -> None:
    model = mf.load_hf(Path(BASE_REL))  # relative: PEFT records base_model_name_or_path = "tiny-llama"
    if spec["kind"] == "lora":
        torch.manual_seed(spec["seed"])
        model = get_peft_model(model, LoraConfig(**spec["lora"]))
    args = TrainingArguments(
        output_dir=f"runs/{name}",
        seed=spec["seed"],
        learning_rate=spec["lr"],
        max_steps=spec["max_steps"],
        eval_steps=spec["every"],
        save_steps=spec["every"],
        **COMMON_ARGS,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      processing_class=tok, data_collator=default_data_collator)
    trainer.train()
    trainer.save_state()  # the run-level trainer_state.json, as transformers' example scripts do


@torch.no_grad()
def window_nll(model, ids: list[int]) -> list[float]:
    lg = mlf.run_logits(model, ids)
    nll, _, _ = mlf.window_scores(lg, ids, 1)
    return nll


@torch.no_grad()
def trainer_style_eval_loss(model, eval_ds) -> float:
    """Mean over blocks of transformers' per-block loss (Trainer weights batches by size)."""
    losses = [float(model(input_ids=b["input_ids"][None], labels=b["labels"][None]).loss) for b in eval_ds]
    return float(np.mean(losses))


def sha256_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> int:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)

    for name in OWNED:
        p = OUT / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    checks: list[str] = []

    def check(cond: bool, msg: str) -> None:
        checks.append(("ok   " if cond else "FAIL ") + msg)
        if not cond:
            print("\n".join(checks))
            raise SystemExit(f"verification failed: {msg}")

    check((BASE / "model.safetensors").exists(), "tiny-llama exists (run make_fixtures.py first)")
    tok = AutoTokenizer.from_pretrained(str(BASE))
    E = tok(mf.EVAL_TEXT, add_special_tokens=False)["input_ids"]
    doc = tok(mf.EVAL_TEXT)["input_ids"]
    check(doc == [mf.BOS_ID] + E, "tiny-llama's tokenizer adds exactly one BOS")
    train_ds, eval_ds = blocks(tok, TRAIN_PARAGRAPHS), blocks(tok, EVAL_PARAGRAPHS)
    check(mf.EVAL_TEXT == "\n\n".join(mf.PARAGRAPHS[i] for i in EVAL_PARAGRAPHS),
          "the evaluation split is the goldens' text (mf.EVAL_TEXT)")

    # ---- 1. training ------------------------------------------------------------------
    RUNS.mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(OUT)  # every path Trainer / PEFT record is then relative to tests/fixtures/
    try:
        for name, spec in RUN_SPECS.items():
            log(f"training {name}")
            train_run(name, spec, tok, train_ds, eval_ds)
    finally:
        os.chdir(cwd)

    # ---- 2. normalise what Trainer wrote ------------------------------------------------
    deleted: dict[str, list[str]] = {}
    zeroed_keys: set[str] = set()
    for name, spec in RUN_SPECS.items():
        rd = RUNS / name
        for p in sorted(rd.rglob("*")):
            if p.is_file() and p.name in ("training_args.bin", "README.md"):
                deleted.setdefault(p.name, []).append(str(p.relative_to(RUNS)))
                p.unlink()
        for p in sorted(rd.rglob("trainer_state.json")):
            zeroed_keys.update(scrub_trainer_state(p))
        if spec["kind"] == "lora":
            for d in sorted(rd.glob("checkpoint-*")):
                cfg = mlf.rewrite_adapter_config(d, BASE_REL)
                check(cfg["base_model_name_or_path"] == BASE_REL, f"{name}/{d.name}: base_model_name_or_path")

    # ---- 3. goldens --------------------------------------------------------------------
    windows = mf.protocol_chunks(doc, GOLDEN_WINDOW)
    check([len(w) for w, _ in windows] == [64, 64, 64, 64, 64, 5] and all(sf == 1 for _, sf in windows),
          "golden windows: 5 x 64 + 5 tokens, each scored from its second token")
    n_scored = sum(len(w) - 1 for w, _ in windows)

    def score(model) -> dict:
        per_window = [window_nll(model, w) for w, _ in windows]
        nll = [x for pw in per_window for x in pw]
        s = float(np.sum(np.array(nll, dtype=np.float64)))
        return {"nll_sum": s, "scored_tokens": len(nll), "perplexity": math.exp(s / len(nll)),
                "window_nll_sums": [float(np.sum(np.array(pw, dtype=np.float64))) for pw in per_window],
                "nll": nll}

    base_model = mf.load_hf(BASE)
    base_score = score(base_model)
    check(base_score["scored_tokens"] == n_scored == 319, "319 scored tokens")
    base_eval_loss = trainer_style_eval_loss(base_model, eval_ds)
    base_sd = load_file(str(BASE / "model.safetensors"))
    base_cfg = json.loads((BASE / "config.json").read_text())
    base_gen = json.loads((BASE / "generation_config.json").read_text())

    runs_out = {}
    layout = {}
    checks_out = {"numpy_merge_recipe_vs_peft_max_nll_diff": {}, "reloaded_eval_loss_minus_logged": {}}
    for name, spec in RUN_SPECS.items():
        log(f"goldens {name}")
        rd = RUNS / name
        root_state = json.loads((rd / "trainer_state.json").read_text())
        hist = root_state["log_history"]
        train_losses = {e["step"]: e["loss"] for e in hist if "loss" in e}
        eval_losses = {e["step"]: e["eval_loss"] for e in hist if "eval_loss" in e}
        steps = list(range(spec["every"], spec["max_steps"] + 1, spec["every"]))
        check(sorted(train_losses) == list(range(1, spec["max_steps"] + 1)), f"{name}: a loss logged every step")
        check(sorted(eval_losses) == steps, f"{name}: eval_loss at every save step")
        ckpt_dirs = sorted((p for p in rd.iterdir() if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
        check([p.name for p in ckpt_dirs] == [f"checkpoint-{s}" for s in steps], f"{name}: checkpoint folders")
        root_files = sorted(p.name for p in rd.iterdir() if p.is_file())
        check(root_files == ["trainer_state.json"], f"{name}: run root holds only trainer_state.json ({root_files})")
        expected = (["adapter_config.json", "adapter_model.safetensors"] if spec["kind"] == "lora"
                    else ["config.json", "generation_config.json", "model.safetensors"])
        expected = sorted(expected + ["tokenizer.json", "tokenizer_config.json", "trainer_state.json"])
        ckpts = []
        for d, step in zip(ckpt_dirs, steps):
            files = sorted(os.listdir(d))
            check(files == expected, f"{name}/{d.name}: files {files}")
            state = json.loads((d / "trainer_state.json").read_text())
            check(state["global_step"] == step and state["log_history"] == [e for e in hist if e["step"] <= step
                                                                              and not any(k.startswith("train_") for k in e)],
                  f"{name}/{d.name}: its log_history is the run's, up to step {step}")
            check((d / "tokenizer.json").read_bytes() == (BASE / "tokenizer.json").read_bytes(),
                  f"{name}/{d.name}: tokenizer.json is byte-identical to tiny-llama's")
            tok_cfg = json.loads((d / "tokenizer_config.json").read_text())
            check("add_bos_token" not in tok_cfg and tok_cfg["tokenizer_class"] == "TokenizersBackend",
                  f"{name}/{d.name}: Trainer's tokenizer_config.json has no add_bos_token (BOS comes from "
                  f"tokenizer.json's post_processor)")
            if spec["kind"] == "lora":
                model = PeftModel.from_pretrained(mf.load_hf(BASE), str(d)).eval()
                with safe_open(str(d / "adapter_model.safetensors"), "np") as f:
                    tensors = {k: f.get_tensor(k) for k in f.keys()}
                check(len(tensors) == 20 and all(v.dtype == np.float32 for v in tensors.values())
                      and all(v.any() for k, v in tensors.items() if "lora_B" in k),
                      f"{name}/{d.name}: 20 f32 LoRA tensors, every lora_B trained")
                recipe = mlf.model_from_state(BASE, mlf.numpy_merge(base_sd, [d]))
                diff = max(float(np.abs(np.array(window_nll(recipe, w)) - np.array(window_nll(model, w))).max())
                           for w, _ in windows)
                # NLLs here reach ~20 nats and the LoRA deltas are large (lr 0.1): f32 rounding of
                # the merged weights alone moves NLLs by up to a few 1e-5.
                check(diff < 1e-4, f"{name}/{d.name}: numpy merge recipe == PEFT forward (max NLL diff {diff:.1e})")
                checks_out["numpy_merge_recipe_vs_peft_max_nll_diff"][f"{name}/{d.name}"] = diff
                del recipe
            else:
                model = mf.load_hf(d)
                cfg = json.loads((d / "config.json").read_text())
                cfg_diff = {k: [base_cfg.get(k), cfg.get(k)] for k in sorted(set(cfg) | set(base_cfg))
                            if cfg.get(k) != base_cfg.get(k)}
                check(cfg_diff == CONFIG_CHANGES_BY_TRAINER,
                      f"{name}/{d.name}: config.json == tiny-llama's but for {sorted(CONFIG_CHANGES_BY_TRAINER)}")
                sd = load_file(str(d / "model.safetensors"))
                check(sorted(sd) == sorted(base_sd) and all(v.dtype == np.float32 for v in sd.values()),
                      f"{name}/{d.name}: same f32 tensors as tiny-llama")
                gen = json.loads((d / "generation_config.json").read_text())
                check(gen == {**base_gen, "pad_token_id": 0},
                      f"{name}/{d.name}: generation_config.json == tiny-llama's plus pad_token_id 0")
            ev = trainer_style_eval_loss(model, eval_ds)
            check(abs(ev - eval_losses[step]) < 1e-5,
                  f"{name}/{d.name}: reloaded checkpoint reproduces eval_loss ({ev:.6f} vs {eval_losses[step]:.6f})")
            checks_out["reloaded_eval_loss_minus_logged"][f"{name}/{d.name}"] = ev - eval_losses[step]
            sc = score(model)
            ckpts.append({
                "step": step,
                "path": f"runs/{name}/{d.name}",
                "epoch": state["epoch"],
                "loss": train_losses[step],
                "eval_loss": eval_losses[step],
                "log_history": [{k: e[k] for k in ("step", "loss", "eval_loss") if k in e}
                                for e in state["log_history"] if "loss" in e or "eval_loss" in e],
                **sc,
            })
            log(f"  step {step:2d}: loss {train_losses[step]:.4f} eval_loss {eval_losses[step]:.4f} "
                f"ppl {sc['perplexity']:.3f}")
            del model
        losses = [train_losses[s] for s in sorted(train_losses)]
        check(losses[-1] < losses[0] - 0.5, f"{name}: training loss falls ({losses[0]:.3f} -> {losses[-1]:.3f})")
        ppls = [c["perplexity"] for c in ckpts]
        check(ppls[0] < base_score["perplexity"], f"{name}: the first checkpoint beats the base")
        final = [e for e in hist if "train_loss" in e]
        check(len(final) == 1, f"{name}: one final training summary in the run's log_history")
        size = sum(p.stat().st_size for p in rd.rglob("*") if p.is_file())
        runs_out[name] = {
            "path": f"runs/{name}",
            "kind": spec["kind"],
            "description": spec["description"],
            "base": BASE_REL,
            "training": {
                "seed": spec["seed"], "learning_rate": spec["lr"], "max_steps": spec["max_steps"],
                "eval_steps": spec["every"], "save_steps": spec["every"],
                **{k: v for k, v in COMMON_ARGS.items() if k not in ("report_to", "disable_tqdm")},
                **({"lora": {**spec["lora"], "target_modules": sorted(spec["lora"]["target_modules"])}}
                   if spec["kind"] == "lora" else {}),
            },
            "bytes": size,
            "checkpoint_files": expected,
            "run_root_files": root_files,
            "global_step": root_state["global_step"],
            "best": {
                "by_eval_loss": min(ckpts, key=lambda c: c["eval_loss"])["step"],
                "by_perplexity": min(ckpts, key=lambda c: c["perplexity"])["step"],
            },
            "final_summary": {k: final[0][k] for k in sorted(final[0])},
            "log_history": [{k: e[k] for k in ("step", "loss", "eval_loss") if k in e}
                            for e in hist if "loss" in e or "eval_loss" in e],
            "checkpoints": ckpts,
        }
        layout[name] = {
            "checkpoint_files": expected,
            "trainer_state_keys": sorted(root_state),
            "log_history_train_keys": sorted({k for e in hist if "loss" in e for k in e}),
            "log_history_eval_keys": sorted({k for e in hist if "eval_loss" in e for k in e}),
            "log_history_final_keys": sorted(final[0]),
        }

    total = sum(p.stat().st_size for p in RUNS.rglob("*") if p.is_file())
    check(total <= SIZE_BUDGET, f"tests/fixtures/runs/ is {total} bytes <= {SIZE_BUDGET}")

    goldens = {
        "generator": "scripts/make_training_run_fixture.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "accelerate": accelerate.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
            "safetensors": safetensors.__version__,
        },
        "corpus": {
            "text": mf.EVAL_TEXT,
            "tokenizer": f"{BASE_REL}/tokenizer.json",
            "bos": "document: one BOS (id 1) in front, as the tokenizer's template adds it",
            "ids": doc,
        },
        "protocol": {
            "name": "chunks",
            "window": GOLDEN_WINDOW,
            "description": "Non-overlapping windows of 64 tokens at offsets 0, 64, 128, ... of ids; the last, "
                           "partial window (5 tokens) is kept. Each window is its own forward pass; its first "
                           "token is not scored, every other token i is: nll_i = -log_softmax(logits[i-1])[ids[i]] "
                           "(float32 logits, float64 log_softmax). perplexity = exp(nll_sum / scored_tokens).",
            "windows": [[s, s + len(w)] for s, (w, _) in zip(range(0, len(doc), GOLDEN_WINDOW), windows)],
            "scored_tokens": n_scored,
        },
        "data": {
            "block": BLOCK,
            "train_split": {"paragraphs": TRAIN_PARAGRAPHS, "blocks": len(train_ds)},
            "eval_split": {"paragraphs": EVAL_PARAGRAPHS, "blocks": len(eval_ds),
                           "note": "the same text as corpus.text (mf.EVAL_TEXT), in 32-token blocks with a BOS "
                                   "in front of each paragraph"},
            "description": "make_fixtures.PARAGRAPHS, each tokenised with BOS, concatenated, cut into blocks of "
                           "32 tokens (remainder dropped); labels = input_ids.",
        },
        "trainer_layout": {
            "checkpoint_dirs": "checkpoint-<global_step> directly under the run folder (Trainer's PREFIX_CHECKPOINT_DIR)",
            "runs": layout,
            "adapter_base_model_name_or_path": f"{BASE_REL!r}: relative to tests/fixtures/ (the base folder)",
            "deleted_after_training": deleted,
            "deleted_why": {"training_args.bin": "a pickle (torch.save of TrainingArguments)",
                            "README.md": "PEFT's boilerplate model card"},
            "full_checkpoint_config_changes": {
                "config.json": {k: {"tiny-llama": a, "checkpoint": b} for k, (a, b) in CONFIG_CHANGES_BY_TRAINER.items()},
                "generation_config.json": {"pad_token_id": {"tiny-llama": None, "checkpoint": 0}},
                "why": "Trainer copies the tokenizer's pad id into the model config; training runs with use_cache false.",
            },
            "checkpoint_tokenizer": {
                "tokenizer.json": "byte-identical to tiny-llama/tokenizer.json (its TemplateProcessing adds BOS)",
                "tokenizer_config.json": tok_cfg,
                "note": "written by transformers 5's save_pretrained: no add_bos_token / add_eos_token keys and "
                        "tokenizer_class 'TokenizersBackend' (unlike tiny-llama/tokenizer_config.json, which "
                        "make_fixtures.py patches), so whether BOS is added must come from tokenizer.json.",
            },
            "timing_values_zeroed": sorted(zeroed_keys),
            "timing_note": "wall-clock values in every trainer_state.json's log_history are set to 0.0 for "
                           "reproducibility; the file is re-serialised exactly as Trainer writes it "
                           "(json.dumps(indent=2, sort_keys=True) + newline).",
        },
        "checks": checks_out,
        "base": {"model": BASE_REL, "eval_loss": base_eval_loss, **base_score},
        "runs": runs_out,
    }
    (OUT / "runs.json").write_text(mf.fixed_json(goldens) + "\n", encoding="utf-8")
    print("\n".join(checks))
    log(f"tests/fixtures/runs/: {total} bytes; runs.json: {(OUT / 'runs.json').stat().st_size} bytes")
    for rel, h in sha256_tree(RUNS).items():
        log(f"  {h[:16]}  runs/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
