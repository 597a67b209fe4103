#!/usr/bin/env python3
"""Generate perplex's small, committed test fixtures and their golden numbers.

Everything written lands in ``tests/fixtures/`` (see ``tests/fixtures/README.md``):

* a byte-level BPE tokenizer (SmolLM2-style pre-tokenizer, adds BOS) trained here on a
  built-in English text;
* ``tiny-llama*``: tiny, randomly initialised (seeded) Llama models in the Hugging Face
  layout (f32, f16, bf16, sharded, and a tied-embedding model with llama3 RoPE scaling);
* GGUF files of the same weights in llama.cpp's layout (f32, f16, Q8_0, Q4_0, Q4_1,
  tied f32 with ``rope_freqs``), a K-quant GGUF and a SentencePiece-vocabulary GGUF;
* ``goldens.json``: token ids, per-token negative log-likelihoods, argmaxes and whole
  perplexity-protocol results, all computed by transformers in float32.

The models are not trained: their weights are seeded random numbers, large enough that
per-token predictions differ clearly from a uniform distribution. That is all a numeric
test of a forward pass needs, and it keeps every file tiny.

Run through ``scripts/make-fixtures.sh`` (which pins the package versions), or directly
with an interpreter that has the packages of ``scripts/requirements-fixtures.txt``:

    python scripts/make_fixtures.py

The script is deterministic: every random number comes from an explicitly seeded
generator, training runs single-threaded, and torch runs on one CPU thread. Files
written by the same package versions on the same kind of CPU are byte-identical.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws progress bars

import io
import json
import math
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

import gguf
import safetensors
import sentencepiece as spm
import tokenizers
import transformers
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFWriter, LlamaFileType, TokenType
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizerFast,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures"

# Everything this script owns under tests/fixtures/. Only these are deleted before a run,
# so anything else that lives there is left alone.
OWNED = [
    "tiny-llama",
    "tiny-llama-f16",
    "tiny-llama-bf16",
    "tiny-llama-sharded",
    "tiny-llama-tied",
    "tiny-llama-spm-hf",
    "tiny-llama-f32.gguf",
    "tiny-llama-f16.gguf",
    "tiny-llama-q8_0.gguf",
    "tiny-llama-q4_0.gguf",
    "tiny-llama-q4_1.gguf",
    "tiny-llama-tied-f32.gguf",
    "tiny-llama-kquant.gguf",
    "tiny-llama-spm.gguf",
    "goldens.json",
]

# Seeds, one per independent random thing, so that changing one fixture never shifts
# another's numbers.
SEED_TINY = 1001  # tiny-llama and all its re-encodings (f16, bf16, sharded, GGUFs)
SEED_TIED = 2002  # tiny-llama-tied
SEED_KQUANT = 3003  # the K-quant GGUF's random blocks
SEED_SPM = 4004  # the SentencePiece-vocabulary model

INIT_STD = 0.2  # std of every weight matrix: predictions clearly non-uniform at hidden 64
NORM_STD = 0.1  # RMSNorm weights are 1 + N(0, NORM_STD): a reader that drops them fails
KQUANT_STD = 0.08  # target std of the K-quant model's dequantized matrices (hidden 256)

BOS_ID, EOS_ID, EOT_ID = 1, 2, 0
DIGIT_TRAP_MERGES = [("2", "0"), ("Ġ", "1")]  # see build_bpe_tokenizer

# ---------------------------------------------------------------------------------------
# Text. Written for this file. The digits, punctuation, non-ASCII letters, the em dash and
# the CJK word are there so that the tokenizers' digit splitting, byte-level alphabet and
# (for SentencePiece) byte fallback are all exercised.
# ---------------------------------------------------------------------------------------

PARAGRAPHS = [
    "The bakery on Mill Street opens at 6:30 every morning, and by 7 o'clock the line "
    "already reaches the corner. Its owner, a patient man named Tomas, bakes 240 loaves "
    "a day: rye, spelt, and a sourdough he has fed since 1998. He says the starter is "
    "older than his apprentice, which is true, and wiser, which is debatable.",
    "Across the square there is a small café with four tables and a piano nobody plays. "
    "The menu lists coffee for 2.50, tea for 2.10, and \"the usual\" for whatever the "
    "regulars decide it costs that week. A naïve visitor once asked for a receipt; the "
    "waiter laughed so hard that he had to sit down.",
    "On Tuesdays the market fills the square. Farmers bring apples, pears, honey, eggs, "
    "and cheese; a fisherman brings 12 crates of herring packed in ice. Prices are "
    "written in chalk — and erased, and rewritten — as the morning goes on. By noon the "
    "stalls are folded, the stones are hosed down, and the pigeons return to inspect "
    "the crumbs.",
    "The town library keeps a shelf of travel books. One of them, a guide to Japan "
    "(日本), has a cover so faded that the title is barely readable. Children borrow it "
    "anyway, because the maps inside show trains, temples, and mountains with snow on "
    "top. The librarian stamps each card with the date: 03/14/2024, 11/02/2025, and so on.",
    "In winter the river freezes near the old mill. People skate in the afternoon, "
    "drink hot chocolate at 4 p.m., and walk home before dark. The temperature can fall "
    "to -15 degrees, yet nobody complains too much; they simply wear two scarves instead "
    "of one. \"It builds character,\" says Tomas, handing out warm rolls at no charge.",
]
CORPUS = "\n\n".join(PARAGRAPHS) + "\n"  # tokenizer training text

# The document the perplexity protocols run over (324 BPE tokens, ~5 llama.cpp chunks of 64).
EVAL_TEXT = PARAGRAPHS[1] + "\n\n" + PARAGRAPHS[2]

# Three short documents of different lengths for the per-text (evaluate-style) protocol;
# the last is longer than the truncation length so truncation is visible.
SHORT_TEXTS = [
    "Good morning, Tomas.",
    "The river freezes in winter, and people skate near the old mill.",
    PARAGRAPHS[3],
]

# Strings for the tokenizer goldens: edge cases first, then a whole paragraph.
TOKENIZATION_TEXTS = [
    "Hello world",
    "The bakery opens at 6:30; a loaf costs 2.50 (or 3.10 with seeds)!",
    "Call 555-0134, pay $1,299.99 — 15% off until 31/12/2025.",
    "café, naïve, 日本",
    "Unseen: Straße, Ωmega, 🙂.",
    "  two leading spaces",
    "trailing space ",
    "tabs\tand\nnew lines\n\n  indented",
    " ",
    "",
    "before<|endoftext|>after <s> and </s>",
    PARAGRAPHS[2],
]

# Text for the "unicode-digits" window.
WINDOW_EXTRA_TEXT = "Prices: 2.50 and 2.10 — café, naïve 日本, 03/14/2024!"

# Protocol parameters.
TRUNCATE_M = 64
CHUNK_C = 48
SLIDE_MAX, SLIDE_STRIDE = 64, 16
LLAMACPP_NCTX = 64

# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, flush=True)


def fixed_json(obj, indent: int = 0) -> str:
    """JSON with structure indented but lists of scalars on one line: compact, diffable.

    Floats go out via repr(), the shortest text that reads back to the same double; since
    the values are float32 results widened to double, that is their exact value.
    """
    pad = " " * indent
    inner = " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {fixed_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(x, (dict, list)) for x in obj):
            return "[" + ", ".join(fixed_json(x) for x in obj) + "]"
        items = [inner + fixed_json(x, indent + 1) for x in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError("non-finite float in goldens")
        return repr(obj)
    return json.dumps(obj, ensure_ascii=False)


# ---------------------------------------------------------------------------------------
# 1. Tokenizers
# ---------------------------------------------------------------------------------------


def build_bpe_tokenizer() -> Tokenizer:
    """Byte-level BPE like SmolLM2's: digits split one by one, then GPT-2's byte-level regex.

    Ids 0..2 are the special tokens, 3..258 the 256 byte symbols (the trainer sorts its
    initial alphabet), then 123 learned merges and two extra ones, 384 in all.

    The two extra merges, "2"+"0" and "Ġ"+"1", can never fire under this pre-tokenizer
    (every digit is its own piece), so they change nothing for a faithful implementation.
    They are there as a trap: a tokenizer that drops the digit split (as transformers'
    GGUF conversion of a "smollm" vocabulary does) merges them and gets different ids.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=382,
        special_tokens=["<|endoftext|>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is representable
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS], trainer=trainer)
    data = json.loads(tok.to_str())
    vocab, merges = data["model"]["vocab"], data["model"]["merges"]
    for a, b in DIGIT_TRAP_MERGES:
        assert a + b not in vocab
        vocab[a + b] = len(vocab)
        merges.append([a, b])  # last, i.e. lowest priority
    tok = Tokenizer.from_str(json.dumps(data))
    # "Adds BOS": single sequences get <s> in front, as Llama-family tokenizers do.
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A",
        pair="<s> $A <s>:1 $B:1",
        special_tokens=[("<s>", BOS_ID)],
    )
    assert tok.token_to_id("<|endoftext|>") == EOT_ID
    assert tok.token_to_id("<s>") == BOS_ID and tok.token_to_id("</s>") == EOS_ID
    return tok


