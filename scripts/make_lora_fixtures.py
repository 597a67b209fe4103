#!/usr/bin/env python3
"""Generate PEFT LoRA adapter fixtures and the golden numbers of ``perplex compare``.

Companion of ``scripts/make_fixtures.py`` (text and JSON writer imported from there). It
reads the committed base models ``tests/fixtures/tiny-llama/`` and ``tests/fixtures/tiny-gpt2/``
(made by make_fixtures.py and make_family_fixtures.py; run those first) and writes only:

* ``tests/fixtures/lora/<adapter>/``: PEFT LoRA adapters exactly as ``PeftModel.save_pretrained``
  writes them (``adapter_config.json`` + ``adapter_model.safetensors``; PEFT's boilerplate
  README.md is dropped), plus ``lora/tiny-llama-merged/``, a full HF model folder;
* ``tests/fixtures/lora.json``: per-token NLL/argmax goldens of base+adapter models computed with
  transformers + peft, and the per-position and aggregate comparison numbers of
  ``perplex compare``.

Run it with an interpreter that has the packages of ``scripts/requirements-fixtures.txt``
(peft included):

    python scripts/make_lora_fixtures.py

It is deterministic: each adapter has its own seed (torch's global generator draws the
lora_A initialisation), training is full-batch Adam on one CPU thread with deterministic
algorithms, and the models stay in eval mode while training (no dropout anywhere; the LoRA
configs use lora_dropout 0). adapter_config.json is rewritten after saving with
``target_modules`` sorted (PEFT writes ``list(set)``, whose order depends on PYTHONHASHSEED) and
``base_model_name_or_path`` set to the base's path relative to ``tests/fixtures/``. It deletes and
rewrites only ``tests/fixtures/lora/`` and ``tests/fixtures/lora.json`` and stops at the first
failed self-check.

Adapters
--------
``tiny-llama-lora``            r=4, alpha=8 (scaling 2), q,k,v,o,gate,up,down_proj. Trained on tiny-llama.
``tiny-llama-lora-rslora``     r=8, alpha=4, use_rslora (scaling 4/sqrt(8) = 1.41421...), q_proj,
                               v_proj, modules_to_save=["lm_head"] (a full trained lm_head copy).
``tiny-llama-lora-b``          r=2, alpha=2 (scaling 1), up_proj, down_proj. Trained on the merged
                               model tiny-llama + tiny-llama-lora, for stacking BASE+A+B.
``tiny-llama-lora-untrained``  r=2, alpha=4, q_proj, v_proj, freshly initialised (B = 0), not trained.
``tiny-llama-lora-mismatch``   r=2, alpha=4, target c_attn, trained for a few steps on tiny-gpt2:
                               a real, valid adapter whose modules do not exist in tiny-llama
                               (PEFT refuses it there; its error message is recorded).
``tiny-gpt2-lora``             r=4, alpha=8, c_attn + c_proj (attn.c_proj AND mlp.c_proj: PEFT matches
                               module-name suffixes), fan_in_fan_out=True (GPT-2's Conv1D).
``tiny-llama-merged``          tiny-llama + tiny-llama-lora merged by ``merge_and_unload()``, saved
                               with ``save_pretrained`` (f32 safetensors, config.json,
                               generation_config.json) + tokenizer files copied from tiny-llama.

Training data: each of ``mf.PARAGRAPHS`` tokenised by the base's tokenizer (with BOS where it
adds one) and cut to 128 tokens; every step is one full batch (mean of the five
paragraphs' mean token losses), Adam (default betas/eps, lr 0.006, 12 steps; lr 0.02, 3 steps for the mismatch
adapter), no weight decay.

How PEFT stores a LoRA adapter (peft 0.21, transformers 5)
---------------------------------------------------------
Tensor names in adapter_model.safetensors are ``base_model.model.<module path>.lora_A.weight``
and ``.lora_B.weight``, where ``<module path>`` is the module's name in the transformers model
(``model.layers.0.self_attn.q_proj`` for Llama, ``transformer.h.0.attn.c_attn`` for GPT-2), so
stripping ``base_model.model.`` and the ``.lora_A.weight`` suffix and appending ``.weight`` gives
the base checkpoint's tensor name. The adapter name ("default") is NOT in the saved names.
Shapes are always nn.Linear-style, whatever the base layer: ``lora_A`` is [r, in_features],
``lora_B`` is [out_features, r]. All tensors are float32 here; safetensors metadata is
``{"format": "pt"}``.

``modules_to_save`` modules are saved as full copies under the plain base name with the same
prefix: ``base_model.model.lm_head.weight`` [vocab, hidden]. (In memory PEFT holds it as
``lm_head.modules_to_save.default.weight``; saving strips ``modules_to_save.<adapter>.``.) The
copy REPLACES the base tensor.

Scaling: ``s = lora_alpha / r``, or ``s = lora_alpha / sqrt(r)`` when ``use_rslora`` is true
(``rank_pattern`` / ``alpha_pattern`` can override r / alpha per module; they are empty here).
Forward: ``y = base(x) + s * lora_B(lora_A(x))`` for each active adapter; merged:
``W' = W + s * (B @ A)`` with W in [out, in] (nn.Linear) orientation. With
``fan_in_fan_out = true`` (GPT-2's Conv1D, whose weight is stored [in, out] and computes
``y = x @ W + b``) the delta is transposed: ``W'[in, out] = W + s * (B @ A)^T``; A and B
themselves keep the Linear orientation (A [r, in], B [out, r]). Biases are untouched
(``bias: "none"``, ``lora_bias: false``). Stacked adapters are independent additive deltas:
``W' = W + s_A B_A A_A + s_B B_B A_B`` (checked: PEFT with both adapters active ==
merged(base + A) + B == a numpy merge of both deltas). PEFT refuses to activate two adapters that
both carry ``modules_to_save`` for the same module.

Golden numbers (all float64 numpy from float32 logits)
------------------------------------------------------
For a window ``tokens`` and ``score_from`` k, the scored positions are i in [k, len). With
``lp = log_softmax(float64(logits[i-1]))`` (lp_v = z_v - max z - log Σ_u exp(z_u - max z)):

* ``nll[i] = -lp[tokens[i]]``; ``argmax[i] = argmax(logits[i-1])`` (float32 logits; the
  smallest top-1 minus top-2 logit gap is recorded, so ties are not an issue).

For a pair (base b, other o) at each scored position, with ``p = exp(lp)`` and t = tokens[i]:

* ``kl = Σ_v p_b[v] * (lp_b[v] - lp_o[v])`` over the full vocabulary (KL(P_base || P_other), no
  clamping; exactly 0 for a model against itself);
* ``top1_agree = argmax_b == argmax_o``;
* ``dp = p_o[t] - p_b[t]`` (= exp(-nll_o) - exp(-nll_b));
* ``dnll = nll_o - nll_b``.

Aggregates over all scored positions of all windows of the pair (n values, concatenated in
window order):

* ``kl_mean = Σ kl / n``; ``kl_se = sqrt(Σ (kl - kl_mean)^2 / (n - 1)) / sqrt(n)``;
* percentiles (numpy.percentile, default "linear" method): sort x ascending, h = (n - 1) * q / 100,
  ``P(q) = x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h])`` (just x[h] when h is an
  integer), for q in 99.9, 99, 95, 90, 50, 10, 5, 1, 0.1; also min and max;
* ``top1_agree_frac = (# agreeing positions) / n``;
* ``dp_mean = Σ dp / n``; ``dp_rms = sqrt(Σ dp^2 / n)``; dp percentiles as above, min, max;
* ``dnll_mean = Σ dnll / n``; ``dnll_se`` like kl_se; ``nll_base_mean``, ``nll_other_mean``;
* ``nll_pearson = Σ (x - x̄)(y - ȳ) / sqrt(Σ (x - x̄)^2 * Σ (y - ȳ)^2)`` with x = nll_base,
  y = nll_other (numpy.corrcoef).

The per-position values are stored too, so a Rust implementation can check its aggregation
on exactly these inputs (1e-6 relative or better) independently of its forward pass.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import json
import math
import platform
import shutil
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as mf  # noqa: E402  (text, JSON writer, version helper)

import numpy as np  # noqa: E402
import peft  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures"
LORA = OUT / "lora"
OWNED = ["lora", "lora.json"]

BASES = {"tiny-llama": OUT / "tiny-llama", "tiny-gpt2": OUT / "tiny-gpt2"}

TRAIN_MAX_TOKENS = 128  # tiny-gpt2's n_positions
PERCENTILES = [99.9, 99, 95, 90, 50, 10, 5, 1, 0.1]


def pct_key(q: float) -> str:
    return f"{q:g}"


# name -> spec. "train_on": "base" or "merged:<adapter>" (the base with that adapter merged in).
ADAPTERS = {
    "tiny-llama-lora": dict(
        base="tiny-llama", seed=6101, steps=12, lr=0.006, train_on="base",
        config=dict(r=4, lora_alpha=8, lora_dropout=0.0,
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        description="r=4, alpha=8 (scaling 2) on every Llama projection; trained on tiny-llama."),
    "tiny-llama-lora-rslora": dict(
        base="tiny-llama", seed=6202, steps=12, lr=0.006, train_on="base",
        config=dict(r=8, lora_alpha=4, lora_dropout=0.0, use_rslora=True,
                    target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"]),
        description="rsLoRA: r=8, alpha=4, scaling alpha/sqrt(r) = sqrt(2); q_proj, v_proj; "
                    "modules_to_save lm_head (full trained copy replaces the base lm_head)."),
    "tiny-llama-lora-b": dict(
        base="tiny-llama", seed=6303, steps=12, lr=0.006, train_on="merged:tiny-llama-lora",
        config=dict(r=2, lora_alpha=2, lora_dropout=0.0, target_modules=["up_proj", "down_proj"]),
        description="r=2, alpha=2 (scaling 1) on up_proj, down_proj; trained on tiny-llama with "
                    "tiny-llama-lora merged in, to be stacked: tiny-llama+tiny-llama-lora+tiny-llama-lora-b."),
    "tiny-llama-lora-untrained": dict(
        base="tiny-llama", seed=6404, steps=0, lr=0.0, train_on="base",
        config=dict(r=2, lora_alpha=4, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
        description="Freshly initialised (lora_A kaiming-uniform, lora_B = 0), saved without training: "
                    "base+adapter == base."),
    "tiny-llama-lora-mismatch": dict(
        base="tiny-gpt2", seed=6505, steps=3, lr=0.02, train_on="base",
        config=dict(r=2, lora_alpha=4, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=True),
        description="A real adapter trained (3 steps) on tiny-gpt2, target c_attn: none of its modules "
                    "exist in tiny-llama, so tiny-llama+tiny-llama-lora-mismatch must be refused."),
    "tiny-gpt2-lora": dict(
        base="tiny-gpt2", seed=6606, steps=12, lr=0.006, train_on="base",
        config=dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True),
        description="r=4, alpha=8 on GPT-2's Conv1D c_attn and c_proj (both attn.c_proj and mlp.c_proj), "
                    "fan_in_fan_out=True."),
}

MERGED = "tiny-llama-merged"  # = tiny-llama + tiny-llama-lora, merged

# name -> (base folder relative to tests/fixtures, [adapters in application order], description)
MODELS = {
    "tiny-llama": ("tiny-llama", [], "The base model alone."),
    "tiny-llama+tiny-llama-lora": ("tiny-llama", ["tiny-llama-lora"], "Standard LoRA on all projections."),
    "tiny-llama+tiny-llama-lora-rslora": ("tiny-llama", ["tiny-llama-lora-rslora"],
                                          "rsLoRA scaling and a modules_to_save lm_head."),
    "tiny-llama+tiny-llama-lora+tiny-llama-lora-b": ("tiny-llama", ["tiny-llama-lora", "tiny-llama-lora-b"],
                                                     "Two stacked adapters (both active in PEFT): "
                                                     "W + s_A B_A A_A + s_B B_B A_B on up_proj/down_proj."),
    "tiny-llama+tiny-llama-lora-untrained": ("tiny-llama", ["tiny-llama-lora-untrained"],
                                             "B = 0: identical to the base."),
    "tiny-llama-merged": ("lora/tiny-llama-merged", [], "tiny-llama + tiny-llama-lora merged into a plain HF folder."),
    "tiny-llama-merged+tiny-llama-lora-b": ("lora/tiny-llama-merged", ["tiny-llama-lora-b"],
                                            "Adapter b on the merged folder it was trained on."),
    "tiny-gpt2": ("tiny-gpt2", [], "The base model alone."),
    "tiny-gpt2+tiny-gpt2-lora": ("tiny-gpt2", ["tiny-gpt2-lora"], "LoRA on Conv1D layers (fan_in_fan_out)."),
}
MODEL_BASE_TOKENIZER = {"tiny-llama": "tiny-llama", "lora/tiny-llama-merged": "tiny-llama", "tiny-gpt2": "tiny-gpt2"}

PAIRS = [
    ("tiny-llama", "tiny-llama+tiny-llama-lora"),
    ("tiny-llama", "tiny-llama+tiny-llama-lora-rslora"),
    ("tiny-llama", "tiny-llama"),
    ("tiny-llama", "tiny-llama+tiny-llama-lora+tiny-llama-lora-b"),
    ("tiny-gpt2", "tiny-gpt2+tiny-gpt2-lora"),
]

# Size budgets (bytes). The merged folder alone is a full f32 tiny-llama (446 KB + 14 KB tokenizer).
ADAPTERS_BUDGET = 200 * 1024  # the six adapter folders (the rsLoRA lm_head copy is 98 KB of it)
LORA_BUDGET = 650 * 1024  # everything under tests/fixtures/lora/


def log(msg: str) -> None:
    print(msg, flush=True)


def load_base(folder: Path):
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager").eval()


def load_model(spec_base: str, adapters: list[str]):
    """transformers + peft: the base folder, then each adapter loaded and all of them active."""
    model = load_base(OUT / spec_base)
    if not adapters:
        return model
    pm = PeftModel.from_pretrained(model, str(LORA / adapters[0]), adapter_name=adapters[0])
    for a in adapters[1:]:
        pm.load_adapter(str(LORA / a), adapter_name=a)
    if len(adapters) > 1:
        pm.base_model.set_adapter(list(adapters), inference_mode=True)
    assert list(pm.base_model.active_adapters) == list(adapters), pm.base_model.active_adapters
    return pm.eval()


@torch.no_grad()
def run_logits(model, ids: list[int]) -> torch.Tensor:
    lg = model(input_ids=torch.tensor([ids])).logits[0]
    return lg if lg.dtype == torch.float64 else lg.float()


def window_scores(lg: torch.Tensor, ids: list[int], score_from: int):
    lp = torch.log_softmax(lg.double(), dim=-1)
    nll = [float(-lp[i - 1, ids[i]]) for i in range(score_from, len(ids))]
    am = [int(lg[i - 1].argmax()) for i in range(score_from, len(ids))]
    top2 = torch.topk(lg[score_from - 1:len(ids) - 1], 2, dim=-1).values
    gap = float((top2[:, 0] - top2[:, 1]).min())
    return nll, am, gap


def train_data(tok, adds_bos: bool) -> list[list[int]]:
    out = []
    for p in mf.PARAGRAPHS:
        ids = tok(p, add_special_tokens=False)["input_ids"]
        ids = ([tok.bos_token_id] if adds_bos else []) + ids
        out.append(ids[:TRAIN_MAX_TOKENS])
    return out


def train(pm, data: list[list[int]], steps: int, lr: float) -> list[float]:
    """Full-batch Adam; the model stays in eval mode (no dropout). Returns the loss per step."""
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(pm(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss for ids in data) / len(data)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def rewrite_adapter_config(folder: Path, base_rel: str) -> dict:
    p = folder / "adapter_config.json"
    cfg = json.loads(p.read_text())
    cfg["target_modules"] = sorted(cfg["target_modules"])
    if cfg.get("modules_to_save") is not None:
        cfg["modules_to_save"] = sorted(cfg["modules_to_save"])
    cfg["base_model_name_or_path"] = base_rel
    p.write_text(json.dumps(cfg, indent=2, sort_keys=True))  # as PEFT writes it
    return cfg


def scaling_of(cfg: dict) -> float:
    assert not cfg["rank_pattern"] and not cfg["alpha_pattern"]
    r, a = cfg["r"], cfg["lora_alpha"]
    return a / math.sqrt(r) if cfg["use_rslora"] else a / r


def numpy_merge(base_sd: dict[str, np.ndarray], adapter_dirs: list[Path]) -> dict[str, np.ndarray]:
    """What a reader of the saved files does: W += s * B @ A (transposed for fan_in_fan_out),
    modules_to_save tensors replace the base tensor. float32 throughout."""
    sd = {k: v.copy() for k, v in base_sd.items()}
    for d in adapter_dirs:
        cfg = json.loads((d / "adapter_config.json").read_text())
        s = np.float32(scaling_of(cfg))
        tensors = load_file(str(d / "adapter_model.safetensors"))
        prefix = "base_model.model."
        for k, v in tensors.items():
            assert k.startswith(prefix), k
            name = k[len(prefix):]
            if name.endswith(".lora_A.weight"):
                mod = name[: -len(".lora_A.weight")]
                b = tensors[prefix + mod + ".lora_B.weight"]
                delta = (b @ v) * s
                if cfg["fan_in_fan_out"]:
                    delta = delta.T
                w = mod + ".weight"
                assert sd[w].shape == delta.shape, (w, sd[w].shape, delta.shape)
                sd[w] = (sd[w] + delta).astype(np.float32)
            elif name.endswith(".lora_B.weight"):
                continue
            else:  # modules_to_save: a full replacement
                assert name in sd and sd[name].shape == v.shape, name
                sd[name] = v.copy()
    return sd


def model_from_state(folder: Path, sd: dict[str, np.ndarray]):
    model = load_base(folder)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"lm_head.weight"}, missing  # tied gpt2: lm_head is wte
    return model.eval()


def describe_stats(x: np.ndarray) -> dict:
    out = {pct_key(q): float(np.percentile(x, q)) for q in PERCENTILES}
    return out


def pair_numbers(logits_b: list[torch.Tensor], logits_o: list[torch.Tensor], wins: list[dict]):
    per_window = []
    kl_all, agree_all, dp_all, dnll_all, nb_all, no_all = [], [], [], [], [], []
    for lb, lo, w in zip(logits_b, logits_o, wins):
        ids, k = w["tokens"], w["score_from"]
        rows = list(range(k - 1, len(ids) - 1))
        tgt = np.array(ids[k:], dtype=np.int64)
        zb = lb.numpy()[rows].astype(np.float64)
        zo = lo.numpy()[rows].astype(np.float64)
        lpb = torch.log_softmax(torch.from_numpy(zb), dim=-1).numpy()
        lpo = torch.log_softmax(torch.from_numpy(zo), dim=-1).numpy()
        pb = np.exp(lpb)
        kl = (pb * (lpb - lpo)).sum(axis=-1)
        agree = lb.numpy()[rows].argmax(-1) == lo.numpy()[rows].argmax(-1)
        ar = np.arange(len(rows))
        nb, no = -lpb[ar, tgt], -lpo[ar, tgt]
        dp = np.exp(lpo[ar, tgt]) - np.exp(lpb[ar, tgt])
        dnll = no - nb
        per_window.append({"name": w["name"], "kl": [float(x) for x in kl], "top1_agree": [bool(x) for x in agree],
                           "dp": [float(x) for x in dp], "dnll": [float(x) for x in dnll]})
        kl_all.append(kl), agree_all.append(agree), dp_all.append(dp), dnll_all.append(dnll)
        nb_all.append(nb), no_all.append(no)
    kl, agree, dp, dnll = (np.concatenate(a) for a in (kl_all, agree_all, dp_all, dnll_all))
    nb, no = np.concatenate(nb_all), np.concatenate(no_all)
    n = len(kl)
    pear = float(np.corrcoef(nb, no)[0, 1])
    agg = {
        "n": n,
        "kl_mean": float(kl.mean()),
        "kl_se": float(kl.std(ddof=1) / math.sqrt(n)),
        "kl_percentiles": describe_stats(kl),
        "kl_min": float(kl.min()),
        "kl_max": float(kl.max()),
        "top1_agree_frac": float(agree.sum() / n),
        "top1_agree_count": int(agree.sum()),
        "dp_mean": float(dp.mean()),
        "dp_rms": float(math.sqrt((dp * dp).mean())),
        "dp_percentiles": describe_stats(dp),
        "dp_min": float(dp.min()),
        "dp_max": float(dp.max()),
        "dnll_mean": float(dnll.mean()),
        "dnll_se": float(dnll.std(ddof=1) / math.sqrt(n)),
        "nll_base_mean": float(nb.mean()),
        "nll_other_mean": float(no.mean()),
        "nll_pearson": pear,
    }
    return per_window, agg, (nb, no)


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)

    for name in OWNED:
        p = OUT / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    LORA.mkdir(parents=True)

    checks: list[str] = []

    def check(cond: bool, msg: str) -> None:
        checks.append(("ok   " if cond else "FAIL ") + msg)
        if not cond:
            print("\n".join(checks))
            raise SystemExit(f"verification failed: {msg}")

    for b, folder in BASES.items():
        check((folder / "model.safetensors").exists(), f"base {b} exists (run make_fixtures / make_family_fixtures first)")

    toks, adds_bos = {}, {}
    for b, folder in BASES.items():
        tok = AutoTokenizer.from_pretrained(str(folder))
        with_sp, without = tok("hello")["input_ids"], tok("hello", add_special_tokens=False)["input_ids"]
        adds_bos[b] = with_sp == [tok.bos_token_id] + without
        check(adds_bos[b] or with_sp == without, f"{b}: tokenizer adds BOS or nothing")
        toks[b] = tok
    check(adds_bos["tiny-llama"] and not adds_bos["tiny-gpt2"], "tiny-llama adds BOS, tiny-gpt2 does not")

    # ---- 1. adapters ------------------------------------------------------------------
    adapter_info = {}
    for name, spec in ADAPTERS.items():
        log(f"adapter {name}")
        base = spec["base"]
        model = load_base(BASES[base])
        if spec["train_on"].startswith("merged:"):
            model = PeftModel.from_pretrained(model, str(LORA / spec["train_on"].split(":", 1)[1])).merge_and_unload()
            model.eval()
        torch.manual_seed(spec["seed"])
        pm = get_peft_model(model, LoraConfig(**spec["config"]))
        pm.eval()
        losses = train(pm, train_data(toks[base], adds_bos[base]), spec["steps"], spec["lr"])
        if losses:
            check(losses[-1] < losses[0], f"{name}: training lowers the loss ({losses[0]:.4f} -> {losses[-1]:.4f})")
        d = LORA / name
        pm.save_pretrained(str(d))
        (d / "README.md").unlink(missing_ok=True)
        check(sorted(os.listdir(d)) == ["adapter_config.json", "adapter_model.safetensors"], f"{name}: two files")
        base_rel = "lora/tiny-llama-merged" if spec["train_on"].startswith("merged:") else base
        cfg = rewrite_adapter_config(d, base_rel)
        with safe_open(str(d / "adapter_model.safetensors"), "np") as f:
            meta = f.metadata()
            names = list(f.keys())
            tens = {k: f.get_tensor(k) for k in names}
        check(all(v.dtype == np.float32 for v in tens.values()), f"{name}: all tensors f32")
        bs = [v for k, v in tens.items() if k.endswith("lora_B.weight")]
        if spec["steps"] == 0:
            check(all(not v.any() for v in bs), f"{name}: lora_B all zero (untrained)")
        else:
            check(all(v.any() for v in bs), f"{name}: every lora_B nonzero after training")
        r = cfg["r"]
        for k, v in tens.items():
            if ".lora_A." in k:
                check(v.shape[0] == r, f"{name}: {k} is [r, in]")
            elif ".lora_B." in k:
                check(v.shape[1] == r, f"{name}: {k} is [out, r]")
        adapter_info[name] = {
            "path": f"lora/{name}",
            "base": base,
            "trained_on": (f"{base} with {spec['train_on'].split(':', 1)[1]} merged" if spec["train_on"].startswith("merged:")
                           else (base if spec["steps"] else "not trained")),
            "description": spec["description"],
            "r": r,
            "lora_alpha": cfg["lora_alpha"],
            "use_rslora": cfg["use_rslora"],
            "scaling": scaling_of(cfg),
            "target_modules": cfg["target_modules"],
            "fan_in_fan_out": cfg["fan_in_fan_out"],
            "modules_to_save": cfg["modules_to_save"],
            "training": {"seed": spec["seed"], "optimizer": "Adam", "lr": spec["lr"], "steps": spec["steps"],
                         "loss_per_step": losses},
            "safetensors_metadata": meta,
            "tensors": {k: list(tens[k].shape) for k in sorted(names)},
        }
        del pm, model

    # lm_head copy in the rsLoRA adapter is trained (differs from the base's)
    base_llama_sd = load_file(str(BASES["tiny-llama"] / "model.safetensors"))
    base_gpt2_sd = load_file(str(BASES["tiny-gpt2"] / "model.safetensors"))
    rs = load_file(str(LORA / "tiny-llama-lora-rslora" / "adapter_model.safetensors"))
    check("base_model.model.lm_head.weight" in rs
          and float(np.abs(rs["base_model.model.lm_head.weight"] - base_llama_sd["lm_head.weight"]).max()) > 1e-3,
          "rslora: modules_to_save lm_head saved as base_model.model.lm_head.weight and trained")

    # ---- 2. merged folder ---------------------------------------------------------------
    log("merged folder")
    pm = PeftModel.from_pretrained(load_base(BASES["tiny-llama"]), str(LORA / "tiny-llama-lora"))
    merged = pm.merge_and_unload().eval()
    md = LORA / MERGED
    merged.save_pretrained(str(md))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(BASES["tiny-llama"] / f, md / f)
    check(sorted(os.listdir(md)) == ["config.json", "generation_config.json", "model.safetensors",
                                     "tokenizer.json", "tokenizer_config.json"], "merged folder files")
    check(json.loads((md / "config.json").read_text()) == json.loads((BASES["tiny-llama"] / "config.json").read_text()),
          "merged config.json == tiny-llama's")
    merged_sd = load_file(str(md / "model.safetensors"))
    check(sorted(merged_sd) == sorted(base_llama_sd) and all(v.dtype == np.float32 for v in merged_sd.values()),
          "merged safetensors: same f32 tensor names as tiny-llama")
    np_merged = numpy_merge(base_llama_sd, [LORA / "tiny-llama-lora"])
    merge_w_diff = max(float(np.abs(np_merged[k] - merged_sd[k]).max()) for k in merged_sd)
    check(merge_w_diff < 1e-6, f"numpy W + s*B@A == PEFT merge_and_unload (max weight diff {merge_w_diff:.2e})")
    changed = sorted(k for k in merged_sd if not np.array_equal(merged_sd[k], base_llama_sd[k]))
    check(len(changed) == 14 and all("proj" in k for k in changed), "merge changes exactly the 14 targeted weights")

    # ---- 3. the mismatching adapter is refused on tiny-llama ----------------------------
    mismatch_error = None
    try:
        PeftModel.from_pretrained(load_base(BASES["tiny-llama"]), str(LORA / "tiny-llama-lora-mismatch"))
    except ValueError as e:  # noqa: PERF203
        mismatch_error = str(e)
    check(mismatch_error is not None and "c_attn" in mismatch_error,
          f"PEFT refuses tiny-llama+tiny-llama-lora-mismatch ({mismatch_error!r})")
    ok_on_gpt2 = load_model("tiny-gpt2", ["tiny-llama-lora-mismatch"])
    check(isinstance(ok_on_gpt2, PeftModel), "the mismatch adapter loads on tiny-gpt2 (it is valid there)")
    del ok_on_gpt2

    # ---- 4. windows ---------------------------------------------------------------------
    log("windows")
    specs = {}
    for b in BASES:
        tok = toks[b]
        E = tok(mf.EVAL_TEXT, add_special_tokens=False)["input_ids"]
        doc = ([tok.bos_token_id] if adds_bos[b] else []) + E
        specs[b] = [("start-5", doc[:5], 1), ("start-33", doc[:33], 1), ("start-96", doc[:96], 1),
                    ("mid-40-from-20", E[100:140], 20)]
    windows, logits_by_model, min_gap, f64_nll = [], {}, {}, {}
    for mname, (base_rel, adapters) in ((k, v[:2]) for k, v in MODELS.items()):
        model = load_model(base_rel, adapters)
        b = MODEL_BASE_TOKENIZER[base_rel]
        lgs, gap = [], math.inf
        for wname, ids, sf in specs[b]:
            lg = run_logits(model, ids)
            nll, am, g = window_scores(lg, ids, sf)
            gap = min(gap, g)
            lgs.append(lg)
            windows.append({"model": mname, "name": wname, "tokens": ids, "score_from": sf, "nll": nll, "argmax": am})
        logits_by_model[mname] = lgs
        min_gap[mname] = gap
        # f32 noise floor: the same model run in float64
        model = model.double()
        f64_nll[mname] = max(
            float(np.abs(np.array(window_scores(run_logits(model, ids), ids, sf)[0]) - np.array(w["nll"])).max())
            for (_, ids, sf), w in zip(specs[b], windows[-len(specs[b]):]))
        check(gap > 1e-4, f"{mname}: no argmax near-ties (smallest top-2 gap {gap:.1e})")
        del model

    def nlls(m):
        return np.array([x for w in windows if w["model"] == m for x in w["nll"]])

    def argmaxes(m):
        return [x for w in windows if w["model"] == m for x in w["argmax"]]

    def maxdiff(a, b):
        return float(np.abs(nlls(a) - nlls(b)).max())

    L, LA, LAB = "tiny-llama", "tiny-llama+tiny-llama-lora", "tiny-llama+tiny-llama-lora+tiny-llama-lora-b"
    checks_out = {}
    d = maxdiff("tiny-llama-merged", LA)
    check(d < 1e-5 and argmaxes("tiny-llama-merged") == argmaxes(LA),
          f"merged folder == tiny-llama+tiny-llama-lora (max NLL diff {d:.2e})")
    checks_out["merged_vs_base_plus_adapter_max_nll_diff"] = d
    d = maxdiff("tiny-llama+tiny-llama-lora-untrained", L)
    check(d <= 1e-7, f"untrained adapter == base (max NLL diff {d:.2e})")
    checks_out["untrained_vs_base_max_nll_diff"] = d
    d = maxdiff("tiny-llama-merged+tiny-llama-lora-b", LAB)
    check(d < 1e-5, f"stacked A+B (both active in PEFT) == merged(A) + B (max NLL diff {d:.2e})")
    checks_out["stacked_vs_merged_plus_b_max_nll_diff"] = d
    for m in (LA, "tiny-llama+tiny-llama-lora-rslora", LAB, "tiny-gpt2+tiny-gpt2-lora"):
        base_m = "tiny-gpt2" if m.startswith("tiny-gpt2") else L
        d = maxdiff(m, base_m)
        check(d > 1e-2, f"{m} moves NLLs visibly (max diff vs base {d:.3f})")
    d = maxdiff(LAB, LA)
    check(d > 1e-3, f"adapter b changes the stacked model (max NLL diff {d:.3f})")
    checks_out["merge_and_unload_max_weight_diff_vs_numpy"] = merge_w_diff

    # numpy merge (the reader's recipe) through plain transformers == PEFT's forward
    log("numpy merge recipe vs PEFT")
    recipe = {}
    for mname, (base_rel, adapters, _) in MODELS.items():
        if not adapters:
            continue
        base_sd = load_file(str(OUT / base_rel / "model.safetensors"))
        sd = numpy_merge(base_sd, [LORA / a for a in adapters])
        model = model_from_state(OUT / base_rel, sd)
        b = MODEL_BASE_TOKENIZER[base_rel]
        diffs = []
        for (wname, ids, sf), ref in zip(specs[b], [w for w in windows if w["model"] == mname]):
            nll, _, _ = window_scores(run_logits(model, ids), ids, sf)
            diffs.append(float(np.abs(np.array(nll) - np.array(ref["nll"])).max()))
        recipe[mname] = max(diffs)
        check(recipe[mname] < 1e-5, f"{mname}: numpy merge recipe == PEFT forward (max NLL diff {recipe[mname]:.2e})")
        del model
    checks_out["numpy_merge_recipe_vs_peft_max_nll_diff"] = recipe
    checks_out["min_argmax_logit_gap"] = min_gap
    checks_out["f32_vs_f64_max_nll_diff"] = f64_nll
    checks_out["mismatch_error"] = {"model": "tiny-llama+tiny-llama-lora-mismatch", "peft_raises": "ValueError",
                                    "message": mismatch_error}

    # ---- 5. pairs -----------------------------------------------------------------------
    log("pairs")
    pairs = []
    for bm, om in PAIRS:
        b = "tiny-gpt2" if bm.startswith("tiny-gpt2") else "tiny-llama"
        wins = [w for w in windows if w["model"] == bm]
        per_window, agg, (nb, no) = pair_numbers(logits_by_model[bm], logits_by_model[om], wins)
        check(np.array_equal(nb, nlls(bm)) and np.allclose(no, nlls(om), rtol=0, atol=1e-12),
              f"{bm} vs {om}: pair NLLs == window NLLs")
        if bm == om:
            check(agg["kl_max"] == 0.0 and agg["top1_agree_frac"] == 1.0 and agg["dp_rms"] == 0.0,
                  f"{bm} vs itself: KL 0, full agreement, dp 0")
        else:
            check(agg["kl_mean"] > 1e-3 and agg["kl_min"] >= 0.0, f"{bm} vs {om}: KL mean {agg['kl_mean']:.4f} > 0")
        # the per-position values reproduce the aggregates (what a Rust test does)
        kl = np.concatenate([np.array(w["kl"]) for w in per_window])
        check(kl.mean() == agg["kl_mean"], f"{bm} vs {om}: aggregates from stored per-position values")
        pairs.append({"base": bm, "other": om, "windows": per_window, "aggregate": agg})
        log(f"  {bm} vs {om}: KL mean {agg['kl_mean']:.4f}, top1 {agg['top1_agree_frac']:.3f}, "
            f"dp rms {agg['dp_rms']:.4f}, dnll {agg['dnll_mean']:+.4f}, r {agg['nll_pearson']:.4f}")

    # ---- 6. sizes -----------------------------------------------------------------------
    size = sum(p.stat().st_size for p in LORA.rglob("*") if p.is_file())
    adapters_size = sum(p.stat().st_size for p in LORA.rglob("*") if p.is_file() and MERGED not in p.parts)
    check(adapters_size <= ADAPTERS_BUDGET, f"the six adapters take {adapters_size} bytes <= {ADAPTERS_BUDGET}")
    check(size <= LORA_BUDGET, f"tests/fixtures/lora/ (merged folder included) is {size} bytes <= {LORA_BUDGET}")

    # ---- write --------------------------------------------------------------------------
    models = {}
    for mname, (base_rel, adapters, desc) in MODELS.items():
        models[mname] = {"base": base_rel, "adapters": [f"lora/{a}" for a in adapters],
                         "tokenizer": f"{MODEL_BASE_TOKENIZER[base_rel]}/tokenizer.json", "description": desc}
    models["tiny-llama+tiny-llama-lora-mismatch"] = {
        "base": "tiny-llama", "adapters": ["lora/tiny-llama-lora-mismatch"], "tokenizer": "tiny-llama/tokenizer.json",
        "description": "Must be refused: the adapter targets c_attn (GPT-2), which tiny-llama does not have.",
        "error": True}

    peft_format = {
        "files": "adapter_config.json (JSON, sorted keys) + adapter_model.safetensors (safetensors metadata "
                 "{\"format\": \"pt\"}); PEFT also writes a boilerplate README.md, dropped here.",
        "lora_tensor_names": "base_model.model.<module path>.lora_A.weight [r, in_features] and "
                             "base_model.model.<module path>.lora_B.weight [out_features, r]; <module path> + "
                             "'.weight' is the base checkpoint's tensor name. No adapter name in the saved keys.",
        "modules_to_save_names": "base_model.model.<module path>.weight: a full copy, same shape as the base tensor, "
                                 "which it replaces (in memory PEFT calls it <module>.modules_to_save.<adapter>.weight; "
                                 "the saved key drops 'modules_to_save.<adapter>.').",
        "scaling": "s = lora_alpha / r; with use_rslora: s = lora_alpha / sqrt(r). rank_pattern / alpha_pattern "
                   "(module-name-keyed overrides of r / lora_alpha) are empty in every adapter here.",
        "delta": "nn.Linear base (weight [out, in]): W' = W + s * (B @ A). Forward y = x W^T + s * ((x A^T) B^T).",
        "fan_in_fan_out": "true for GPT-2's Conv1D (weight stored [in, out], y = x @ W + b): A and B keep the Linear "
                          "orientation (A [r, in], B [out, r]) and the delta is transposed: W'[in, out] = W + s * (B @ A)^T.",
        "stacking": "Adapters applied one after another add independent deltas: W' = W + s_1 B_1 A_1 + s_2 B_2 A_2 "
                    "(PEFT with several active adapters sums their outputs; deltas are always of the original base "
                    "weights, never of each other). PEFT refuses (ValueError 'Only one adapter can be set at a time') "
                    "to activate two adapters that both carry modules_to_save for the same module, so there is no "
                    "reference semantics for that case; none of the stacked adapters here has modules_to_save.",
        "target_modules": "Matched by PEFT against module-name suffixes: 'c_proj' hits both attn.c_proj and mlp.c_proj "
                          "in GPT-2. A reader can just apply every lora_A/lora_B pair in the file; if none of the "
                          "file's modules exist in the base, PEFT raises ValueError (see checks.mismatch_error).",
        "untouched_config": "bias 'none', lora_bias false, use_dora false, layers_to_transform null, "
                            "init_lora_weights true (A kaiming-uniform, B zeros) in every adapter here.",
    }
    goldens = {
        "generator": "scripts/make_lora_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
            "safetensors": safetensors.__version__,
        },
        "peft_format": peft_format,
        "adapters": adapter_info,
        "models": models,
        "checks": checks_out,
        "percentiles": PERCENTILES,
        "windows": windows,
        "pairs": pairs,
    }
    (OUT / "lora.json").write_text(mf.fixed_json(goldens) + "\n", encoding="utf-8")
    print("\n".join(checks))
    log(f"tests/fixtures/lora/: {size} bytes; lora.json: {(OUT / 'lora.json').stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
