#!/usr/bin/env python3
"""Generate tiny fixtures for more model families, their GGUF twins, and golden numbers.

Companion of ``scripts/make_fixtures.py`` (which makes the Llama fixtures; its text, helpers
and conventions are imported from there). Everything written lands in ``tests/fixtures/``
(see the "Families" section of ``tests/fixtures/README.md``):

* ``tiny-<family>/`` for family in gpt2, qwen2, qwen3, gemma, gemma2, gemma3, phi3: a tiny,
  seeded, untrained model in the Hugging Face layout as transformers saves it (config.json,
  generation_config.json, model.safetensors in f32, tokenizer.json, tokenizer_config.json;
  the SentencePiece families also keep the tokenizer.model that their tokenizer.json was
  converted from, because llama.cpp's converter reads that file);
* ``tiny-<family>.gguf``: the same weights, all F32, laid out as llama.cpp's
  ``convert_hf_to_gguf.py`` lays out that architecture (see "GGUF conventions" below);
* ``families.json``: per-token NLLs and argmaxes computed by transformers in float32, for
  the HF folders and (through the script's own GGUF reader: the file's keys applied as
  transformers applies the same model's config, llama.cpp's rules only where the file is
  silent) for the GGUF files, plus tokenizer goldens.

Run it directly with an interpreter that has the packages of
``scripts/requirements-fixtures.txt``:

    python scripts/make_family_fixtures.py

Like make_fixtures.py it is deterministic: every random number comes from an explicitly
seeded generator (one seed per family), training runs single-threaded and torch runs on one
CPU thread. It deletes and rewrites only the paths in OWNED, and checks its own output,
stopping at the first failed check.

Weights
-------
Drawn here in ``named_parameters()`` order from the family's seeded generator, not by
transformers' initialiser: matrices (embeddings, projections, GPT-2's learned positions)
N(0, std), biases 0.1 * N(0, 1) (Qwen2's q/k/v biases, all of GPT-2's), LayerNorm/RMSNorm
weights 1 + 0.1 * N(0, 1). Gemma's norms compute ``x * (1 + w)``, so their stored weight is
w = 0.1 * N(0, 1) and the effective scale is again near 1.

Families and the transformers 5.24 semantics a reimplementation must copy
---------------------------------------------------------------------------
All attention below is causal; "window W" means a query at position q sees keys k with
q - W < k <= q (transformers' ``sliding_window_overlay``: ``kv_idx > q_idx - W``, i.e. W keys
including itself; llama.cpp's LLAMA_SWA_TYPE_STANDARD masks ``q - k >= W``, the same set).

gpt2 (GPT2LMHeadModel)
    Learned absolute positions (``wpe``, n_positions rows) added to token embeddings;
    pre-LayerNorm blocks with bias (eps 1e-5); fused ``c_attn`` producing q|k|v (in that
    order along the output); Conv1D layers store weight as [in, out] (y = x @ W + b);
    scores / sqrt(head_dim); activation gelu_new (tanh approximation); final ``ln_f``; head
    tied to ``wte``. The tokenizer adds no BOS.
qwen2 (Qwen2ForCausalLM)
    Llama layout (RMSNorm eps 1e-6, SwiGLU, rotate-half RoPE with theta 1e6) plus biases
    on q, k, v (not o); GQA 2 query heads per K/V head; untied ``lm_head``. No BOS.
qwen3 (Qwen3ForCausalLM)
    Like qwen2 without biases, with ``head_dim`` (16) != hidden / heads (32 / 4) and
    per-head RMSNorms ``q_norm``/``k_norm`` over head_dim applied to q and k after the
    projection and BEFORE RoPE; tied head. No BOS.
gemma (GemmaForCausalLM)
    Embedding output multiplied by ``hidden_size ** 0.5`` as a float32 scalar tensor
    (in bf16 checkpoints this rounds to bf16 first: sqrt(3072) = 55.4256 -> 55.5; here
    everything is f32, so the f32 value of sqrt(48)). RMSNorm computes in f32
    ``x * rsqrt(mean(x^2) + eps) * (1 + w)``. MLP is GeGLU with gelu_pytorch_tanh:
    down(gelu_tanh(gate(x)) * up(x)). head_dim 16 with 4 heads (64) != hidden 48; one K/V
    head (MQA); scores * head_dim ** -0.5; tied head. rope_theta must stay 10000: the
    converter writes no rope.freq_base for gemma/gemma2 and llama.cpp's default is 10000.
    The tokenizer adds BOS.
gemma2 (Gemma2ForCausalLM)
    Gemma plus: four norms per layer, ``h = x + post_attention_layernorm(attn(
    input_layernorm(x)))``, ``out = h + post_feedforward_layernorm(mlp(
    pre_feedforward_layernorm(h)))``; attention scores scaled by
    ``query_pre_attn_scalar ** -0.5`` (here 16 = head_dim, as in Gemma 2 2B/9B: a GGUF
    cannot carry any other value, see below; head_dim differs from hidden / heads = 24, so
    a reader that derives the scale from hidden / heads fails), then soft-capped ``cap * tanh(scores / cap)`` with
    attn_logit_softcapping BEFORE the mask and softmax; final logits soft-capped the same
    way with final_logit_softcapping AFTER the lm_head. layer_types alternate
    ["sliding_attention", "full_attention"]: layer 0 uses window ``sliding_window`` (8),
    layer 1 is global.
gemma3 (Gemma3ForCausalLM, model_type gemma3_text)
    Gemma2's four-norm layout and embedding scale, no attention soft-capping,
    final_logit_softcapping null, q_norm/k_norm (Gemma (1 + w) RMSNorms over head_dim,
    before RoPE), scaling ``query_pre_attn_scalar ** -0.5`` with query_pre_attn_scalar =
    head_dim here. Six layers, layer_types 5 x "sliding_attention" then "full_attention"
    (the pattern llama.cpp assumes for gemma3: it reads no per-layer types, see below).
    RoPE parameters are per layer type (transformers 5 ``rope_parameters`` keyed by layer
    type): sliding layers use theta 10000 and no scaling; the full layer uses theta 1e6
    with linear scaling factor 4 (positions divided by 4, i.e. inv_freq / 4).
phi3 (Phi3ForCausalLM)
    Fused ``qkv_proj`` (rows q | k | v, GQA here: 2 query heads, 1 K/V head, head_dim 16) and
    fused ``gate_up_proj`` (rows gate | up; out = down(silu(gate) * up)); RMSNorm eps 1e-5;
    untied head. LongRoPE: ``inv_freq[i] = 1 / (ext[i] * theta ** (2i / d))`` with
    ext = long_factor when ``seq_len > original_max_position_embeddings`` (32) and
    short_factor otherwise, where seq_len = max(position_ids) + 1 of the whole forward call
    (so, for a batch, of the longest padded row); cos and sin are both multiplied by
    ``attention_factor = sqrt(1 + ln(max_position_embeddings / original) / ln(original))``
    = sqrt(1 + ln 4 / ln 32) for short AND long sequences. transformers 5.24 honours
    ``sliding_window`` (24) for every layer (create_sliding_window_causal_mask).
    The tokenizer (make_fixtures' Llama-style SentencePiece model) adds BOS;
    ``<|endoftext|>`` is an added special token (id 400) used as EOS and pad, as in Phi-3.
    Its tokenizer.json uses the pipeline of the Hub's Llama 2 / Phi-3 files (normalizer
    Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer) and tokenizer_class
    PreTrainedTokenizerFast: transformers 5 rebuilds a "LlamaTokenizer"'s pipeline itself
    (Metaspace, prepend_scheme "first") and would ignore the file's.

GGUF conventions (llama.cpp's convert_hf_to_gguf.py)
---------------------------------------------------
The files were checked byte for byte against the output of the converter itself (a May
2026 copy, run with transformers 5.24 on these folders, ``--outtype f32``). Two things
had to be forced for that run, and are written here as the converter intends them:
* ``tokenizer.ggml.pre``: the converter names a BPE pre-tokenizer by hashing the ids of a
  probe text and knows only real models' hashes, so for these tiny vocabularies it
  stops; ``gpt-2`` and ``qwen2`` are the names it writes for GPT-2 and Qwen2/Qwen3.
* Phi-3's rope factors: Phi3MiniModel reads ``rope_scaling`` from the config dict, which
  transformers 5 no longer has (it is ``rope_parameters``), so on a transformers-5 config
  the converter silently writes neither the factor tensors nor the attn factor (and
  llama.cpp then runs plain RoPE). With the key present, as for every Phi-3 GGUF on the
  Hub, it writes exactly this file.

* Tensor names come from gguf-py: ``gguf.get_tensor_name_map(arch, n_blocks).get_name(hf,
  try_suffixes=(".weight", ".bias"))``; note that for gemma2/gemma3
  ``post_attention_layernorm`` -> ``post_attention_norm`` and ``pre_feedforward_layernorm``
  -> ``ffn_norm`` (for Llama-like archs post_attention_layernorm is ffn_norm). Tensors are
  written in the order of the safetensors header (as the converter iterates them), after
  the generated ones (Phi-3's rope factors). No q/k permutation for any of these archs.
* gemma, gemma2, gemma3: every tensor whose HF name ends in ``norm.weight`` (q/k norms
  included) is written as ``w + 1``; ``lm_head.weight`` is never written (tied).
* gpt2: ``c_attn``, ``c_proj``, ``c_fc`` weights are transposed to [out, in]; biases are kept.
* phi3: ``rope_factors_long.weight`` / ``rope_factors_short.weight`` (F32, head_dim / 2
  values each) and ``phi3.rope.scaling.attn_factor``.
* Metadata per arch as the converter writes it (``general.architecture``, ``general.type``,
  ``general.name``, ``general.file_type`` 0 = ALL_F32, ``general.quantization_version``);
  the per-arch keys are listed in the README section and in families.json.
* Vocabulary: BPE families as ``tokenizer.ggml.model = gpt2`` (pre ``gpt-2`` / ``qwen2``,
  tokens, token_type, merges), SentencePiece ones as ``llama`` (tokens, scores,
  token_type), then the special-token ids and add_bos/add_eos flags that gguf-py's
  ``SpecialVocab`` reads from the HF folder, as the converter does. Quirks kept: gemma
  gets ``tokenizer.ggml.eot_token_id = 107`` (GemmaModel hard-codes CodeGemma's ids;
  gguf-py writes only the eot one), all three gemmas ``add_space_prefix = false``; phi3's
  added tokens from tokenizer.json (<unk>, <s>, </s>, <|endoftext|>) get score -1000 and
  type CONTROL, so <unk> is CONTROL rather than UNKNOWN; Qwen's bos_token_id comes from
  config.json (= <|endoftext|>) while add_bos_token is false.

Goldens
-------
``windows`` entries give, for i in score_from .. len(tokens): ``nll`` = -log_softmax(
logits[i-1])[tokens[i]] (float32 logits, log_softmax in float64) and ``argmax`` =
argmax(logits[i-1]). Every HF model gets the same window shapes; the script also runs each
model on all its windows at once, right-padded with an attention mask, and checks that
batch against the one-by-one numbers (except across Phi-3's long/short boundary, where
transformers itself changes the rope factors for the whole batch; that difference is
recorded). GGUF windows come from loading the GGUF file (gguf-py) as perplex reads it
(see load_gguf_as_read) and must equal the folder's: every family's fixture uses only
settings a GGUF can carry (gemma2's query_pre_attn_scalar is head_dim; Phi-3's sliding
window is applied from ``phi3.attention.sliding_window``, which llama.cpp itself ignores).
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import io
import json
import math
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (text, JSON writer, vocab helpers)

import gguf  # noqa: E402
import safetensors  # noqa: E402
import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from gguf import GGUFReader, GGUFWriter, LlamaFileType, TokenType  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: E402
from tokenizers import processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GemmaConfig,
    GemmaForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaTokenizerFast,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)
from transformers.models.gemma.tokenization_gemma import GemmaTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures"

FAMILIES = ["gpt2", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3"]

# Everything this script owns under tests/fixtures/ (deleted before a run).
OWNED = [f"tiny-{f}" for f in FAMILIES] + [f"tiny-{f}.gguf" for f in FAMILIES] + ["families.json"]

# One seed per model, so that changing one family never shifts another's numbers.
SEEDS = {"gpt2": 5101, "qwen2": 5202, "qwen3": 5303, "gemma": 5404, "gemma2": 5505, "gemma3": 5606,
         "phi3": 5707}

NORM_STD = 0.1  # norms: 1 + N(0, 0.1) (Gemma: stored w = N(0, 0.1), used as 1 + w)
BIAS_STD = 0.1
BPE_VOCAB = 320  # byte-level BPE: 256 bytes + merges + traps + specials
GEMMA_SPM_VOCAB = 384  # 5 specials + 256 byte pieces + 47 characters + 76 merges

# A line in several scripts for the tokenizer goldens and the "multilingual" window. Most
# of its characters never occur in the training text, so byte-level BPE spells them with
# its byte symbols and SentencePiece with <0xNN> byte-fallback pieces.
MULTILINGUAL_TEXT = ("Grüße aus München! Ça coûte 3,50 € — déjà vu. Привет, мир! 你好，世界。"
                     "こんにちは。مرحبا بالعالم 🙂👍🏽")

# Qwen2's pre-tokenizer: the Split pattern of Qwen2's tokenizer.json (case-insensitive
# contractions, ONE digit per piece, a single non-letter may lead a letter run), which is
# also llama.cpp's "qwen2" regex. GPT-2's is the one built into tokenizers'
# ByteLevel(use_regex=True): 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
# \s+(?!\S)|\s+ (digit runs stay together), llama.cpp's "gpt-2".
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Merges appended after training that can never fire under the tokenizer's own
# pre-tokenizer but do fire under the other family's (see build_bpe):
GPT2_TRAP_MERGES = [(".", "m")]  # Qwen2's regex keeps "." with the letters after it ("p.m.")
QWEN_TRAP_MERGES = [("2", "0"), ("Ġ", "1")]  # GPT-2's regex keeps digit runs and a leading space

log = mf.log


# ---------------------------------------------------------------------------------------
# 1. Tokenizers
# ---------------------------------------------------------------------------------------


def build_bpe(kind: str) -> Tokenizer:
    """Byte-level BPE trained on make_fixtures' corpus, GPT-2 style or Qwen2 style.

    gpt2: no normalizer, ByteLevel(use_regex=True) pre-tokenizer (GPT-2's regex, digit runs
    kept together), one special token ``<|endoftext|>`` with the last id, like GPT-2.
    qwen: NFC normalizer, Split(QWEN2_REGEX, isolated) + ByteLevel(use_regex=False), like
    Qwen2's tokenizer.json; specials ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` with
    the last ids, like Qwen2.

    The trap merges are appended with the lowest priority. Each can only apply to a piece
    the other family's pre-tokenizer makes, so a tokenizer that uses the wrong one gives
    different ids (GPT-2's own trained merges contain digit pairs, which likewise never
    apply under Qwen2's one-digit pieces).
    """
    tok = Tokenizer(models.BPE())
    if kind == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        specials, traps = ["<|endoftext|>"], GPT2_TRAP_MERGES
    else:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        specials, traps = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], QWEN_TRAP_MERGES
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB - len(specials) - len(traps),
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator([mf.CORPUS], trainer=trainer)
    data = json.loads(tok.to_str())
    vocab, merges = data["model"]["vocab"], data["model"]["merges"]
    for a, b in traps:
        assert a in vocab and b in vocab and a + b not in vocab, (a, b)
        vocab[a + b] = len(vocab)
        merges.append([a, b])
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    assert tok.get_vocab_size() == BPE_VOCAB
    return tok


def save_bpe_hf(tok: Tokenizer, folder: Path, kind: str) -> None:
    """tokenizer.json + tokenizer_config.json as a transformers fast tokenizer saves them."""
    if kind == "gpt2":  # GPT-2: bos = eos = unk = <|endoftext|>, no pad token
        kw = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    else:  # Qwen2 (base): no bos_token, eos = pad = <|endoftext|>
        kw = dict(eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=128, **kw)
    hf.save_pretrained(str(folder))
    fix_tokenizer_config(folder, {"add_bos_token": False, "add_eos_token": False,
                                  "tokenizer_class": "PreTrainedTokenizerFast"})


def fix_tokenizer_config(folder: Path, updates: dict) -> None:
    """Drop load-time bookkeeping (and absolute paths) transformers writes; set the flags.

    transformers 5 leaves add_bos_token/add_eos_token out of the file; they are written
    explicitly, as in make_fixtures.py, because readers (and llama.cpp's converter, via
    gguf-py's SpecialVocab) take add_bos from there.
    """
    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    for k in ("is_local", "local_files_only", "vocab_file", "tokenizer_file", "name_or_path"):
        cfg.pop(k, None)
    cfg.update(updates)
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def train_gemma_spm() -> bytes:
    """A tiny SentencePiece BPE model shaped like Gemma's tokenizer.model.

    Like Gemma's: <pad>=0 <eos>=1 <bos>=2 <unk>=3, then the control symbol <mask>=4, byte
    pieces <0x00>..<0xFF> = 5..260, identity normalisation, whitespace kept as is, NO dummy
    prefix (add_dummy_prefix false: "Hello" and " Hello" tokenize differently), digits split,
    byte fallback. character_coverage 0.99 leaves the rarer characters of the training text
    (besides all unseen ones) to byte fallback.
    """
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(mf.CORPUS.split("\n")),
        model_writer=buf,
        model_type="bpe",
        vocab_size=GEMMA_SPM_VOCAB,
        byte_fallback=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        control_symbols=["<mask>"],
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        split_digits=True,
        character_coverage=0.99,
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def save_spm_hf(sp_bytes: bytes, folder: Path, kind: str) -> None:
    """tokenizer.model + its transformers conversion (tokenizer.json, tokenizer_config.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(sp_bytes)
    if kind == "gemma":
        hf = GemmaTokenizer.from_pretrained(str(folder), add_bos_token=True, add_eos_token=False)
        hf.save_pretrained(str(folder))
        fix_tokenizer_config(folder, {"add_bos_token": True, "add_eos_token": False,
                                      "tokenizer_class": "GemmaTokenizer"})
    else:  # phi3: Llama 2's SentencePiece setup plus Phi-3's added <|endoftext|>
        hf = LlamaTokenizerFast.from_pretrained(str(folder), add_bos_token=True, add_eos_token=False)
        hf.add_special_tokens({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"})
        hf.save_pretrained(str(folder))
        # The pipeline of Llama 2's and Phi-3's tokenizer.json on the Hub: the normalizer
        # always prepends "▁" and turns spaces into "▁", no pre-tokenizer. Unlike the
        # Metaspace(prepend_scheme="first") that transformers 5 converts to (and that
        # make_fixtures' tiny-llama-spm-hf keeps), it agrees with sentencepiece (and
        # llama.cpp) on text that starts with a space. transformers 5 rebuilds a
        # "LlamaTokenizer"'s pipeline itself, ignoring tokenizer.json's, so the class is the
        # generic one, for which tokenizer.json is authoritative.
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        tok.save(str(folder / "tokenizer.json"))
        fix_tokenizer_config(folder, {"add_bos_token": True, "add_eos_token": False, "legacy": True,
                                      "tokenizer_class": "PreTrainedTokenizerFast"})


# ---------------------------------------------------------------------------------------
# 2. Models
# ---------------------------------------------------------------------------------------


def family_config(family: str, vocab_size: int, ids: dict):
    """The tiny configuration of each family (values chosen here; see the module docstring)."""
    if family == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_positions=128, n_embd=32, n_layer=2, n_head=4,
            activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
            bos_token_id=ids["eot"], eos_token_id=ids["eot"],
            # Hub GPT-2 configs carry n_ctx (= n_positions); transformers 5 keeps unknown keys,
            # and llama.cpp's converter reads gpt2.context_length from it.
            n_ctx=128,
        )
    if family == "qwen2":
        return Qwen2Config(
            vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}, rms_norm_eps=1e-6,
            tie_word_embeddings=False, use_sliding_window=False,
            bos_token_id=ids["eot"], eos_token_id=ids["eot"],
        )
    if family == "qwen3":
        return Qwen3Config(
            vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}, rms_norm_eps=1e-6,
            attention_bias=False, tie_word_embeddings=True, use_sliding_window=False,
            bos_token_id=ids["eot"], eos_token_id=ids["eot"],
        )
    gemma_ids = dict(pad_token_id=0, eos_token_id=1, bos_token_id=2)
    if family == "gemma":
        return GemmaConfig(
            vocab_size=vocab_size, hidden_size=48, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, head_dim=16, hidden_act="gelu_pytorch_tanh",
            max_position_embeddings=128, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            rms_norm_eps=1e-6, tie_word_embeddings=True, **gemma_ids,
        )
    if family == "gemma2":
        return Gemma2Config(
            vocab_size=vocab_size, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, hidden_activation="gelu_pytorch_tanh",
            max_position_embeddings=128, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            rms_norm_eps=1e-6, tie_word_embeddings=True, query_pre_attn_scalar=16,
            attn_logit_softcapping=ATTN_SOFTCAP, final_logit_softcapping=FINAL_SOFTCAP, sliding_window=8,
            layer_types=["sliding_attention", "full_attention"], **gemma_ids,
        )
    if family == "gemma3":
        return Gemma3TextConfig(
            vocab_size=vocab_size, hidden_size=32, intermediate_size=32, num_hidden_layers=6,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, hidden_activation="gelu_pytorch_tanh",
            max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=True, query_pre_attn_scalar=16,
            sliding_window=8, layer_types=["sliding_attention"] * 5 + ["full_attention"],
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1_000_000.0},
            },
            final_logit_softcapping=None, attn_logit_softcapping=None, **gemma_ids,
        )
    if family == "phi3":
        return Phi3Config(
            vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
            original_max_position_embeddings=PHI3_ORIG_CTX, rms_norm_eps=1e-5, tie_word_embeddings=False,
            sliding_window=PHI3_SWA,
            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                             "short_factor": PHI3_SHORT, "long_factor": PHI3_LONG},
            bos_token_id=1, eos_token_id=ids["eot"], pad_token_id=ids["eot"],
        )
    raise ValueError(family)