def save_bpe_tokenizer(tok: Tokenizer, folder: Path) -> None:
    """tokenizer.json + tokenizer_config.json, as a transformers fast tokenizer saves them."""
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<|endoftext|>",
        model_max_length=256,
    )
    hf.save_pretrained(str(folder))
    # transformers 5 leaves the add_*_token flags out of the config; write them, since the
    # perplexity tool reads add_bos_token to decide whether to prepend BOS. The class name
    # transformers 4 knows keeps the folder loadable by either major version.
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"] = True
    cfg["add_eos_token"] = False
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def train_spm() -> bytes:
    """A tiny SentencePiece BPE model shaped like Llama 1/2's tokenizer.

    Like Llama's: identity normalisation (no NFKC, no whitespace squeezing), a dummy
    prefix space, digits split, byte fallback, <unk>=0 <s>=1 </s>=2. Ids 3..258 are the
    <0xNN> byte pieces. character_coverage < 1 leaves the rarest characters (ï, 日, 本)
    out of the vocabulary so that they go through byte fallback.
    """
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.split("\n")),
        model_writer=buf,
        model_type="bpe",
        vocab_size=400,
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        character_coverage=0.998,
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


# ---------------------------------------------------------------------------------------
# 2. Hugging Face models
# ---------------------------------------------------------------------------------------


def tiny_config(vocab_size: int, **overrides) -> LlamaConfig:
    kw = dict(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # GQA: 2 query heads share each K/V head
        vocab_size=vocab_size,
        max_position_embeddings=256,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        initializer_range=INIT_STD,
    )
    kw.update(overrides)
    return LlamaConfig(**kw)


@torch.no_grad()
def seeded_llama(config: LlamaConfig, seed: int, std: float = INIT_STD) -> LlamaForCausalLM:
    """A LlamaForCausalLM whose weights are drawn here, not by transformers' initialiser.

    Drawing them ourselves, in parameter order from one seeded generator, keeps the
    weights independent of how a transformers version initialises modules.
    """
    model = LlamaForCausalLM(config).float().eval()
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():  # a tied lm_head is listed once, as embed
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        if p.ndim == 1:  # RMSNorm weights
            p.copy_(1.0 + NORM_STD * noise)
        else:
            p.copy_(std * noise)
    return model


def save_hf_folder(model: LlamaForCausalLM, tok: Tokenizer, folder: Path, **save_kw) -> None:
    model.save_pretrained(str(folder), **save_kw)
    save_bpe_tokenizer(tok, folder)


def hf_state_numpy(model: LlamaForCausalLM) -> dict[str, np.ndarray]:
    return {k: v.detach().float().cpu().numpy().copy() for k, v in model.state_dict().items()}


def rewrite_config_legacy_rope(folder: Path) -> None:
    """Rewrite config.json with `rope_theta` + `rope_scaling` at top level.

    transformers 5 saves RoPE settings as one `rope_parameters` object; the Llama 3.x
    checkpoints on the Hub (and anything saved by transformers 4) use the older two keys.
    tiny-llama keeps the new form and tiny-llama-tied gets the old one, so a config reader
    is tested on both.
    """
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    cfg["rope_scaling"] = rp  # rope_type, factor, low/high_freq_factor, original_max_...
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------
# 3. GGUF
# ---------------------------------------------------------------------------------------

HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER_TO_GGUF = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf: str) -> str:
    if hf in HF_TO_GGUF:
        return HF_TO_GGUF[hf]
    parts = hf.split(".")  # model.layers.N.<rest>
    assert parts[:2] == ["model", "layers"], hf
    return f"blk.{parts[2]}.{LAYER_TO_GGUF['.'.join(parts[3:])]}"


def hf_name(gg: str) -> str:
    inv = {v: k for k, v in HF_TO_GGUF.items()}
    if gg in inv:
        return inv[gg]
    _, n, *rest = gg.split(".")
    inv_l = {v: k for k, v in LAYER_TO_GGUF.items()}
    return f"model.layers.{n}.{inv_l['.'.join(rest)]}"


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half row order -> GGML's adjacent-pair order, as convert_hf_to_gguf does.

    HF's RoPE rotates dimension i with i + d/2 inside each head; GGML's "normal" RoPE
    rotates 2i with 2i+1. Reordering the rows of W_q and W_k makes the two agree. For K
    the head count is the number of K/V heads.
    """
    rows, cols = w.shape
    return w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def llama3_rope_factors(head_dim: int, base: float, factor: float, low_freq_factor: float,
                        high_freq_factor: float, original_ctx: int) -> np.ndarray:
    """llama.cpp's `rope_freqs.weight` for llama3 scaling: one divisor per frequency.

    ggml computes theta_i = pos * base^(-2i/d) / rope_freqs[i]; these divisors reproduce
    HF's llama3 inv_freq. (convert_hf_to_gguf reads original_max_position_embeddings from
    the top level of config.json, defaulting to 8192, where HF reads it from rope_scaling;
    here it is taken from rope_scaling, so the file matches what HF computes.)
    """
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    low_wavelen = original_ctx / low_freq_factor
    high_wavelen = original_ctx / high_freq_factor
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (original_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def bpe_vocab_metadata(tok: Tokenizer) -> dict:
    """Vocabulary in llama.cpp's "gpt2" form: byte-level strings, merges as "a b"."""
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens)
    special = {a["id"] for a in data["added_tokens"] if a["special"]}
    types = [int(TokenType.CONTROL) if i in special else int(TokenType.NORMAL) for i in range(len(tokens))]
    merges = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    return {"tokens": tokens, "types": types, "merges": merges}


