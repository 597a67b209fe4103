#!/usr/bin/env python3
"""What quantizing the products' operands would cost in perplexity, before writing a kernel.

Runs a Hugging Face folder in transformers (f32) and replaces the input of chosen nn.Linear
layers (and the head) by its value after a round trip through a per-block integer grid:
every row cut in blocks of 32 along k, each block scaled by max|x| / LEVELS and rounded to
the nearest integer (ties to even). The weights go through the same round trip at their own
number of levels, or are kept. An integer kernel that sums each block's dot exactly and then
adds `scale_a * scale_w * dot` in f32 computes the same products up to f32 rounding, so the
perplexity here is what such a fast mode would report, to about 1e-5.

  scripts/simulate_fast_products.py --model DIR --text FILE [--tokens 8192] [--context 512]
      [--threads N]

Prints, for each scheme, the corpus perplexity over non-overlapping chunks of --context
(every position after a chunk's first scored, as `perplex eval -p chunks`) and its difference
from f32. Needs torch and transformers (scripts/bench's venv has both).

Schemes (activation levels / weight levels per block; "norm-fed" = q, k, v, gate, up and
the head, whose inputs come out of an RMSNorm; "rest" = o and down):
  int16 everywhere      activations 32767, weights 2047 (perplex's --fast on AVX2 today)
  int8 acts, all        activations 127 on every product, weights 2047
  int8 acts, norm-fed   activations 127 on the norm-fed products, 32767 on the rest
  int8 acts, not down   activations 127 on all but down, 32767 on down
  int8 everywhere       activations 127 and weights 127 on every product
  int8 norm-fed, w8     activations 127 and weights 127 on the norm-fed products, int16 on
                        the rest
"""

from __future__ import annotations

import argparse
import math

NORM_FED = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "lm_head")


def quantize_blocks(torch, x, levels, block=32):
    """x with each block of `block` values along the last axis rounded to `levels` steps of
    max|block| / levels (a zero block stays zero)."""
    k = x.shape[-1]
    pad = (-k) % block
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    b = x.reshape(*x.shape[:-1], -1, block)
    scale = b.abs().amax(dim=-1, keepdim=True) / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(b / safe) * scale  # torch.round: ties to even
    q = q.reshape(*x.shape[:-1], -1)
    return q[..., :k] if pad else q


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    # a tied head gets its own copy: its products are quantized, the embedding's lookups are not
    if model.lm_head.weight is model.get_input_embeddings().weight:
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    text = open(args.text, encoding="utf-8").read()
    ids = tok(text, add_special_tokens=False)["input_ids"][: args.tokens]
    chunks = [ids[i : i + args.context] for i in range(0, len(ids) - args.context + 1, args.context)]

    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    originals = {name: m.weight.data.clone() for name, m in linears.items()}
    hooks = []

    def configure(act_levels, w_levels):
        """act_levels / w_levels: name -> levels (None: keep f32)."""
        for h in hooks:
            h.remove()
        hooks.clear()
        for name, m in linears.items():
            w = w_levels(name)
            m.weight.data = originals[name] if w is None else quantize_blocks(torch, originals[name], w)
            a = act_levels(name)
            if a is not None:
                hooks.append(m.register_forward_pre_hook(
                    lambda mod, inp, a=a: (quantize_blocks(torch, inp[0], a),) + tuple(inp[1:])))

    def perplexity():
        nll, n = 0.0, 0
        with torch.no_grad():
            for c in chunks:
                x = torch.tensor([c])
                logits = model(x).logits[0].float()
                lp = torch.log_softmax(logits[:-1], dim=-1)
                nll -= lp.gather(1, x[0, 1:, None]).sum().item()
                n += len(c) - 1
        return math.exp(nll / n)

    def fed(name):
        return name.split(".")[-1] in NORM_FED

    schemes = [
        ("f32", lambda n: None, lambda n: None),
        ("int16 everywhere", lambda n: 32767, lambda n: 2047),
        ("int8 acts, all", lambda n: 127, lambda n: 2047),
        ("int8 acts, norm-fed", lambda n: 127 if fed(n) else 32767, lambda n: 2047),
        ("int8 acts, not down", lambda n: 32767 if n.endswith("down_proj") else 127, lambda n: 2047),
        ("int8 everywhere", lambda n: 127, lambda n: 127),
        ("int8 norm-fed, w8", lambda n: 127 if fed(n) else 32767, lambda n: 127 if fed(n) else 2047),
    ]
    base = None
    print(f"{len(chunks)} chunks of {args.context}, {sum(len(c) - 1 for c in chunks)} scored tokens")
    print("| scheme | perplexity | vs f32 |")
    print("|---|---|---|")
    for label, acts, weights in schemes:
        configure(acts, weights)
        ppl = perplexity()
        base = base or ppl
        diff = "" if label == "f32" else f"{(ppl / base - 1) * 100:+.3f} %"
        print(f"| {label} | {ppl:.5f} | {diff} |", flush=True)


if __name__ == "__main__":
    main()