ATTN_SOFTCAP = 5.0  # gemma2: small enough that tanh bends the scores of these weights
FINAL_SOFTCAP = 3.0  # gemma2: the raw logits go well past 3
PHI3_ORIG_CTX, PHI3_SWA = 32, 24
# LongRoPE factors (head_dim / 2 = 8 each), all distinct so that a swap or reversal shows.
PHI3_SHORT = [1.0, 1.02, 1.05, 1.1, 1.18, 1.3, 1.45, 1.7]
PHI3_LONG = [1.0, 1.25, 1.6, 2.2, 3.1, 4.4, 6.2, 8.9]

HF_CLASSES = {"gpt2": GPT2LMHeadModel, "qwen2": Qwen2ForCausalLM, "qwen3": Qwen3ForCausalLM,
              "gemma": GemmaForCausalLM, "gemma2": Gemma2ForCausalLM, "gemma3": Gemma3ForCausalLM,
              "phi3": Phi3ForCausalLM}
GGUF_ARCH = {"gpt2": gguf.MODEL_ARCH.GPT2, "qwen2": gguf.MODEL_ARCH.QWEN2, "qwen3": gguf.MODEL_ARCH.QWEN3,
             "gemma": gguf.MODEL_ARCH.GEMMA, "gemma2": gguf.MODEL_ARCH.GEMMA2, "gemma3": gguf.MODEL_ARCH.GEMMA3,
             "phi3": gguf.MODEL_ARCH.PHI3}