def spm_vocab_metadata(sp: spm.SentencePieceProcessor) -> dict:
    """Vocabulary in llama.cpp's "llama" (SentencePiece) form: pieces, scores, types."""
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            t = TokenType.UNKNOWN
        elif sp.is_control(i):
            t = TokenType.CONTROL
        elif sp.is_byte(i):
            t = TokenType.BYTE
        elif sp.is_unused(i):
            t = TokenType.UNUSED
        else:
            t = TokenType.NORMAL
        types.append(int(t))
    return {"tokens": tokens, "scores": scores, "types": types}


def write_gguf(path: Path, name: str, cfg: LlamaConfig, tensors: dict[str, np.ndarray],
               tensor_types: dict[str, QT], file_type: LlamaFileType, vocab: dict, *,
               spm_vocab: bool = False, rope_freqs: np.ndarray | None = None,
               raw_blocks: dict[str, np.ndarray] | None = None) -> None:
    """Write a llama-architecture GGUF the way convert_hf_to_gguf lays one out.

    `tensors` are the HF weights (float32, HF names); q/k are permuted here. A tensor in
    `raw_blocks` is written as those ready-made quantized bytes instead.
    """
    raw_blocks = raw_blocks or {}
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    w = GGUFWriter(str(path), arch="llama")
    w.add_name(name)
    w.add_file_type(int(file_type))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_vocab_size(cfg.vocab_size)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_rope_dimension_count(head_dim)
    # llama.cpp has no "llama3" rope.scaling.type: llama3 scaling lives only in the
    # rope_freqs.weight tensor, so no rope.scaling.* keys are written.

    if spm_vocab:
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(vocab["tokens"])
        w.add_token_scores(vocab["scores"])
        w.add_token_types(vocab["types"])
        w.add_bos_token_id(BOS_ID)
        w.add_eos_token_id(EOS_ID)
        w.add_unk_token_id(0)
        w.add_add_space_prefix(True)
    else:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("smollm")
        w.add_token_list(vocab["tokens"])
        w.add_token_types(vocab["types"])
        w.add_token_merges(vocab["merges"])
        w.add_bos_token_id(BOS_ID)
        w.add_eos_token_id(EOS_ID)
        w.add_pad_token_id(EOT_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    # Tensor order as the converter writes a llama: embeddings, rope factors, the blocks,
    # then the output norm and head.
    order = ["model.embed_tokens.weight"]
    for i in range(cfg.num_hidden_layers):
        for k in LAYER_TO_GGUF:
            order.append(f"model.layers.{i}.{k}")
    order += ["model.norm.weight", "lm_head.weight"]
    if cfg.tie_word_embeddings:
        order.remove("lm_head.weight")  # tied: llama.cpp reuses token_embd, no output.weight

    def add(gname: str, arr: np.ndarray, qtype: QT) -> None:
        if qtype == QT.F32:
            w.add_tensor(gname, arr.astype(np.float32))
        elif qtype == QT.F16:
            w.add_tensor(gname, arr.astype(np.float16))
        else:
            w.add_tensor(gname, gguf.quants.quantize(arr.astype(np.float32), qtype), raw_dtype=qtype)

    for hname in order:
        gname = gguf_name(hname)
        if gname in raw_blocks:
            qtype = tensor_types[gname]
            w.add_tensor(gname, raw_blocks[gname], raw_dtype=qtype)
        else:
            arr = tensors[hname]
            if gname.endswith("attn_q.weight"):
                arr = permute_qk(arr, cfg.num_attention_heads)
            elif gname.endswith("attn_k.weight"):
                arr = permute_qk(arr, cfg.num_key_value_heads)
            add(gname, arr, tensor_types.get(gname, QT.F32))
        if hname == "model.embed_tokens.weight" and rope_freqs is not None:
            w.add_tensor("rope_freqs.weight", rope_freqs.astype(np.float32))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def types_for(cfg: LlamaConfig, matrix: QT, embd: QT | None = None) -> dict[str, QT]:
    """Every 2-D weight in `matrix` (token_embd in `embd` if given); norms stay F32."""
    t = {"token_embd.weight": embd or matrix, "output.weight": matrix}
    for i in range(cfg.num_hidden_layers):
        for g in LAYER_TO_GGUF.values():
            t[f"blk.{i}.{g}"] = QT.F32 if g.endswith("norm.weight") else matrix
    return t


# --- K-quants: gguf-py can dequantize Q2_K..Q6_K but not quantize them, so blocks are
# built here: random bytes for every packed field (any bit pattern is a valid block), and
# the fp16 super-block scales d / dmin set so the weights have a sane size. Byte layouts
# of ggml's block_qN_K structs (QK_K = 256 weights per block):
#   Q2_K  84 B: scales[16] qs[64] d dmin
#   Q3_K 110 B: hmask[32] qs[64] scales[12] d
#   Q4_K 144 B: d dmin scales[12] qs[128]
#   Q5_K 176 B: d dmin scales[12] qh[32] qs[128]
#   Q6_K 210 B: ql[128] qh[64] scales[16](int8) d
KQUANT_LAYOUT = {
    # type: (block bytes, offset of d, offset of dmin or None, dmin/d that centres weights)
    QT.Q2_K: (84, 80, 82, 1.5),  # E[scale]*E[q]/E[min] = 7.5*1.5/7.5
    QT.Q3_K: (110, 108, None, 0.0),
    QT.Q4_K: (144, 0, 2, 7.5),  # 31.5*7.5/31.5
    QT.Q5_K: (176, 0, 2, 15.5),  # 31.5*15.5/31.5
    QT.Q6_K: (210, 208, None, 0.0),
}


def random_kquant(rows: int, cols: int, qtype: QT, rng: np.random.Generator, std: float) -> np.ndarray:
    size, d_off, dmin_off, dmin_ratio = KQUANT_LAYOUT[qtype]
    assert gguf.GGML_QUANT_SIZES[qtype] == (256, size)
    assert cols % 256 == 0
    n_blocks = rows * cols // 256
    blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    jitter = rng.uniform(0.5, 1.5, size=(n_blocks, 2))  # per-block scales differ

    def set_scales(scale: float) -> None:
        d = (scale * jitter[:, 0]).astype(np.float16)
        blocks[:, d_off:d_off + 2] = d.view(np.uint8).reshape(n_blocks, 2)
        if dmin_off is not None:
            dmin = (scale * dmin_ratio * jitter[:, 1]).astype(np.float16)
            blocks[:, dmin_off:dmin_off + 2] = dmin.view(np.uint8).reshape(n_blocks, 2)

    set_scales(1e-3)  # weights are linear in (d, dmin): measure, then rescale
    probe = gguf.quants.dequantize(blocks.reshape(rows, -1), qtype)
    set_scales(1e-3 * std / float(probe.std()))
    return blocks.reshape(rows, cols // 256 * size)


def _f16(b: bytes, off: int) -> float:
    return float(np.frombuffer(b, dtype=np.float16, count=1, offset=off)[0])


def _i8(x: int) -> int:
    return x - 256 if x > 127 else x


def _scale_min_k4(j: int, q: bytes) -> tuple[int, int]:
    """ggml's get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K/Q5_K block."""
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def ggml_dequant_block(qtype: QT, b: bytes) -> list[float]:
    """One block, decoded with plain loops written after ggml's dequantize_row_* in C.

    Used only to cross-check gguf-py's vectorised dequantisation (which transformers uses
    to make the goldens) on the blocks in these files, so that the goldens are what
    llama.cpp would decode too.
    """
    y: list[float] = []
    if qtype == QT.Q8_0:
        d = _f16(b, 0)
        return [d * _i8(b[2 + j]) for j in range(32)]
    if qtype in (QT.Q4_0, QT.Q4_1):
        d = _f16(b, 0)
        m = _f16(b, 2) if qtype == QT.Q4_1 else None
        qs = b[4:] if m is not None else b[2:]
        lo = [(q & 0xF) for q in qs]
        hi = [(q >> 4) for q in qs]
        if m is None:
            return [d * (x - 8) for x in lo + hi]
        return [d * x + m for x in lo + hi]
    if qtype == QT.Q2_K:
        scales, qs, d, dmin = b[0:16], b[16:80], _f16(b, 80), _f16(b, 82)
        i = 0
        for n in (0, 32):
            for shift in (0, 2, 4, 6):
                for half in (0, 16):
                    sc = scales[i]
                    i += 1
                    dl, ml = d * (sc & 0xF), dmin * (sc >> 4)
                    y += [dl * ((qs[n + half + l] >> shift) & 3) - ml for l in range(16)]
        return y
    if qtype == QT.Q3_K:
        hm, qs, raw, d = b[0:32], b[32:96], b[96:108], _f16(b, 108)
        aux = [int.from_bytes(raw[4 * k:4 * k + 4], "little") for k in range(3)]
        k1, k2 = 0x03030303, 0x0F0F0F0F
        tmp = aux[2]
        a = [
            (aux[0] & k2) | (((tmp >> 0) & k1) << 4),
            (aux[1] & k2) | (((tmp >> 2) & k1) << 4),
            ((aux[0] >> 4) & k2) | (((tmp >> 4) & k1) << 4),
            ((aux[1] >> 4) & k2) | (((tmp >> 6) & k1) << 4),
        ]
        scales = [_i8((a[k // 4] >> (8 * (k % 4))) & 0xFF) for k in range(16)]
        i, mbit = 0, 1
        for n in (0, 32):
            for shift in (0, 2, 4, 6):
                for half in (0, 16):
                    dl = d * (scales[i] - 32)
                    i += 1
                    y += [dl * (((qs[n + half + l] >> shift) & 3) - (0 if hm[half + l] & mbit else 4))
                          for l in range(16)]
                mbit <<= 1
        return y
    if qtype in (QT.Q4_K, QT.Q5_K):
        d, dmin, sc = _f16(b, 0), _f16(b, 2), b[4:16]
        qh = b[16:48] if qtype == QT.Q5_K else None
        ql = b[48:176] if qtype == QT.Q5_K else b[16:144]
        u1, u2 = 1, 2
        for j in range(4):
            s1, m1 = _scale_min_k4(2 * j, sc)
            s2, m2 = _scale_min_k4(2 * j + 1, sc)
            q = ql[32 * j:32 * j + 32]
            h1 = [16 if qh and (qh[l] & u1) else 0 for l in range(32)]
            h2 = [16 if qh and (qh[l] & u2) else 0 for l in range(32)]
            y += [d * s1 * ((q[l] & 0xF) + h1[l]) - dmin * m1 for l in range(32)]
            y += [d * s2 * ((q[l] >> 4) + h2[l]) - dmin * m2 for l in range(32)]
            u1, u2 = u1 << 2, u2 << 2
        return y
    if qtype == QT.Q6_K:
        ql, qh, sc, d = b[0:128], b[128:192], [_i8(x) for x in b[192:208]], _f16(b, 208)
        y = [0.0] * 256
        for n in range(2):
            L, H, S, Y = ql[64 * n:], qh[32 * n:], sc[8 * n:], 128 * n
            for l in range(32):
                k = l // 16
                q1 = ((L[l] & 0xF) | (((H[l] >> 0) & 3) << 4)) - 32
                q2 = ((L[l + 32] & 0xF) | (((H[l] >> 2) & 3) << 4)) - 32
                q3 = ((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32
                q4 = ((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32
                y[Y + l], y[Y + l + 32] = d * S[k] * q1, d * S[k + 2] * q2
                y[Y + l + 64], y[Y + l + 96] = d * S[k + 4] * q3, d * S[k + 6] * q4
        return y
    raise NotImplementedError(qtype)


def crosscheck_dequant(path: Path, blocks_per_tensor: int = 6) -> float:
    """Max |gguf-py - ggml_dequant_block| over a few blocks of every quantized tensor."""
    worst = 0.0
    for t in GGUFReader(str(path)).tensors:
        if t.tensor_type in (QT.F32, QT.F16):
            continue
        n_el, n_by = gguf.GGML_QUANT_SIZES[t.tensor_type]
        raw = np.asarray(t.data).reshape(-1, n_by)
        ours = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1, n_el)
        picks = np.linspace(0, raw.shape[0] - 1, blocks_per_tensor).astype(int)
        for k in picks:
            ref = np.array(ggml_dequant_block(t.tensor_type, raw[k].tobytes()), dtype=np.float64)
            worst = max(worst, float(np.max(np.abs(ref - ours[k]) / (1e-3 + np.abs(ref)))))
    return worst


# ---------------------------------------------------------------------------------------
# 4. Reference computation
# ---------------------------------------------------------------------------------------


def load_hf(folder: Path) -> LlamaForCausalLM:
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager").eval()


def load_gguf_transformers(path: Path) -> LlamaForCausalLM:
    return AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()


def gguf_fields(reader: GGUFReader) -> dict:
    out = {}
    for k, f in reader.fields.items():
        if k.startswith("tokenizer.ggml.") and k not in ("tokenizer.ggml.model",):
            continue  # arrays of tokens etc. are not needed here
        try:
            v = f.contents()
        except Exception:  # noqa: BLE001 - unreadable metadata is just skipped
            continue
        out[k] = v
    out["n_tokens"] = len(reader.fields["tokenizer.ggml.tokens"].data)
    return out


@torch.no_grad()
def load_gguf_fallback(path: Path) -> LlamaForCausalLM:
    """Our own GGUF route: gguf-py dequantize, undo the q/k permutation, load into HF.

    A `rope_freqs.weight` tensor (llama3 scaling in llama.cpp) divides the plain RoPE
    inverse frequencies, as ggml does; transformers' own GGUF loader ignores that tensor.
    """
    reader = GGUFReader(str(path))
    md = gguf_fields(reader)
    a = md["general.architecture"]
    names = [t.name for t in reader.tensors]
    cfg = LlamaConfig(
        hidden_size=md[f"{a}.embedding_length"],
        intermediate_size=md[f"{a}.feed_forward_length"],
        num_hidden_layers=md[f"{a}.block_count"],
        num_attention_heads=md[f"{a}.attention.head_count"],
        num_key_value_heads=md[f"{a}.attention.head_count_kv"],
        head_dim=md[f"{a}.rope.dimension_count"],
        vocab_size=md.get(f"{a}.vocab_size", md["n_tokens"]),
        max_position_embeddings=md[f"{a}.context_length"],
        rms_norm_eps=float(md[f"{a}.attention.layer_norm_rms_epsilon"]),
        rope_theta=float(md[f"{a}.rope.freq_base"]),
        tie_word_embeddings="output.weight" not in names,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        attn_implementation="eager",
    )
    model = LlamaForCausalLM(cfg).float().eval()
    sd = {}
    rope_freqs = None
    for t in reader.tensors:
        arr = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        arr = arr.reshape(tuple(int(x) for x in reversed(t.shape.tolist())))
        if t.name == "rope_freqs.weight":
            rope_freqs = torch.from_numpy(arr.copy())
            continue
        if t.name.endswith("attn_q.weight"):
            arr = unpermute_qk(arr, cfg.num_attention_heads)
        elif t.name.endswith("attn_k.weight"):
            arr = unpermute_qk(arr, cfg.num_key_value_heads)
        sd[hf_name(t.name)] = torch.from_numpy(arr.copy())
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= ({"lm_head.weight"} if cfg.tie_word_embeddings else set()), missing
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if rope_freqs is not None:
        rot = model.model.rotary_emb
        rot.inv_freq = rot.inv_freq / rope_freqs
        rot.original_inv_freq = rot.inv_freq.clone()
    return model


@torch.no_grad()
def logits(model, ids: list[int]) -> torch.Tensor:
    return model(torch.tensor([ids], dtype=torch.long)).logits[0].float()


@torch.no_grad()
def score_window(model, ids: list[int], score_from: int) -> tuple[list[float], list[int]]:
    """NLL of ids[i] given ids[:i] for i in [score_from, len): -log_softmax(logits[i-1])[ids[i]]."""
    assert 1 <= score_from <= len(ids)
    lg = logits(model, ids)
    lp = torch.log_softmax(lg, dim=-1)
    nll = [float(-lp[i - 1, ids[i]]) for i in range(score_from, len(ids))]
    am = [int(lg[i - 1].argmax()) for i in range(score_from, len(ids))]
    return nll, am


@torch.no_grad()
def hf_loss(model, ids: list[int], labels: list[int]) -> float:
    """transformers' own shifted, masked-mean cross-entropy: cross-checks score_window."""
    out = model(torch.tensor([ids]), labels=torch.tensor([labels]))
    return float(out.loss)


# --- Protocols. Each produces model-input windows and, per window, the half-open range
# of positions whose token is scored (predicted from the logits one position earlier).


def protocol_truncate(bpe_hf, text: str, m: int):
    ids = bpe_hf(text, truncation=True, max_length=m)["input_ids"]  # BOS added by template
    return [(ids, 1)]


def protocol_chunks(ids: list[int], c: int):
    wins = []
    for s in range(0, len(ids), c):
        w = ids[s:s + c]
        if len(w) >= 2:  # a final partial window is scored only if it predicts something
            wins.append((w, 1))
    return wins


def protocol_sliding(ids: list[int], max_length: int, stride: int):
    """transformers' docs recipe (perplexity of fixed-length models): labels[:-trg_len] = -100."""
    wins, prev_end, n = [], 0, len(ids)
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        trg_len = end - prev_end
        w = ids[begin:end]
        wins.append((w, max(1, len(w) - trg_len), trg_len))
        prev_end = end
        if end == n:
            break
    return wins


def protocol_llama_cpp(ids_with_bos: list[int], n_ctx: int):
    """llama.cpp perplexity: chunks of n_ctx, first token set to BOS, second half scored."""
    wins = []
    for i in range(len(ids_with_bos) // n_ctx):
        w = list(ids_with_bos[i * n_ctx:(i + 1) * n_ctx])
        w[0] = BOS_ID
        # logits at j in [n_ctx/2, n_ctx-1) predict w[j+1]: positions n_ctx/2+1 .. n_ctx-1
        wins.append((w, n_ctx // 2 + 1))
    return wins


def run_protocol(model, wins) -> dict:
    all_nll, ids_out, ranges = [], [], []
    hf_docs_num = hf_docs_den = 0.0
    for win in wins:
        w, sf = win[0], win[1]
        nll, _ = score_window(model, w, sf)
        all_nll += nll
        ids_out.append(w)
        ranges.append([sf, len(w)])
        if len(win) == 3:  # sliding: also the docs' weighting, loss * (valid labels - 1)
            trg_len = win[2]
            labels = [-100] * (len(w) - trg_len) + w[len(w) - trg_len:]
            loss = hf_loss(model, w, labels)
            assert abs(loss - float(np.mean(nll))) < 1e-5, (loss, np.mean(nll))
            n_valid = sum(1 for x in labels if x != -100)
            hf_docs_num += loss * (n_valid - 1)
            hf_docs_den += n_valid - 1
    s = float(np.sum(np.array(all_nll, dtype=np.float64)))
    res = {
        "ids": ids_out,
        "score_ranges": ranges,
        "nll": all_nll,
        "nll_sum": s,
        "scored_tokens": len(all_nll),
        "perplexity": math.exp(s / len(all_nll)),
    }
    if hf_docs_den:
        res["hf_docs_perplexity"] = math.exp(hf_docs_num / hf_docs_den)
    return res


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    OUT.mkdir(parents=True, exist_ok=True)
    for name in OWNED:
        p = OUT / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    checks: list[str] = []  # human-readable verification results, printed at the end

    def check(cond: bool, msg: str) -> None:
        checks.append(("ok   " if cond else "FAIL ") + msg)
        if not cond:
            print("\n".join(checks))
            raise SystemExit(f"verification failed: {msg}")

    # ---- 1. tokenizers --------------------------------------------------------------
    log("training tokenizers")
    bpe = build_bpe_tokenizer()
    vocab_size = bpe.get_vocab_size()
    check(vocab_size == 384, f"BPE vocab size {vocab_size} == 384")
    trap_ids = [bpe.token_to_id(a + b) for a, b in DIGIT_TRAP_MERGES]
    no_digit_split = Tokenizer.from_str(bpe.to_str())
    no_digit_split.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    check(not set(trap_ids) & set(bpe.encode(CORPUS).ids)
          and set(trap_ids) <= set(no_digit_split.encode("In 2024 and 1998").ids),
          "digit-trap merges fire only without the digit split")

    sp_bytes = train_spm()
    sp = spm.SentencePieceProcessor(model_proto=sp_bytes)
    spm_dir = OUT / "tiny-llama-spm-hf"
    spm_dir.mkdir(parents=True)
    (spm_dir / "tokenizer.model").write_bytes(sp_bytes)
    # The transformers conversion of the .model, with the default (non-legacy) handling,
    # told to add BOS as Llama does.
    spm_hf = LlamaTokenizerFast.from_pretrained(str(spm_dir), add_bos_token=True, add_eos_token=False)
    spm_hf.save_pretrained(str(spm_dir))
    cfg_path = spm_dir / "tokenizer_config.json"
    tcfg = json.loads(cfg_path.read_text())
    for k in ("is_local", "local_files_only"):  # load-time bookkeeping, not configuration
        tcfg.pop(k, None)
    tcfg.update({"add_bos_token": True, "add_eos_token": False, "legacy": False})
    cfg_path.write_text(json.dumps(tcfg, indent=2, ensure_ascii=False) + "\n")
    spm_hf = AutoTokenizer.from_pretrained(str(spm_dir))
    check(spm_hf("hi")["input_ids"][0] == BOS_ID, "SPM HF tokenizer adds BOS")

    # ---- 2. HF models ---------------------------------------------------------------
    log("building models")
    cfg = tiny_config(vocab_size)
    tiny = seeded_llama(cfg, SEED_TINY)
    save_hf_folder(tiny, bpe, OUT / "tiny-llama")
    save_hf_folder(tiny, bpe, OUT / "tiny-llama-sharded", max_shard_size="100KB")
    tiny_sd = hf_state_numpy(tiny)
    for dtype, folder in ((torch.float16, "tiny-llama-f16"), (torch.bfloat16, "tiny-llama-bf16")):
        half = seeded_llama(cfg, SEED_TINY).to(dtype)
        save_hf_folder(half, bpe, OUT / folder)
    n_shards = len(list((OUT / "tiny-llama-sharded").glob("model-*.safetensors")))
    check(n_shards >= 2 and (OUT / "tiny-llama-sharded" / "model.safetensors.index.json").exists(),
          f"tiny-llama-sharded has {n_shards} shards and an index")

    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 64}
    cfg_tied = tiny_config(vocab_size, tie_word_embeddings=True, rope_theta=500000.0, rope_scaling=llama3)
    tied = seeded_llama(cfg_tied, SEED_TIED)
    save_hf_folder(tied, bpe, OUT / "tiny-llama-tied")
    rewrite_config_legacy_rope(OUT / "tiny-llama-tied")
    tied_sd = hf_state_numpy(tied)
    with safetensors.safe_open(str(OUT / "tiny-llama-tied" / "model.safetensors"), "np") as f:
        check("lm_head.weight" not in set(f.keys()), "tied safetensors has no lm_head.weight")

    # ---- 3. GGUF --------------------------------------------------------------------
    log("writing GGUF files")
    bpe_meta = bpe_vocab_metadata(bpe)
    write_gguf(OUT / "tiny-llama-f32.gguf", "tiny-llama", cfg, tiny_sd, types_for(cfg, QT.F32),
               LlamaFileType.ALL_F32, bpe_meta)
    write_gguf(OUT / "tiny-llama-f16.gguf", "tiny-llama", cfg, tiny_sd, types_for(cfg, QT.F16),
               LlamaFileType.MOSTLY_F16, bpe_meta)
    write_gguf(OUT / "tiny-llama-q8_0.gguf", "tiny-llama", cfg, tiny_sd, types_for(cfg, QT.Q8_0),
               LlamaFileType.MOSTLY_Q8_0, bpe_meta)
    write_gguf(OUT / "tiny-llama-q4_0.gguf", "tiny-llama", cfg, tiny_sd, types_for(cfg, QT.Q4_0, QT.Q8_0),
               LlamaFileType.MOSTLY_Q4_0, bpe_meta)
    write_gguf(OUT / "tiny-llama-q4_1.gguf", "tiny-llama", cfg, tiny_sd, types_for(cfg, QT.Q4_1, QT.Q8_0),
               LlamaFileType.MOSTLY_Q4_1, bpe_meta)
    head_dim = cfg_tied.hidden_size // cfg_tied.num_attention_heads
    rope_freqs = llama3_rope_factors(head_dim, 500000.0, 8.0, 1.0, 4.0, 64)
    write_gguf(OUT / "tiny-llama-tied-f32.gguf", "tiny-llama-tied", cfg_tied, tied_sd,
               types_for(cfg_tied, QT.F32), LlamaFileType.ALL_F32, bpe_meta, rope_freqs=rope_freqs)

    # K-quant model: rows of 256 so every K type fits; one of each type at least.
    cfg_kq = tiny_config(vocab_size, hidden_size=256, intermediate_size=256, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4)
    kq_types = {
        "token_embd.weight": QT.Q5_K,
        "blk.0.attn_q.weight": QT.Q2_K,
        "blk.0.attn_k.weight": QT.Q3_K,
        "blk.0.attn_v.weight": QT.Q6_K,
        "blk.0.attn_output.weight": QT.Q4_K,
        "blk.0.ffn_gate.weight": QT.Q4_K,
        "blk.0.ffn_up.weight": QT.Q3_K,
        "blk.0.ffn_down.weight": QT.Q5_K,
        "output.weight": QT.Q6_K,
        "blk.0.attn_norm.weight": QT.F32,
        "blk.0.ffn_norm.weight": QT.F32,
        "output_norm.weight": QT.F32,
    }
    rng = np.random.default_rng(SEED_KQUANT)
    kq_model = LlamaForCausalLM(cfg_kq)  # only for the parameter shapes
    kq_blocks, kq_norms = {}, {}
    for hname, p in kq_model.state_dict().items():
        g = gguf_name(hname)
        if p.ndim == 2:
            kq_blocks[g] = random_kquant(p.shape[0], p.shape[1], kq_types[g], rng, KQUANT_STD)
        else:
            kq_norms[hname] = (1.0 + NORM_STD * rng.standard_normal(p.shape[0])).astype(np.float32)
    del kq_model
    write_gguf(OUT / "tiny-llama-kquant.gguf", "tiny-llama-kquant", cfg_kq, kq_norms, kq_types,
               LlamaFileType.MOSTLY_Q4_K_M, bpe_meta, raw_blocks=kq_blocks)

    # SentencePiece-vocabulary model.
    cfg_spm = tiny_config(sp.get_piece_size())
    spm_model = seeded_llama(cfg_spm, SEED_SPM)
    write_gguf(OUT / "tiny-llama-spm.gguf", "tiny-llama-spm", cfg_spm, hf_state_numpy(spm_model),
               types_for(cfg_spm, QT.Q8_0), LlamaFileType.MOSTLY_Q8_0, spm_vocab_metadata(sp), spm_vocab=True)
    del spm_model

    # ---- 4. goldens -----------------------------------------------------------------
    log("computing goldens")
    bpe_hf = AutoTokenizer.from_pretrained(str(OUT / "tiny-llama"))
    check(bpe_hf("hi")["input_ids"][0] == BOS_ID and bpe_hf("hi")["input_ids"][1] != BOS_ID,
          "BPE HF tokenizer adds exactly one BOS")

    def bpe_ids(text: str) -> list[int]:
        return bpe_hf(text, add_special_tokens=False)["input_ids"]

    def sp_ids(text: str) -> list[int]:
        return sp.encode(text)

    # -- tokenization. Each entry says whether special-token text such as "<s>" in the
    # input is matched as the special token (parse_special true: transformers' default)
    # or tokenized as plain text (false: sentencepiece, and llama.cpp's llama-perplexity,
    # which tokenizes with parse_special=false).
    tokenization = []
    gguf_tok_notes = []
    bpe_gguf_hf = AutoTokenizer.from_pretrained(str(OUT), gguf_file="tiny-llama-f32.gguf")
    spm_gguf_hf = AutoTokenizer.from_pretrained(str(OUT), gguf_file="tiny-llama-spm.gguf")
    bpe_plain = Tokenizer.from_file(str(OUT / "tiny-llama" / "tokenizer.json"))
    bpe_plain.encode_special_tokens = True  # special-token text stays text
    for text in TOKENIZATION_TEXTS:
        b = bpe_ids(text)
        check(bpe.encode(text, add_special_tokens=False).ids == b, f"tokenizers == transformers for {text[:20]!r}")
        check(bpe_hf.decode(b) == text, f"BPE round-trips {text[:20]!r}")
        b_plain = bpe_plain.encode(text, add_special_tokens=False).ids
        s_hf = spm_hf(text, add_special_tokens=False)["input_ids"]
        s_sp = sp_ids(text)
        tokenization += [
            {"tokenizer": "tiny-llama/tokenizer.json", "reference": "tokenizers", "parse_special": True,
             "text": text, "ids": b},
            {"tokenizer": "tiny-llama-spm-hf/tokenizer.json", "reference": "tokenizers", "parse_special": True,
             "text": text, "ids": s_hf},
            {"tokenizer": "tiny-llama-spm-hf/tokenizer.model", "reference": "sentencepiece",
             "parse_special": False, "text": text, "ids": s_sp},
            # The GGUF vocabularies, as llama.cpp is built to tokenize them: the same
            # result as the tokenizer each file's vocabulary was copied from.
            {"tokenizer": "tiny-llama-f32.gguf", "reference": "tokenizers (tiny-llama/tokenizer.json)",
             "parse_special": False, "text": text, "ids": b_plain},
            {"tokenizer": "tiny-llama-spm.gguf", "reference": "sentencepiece (tiny-llama-spm-hf/tokenizer.model)",
             "parse_special": False, "text": text, "ids": s_sp},
        ]
        # Record where transformers' own conversion of the GGUF vocabularies (which parses
        # special-token text), or the HF conversion of the .model, disagrees.
        g_b = bpe_gguf_hf(text, add_special_tokens=False)["input_ids"]
        g_s = spm_gguf_hf(text, add_special_tokens=False)["input_ids"]
        if g_b != b:
            gguf_tok_notes.append({"tokenizer": "tiny-llama-f32.gguf", "text": text,
                                   "transformers_gguf_ids": g_b, "tokenizer_json_ids": b})
        if g_s != s_hf:
            gguf_tok_notes.append({"tokenizer": "tiny-llama-spm.gguf", "text": text,
                                   "transformers_gguf_ids": g_s, "tokenizer_json_ids": s_hf})
        if s_hf != s_sp:
            gguf_tok_notes.append({"tokenizer": "tiny-llama-spm-hf/tokenizer.json", "text": text,
                                   "tokenizer_json_ids": s_hf, "sentencepiece_ids": s_sp})
    check(bpe_gguf_hf("hello")["input_ids"][0] == BOS_ID, "transformers' BPE GGUF tokenizer adds BOS")

    # -- windows
    E = bpe_ids(EVAL_TEXT)
    S = sp_ids(EVAL_TEXT)
    check(len(E) >= 300, f"eval text is {len(E)} BPE tokens (>= 300)")
    check(spm_hf(EVAL_TEXT, add_special_tokens=False)["input_ids"] == S, "SPM: HF == sentencepiece on the eval text")

    def window_specs(ids: list[int], extra: list[int]) -> list[tuple[str, list[int], int]]:
        return [
            ("bos+1", [BOS_ID] + ids[:1], 1),
            ("nobos-5", ids[:5], 1),
            ("bos-24", [BOS_ID] + ids[:23], 1),
            ("mid-40-second-half", ids[100:140], 20),
            ("bos-64", [BOS_ID] + ids[:63], 1),
            ("nobos-65", ids[50:115], 1),
            ("bos-120", [BOS_ID] + ids[:119], 1),
            ("unicode-digits", [BOS_ID] + extra, 1),
        ]

    bpe_windows = window_specs(E, bpe_ids(WINDOW_EXTRA_TEXT))
    spm_windows = window_specs(S, sp_ids(WINDOW_EXTRA_TEXT))

    model_info = {}
    windows = []
    loaded = {}

    def add_windows(key: str, model, specs, route: str) -> None:
        for wname, ids, sf in specs:
            nll, am = score_window(model, ids, sf)
            windows.append({"model": key, "name": wname, "route": route, "tokens": ids, "score_from": sf,
                            "nll": nll, "argmax": am})

    hf_folders = {
        "tiny-llama": "f32 safetensors, transformers 5 config (rope_parameters)",
        "tiny-llama-f16": "tiny-llama's weights cast to float16",
        "tiny-llama-bf16": "tiny-llama's weights cast to bfloat16",
        "tiny-llama-sharded": "tiny-llama's f32 weights in several shards + index",
        "tiny-llama-tied": "second model: tied embeddings, llama3 RoPE scaling, legacy rope_theta/rope_scaling config",
    }
    for folder, desc in hf_folders.items():
        m = load_hf(OUT / folder)
        loaded[folder] = m
        model_info[folder] = {"format": "hf", "description": desc, "tokenizer": f"{folder}/tokenizer.json",
                              "route": "transformers"}
        add_windows(folder, m, bpe_windows, "transformers")

    # Sanity of the model fixtures themselves.
    ref_nll, _ = score_window(loaded["tiny-llama"], [BOS_ID] + E[:119], 1)
    check(float(np.std(ref_nll)) > 0.5, f"per-token NLLs vary (std {np.std(ref_nll):.3f})")
    lp = torch.log_softmax(logits(loaded["tiny-llama"], [BOS_ID] + E[:119]), -1)
    entropy = float(-(lp.exp() * lp).sum(-1).mean())
    check(entropy < math.log(vocab_size) - 0.5,
          f"predictions are not near-uniform (mean entropy {entropy:.3f} vs ln V {math.log(vocab_size):.3f})")
    probe = [BOS_ID] + E[:119]
    lf32 = logits(loaded["tiny-llama"], probe)
    check(torch.equal(lf32, logits(loaded["tiny-llama-sharded"], probe)), "sharded == f32 exactly")
    for half in ("tiny-llama-f16", "tiny-llama-bf16"):
        d = float((logits(loaded[half], probe) - lf32).abs().max())
        check(1e-5 < d < 0.5, f"{half} logits differ slightly from f32 (max |d| {d:.2e})")
    # llama3 scaling in the legacy config is read as intended.
    fresh = LlamaForCausalLM(cfg_tied)
    check(torch.allclose(loaded["tiny-llama-tied"].model.rotary_emb.inv_freq, fresh.model.rotary_emb.inv_freq),
          "tiny-llama-tied legacy config gives the llama3 inv_freq")
    default_inv = LlamaForCausalLM(tiny_config(vocab_size, rope_theta=500000.0)).model.rotary_emb.inv_freq
    check(not torch.allclose(fresh.model.rotary_emb.inv_freq, default_inv), "llama3 scaling changes inv_freq")

    gguf_files = {
        "tiny-llama-f32.gguf": ("tiny-llama", "all F32", bpe_windows),
        "tiny-llama-f16.gguf": ("tiny-llama", "2-D weights F16, norms F32", bpe_windows),
        "tiny-llama-q8_0.gguf": ("tiny-llama", "2-D weights Q8_0, norms F32", bpe_windows),
        "tiny-llama-q4_0.gguf": ("tiny-llama", "token_embd Q8_0, other 2-D weights Q4_0, norms F32", bpe_windows),
        "tiny-llama-q4_1.gguf": ("tiny-llama", "token_embd Q8_0, other 2-D weights Q4_1, norms F32", bpe_windows),
        "tiny-llama-tied-f32.gguf": ("tiny-llama-tied", "all F32, no output.weight, rope_freqs.weight", bpe_windows),
        "tiny-llama-kquant.gguf": ("(none)", "hidden 256, 1 layer, random Q2_K..Q6_K blocks", bpe_windows),
        "tiny-llama-spm.gguf": ("(none)", "SentencePiece vocabulary, 2-D weights Q8_0, norms F32", spm_windows),
    }
    for fname, (weights_of, desc, specs) in gguf_files.items():
        path = OUT / fname
        fb = load_gguf_fallback(path)
        route, note = "transformers-gguf", None
        try:
            tr = load_gguf_transformers(path)
        except Exception as e:  # noqa: BLE001 - any failure means: use our route
            tr, note = None, f"transformers cannot load it: {type(e).__name__}: {e}"
        has_rope_freqs = any(t.name == "rope_freqs.weight" for t in GGUFReader(str(path)).tensors)
        probe_ids = specs[6][1]
        if tr is not None:
            d = float((logits(tr, probe_ids) - logits(fb, probe_ids)).abs().max())
            if has_rope_freqs:
                note = (f"transformers' GGUF loader ignores rope_freqs.weight (llama3 scaling): its logits "
                        f"differ by up to {d:.3g}, so the fallback route is the reference")
                tr = None
            else:
                check(d < 1e-4, f"{fname}: transformers GGUF route == own dequant route (max |d| {d:.2e})")
        model = tr if tr is not None else fb
        if tr is None:
            route = "gguf-py-dequantize+unpermute+hf"
        info = {"format": "gguf", "description": desc, "weights_of": weights_of, "route": route}
        info["tokenizer"] = fname
        if note:
            info["note"] = note
        model_info[fname] = info
        loaded[fname] = model
        add_windows(fname, model, specs, route)

    for fname in ("tiny-llama-q8_0.gguf", "tiny-llama-q4_0.gguf", "tiny-llama-q4_1.gguf",
                  "tiny-llama-kquant.gguf", "tiny-llama-spm.gguf"):
        err = crosscheck_dequant(OUT / fname)
        check(err < 1e-5, f"{fname}: gguf-py dequantize == ggml C loops (max rel err {err:.1e})")

    # GGUF vs HF equivalence checks.
    def max_nll_diff(a: str, b: str) -> float:
        wa = [w for w in windows if w["model"] == a]
        wb = [w for w in windows if w["model"] == b]
        return max(abs(x - y) for u, v in zip(wa, wb) for x, y in zip(u["nll"], v["nll"]))

    check(max_nll_diff("tiny-llama", "tiny-llama-f32.gguf") < 1e-5,
          f"f32 GGUF == HF folder (max NLL diff {max_nll_diff('tiny-llama', 'tiny-llama-f32.gguf'):.2e})")
    # The f16 GGUF keeps its norms in F32 (the folder cast them too): compare it with the
    # f32 model whose 2-D weights went through float16.
    with torch.no_grad():
        rounded = seeded_llama(cfg, SEED_TINY)
        rounded.set_attn_implementation("eager")
        for p in rounded.parameters():
            if p.ndim == 2:
                p.copy_(p.half().float())
    d = max(abs(x - y) for wn, ids, sf in bpe_windows
            for x, y in zip(score_window(rounded, ids, sf)[0], score_window(loaded["tiny-llama-f16.gguf"], ids, sf)[0]))
    check(d < 1e-5, f"f16 GGUF == f32 model with f16-rounded matrices (max NLL diff {d:.2e})")
    del rounded
    check(max_nll_diff("tiny-llama-tied", "tiny-llama-tied-f32.gguf") < 1e-4,
          f"tied GGUF (rope_freqs) == tied folder (max NLL diff "
          f"{max_nll_diff('tiny-llama-tied', 'tiny-llama-tied-f32.gguf'):.2e})")
    for q in ("q8_0", "q4_0", "q4_1"):
        d = max_nll_diff("tiny-llama", f"tiny-llama-{q}.gguf")
        check(1e-5 < d < 3.0, f"{q} GGUF differs from f32 by a quantization-sized amount (max NLL diff {d:.3g})")
    d = max_nll_diff("tiny-llama", "tiny-llama-f16")
    check(1e-6 < d < 0.1, f"f16 folder goldens differ slightly from f32 (max NLL diff {d:.2e})")
    kq = [x for w in windows if w["model"] == "tiny-llama-kquant.gguf" for x in w["nll"]]
    check(all(math.isfinite(x) for x in kq) and 1.0 < float(np.mean(kq)) < 15.0 and float(np.std(kq)) > 0.3,
          f"kquant model is numerically reasonable (mean NLL {np.mean(kq):.2f}, std {np.std(kq):.2f})")

    # -- protocols
    protocols = []
    for key in ("tiny-llama", "tiny-llama-q4_1.gguf"):
        model = loaded[key]
        route = model_info[key]["route"]

        def emit(protocol: str, params: dict, bos: str, texts: list[str], wins, extra=None):
            r = run_protocol(model, wins)
            entry = {"model": key, "route": route, "protocol": protocol, "params": params, "bos": bos,
                     "texts": texts}
            entry.update(r)
            if extra:
                entry.update(extra)
            protocols.append(entry)
            return entry

        # truncate (transformers' exp(loss) recipe): tokenizer truncation with BOS; loss over all but the first.
        wins = protocol_truncate(bpe_hf, EVAL_TEXT, TRUNCATE_M)
        e = emit("truncate", {"max_length": TRUNCATE_M}, "document", [EVAL_TEXT], wins)
        ids = e["ids"][0]
        check(len(ids) == TRUNCATE_M and ids[0] == BOS_ID and ids[1:] == E[:TRUNCATE_M - 1], "truncate ids")
        check(abs(hf_loss(model, ids, ids) - e["nll_sum"] / e["scored_tokens"]) < 1e-5,
              f"{key}: truncate NLL == transformers' loss with labels=input_ids")

        emit("chunks", {"context": CHUNK_C}, "none", [EVAL_TEXT], protocol_chunks(E, CHUNK_C))
        emit("sliding", {"max_length": SLIDE_MAX, "stride": SLIDE_STRIDE}, "none", [EVAL_TEXT],
             protocol_sliding(E, SLIDE_MAX, SLIDE_STRIDE))
        emit("sliding", {"max_length": SLIDE_MAX, "stride": SLIDE_STRIDE}, "document", [EVAL_TEXT],
             protocol_sliding([BOS_ID] + E, SLIDE_MAX, SLIDE_STRIDE))
        e = emit("llama-cpp", {"n_ctx": LLAMACPP_NCTX}, "chunk", [EVAL_TEXT],
                 protocol_llama_cpp([BOS_ID] + E, LLAMACPP_NCTX))
        check(e["scored_tokens"] == ((len(E) + 1) // LLAMACPP_NCTX) * (LLAMACPP_NCTX // 2 - 1),
              "llama-cpp scores n_chunk * (n_ctx/2 - 1) tokens")

        # truncate over several documents, each its own window; evaluate-style aggregate.
        wins, per_text = [], []
        for t in SHORT_TEXTS:
            w = protocol_truncate(bpe_hf, t, TRUNCATE_M)
            wins += w
            r = run_protocol(model, w)
            per_text.append({"nll_sum": r["nll_sum"], "scored_tokens": r["scored_tokens"],
                             "perplexity": r["perplexity"]})
        emit("truncate", {"max_length": TRUNCATE_M}, "document", SHORT_TEXTS, wins,
             {"per_text": per_text, "mean_perplexity": float(np.mean([p["perplexity"] for p in per_text]))})

    # ---- write goldens --------------------------------------------------------------
    goldens = {
        "generator": "scripts/make_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "sentencepiece": spm.__version__,
            "gguf": _dist_version("gguf"),
            "numpy": np.__version__,
            "safetensors": safetensors.__version__,
        },
        "special_tokens": {"bpe": {"endoftext": EOT_ID, "bos": BOS_ID, "eos": EOS_ID},
                           "spm": {"unk": 0, "bos": BOS_ID, "eos": EOS_ID}},
        "models": model_info,
        "tokenization": tokenization,
        "tokenizer_disagreements": gguf_tok_notes,
        "windows": windows,
        "protocols": protocols,
    }
    (OUT / "goldens.json").write_text(fixed_json(goldens) + "\n", encoding="utf-8")

    # ---- summary ----------------------------------------------------------------------
    print("\n".join(checks))
    total = sum(p.stat().st_size for n in OWNED for p in ([OUT / n] if (OUT / n).is_file() else (OUT / n).rglob("*")))
    log(f"wrote {len(OWNED)} fixtures, {total / 1e6:.2f} MB; {len(gguf_tok_notes)} tokenizer disagreements recorded")


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
