#!/usr/bin/env python3
"""Make ``tests/fixtures/tiny-gemma3-mm/``: a tiny Gemma3ForConditionalGeneration (vision + text)
whose text tower IS ``tests/fixtures/tiny-gemma3/`` (a Gemma3ForCausalLM).

Real Gemma 3 4B/12B/27B checkpoints are ``Gemma3ForConditionalGeneration`` (model_type
``gemma3``, the text model's config nested under ``text_config``). perplex evaluates only
their text tower, so this fixture checks that a loader finds the text weights and the text
config inside the multimodal layout. Nothing under ``tiny-gemma3/`` or ``families.json`` is
written: both are read, and ``scripts/make_family_fixtures.py`` owns them.

* Text config: ``tiny-gemma3/config.json`` (Gemma3TextConfig), nested as text_config, minus
  its ``architectures`` (real Gemma 3 text_configs have none).
* Vision tower: SigLIP as small as transformers allows here (hidden 16, 1 layer, 1 head,
  intermediate 16, image 28, patch 14 -> 2 x 2 patches), mm_tokens_per_image 1 (the
  projector average-pools the 2 x 2 patches to one token). Its weights and the projector's
  are seeded random (seed SEED): matrices N(0, 0.3), biases 0.1 N(0, 1), LayerNorm weights
  1 + 0.1 N(0, 1), the projector's Gemma RMSNorm weight (used as 1 + w) 0.1 N(0, 1).
* Text weights: copied from ``tiny-gemma3/model.safetensors`` (``model.X`` ->
  ``model.language_model.X``; the head is tied to the embedding, as in tiny-gemma3).
* Saved with ``save_pretrained`` (f32 safetensors) plus tiny-gemma3's tokenizer files.

Checks (the script stops at the first failure):
* the text-only forward (input_ids only, no pixel_values / token_type_ids) equals
  tiny-gemma3's per-token NLLs and argmaxes in families.json (and a live Gemma3ForCausalLM)
  within 1e-5;
* the saved text tower is tiny-gemma3's tensors bit for bit. transformers 5.24's
  save_pretrained writes the legacy names (``language_model.model.*``, ``vision_tower.*``,
  ``multi_modal_projector.*``, no lm_head): it reverses Gemma3's load-time renamings;
* the same tensors under the in-memory names (``model.language_model.*`` ...) and under the
  March 2025 Hub names (``vision_tower.vision_model.*``) load to the same weights (temp dirs);
* an image forward runs (the vision path is wired, not evaluated by perplex).

Run: ``python scripts/make_gemma3_multimodal_fixture.py`` (same interpreter as
make_family_fixtures.py). Deterministic; torch on one CPU thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import (
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    SiglipVisionConfig,
)
from transformers.utils import logging as hf_logging

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
SRC = FIX / "tiny-gemma3"
DST = FIX / "tiny-gemma3-mm"
SEED = 5616
MAX_BYTES = 400_000
TOL = 1e-5
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "tokenizer.model"]

torch.set_num_threads(1)
torch.manual_seed(0)
hf_logging.set_verbosity_error()


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        sys.exit(1)


def build_config() -> Gemma3Config:
    text = Gemma3TextConfig.from_pretrained(str(SRC))
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=1,
                                image_size=28, patch_size=14, num_channels=3, layer_norm_eps=1e-6,
                                vision_use_head=False)
    text.architectures = None  # real Gemma 3 text_configs carry no architectures of their own
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=1)
    cfg.architectures = ["Gemma3ForConditionalGeneration"]
    return cfg


@torch.no_grad()
def build_model(cfg: Gemma3Config) -> Gemma3ForConditionalGeneration:
    cfg._attn_implementation = "eager"
    model = Gemma3ForConditionalGeneration(cfg).float().eval()
    src = load_file(str(SRC / "model.safetensors"))
    params = dict(model.named_parameters())  # the tied head is listed once, as the embedding
    gen = torch.Generator().manual_seed(SEED)
    for name, p in params.items():
        if name.startswith("model.language_model."):
            continue
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        if name.endswith(".bias"):
            p.copy_(0.1 * noise)
        elif name == "model.multi_modal_projector.mm_soft_emb_norm.weight":  # Gemma RMSNorm: 1 + w
            p.copy_(0.1 * noise)
        elif p.ndim == 1:  # SigLIP LayerNorms
            p.copy_(1.0 + 0.1 * noise)
        else:
            p.copy_(0.3 * noise)
    copied = set()
    for k, v in src.items():
        if k == "lm_head.weight":
            continue
        assert k.startswith("model."), k
        tgt = "model.language_model." + k[len("model."):]
        params[tgt].copy_(v)
        copied.add(tgt)
    text_params = {n for n in params if n.startswith("model.language_model.")}
    check(copied == text_params, f"all {len(text_params)} text-tower parameters copied from tiny-gemma3")
    check(model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr(),
          "lm_head tied to model.language_model.embed_tokens")
    return model


def window_scores(lg: torch.Tensor, ids: list[int], score_from: int) -> tuple[list[float], list[int]]:
    lp = torch.log_softmax(lg.double(), dim=-1)  # as make_family_fixtures.window_scores
    nll = [float(-lp[i - 1, ids[i]]) for i in range(score_from, len(ids))]
    am = [int(lg[i - 1].argmax()) for i in range(score_from, len(ids))]
    return nll, am


@torch.no_grad()
def run_window(model, ids: list[int], score_from: int) -> tuple[list[float], list[int]]:
    return window_scores(model(input_ids=torch.tensor([ids])).logits[0].float(), ids, score_from)


def max_nll_diff(model, windows: list[dict], ref=None) -> tuple[float, bool]:
    worst, same_argmax = 0.0, True
    for w in windows:
        nll, am = run_window(model, w["tokens"], w["score_from"])
        r_nll, r_am = (w["nll"], w["argmax"]) if ref is None else run_window(ref, w["tokens"], w["score_from"])
        worst = max(worst, max(abs(x - y) for x, y in zip(nll, r_nll)))
        same_argmax &= am == r_am
    return worst, same_argmax


def variant_name(k: str, scheme: str) -> str:
    """A saved (legacy-named) key in another naming scheme a Gemma 3 checkpoint may use.

    ``module``: the in-memory module names of transformers >= 4.52 (``model.language_model.*``,
    ``model.vision_tower.*``, ``model.multi_modal_projector.*``), as written by tools that save
    the raw state_dict. ``hub``: the March 2025 Hub uploads, which also keep SigLIP's
    ``vision_model.`` level (``vision_tower.vision_model.*``).
    """
    if scheme == "module":
        for old, new in (("language_model.model.", "model.language_model."), ("vision_tower.", "model.vision_tower."),
                         ("multi_modal_projector.", "model.multi_modal_projector.")):
            if k.startswith(old):
                return new + k[len(old):]
    elif scheme == "hub":
        if k.startswith("vision_tower."):
            return "vision_tower.vision_model." + k[len("vision_tower."):]
        return k
    raise KeyError((k, scheme))


def main() -> int:
    families = json.loads((FIX / "families.json").read_text())
    windows = [w for w in families["windows"] if w["model"] == "tiny-gemma3"]
    check(len(windows) > 0, f"{len(windows)} tiny-gemma3 windows in families.json")

    cfg = build_config()
    model = build_model(cfg)

    if DST.exists():
        shutil.rmtree(DST)
    model.save_pretrained(str(DST))
    for f in TOKENIZER_FILES:
        if (SRC / f).exists():
            shutil.copy2(SRC / f, DST / f)
    files = sorted(p.name for p in DST.iterdir())
    size = sum(p.stat().st_size for p in DST.iterdir())
    check(size <= MAX_BYTES, f"tiny-gemma3-mm/ is {size} bytes <= {MAX_BYTES} ({', '.join(files)})")

    # -- saved tensors
    with safe_open(str(DST / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        saved = {k: f.get_tensor(k) for k in keys}
        meta = f.metadata()
    check(all(t.dtype == torch.float32 for t in saved.values()), "all saved tensors are f32")
    src = load_file(str(SRC / "model.safetensors"))
    # transformers 5.24's save_pretrained writes the checkpoint in the legacy (Hub) naming: it
    # applies the reverse of Gemma3's load-time renamings (conversion_mapping.py, "llava").
    want = {"language_model." + k: v for k, v in src.items() if k != "lm_head.weight"}
    text_keys = sorted(k for k in keys if k.startswith("language_model."))
    check(text_keys == sorted(want) and all(torch.equal(saved[k], v) for k, v in want.items()),
          f"saved text tower is tiny-gemma3's tensors bit for bit, named language_model.<tiny-gemma3 name> "
          f"({len(text_keys)} tensors, no lm_head)")
    check(not any(k.startswith("lm_head") or k.startswith("language_model.lm_head") for k in keys),
          "no lm_head tensor in the file (tied to the embedding)")

    # -- reload from disk and compare the text-only forward
    mm = Gemma3ForConditionalGeneration.from_pretrained(str(DST), dtype=torch.float32,
                                                        attn_implementation="eager").eval()
    causal = Gemma3ForCausalLM.from_pretrained(str(SRC), dtype=torch.float32, attn_implementation="eager").eval()
    d_gold, am_gold = max_nll_diff(mm, windows)
    d_live, am_live = max_nll_diff(mm, windows, ref=causal)
    d_causal, _ = max_nll_diff(causal, windows)
    print(f"     max |NLL diff| mm vs families.json tiny-gemma3 goldens: {d_gold:.3e}")
    print(f"     max |NLL diff| mm vs live Gemma3ForCausalLM(tiny-gemma3): {d_live:.3e}")
    print(f"     (Gemma3ForCausalLM(tiny-gemma3) vs goldens: {d_causal:.3e})")
    check(d_gold < TOL and am_gold, f"text-only forward == tiny-gemma3 goldens (max {d_gold:.1e}, argmaxes equal)")
    check(d_live < TOL and am_live, f"text-only forward == Gemma3ForCausalLM (max {d_live:.1e}, argmaxes equal)")
    # sdpa (transformers' default) too
    mm_sdpa = Gemma3ForConditionalGeneration.from_pretrained(str(DST), dtype=torch.float32,
                                                             attn_implementation="sdpa").eval()
    d_sdpa, am_sdpa = max_nll_diff(mm_sdpa, windows)
    check(d_sdpa < TOL and am_sdpa, f"text-only forward with sdpa attention == goldens (max {d_sdpa:.1e})")

    # -- the other naming schemes load to the same weights (temp dirs only)
    ref_sd = mm.state_dict()
    for scheme in ("module", "hub"):
        with tempfile.TemporaryDirectory() as td:
            for p in DST.iterdir():
                if p.name != "model.safetensors":
                    shutil.copy2(p, Path(td) / p.name)
            renamed = {variant_name(k, scheme): v.contiguous() for k, v in saved.items()}
            save_file(renamed, str(Path(td) / "model.safetensors"), metadata=meta)
            other, info = Gemma3ForConditionalGeneration.from_pretrained(
                td, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
            other.eval()
            sd = other.state_dict()
            clean = not any(info.get(x) for x in ("missing_keys", "unexpected_keys", "mismatched_keys"))
            check(clean and sd.keys() == ref_sd.keys() and all(torch.equal(sd[k], ref_sd[k]) for k in sd),
                  f"'{scheme}' naming (e.g. {variant_name('language_model.model.norm.weight', scheme)}, "
                  f"{variant_name('vision_tower.post_layernorm.weight', scheme)}) loads to identical weights")
            d_other, _ = max_nll_diff(other, windows)
            check(d_other < TOL, f"'{scheme}' naming: text-only forward == goldens (max {d_other:.1e})")

    # -- the vision path runs (an image block of mm_tokens_per_image tokens, OOV image token id)
    with torch.no_grad():
        n_img = cfg.mm_tokens_per_image
        ids = [2, 10, 11] + [cfg.image_token_id] * n_img + [12, 13]
        tt = [0, 0, 0] + [1] * n_img + [0, 0]
        px = torch.randn(1, 3, 28, 28, generator=torch.Generator().manual_seed(SEED + 1))
        out = mm(input_ids=torch.tensor([ids]), pixel_values=px, token_type_ids=torch.tensor([tt])).logits
        txt = mm(input_ids=torch.tensor([ids])).logits
    check(bool(torch.isfinite(out).all()) and float((out - txt)[0, 3:].abs().max()) > 1e-3,
          "image forward runs and the image changes the logits after it")

    # -- report
    cfgd = json.loads((DST / "config.json").read_text())
    tc = cfgd["text_config"]
    print("\nsaved tensor names:")
    for k in keys:
        print(f"  {k} {list(saved[k].shape)}")
    print(f"lm_head in file: {'lm_head.weight' in keys}; tie_word_embeddings top={cfgd.get('tie_word_embeddings')} "
          f"text={tc.get('tie_word_embeddings')}")
    print(f"config.json top-level keys: {sorted(cfgd)}")
    print(f"  architectures={cfgd.get('architectures')} model_type={cfgd.get('model_type')}")
    print(f"text_config keys: {sorted(tc)}")
    for k in ("architectures", "model_type", "rope_parameters", "layer_types", "sliding_window",
              "query_pre_attn_scalar", "vocab_size", "_sliding_window_pattern"):
        print(f"  text_config.{k} = {tc.get(k, '<absent>')!r}")
    print(f"vision_config: {cfgd['vision_config']}")
    print(f"\nwrote {DST.relative_to(ROOT)}/: {', '.join(files)} ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