GEMMA_NORMS = {"gemma", "gemma2", "gemma3"}  # (1 + w) RMSNorms
STD = {"gpt2": 0.3, "qwen2": 0.3, "qwen3": 0.3, "gemma": 0.25, "gemma2": 0.3, "gemma3": 0.3, "phi3": 0.3}


@torch.no_grad()
def seeded_model(family: str, config):
    """The family's model with weights drawn here (see the module docstring)."""
    config._attn_implementation = "eager"
    model = HF_CLASSES[family](config).float().eval()
    gen = torch.Generator().manual_seed(SEEDS[family])
    for name, p in model.named_parameters():  # a tied head is listed once, as the embedding
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        if name.endswith(".bias"):
            p.copy_(BIAS_STD * noise)
        elif p.ndim == 1:  # LayerNorm / RMSNorm weights
            p.copy_((0.0 if family in GEMMA_NORMS else 1.0) + NORM_STD * noise)
        else:
            p.copy_(STD[family] * noise)
    return model


# ---------------------------------------------------------------------------------------
# 3. GGUF, the way convert_hf_to_gguf.py writes these architectures
# ---------------------------------------------------------------------------------------


def safetensors_in_header_order(path: Path) -> list[tuple[str, np.ndarray]]:
    """The tensors of a safetensors file in header order (the order the converter visits)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = []
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (name, meta["dtype"])
        a, b = meta["data_offsets"]
        out.append((name, np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(meta["shape"]).copy()))
    return out


def converter_tensors(family: str, folder: Path, n_blocks: int) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, array) in write order, with the converter's per-architecture transforms."""
    arch = GGUF_ARCH[family]
    tmap = gguf.get_tensor_name_map(arch, n_blocks)
    out = []
    if family == "phi3":  # Phi3MiniModel.generate_extra_tensors: written before the weights
        out.append(("rope_factors_long.weight", np.array(PHI3_LONG, dtype=np.float32)))
        out.append(("rope_factors_short.weight", np.array(PHI3_SHORT, dtype=np.float32)))
    for name, arr in safetensors_in_header_order(folder / "model.safetensors"):
        if name.endswith((".rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias")):
            continue
        if family in ("gemma", "gemma2") and name == "lm_head.weight":
            continue  # GemmaModel / Gemma2Model skip it
        if family in GEMMA_NORMS and name.endswith("norm.weight"):
            arr = arr + np.float32(1.0)  # Gemma*RMSNorm: x * (1 + w)
        if family == "gpt2" and name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            arr = np.ascontiguousarray(arr.T)  # Conv1D [in, out] -> [out, in]
        new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        assert new is not None, f"cannot map {name}"
        out.append((new, arr.astype(np.float32)))
    return out


def textmodel_parameters(w: GGUFWriter, hp: dict, n_blocks: int) -> None:
    """TextModel.set_gguf_parameters for the keys these configs have (qwen2, qwen3, gemma3)."""
    rp = dict(hp.get("rope_parameters", hp.get("rope_scaling")) or {})
    w.add_block_count(n_blocks)
    w.add_context_length(hp["max_position_embeddings"])
    w.add_embedding_length(hp["hidden_size"])
    w.add_feed_forward_length(hp["intermediate_size"])
    w.add_head_count(hp["num_attention_heads"])
    w.add_head_count_kv(hp["num_key_value_heads"])
    rope = rp.get("full_attention", rp)
    if rope.get("rope_type") == "linear" and rope.get("factor") is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rope["factor"])
    else:
        assert rope.get("rope_type") in (None, "default"), rope
    if rope.get("rope_theta") is not None:
        w.add_rope_freq_base(rope["rope_theta"])
    if (local := rp.get("sliding_attention", {}).get("rope_theta")) is not None:
        w.add_rope_freq_base_swa(local)
    w.add_layer_norm_rms_eps(hp["rms_norm_eps"])
    if hp.get("head_dim") is not None:
        w.add_key_length(hp["head_dim"])
        w.add_value_length(hp["head_dim"])
    w.add_file_type(LlamaFileType.ALL_F32)


def arch_parameters(family: str, w: GGUFWriter, hp: dict, n_blocks: int) -> None:
    """The <arch>.* keys, in the order (and with the values) the converter writes them."""
    if family == "gpt2":  # GPT2Model.set_gguf_parameters
        w.add_block_count(n_blocks)
        w.add_context_length(hp["n_ctx"])
        w.add_embedding_length(hp["n_embd"])
        w.add_feed_forward_length(4 * hp["n_embd"])
        w.add_head_count(hp["n_head"])
        w.add_layer_norm_eps(hp["layer_norm_epsilon"])
        w.add_file_type(LlamaFileType.ALL_F32)
    elif family in ("qwen2", "qwen3"):  # Qwen2Model/Qwen3Model: TextModel's parameters
        textmodel_parameters(w, hp, n_blocks)
    elif family in ("gemma", "gemma2"):  # GemmaModel / Gemma2Model.set_gguf_parameters
        w.add_context_length(hp["max_position_embeddings"])
        w.add_embedding_length(hp["hidden_size"])
        w.add_block_count(n_blocks)
        w.add_feed_forward_length(hp["intermediate_size"])
        w.add_head_count(hp["num_attention_heads"])
        w.add_head_count_kv(hp.get("num_key_value_heads", hp["num_attention_heads"]))
        w.add_layer_norm_rms_eps(hp["rms_norm_eps"])
        w.add_key_length(hp["head_dim"])
        w.add_value_length(hp["head_dim"])
        w.add_file_type(LlamaFileType.ALL_F32)
        if family == "gemma2":
            w.add_attn_logit_softcapping(hp["attn_logit_softcapping"])
            w.add_final_logit_softcapping(hp["final_logit_softcapping"])
            w.add_sliding_window(hp["sliding_window"])
    elif family == "gemma3":  # Gemma3Model: TextModel's, then its own (re-set keys keep their place)
        textmodel_parameters(w, hp, n_blocks)
        w.add_context_length(hp.get("max_position_embeddings", 131072))
        w.add_head_count(hp.get("num_attention_heads", 8))
        w.add_layer_norm_rms_eps(hp.get("rms_norm_eps", 1e-6))
        w.add_key_length(hp.get("head_dim", 256))
        w.add_value_length(hp.get("head_dim", 256))
        rp = hp["rope_parameters"]
        w.add_rope_freq_base(rp.get("full_attention", rp).get("rope_theta", 1_000_000.0))
        assert hp.get("attn_logit_softcapping") is None
        if hp.get("final_logit_softcapping"):
            w.add_final_logit_softcapping(hp["final_logit_softcapping"])
        if hp.get("sliding_window_pattern") != 1:
            w.add_sliding_window(hp["sliding_window"])
        w.add_head_count_kv(hp.get("num_key_value_heads", 4))
    elif family == "phi3":  # Phi3MiniModel.set_gguf_parameters (+ attn factor from generate_extra_tensors)
        n_embd, n_head = hp["hidden_size"], hp["num_attention_heads"]
        rope_dims = int(hp.get("partial_rotary_factor", 1.0) * n_embd) // n_head
        w.add_context_length(hp["max_position_embeddings"])
        w.add_rope_scaling_orig_ctx_len(hp["original_max_position_embeddings"])
        w.add_embedding_length(n_embd)
        w.add_feed_forward_length(hp["intermediate_size"])
        w.add_block_count(n_blocks)
        w.add_head_count(n_head)
        w.add_head_count_kv(hp["num_key_value_heads"])
        w.add_layer_norm_rms_eps(hp["rms_norm_eps"])
        w.add_rope_dimension_count(rope_dims)
        w.add_rope_freq_base(hp["rope_parameters"]["rope_theta"])
        w.add_file_type(LlamaFileType.ALL_F32)
        w.add_sliding_window(hp.get("sliding_window") or 0)
    else:
        raise ValueError(family)


def phi3_attn_factor(hp: dict) -> float:
    """Phi3MiniModel.generate_extra_tensors for longrope: sqrt(1 + ln(scale) / ln(original))."""
    scale = hp["max_position_embeddings"] / hp["original_max_position_embeddings"]
    orig = hp["original_max_position_embeddings"]
    return math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0


def converter_spm_vocab(family: str, folder: Path, vocab_size: int) -> dict:
    """SentencePiece vocabulary as the converter builds it from the folder.

    gemma*: TextModel._create_vocab_sentencepiece (pieces of tokenizer.model, then entries
    of tokenizer_config.json's added_tokens_decoder, if any, become CONTROL/USER_DEFINED with
    score -1000). phi3: Phi3MiniModel.set_vocab, which also applies tokenizer.json's
    added_tokens: every added token (<unk>, <s>, </s> included) gets score -1000 and type
    USER_DEFINED, or CONTROL when special, so <unk> is written as CONTROL, not UNKNOWN.
    Ids without a piece are "[PAD<i>]" UNUSED with score -10000.
    """
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    base = mf.spm_vocab_metadata(sp)
    tokens = [f"[PAD{i}]".encode() for i in range(vocab_size)]
    scores = [-10000.0] * vocab_size
    types = [int(TokenType.UNUSED)] * vocab_size
    for i in range(min(vocab_size, sp.get_piece_size())):
        tokens[i], scores[i], types[i] = base["tokens"][i].encode(), base["scores"][i], base["types"][i]
    tcfg = json.loads((folder / "tokenizer_config.json").read_text())
    for tid, data in tcfg.get("added_tokens_decoder", {}).items():
        tid = int(tid)
        special = data.get("special") or (family != "phi3" and looks_special(data["content"]))
        types[tid] = int(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        scores[tid] = -1000.0
        tokens[tid] = data["content"].encode()
    if family == "phi3":
        for data in json.loads((folder / "tokenizer.json").read_text()).get("added_tokens", []):
            tid = int(data["id"])
            tokens[tid] = data["content"].encode()
            scores[tid] = -1000.0
            types[tid] = int(TokenType.CONTROL if data.get("special") else TokenType.USER_DEFINED)
    return {"tokens": tokens, "scores": scores, "types": types}


def looks_special(tok: str) -> bool:
    """TextModel.does_token_look_special."""
    return (tok in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (tok.startswith("<|") and tok.endswith("|>"))
            or (tok.startswith("<｜") and tok.endswith("｜>")) or (tok.startswith("<unused") and tok.endswith(">")))


def converter_bpe_vocab(folder: Path, vocab_size: int) -> dict:
    """TextModel.get_vocab_base: tokens by id, CONTROL for special added tokens.

    make_fixtures' bpe_vocab_metadata reads the same thing from tokenizer.json; the two
    are checked against each other.
    """
    tok = AutoTokenizer.from_pretrained(str(folder))
    vocab = tok.get_vocab()
    rev = {i: t for t, i in vocab.items()}
    added = tok.get_added_vocab()
    decoder = tok.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in rev:
            tokens.append(f"[PAD{i}]")
            types.append(int(TokenType.UNUSED))
            continue
        t = rev[i]
        if t in added:
            if not decoder[i].normalized:
                t = tok.decode(tok.encode(t, add_special_tokens=False))
            types.append(int(TokenType.CONTROL if decoder[i].special or looks_special(t) else TokenType.USER_DEFINED))
        else:
            types.append(int(TokenType.NORMAL))
        tokens.append(t)
    return {"tokens": tokens, "types": types}


def write_family_gguf(family: str, folder: Path, path: Path) -> dict:
    """Write the GGUF twin of a tiny-<family> folder; returns a summary of what was written."""
    hp = AutoConfig.from_pretrained(str(folder)).to_dict()  # what the converter reads
    n_blocks = hp.get("num_hidden_layers", hp.get("n_layer"))
    vocab_size = hp["vocab_size"]
    arch = GGUF_ARCH[family]
    w = GGUFWriter(str(path), arch=gguf.MODEL_ARCH_NAMES[arch])
    tensors = converter_tensors(family, folder, n_blocks)
    for name, arr in tensors:
        w.add_tensor(name, arr)
    if family == "phi3":  # written by generate_extra_tensors, i.e. while the tensors are prepared
        w.add_rope_scaling_attn_factors(phi3_attn_factor(hp))
    # prepare_metadata: general.* (gguf-py's Metadata, from the folder: name "Tiny Gpt2" etc.
    # derived from the directory name, size label from the parameter count), the
    # architecture's parameters, the quantization version, then the vocabulary
    # (TextModel.prepare_metadata -> set_vocab).
    total, shared, expert, n_expert = w.get_total_parameter_count()
    meta = gguf.Metadata.load(None, folder, None, total)
    if meta.name is None:
        meta.name = folder.name
    if meta.size_label is None and total > 0:
        meta.size_label = gguf.size_label(total, shared, expert, n_expert)
    w.add_type(gguf.GGUFType.MODEL)
    meta.set_gguf_meta_model(w)
    arch_parameters(family, w, hp, n_blocks)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if family in ("gpt2", "qwen2", "qwen3"):  # _set_vocab_gpt2 (Qwen2Model: no tokenizer.model)
        v = converter_bpe_vocab(folder, vocab_size)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2" if family == "gpt2" else "qwen2")
        w.add_token_list(v["tokens"])
        w.add_token_types(v["types"])
        sv = gguf.SpecialVocab(folder, load_merges=True)
        sv.add_to_gguf(w, quiet=True)
    else:  # _set_vocab_sentencepiece / Phi3MiniModel.set_vocab
        v = converter_spm_vocab(family, folder, vocab_size)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(v["tokens"])
        w.add_token_scores(v["scores"])
        w.add_token_types(v["types"])
        gguf.SpecialVocab(folder, n_vocab=len(v["tokens"])).add_to_gguf(w, quiet=True)
        if family == "gemma":  # GemmaModel.set_vocab: CodeGemma's FIM/EOT ids, whatever the vocab
            sv = gguf.SpecialVocab(folder, load_merges=False,
                                   special_token_types=["prefix", "suffix", "middle", "fsep", "eot"])
            for typ, tid in (("prefix", 67), ("suffix", 69), ("middle", 68), ("fsep", 70), ("eot", 107)):
                sv._set_special_token(typ, tid)
            sv.chat_template = None
            gguf_quiet(lambda: sv.add_to_gguf(w, quiet=True))  # gguf-py has handlers only for eot
        if family in GEMMA_NORMS:
            w.add_add_space_prefix(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"tensors": [n for n, _ in tensors]}


def gguf_quiet(fn):
    import logging

    lg = logging.getLogger("gguf.vocab")
    old = lg.level
    lg.setLevel(logging.ERROR)
    try:
        return fn()
    finally:
        lg.setLevel(old)


def gguf_array(reader: GGUFReader, key: str) -> list:
    """An array field of a GGUF file: strings decoded, numbers as Python scalars."""
    f = reader.fields[key]
    if f.types[-1] == gguf.GGUFValueType.STRING:
        return [bytes(f.parts[i]).decode() for i in f.data]
    return [f.parts[i][0].item() for i in f.data]


def gguf_metadata(path: Path) -> dict:
    """All metadata of a GGUF file except the long tokenizer arrays."""
    md = {}
    for k, f in GGUFReader(str(path)).fields.items():
        if k.startswith("GGUF."):
            continue
        v = f.contents()
        if isinstance(v, list) and len(v) > 16:
            v = f"[{len(v)} entries]"
        md[k] = v
    return md


# ---------------------------------------------------------------------------------------
# 4. Reading the GGUF back as perplex reads it (the reference for GGUF windows)
# ---------------------------------------------------------------------------------------


@torch.no_grad()
def load_gguf_as_read(path: Path, family: str):
    """Build the HF model that a GGUF file defines, as perplex reads it.

    Everything comes from the file: metadata keys (with llama.cpp's defaults where the
    converter writes none) and tensors, whose converter transforms are undone. Where
    llama.cpp decides something the file cannot carry, llama.cpp's rule is applied:
    * gemma2/gemma3 attention scale: 1/sqrt(head_dim), except for the 27B models (46 / 62
      layers) which use 1/sqrt(hidden / heads) (llama-model.cpp); query_pre_attn_scalar is
      not in the file.
    * gemma2 sliding-window pattern: period 2 (layers 0, 2, ... slide); gemma3: period 6
      (layer i slides unless i % 6 == 5), unless ``<arch>.attention.sliding_window_pattern``
      is present (the converter never writes it for these).
    * gemma3's swa rope base: ``rope.freq_base_swa`` (llama.cpp default 10000); the linear
      rope scale applies to the global layers only.
    * phi3: ``attention.sliding_window`` is applied, as transformers applies the same
      model's ``sliding_window`` (llama.cpp reads the key but turns Phi-3 SWA off, "Phi
      SWA is currently disabled": perplex follows the model's definition, not that
      shortcut); rope factors: long when the window exceeds
      ``rope.scaling.original_context_length`` (as transformers decides it, by the
      window's own length; llama.cpp decides by its context size).
    """
    reader = GGUFReader(str(path))
    f = {k: v.contents() for k, v in reader.fields.items() if not k.startswith("tokenizer.ggml.")}
    a = f["general.architecture"]
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    arrs = {}
    for t in reader.tensors:
        arr = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        arrs[t.name] = arr.reshape(tuple(int(x) for x in reversed(t.shape.tolist()))).copy()
    tied = "output.weight" not in arrs
    n_layer, n_embd, n_head = f[f"{a}.block_count"], f[f"{a}.embedding_length"], f[f"{a}.attention.head_count"]
    g = lambda k, d=None: f.get(f"{a}.{k}", d)  # noqa: E731
    pad = reader.fields.get("tokenizer.ggml.padding_token_id")
    common = dict(vocab_size=n_vocab, tie_word_embeddings=tied, pad_token_id=pad.contents() if pad else None)
    if family == "gpt2":
        cfg = GPT2Config(n_positions=g("context_length"), n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                         n_inner=g("feed_forward_length"), layer_norm_epsilon=g("attention.layer_norm_epsilon"),
                         activation_function="gelu_new", **common)
    else:
        head_dim = g("attention.key_length", n_embd // n_head)
        kw = dict(hidden_size=n_embd, intermediate_size=g("feed_forward_length"), num_hidden_layers=n_layer,
                  num_attention_heads=n_head, num_key_value_heads=g("attention.head_count_kv", n_head),
                  max_position_embeddings=g("context_length"), rms_norm_eps=g("attention.layer_norm_rms_epsilon"),
                  **common)
        theta = g("rope.freq_base", 10000.0)  # llama.cpp's default base
        if family in ("qwen2", "qwen3"):
            cls = Qwen2Config if family == "qwen2" else Qwen3Config
            cfg = cls(head_dim=head_dim, rope_parameters={"rope_type": "default", "rope_theta": theta}, **kw)
        elif family == "gemma":
            cfg = GemmaConfig(head_dim=head_dim, hidden_act="gelu_pytorch_tanh",
                              rope_parameters={"rope_type": "default", "rope_theta": theta}, **kw)
        elif family == "gemma2":
            period = g("attention.sliding_window_pattern", 2)
            cfg = Gemma2Config(
                head_dim=head_dim, hidden_activation="gelu_pytorch_tanh",
                rope_parameters={"rope_type": "default", "rope_theta": theta},
                query_pre_attn_scalar=(n_embd // n_head) if n_layer == 46 else head_dim,
                attn_logit_softcapping=g("attn_logit_softcapping"),
                final_logit_softcapping=g("final_logit_softcapping"),
                sliding_window=g("attention.sliding_window", 4096),
                layer_types=[swa_type(i, period) for i in range(n_layer)], **kw)
        elif family == "gemma3":
            period = g("attention.sliding_window_pattern", 6)
            full = {"rope_type": "default", "rope_theta": theta}
            if g("rope.scaling.type") == "linear":
                full = {"rope_type": "linear", "factor": g("rope.scaling.factor"), "rope_theta": theta}
            cfg = Gemma3TextConfig(
                head_dim=head_dim, hidden_activation="gelu_pytorch_tanh",
                query_pre_attn_scalar=(n_embd // n_head) if n_layer == 62 else head_dim,
                final_logit_softcapping=g("final_logit_softcapping"), attn_logit_softcapping=None,
                sliding_window=g("attention.sliding_window"),
                layer_types=[swa_type(i, period) for i in range(n_layer)],
                rope_parameters={"sliding_attention": {"rope_type": "default",
                                                       "rope_theta": g("rope.freq_base_swa", 10000.0)},
                                 "full_attention": full}, **kw)
        elif family == "phi3":
            rope = {"rope_type": "default", "rope_theta": theta}
            if "rope_factors_long.weight" in arrs:
                rope = {"rope_type": "longrope", "rope_theta": theta,
                        "short_factor": [float(x) for x in arrs.pop("rope_factors_short.weight")],
                        "long_factor": [float(x) for x in arrs.pop("rope_factors_long.weight")],
                        "attention_factor": float(g("rope.scaling.attn_factor", 1.0))}
            assert g("rope.dimension_count") == head_dim
            cfg = Phi3Config(original_max_position_embeddings=g("rope.scaling.original_context_length"),
                             sliding_window=g("attention.sliding_window"), rope_parameters=rope, **kw)
        else:
            raise ValueError(family)
    cfg._attn_implementation = "eager"
    model = HF_CLASSES[family](cfg).float().eval()
    tmap = gguf.get_tensor_name_map(GGUF_ARCH[family], n_layer)
    sd = {}
    for hf_name in model.state_dict():
        gname = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gname not in arrs:
            assert tied and hf_name == "lm_head.weight", (hf_name, gname)
            continue
        arr = arrs.pop(gname)
        if family in GEMMA_NORMS and hf_name.endswith("norm.weight"):
            arr = arr - np.float32(1.0)
        if family == "gpt2" and hf_name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            arr = np.ascontiguousarray(arr.T)
        sd[hf_name] = torch.from_numpy(arr)
    assert not arrs, f"unused GGUF tensors: {sorted(arrs)}"
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= ({"lm_head.weight"} if tied else set()), (missing, unexpected)
    return model


def swa_type(il: int, period: int) -> str:
    """llama_hparams::set_swa_pattern(period): layer il slides iff il % period < period - 1."""
    return "sliding_attention" if period == 0 or il % period < period - 1 else "full_attention"


# ---------------------------------------------------------------------------------------
# 5. Reference numbers
# ---------------------------------------------------------------------------------------


@torch.no_grad()
def window_scores(lg: torch.Tensor, ids: list[int], score_from: int) -> tuple[list[float], list[int]]:
    lp = torch.log_softmax(lg.double(), dim=-1)
    nll = [float(-lp[i - 1, ids[i]]) for i in range(score_from, len(ids))]
    am = [int(lg[i - 1].argmax()) for i in range(score_from, len(ids))]
    return nll, am


@torch.no_grad()
def run_window(model, ids: list[int], score_from: int) -> tuple[list[float], list[int]]:
    return window_scores(model(torch.tensor([ids])).logits[0].float(), ids, score_from)


@torch.no_grad()
def batched_max_diff(model, wins: list[dict], pad_id: int) -> float:
    """Run the windows as one right-padded batch with an attention mask; max |NLL diff|.

    Right padding keeps every real token at its own position (no position_ids needed),
    and a causal model never looks at the pads that follow. Argmaxes must match exactly.
    """
    n = max(len(w["tokens"]) for w in wins)
    ids = torch.full((len(wins), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(wins), n), dtype=torch.long)
    for r, w in enumerate(wins):
        ids[r, :len(w["tokens"])] = torch.tensor(w["tokens"])
        mask[r, :len(w["tokens"])] = 1
    lg = model(input_ids=ids, attention_mask=mask).logits.float()
    worst = 0.0
    for r, w in enumerate(wins):
        nll, am = window_scores(lg[r, :len(w["tokens"])], w["tokens"], w["score_from"])
        assert am == w["argmax"], (w["name"], am, w["argmax"])
        worst = max(worst, max(abs(x - y) for x, y in zip(nll, w["nll"])))
    return worst


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------

# Why transformers' own GGUF loader (5.24) cannot load some of these files (seen in its
# load report: the weights fit, the config it derives does not).
TRANSFORMERS_GGUF_GAPS = {
    "gpt2": "does not load: it maps gpt2.context_length to n_ctx, not n_positions, so wpe is sized 1024",
    "qwen3": "does not load: it ignores qwen3.attention.key_length, so head_dim defaults to 128",
    "gemma": "does not load: no GGUF support for architecture gemma",
}

DESCRIPTIONS = {
    "gpt2": "GPT2LMHeadModel: n_embd 32, 2 layers, 4 heads (head_dim 8), n_inner 4*32, n_positions 128, "
            "learned positions, LayerNorm with bias, gelu_new, fused c_attn, tied head",
    "qwen2": "Qwen2ForCausalLM: hidden 32, intermediate 64, 2 layers, 2 heads / 1 KV head (head_dim 16), "
             "q/k/v bias, rope_theta 1e6, rms_norm_eps 1e-6, untied lm_head",
    "qwen3": "Qwen3ForCausalLM: hidden 32, intermediate 64, 2 layers, 4 heads / 2 KV heads, head_dim 16 "
             "(q width 64 != hidden), q_norm/k_norm, no biases, rope_theta 1e6, tied head",
    "gemma": "GemmaForCausalLM: hidden 48, intermediate 48, 2 layers, 4 heads / 1 KV head, head_dim 16 "
             "(q width 64 != hidden), embedding * sqrt(48), (1+w) RMSNorm, GeGLU gelu_pytorch_tanh, tied head",
    "gemma2": "Gemma2ForCausalLM: hidden 48, intermediate 64, 2 layers (sliding, full), 2 heads / 1 KV head, "
              "head_dim 16, query_pre_attn_scalar 16, attn softcap 5, final softcap 3, sliding_window 8, "
              "4 norms per layer, tied head",
    "gemma3": "Gemma3ForCausalLM (gemma3_text): hidden 32, intermediate 32, 6 layers (5 sliding, 1 full), "
              "2 heads / 1 KV head, head_dim 16, q/k norms, sliding_window 8, rope 10000 (sliding) / 1e6 with "
              "linear factor 4 (full), no softcapping, tied head",
    "phi3": "Phi3ForCausalLM: hidden 32, intermediate 64, 2 layers, 2 heads / 1 KV head (head_dim 16), fused "
            "qkv_proj and gate_up_proj, longrope (original 32, max 128, 8 short / 8 long factors), "
            "sliding_window 24, untied lm_head",
}


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import logging

    logging.getLogger("gguf").setLevel(logging.ERROR)

    OUT.mkdir(parents=True, exist_ok=True)
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

    # ---- 1. tokenizers --------------------------------------------------------------
    log("training tokenizers")
    bpe = {"gpt2": build_bpe("gpt2"), "qwen": build_bpe("qwen")}
    gemma_sp = train_gemma_spm()
    llama_sp = mf.train_spm()  # Phi-3 uses Llama 2's SentencePiece setup
    tok_kind = {"gpt2": "gpt2", "qwen2": "qwen", "qwen3": "qwen", "gemma": "gemma", "gemma2": "gemma",
                "gemma3": "gemma", "phi3": "phi3"}
    sp_bytes = {"gemma": gemma_sp, "phi3": llama_sp}

    # Trap merges fire only under the other family's pre-tokenizer.
    def with_pre(tok: Tokenizer, other: str) -> Tokenizer:
        t = Tokenizer.from_str(tok.to_str())
        t.normalizer = None
        if other == "gpt2":
            t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        else:
            t.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        return t

    probe_text = mf.CORPUS + "\n".join(mf.TOKENIZATION_TEXTS)
    for kind, traps, other in (("gpt2", GPT2_TRAP_MERGES, "qwen"), ("qwen", QWEN_TRAP_MERGES, "gpt2")):
        tok = bpe[kind]
        trap_ids = {tok.token_to_id(a + b) for a, b in traps}
        own = set(tok.encode(probe_text).ids)
        wrong = set(with_pre(tok, other).encode(probe_text).ids)
        check(not trap_ids & own and trap_ids <= wrong,
              f"{kind} BPE: trap merges fire only under the other pre-tokenizer")

    # ---- 2. HF folders --------------------------------------------------------------
    log("building models")
    info: dict[str, dict] = {}
    for fam in FAMILIES:
        folder = OUT / f"tiny-{fam}"
        folder.mkdir(parents=True)
        kind = tok_kind[fam]
        if kind in bpe:
            save_bpe_hf(bpe[kind], folder, kind)
        else:
            save_spm_hf(sp_bytes[kind], folder, kind)
        hf_tok = AutoTokenizer.from_pretrained(str(folder))
        vocab_size = len(hf_tok)
        ids = {"eot": hf_tok.convert_tokens_to_ids("<|endoftext|>")}
        cfg = family_config(fam, vocab_size, ids)
        model = seeded_model(fam, cfg)
        model.save_pretrained(str(folder))
        info[fam] = {"folder": folder, "vocab_size": vocab_size, "tokenizer": hf_tok, "model": model}
        with safetensors.safe_open(str(folder / "model.safetensors"), "np") as fh:
            keys = set(fh.keys())
        check(("lm_head.weight" in keys) == (not cfg.tie_word_embeddings),
              f"tiny-{fam}: lm_head.weight saved iff untied (tied={cfg.tie_word_embeddings})")

    # ---- 3. GGUF --------------------------------------------------------------------
    log("writing GGUF files")
    for fam in FAMILIES:
        write_family_gguf(fam, info[fam]["folder"], OUT / f"tiny-{fam}.gguf")
        md = gguf_metadata(OUT / f"tiny-{fam}.gguf")
        info[fam]["gguf_metadata"] = md
    # BPE vocabularies: the converter's get_vocab_base == make_fixtures' bpe_vocab_metadata,
    # merges included.
    for fam in ("gpt2", "qwen2"):
        tok = bpe[tok_kind[fam]]
        ref = mf.bpe_vocab_metadata(tok)  # the model's vocabulary; the specials are added tokens
        for a in json.loads(tok.to_str())["added_tokens"]:
            assert a["id"] == len(ref["tokens"]) and a["special"]
            ref["tokens"].append(a["content"])
            ref["types"].append(int(TokenType.CONTROL))
        r = GGUFReader(str(OUT / f"tiny-{fam}.gguf"))
        toks, merges = gguf_array(r, "tokenizer.ggml.tokens"), gguf_array(r, "tokenizer.ggml.merges")
        types = gguf_array(r, "tokenizer.ggml.token_type")
        check(toks == ref["tokens"] and types == ref["types"] and merges == ref["merges"],
              f"tiny-{fam}.gguf vocabulary == tokenizer.json (tokens, types, {len(merges)} merges)")
    for fam in ("gemma", "phi3"):
        sp = spm.SentencePieceProcessor(model_proto=sp_bytes[tok_kind[fam]])
        r = GGUFReader(str(OUT / f"tiny-{fam}.gguf"))
        toks, scores = gguf_array(r, "tokenizer.ggml.tokens"), gguf_array(r, "tokenizer.ggml.scores")
        n = sp.get_piece_size()
        same = all(toks[i] == sp.id_to_piece(i) for i in range(n))
        normal_scores = all(scores[i] == np.float32(sp.get_score(i)) for i in range(n)
                            if not sp.is_control(i) and not sp.is_unknown(i))
        check(same and normal_scores and len(toks) == info[fam]["vocab_size"],
              f"tiny-{fam}.gguf vocabulary == tokenizer.model pieces/scores ({len(toks)} tokens)")
        n_merged = sum(1 for i in range(n) if sp.is_unused(i) is False and not sp.is_byte(i)
                       and not sp.is_control(i) and not sp.is_unknown(i) and len(sp.id_to_piece(i)) > 1)
        check(n_merged >= 60, f"tiny-{fam}: the SentencePiece model has {n_merged} merged pieces")

    # ---- 4. goldens -----------------------------------------------------------------
    log("computing goldens")
    model_info: dict[str, dict] = {}
    windows: list[dict] = []
    tokenization: list[dict] = []
    gguf_tokenization: list[dict] = []
    disagreements: list[dict] = []

    for fam in FAMILIES:
        folder, hf_tok = info[fam]["folder"], info[fam]["tokenizer"]
        key = f"tiny-{fam}"
        model = mf.load_hf(folder)
        check(type(model).__name__ == HF_CLASSES[fam].__name__, f"{key} loads as {HF_CLASSES[fam].__name__}")
        # the saved folder reproduces the in-memory model exactly
        probe = hf_tok(mf.EVAL_TEXT)["input_ids"][:40]
        with torch.no_grad():
            a, b = model(torch.tensor([probe])).logits, info[fam]["model"](torch.tensor([probe])).logits
            d = float((a - b).abs().max())
        check(d == 0.0, f"{key}: reloaded folder == generated model")

        # -- tokenization
        texts = mf.TOKENIZATION_TEXTS + [MULTILINGUAL_TEXT]
        # (transformers 5 reports add_bos_token False for the Gemma tokenizer although its
        # post-processor adds <bos>; what counts is what encoding does.)
        with_sp, without = hf_tok("hello")["input_ids"], hf_tok("hello", add_special_tokens=False)["input_ids"]
        adds_bos = with_sp == [hf_tok.bos_token_id] + without
        bos = [hf_tok.bos_token_id] if adds_bos else []
        tcfg = json.loads((folder / "tokenizer_config.json").read_text())
        check(adds_bos == tcfg["add_bos_token"] and (adds_bos or with_sp == without),
              f"{key}: tokenizer {'adds' if adds_bos else 'does not add'} BOS, as tokenizer_config.json says")
        # The GGUF entries give what llama.cpp is built to produce from the embedded
        # vocabulary with parse_special=false (llama-perplexity's setting): for BPE,
        # tokenizer.json with special-token text kept as text (the file's tokens + merges
        # with its `pre` regex reproduce that, checked below); for SentencePiece, the
        # sentencepiece library on the tokenizer.model the vocabulary was copied from.
        plain = Tokenizer.from_file(str(folder / "tokenizer.json"))
        plain.encode_special_tokens = True
        sp = spm.SentencePieceProcessor(model_proto=sp_bytes[tok_kind[fam]]) if tok_kind[fam] in sp_bytes else None
        for text in texts:
            ids = hf_tok(text, add_special_tokens=False)["input_ids"]
            tokenization.append({"model": key, "tokenizer": f"{key}/tokenizer.json", "reference": "transformers",
                                 "parse_special": True, "text": text, "ids": ids})
            if sp is None:
                g_ids, ref = plain.encode(text, add_special_tokens=False).ids, f"tokenizers ({key}/tokenizer.json)"
            else:
                g_ids, ref = sp.encode(text), f"sentencepiece ({key}/tokenizer.model)"
                if g_ids != ids:
                    disagreements.append({"model": key, "text": text, "tokenizer_json_ids": ids,
                                          "sentencepiece_ids": g_ids})
            gguf_tokenization.append({"model": f"{key}.gguf", "tokenizer": f"{key}.gguf", "reference": ref,
                                      "parse_special": False, "text": text, "ids": g_ids})

        # -- windows
        E = hf_tok(mf.EVAL_TEXT, add_special_tokens=False)["input_ids"]
        M = hf_tok(MULTILINGUAL_TEXT, add_special_tokens=False)["input_ids"]
        doc = bos + E
        specs = [
            ("start-5", doc[:5], 1),
            ("start-28", doc[:28], 1),  # > the sliding windows (8, Phi-3's 24), <= Phi-3's 32
            ("start-32", doc[:32], 1),  # Phi-3: still the short factors
            ("start-33", doc[:33], 1),  # Phi-3: long factors
            ("start-96", doc[:96], 1),
            ("mid-40-from-20", E[100:140], 20),  # no BOS, scored in its second half
            ("multilingual", (bos + M)[:64], 1),
        ]
        fam_windows = []
        min_gap = math.inf
        for wname, ids, sf in specs:
            with torch.no_grad():
                lg = model(torch.tensor([ids])).logits[0].float()
            nll, am = window_scores(lg, ids, sf)
            top2 = torch.topk(lg[sf - 1:len(ids) - 1], 2, dim=-1).values
            min_gap = min(min_gap, float((top2[:, 0] - top2[:, 1]).min()))
            fam_windows.append({"model": key, "name": wname, "tokens": ids, "score_from": sf, "nll": nll, "argmax": am})
        windows += fam_windows
        check(min_gap > 1e-4, f"{key}: no argmax near-ties (smallest top-2 logit gap {min_gap:.1e})")
        allnll = [x for w in fam_windows for x in w["nll"]]
        check(float(np.std(allnll)) > 0.5, f"{key}: per-token NLLs vary (std {np.std(allnll):.2f})")

        # batched, right-padded, with attention mask == one by one
        pad_id = hf_tok.pad_token_id if hf_tok.pad_token_id is not None else 0
        if fam == "phi3":
            short = [w for w in fam_windows if len(w["tokens"]) <= PHI3_ORIG_CTX]
            long_ = [w for w in fam_windows if len(w["tokens"]) > PHI3_ORIG_CTX]
            bdiff = max(batched_max_diff(model, short, pad_id), batched_max_diff(model, long_, pad_id))
            mixed_diff = max(abs(x - y) for x, y in zip(
                run_window_batched_first(model, fam_windows, pad_id), fam_windows[0]["nll"]))
        else:
            bdiff = batched_max_diff(model, fam_windows, pad_id)
        check(bdiff < 1e-5, f"{key}: batched right-padded windows == one by one (max NLL diff {bdiff:.1e})")

        cfgd = json.loads((folder / "config.json").read_text())
        entry = {"format": "hf", "family": fam, "architecture": cfgd["architectures"][0],
                 "description": DESCRIPTIONS[fam], "tokenizer": f"{key}/tokenizer.json", "route": "transformers",
                 "adds_bos": adds_bos, "batched_padding_max_diff": bdiff, "min_argmax_logit_gap": min_gap}
        if fam == "phi3":
            entry["note"] = (
                "transformers picks LongRoPE factors per forward call from max(position_ids)+1, so in a "
                "right-padded batch every row gets the factors of the padded length: batching the 5-token "
                f"window with the 96-token one moves its NLLs by up to {mixed_diff:.3g}. The goldens are "
                "one-by-one (factors by each window's own length); batched_padding_max_diff is measured "
                "within the <=32 and >32 groups.")
        model_info[key] = entry

        # -- family-specific sanity
        if fam == "gemma2":
            with torch.no_grad():
                raw = model.lm_head(model.model(torch.tensor([doc[:96]])).last_hidden_state)
            check(float(raw.abs().max()) > 2 * FINAL_SOFTCAP,
                  f"gemma2 final softcap bites (max |raw logit| {float(raw.abs().max()):.1f} > 2*{FINAL_SOFTCAP})")
            peak = attention_score_peak(model, doc[:96])
            check(peak > ATTN_SOFTCAP, f"gemma2 attention softcap bites (max |score| {peak:.1f} > {ATTN_SOFTCAP})")
        if fam in ("gemma2", "gemma3", "phi3"):
            nowin = family_without_window(fam, folder)
            d = max(abs(x - y) for x, y in zip(run_window(nowin, doc[:96], 1)[0], fam_windows[4]["nll"]))
            check(d > 1e-3, f"{key}: the sliding window changes the 96-token window (max NLL diff {d:.3g})")
        if fam == "gemma3":  # both rope settings of the per-layer-type rope_parameters matter
            for lt, alt in (("full_attention", {"rope_type": "default", "rope_theta": 1_000_000.0}),
                            ("sliding_attention", {"rope_type": "default", "rope_theta": 1_000_000.0})):
                d = max(abs(x - y) for x, y in zip(run_window(with_rope(folder, lt, alt), doc[:96], 1)[0],
                                                   fam_windows[4]["nll"]))
                check(d > 1e-3, f"gemma3: {lt} rope parameters matter (replaced by {alt}: max NLL diff {d:.3g})")
        if fam == "phi3":
            d32 = fam_windows[2]["nll"]
            d33 = fam_windows[3]["nll"]
            check(max(abs(x - y) for x, y in zip(d32, d33)) > 1e-3,
                  "phi3: 32 and 33 token windows use different rope factors")

        # -- GGUF twin
        gkey = f"{key}.gguf"
        gpath = OUT / gkey
        gm = load_gguf_as_read(gpath, fam)
        gwins = []
        for w in fam_windows:
            nll, am = run_window(gm, w["tokens"], w["score_from"])
            gwins.append({"model": gkey, "name": w["name"], "tokens": w["tokens"], "score_from": w["score_from"],
                          "nll": nll, "argmax": am})
        gdiff = max(abs(x - y) for u, v in zip(gwins, fam_windows) for x, y in zip(u["nll"], v["nll"]))
        md = info[fam]["gguf_metadata"]
        gentry = {"format": "gguf", "family": fam, "architecture": md["general.architecture"], "weights_of": key,
                  "tokenizer": gkey, "route": "gguf-py-read+inverse-transforms+transformers",
                  "gguf_vs_hf_max_nll_diff": gdiff, "metadata": md}
        check(gdiff < 1e-5, f"{gkey} (read back as perplex reads it) == HF folder (max NLL diff {gdiff:.1e})")
        # transformers' own GGUF loader, where it knows the architecture: a cross-check of the writer
        try:
            tm = AutoModelForCausalLM.from_pretrained(str(OUT), gguf_file=gkey, dtype=torch.float32,
                                                      attn_implementation="eager").eval()
            tdiff = max(abs(x - y) for w, gw in zip(fam_windows, gwins)
                        for x, y in zip(run_window(tm, w["tokens"], w["score_from"])[0], gw["nll"]))
            gentry["transformers_gguf"] = f"loads; max NLL diff vs this file's windows {tdiff:.3g}"
            if fam in ("gpt2", "qwen2", "qwen3"):
                check(tdiff < 1e-5, f"{gkey}: transformers' GGUF loader agrees (max NLL diff {tdiff:.1e})")
        except Exception as e:  # noqa: BLE001 - informational only
            gentry["transformers_gguf"] = TRANSFORMERS_GGUF_GAPS.get(
                fam, f"does not load: {type(e).__name__}: {str(e)[:160]}")
        model_info[gkey] = gentry
        windows += gwins

        # -- GGUF-embedded tokenizer (BPE): rebuild it from the file's tokens + merges with the
        # pre-tokenizer its `pre` names, and compare with tokenizer.json on plain text.
        if tok_kind[fam] in bpe:
            r = GGUFReader(str(gpath))
            toks = gguf_array(r, "tokenizer.ggml.tokens")
            merges = [tuple(m.split(" ")) for m in gguf_array(r, "tokenizer.ggml.merges")]
            pre = r.fields["tokenizer.ggml.pre"].contents()
            rebuilt = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(toks)}, merges=merges))
            rebuilt = with_pre(rebuilt, "gpt2" if pre == "gpt-2" else "qwen")
            plain = Tokenizer.from_file(str(folder / "tokenizer.json"))
            plain.encode_special_tokens = True
            same = all(rebuilt.encode(t, add_special_tokens=False).ids == plain.encode(t, add_special_tokens=False).ids
                       for t in texts)
            check(same, f"{gkey}: tokens+merges with pre '{pre}' tokenize like tokenizer.json")
        # transformers' conversion of the GGUF vocabulary (informational)
        try:
            gt = AutoTokenizer.from_pretrained(str(OUT), gguf_file=gkey)
            for text in texts:
                a = gt(text, add_special_tokens=False)["input_ids"]
                b = hf_tok(text, add_special_tokens=False)["input_ids"]
                if a != b:
                    disagreements.append({"model": gkey, "text": text, "transformers_gguf_ids": a,
                                          "tokenizer_json_ids": b})
        except Exception as e:  # noqa: BLE001
            disagreements.append({"model": gkey, "text": None,
                                  "transformers_gguf_error": f"{type(e).__name__}: {e}"[:200]})

        model_info[key]["config"] = {k: v for k, v in cfgd.items()
                                     if k not in ("architectures", "transformers_version")}

    # ---- write ------------------------------------------------------------------------
    out = {
        "generator": "scripts/make_family_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "sentencepiece": spm.__version__,
            "gguf": mf._dist_version("gguf"),
            "numpy": np.__version__,
            "safetensors": safetensors.__version__,
        },
        "models": model_info,
        "windows": windows,
        "tokenization": tokenization,
        "gguf_tokenization": gguf_tokenization,
        "tokenizer_disagreements": disagreements,
    }
    (OUT / "families.json").write_text(mf.fixed_json(out) + "\n", encoding="utf-8")

    print("\n".join(checks))
    total = sum(p.stat().st_size for n in OWNED for p in ([OUT / n] if (OUT / n).is_file() else (OUT / n).rglob("*")))
    log(f"wrote {len(OWNED)} fixtures, {total / 1e6:.2f} MB; {len(disagreements)} tokenizer disagreements recorded")


@torch.no_grad()
def run_window_batched_first(model, wins: list[dict], pad_id: int) -> list[float]:
    """NLLs of the first window when it is batched (right-padded) with all the others."""
    n = max(len(w["tokens"]) for w in wins)
    ids = torch.full((len(wins), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(wins), n), dtype=torch.long)
    for r, w in enumerate(wins):
        ids[r, :len(w["tokens"])] = torch.tensor(w["tokens"])
        mask[r, :len(w["tokens"])] = 1
    lg = model(input_ids=ids, attention_mask=mask).logits[0].float()
    w = wins[0]
    return window_scores(lg[:len(w["tokens"])], w["tokens"], w["score_from"])[0]


@torch.no_grad()
def attention_score_peak(model, ids: list[int]) -> float:
    """Largest |q.k * scale| before soft-capping in any layer (hooks the eager attention)."""
    import transformers.models.gemma2.modeling_gemma2 as g2

    peak = 0.0
    orig = g2.eager_attention_forward

    def spy(module, query, key, value, attention_mask, **kw):
        nonlocal peak
        k = g2.repeat_kv(key, module.num_key_value_groups)
        s = torch.matmul(query, k.transpose(2, 3)) * kw.get("scaling", module.head_dim ** -0.5)
        peak = max(peak, float(s.abs().max()))
        return orig(module, query, key, value, attention_mask, **kw)

    g2.eager_attention_forward = spy
    try:
        model(torch.tensor([ids]))
    finally:
        g2.eager_attention_forward = orig
    return peak


def with_rope(folder: Path, layer_type: str, rope: dict):
    """The gemma3 folder's model with the RoPE parameters of one layer type replaced."""
    cfg = AutoConfig.from_pretrained(str(folder))
    cfg.rope_parameters = {**cfg.rope_parameters, layer_type: rope}
    return AutoModelForCausalLM.from_pretrained(str(folder), config=cfg, dtype=torch.float32,
                                                attn_implementation="eager").eval()


def family_without_window(family: str, folder: Path):
    """The folder's model with its sliding window made wider than any window here."""
    cfg = AutoConfig.from_pretrained(str(folder))
    cfg.sliding_window = None if family == "phi3" else 4096
    return AutoModelForCausalLM.from_pretrained(str(folder), config=cfg, dtype=torch.float32,
                                                attn_implementation="eager").eval()


if __name__ == "__main__":
    sys.exit(main())
