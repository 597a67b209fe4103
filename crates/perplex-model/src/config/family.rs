//! The supported families and the one table of their rules.
//!
//! Every family is a row of [`FAMILIES`] ([`FamilyRules`]): how a config
//! names it (Hugging Face `architectures` / `model_type`, GGUF
//! `general.architecture`), what its blocks look like (norm, activation,
//! fused projections, biases, q/k and sandwich norms, embedding scale,
//! query scale, soft-capping, which layers slide), the defaults for what a
//! config may leave out, and what its tensors are called in each format,
//! with the conventions a format bakes in and the loader undoes (Gemma's
//! `1 + w` norms, GPT-2's `Conv1D` layout, llama.cpp's q/k permutation).
//! Both config parsers (`hf.rs`, `gguf.rs`) and the decoder's loader read
//! this table and nothing else about a family; the parsers only read keys
//! and apply the defaults their format states.
//!
//! # Adding a family
//!
//! 1. Add a variant to [`Family`] (its doc says what it is in one line).
//! 2. Add its row to [`FAMILIES`], at the variant's position: usually an
//!    existing row with a few fields changed (`..LLAMA`). The supported-name
//!    lists and the lookups follow from the table.
//! 3. Only when the family needs a computation no row can select yet (a new
//!    norm, activation, position scheme, attention variant), add it to the
//!    rule types here and to the forward pass (`decoder/`).
//! 4. Add a fixture and goldens (`scripts/make_family_fixtures.py`,
//!    `tests/families.rs`); the hint of `ModelError::UnsupportedArchitecture`
//!    lists the families in words.

use super::{Activation, NormKind, Positions};

/// A model family: one set of conventions for names, norms and attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// GPT-2: learned positions, LayerNorm, GELU MLP, fused QKV, tied head.
    Gpt2,
    /// Llama 2/3, SmolLM, TinyLlama: RMSNorm, RoPE, SwiGLU.
    Llama,
    /// Mistral: Llama with sliding-window attention.
    Mistral,
    /// Qwen2/2.5: Llama with q/k/v biases.
    Qwen2,
    /// Qwen3: Llama with RMSNorm on queries and keys.
    Qwen3,
    /// Gemma: scaled embeddings, `(1 + w)` RMSNorm, GeGLU, tied head.
    Gemma,
    /// Gemma 2: Gemma with pre/post norms, soft-capping, alternating sliding windows.
    Gemma2,
    /// Gemma 3: Gemma 2 with q/k norms and local layers on their own RoPE base.
    Gemma3,
    /// Phi-3: Llama with fused QKV and gate-up projections and LongRoPE.
    Phi3,
}

impl Family {
    /// The family's short name (`gpt2`, `llama`, `gemma2`, …).
    pub fn name(self) -> &'static str {
        self.rules().name
    }

    /// Whether the model was trained with every sequence starting with BOS
    /// and degrades badly without it (Gemma: perplexity in the thousands).
    pub fn needs_bos(self) -> bool {
        self.rules().needs_bos
    }

    /// The family's row of [`FAMILIES`].
    pub(crate) fn rules(self) -> &'static FamilyRules {
        &FAMILIES[self as usize]
    }

    /// The family a `config.json` `architectures` entry names.
    pub(crate) fn from_hf_architecture(name: &str) -> Option<Family> {
        FAMILIES
            .iter()
            .find(|r| r.hf_architecture == name)
            .map(|r| r.family)
    }

    /// The family a `config.json` `model_type` names (configs without
    /// `architectures`).
    pub(crate) fn from_hf_model_type(name: &str) -> Option<Family> {
        FAMILIES
            .iter()
            .find(|r| r.hf_model_type == name)
            .map(|r| r.family)
    }

    /// The family a GGUF `general.architecture` names.
    pub(crate) fn from_gguf_architecture(name: &str) -> Option<Family> {
        FAMILIES
            .iter()
            .find(|r| r.gguf_architecture == Some(name))
            .map(|r| r.family)
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The `architectures` values of config.json that perplex implements:
/// the multimodal text towers, then one per family.
pub const SUPPORTED_HF_ARCHITECTURES: &[&str] = &HF_NAMES;
/// The `general.architecture` values of GGUF files that perplex implements.
pub const SUPPORTED_GGUF_ARCHITECTURES: &[&str] = &GGUF_NAMES;

const HF_NAMES: [&str; hf_name_count()] = {
    let mut out = [""; hf_name_count()];
    let (mut n, mut i) = (0, 0);
    while i < FAMILIES.len() {
        if let Some(tower) = &FAMILIES[i].hf_text_tower {
            out[n] = tower.architecture;
            n += 1;
        }
        i += 1;
    }
    i = 0;
    while i < FAMILIES.len() {
        out[n] = FAMILIES[i].hf_architecture;
        n += 1;
        i += 1;
    }
    out
};

const fn hf_name_count() -> usize {
    let (mut n, mut i) = (0, 0);
    while i < FAMILIES.len() {
        n += 1 + FAMILIES[i].hf_text_tower.is_some() as usize;
        i += 1;
    }
    n
}

const GGUF_NAMES: [&str; gguf_name_count()] = {
    let mut out = [""; gguf_name_count()];
    let (mut n, mut i) = (0, 0);
    while i < FAMILIES.len() {
        if let Some(name) = FAMILIES[i].gguf_architecture {
            out[n] = name;
            n += 1;
        }
        i += 1;
    }
    out
};

const fn gguf_name_count() -> usize {
    let (mut n, mut i) = (0, 0);
    while i < FAMILIES.len() {
        n += FAMILIES[i].gguf_architecture.is_some() as usize;
        i += 1;
    }
    n
}

/// Everything perplex knows about a family. Fields named `hf_…` or
/// `gguf_…` apply to that format only; the others to both.
#[derive(Debug)]
pub(crate) struct FamilyRules {
    /// The row's family (rows are in [`Family`]'s order).
    pub family: Family,
    /// [`Family::name`].
    pub name: &'static str,
    /// The `config.json` `architectures` value.
    pub hf_architecture: &'static str,
    /// The `config.json` `model_type` value.
    pub hf_model_type: &'static str,
    /// A multimodal architecture whose text tower is this family.
    pub hf_text_tower: Option<TextTower>,
    /// GGUF's `general.architecture`; `None`: llama.cpp writes the family
    /// as another one (Mistral as `llama`).
    pub gguf_architecture: Option<&'static str>,

    /// How positions enter the model.
    pub positions: Positions,
    /// The normalisation.
    pub norm: NormKind,
    /// The norm epsilon when the config gives none.
    pub norm_eps: f64,
    /// Added to every stored norm weight of a Hugging Face checkpoint
    /// (Gemma's `1 + w`; llama.cpp's converter adds it to the stored weights).
    pub hf_norm_offset: f32,
    /// The activation when the config names none.
    pub activation: Activation,
    /// transformers reads this family's legacy `gelu` as the tanh
    /// approximation (Gemma).
    pub hf_gelu_is_tanh: bool,
    /// One `[q; k; v]` projection.
    pub fused_qkv: bool,
    /// The MLP's shape.
    pub mlp: Mlp,
    /// Which projections carry biases.
    pub biases: Biases,
    /// RMSNorm over each query and key head before RoPE.
    pub qk_norm: bool,
    /// Norms after attention and after the MLP too.
    pub sandwich_norms: bool,
    /// Token embeddings are multiplied by `√hidden`.
    pub embed_scale: bool,
    /// What the attention scores are scaled by.
    pub query_scale: QueryScale,
    /// transformers applies the config's attention and logit soft-capping
    /// (GGUF files declare it only where it applies).
    pub hf_softcap: bool,
    /// Whether the head is the embedding when the config does not say.
    pub tied_head: bool,
    /// [`Family::needs_bos`].
    pub needs_bos: bool,
    /// The RoPE base when the config gives none.
    pub rope_theta: f64,
    /// Sliding layers use a RoPE of their own, unscaled, with this default
    /// base (Gemma 3's local layers).
    pub local_rope_theta: Option<f64>,
    /// Which layers use sliding-window attention.
    pub sliding: SlidingLayers,
    /// A config without an MLP width means this many times `hidden_size`
    /// (GPT-2's `n_inner: null`); `None`: the width is required.
    pub hf_intermediate_factor: Option<usize>,
    /// Boolean config keys whose given value selects a variant perplex does
    /// not implement, and the problem to report.
    pub hf_unsupported: Option<HfUnsupported>,

    /// Tensor names and layout of Hugging Face checkpoints.
    pub hf_tensors: HfTensors,
    /// Tensor names and layout of GGUF files.
    pub gguf_tensors: GgufTensors,
}

/// A multimodal architecture evaluated through its text tower.
#[derive(Debug)]
pub(crate) struct TextTower {
    /// The `architectures` value.
    pub architecture: &'static str,
    /// The top-level `model_type`.
    pub model_type: &'static str,
    /// transformers' defaults for what `text_config` may leave out, as a
    /// JSON object.
    pub defaults: &'static str,
}

/// The MLP's shape (the output projection is always `down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mlp {
    /// `act(up(x))` (GPT-2).
    Plain,
    /// `act(gate(x)) · up(x)`.
    Gated,
    /// Gated, with one `[gate; up]` projection (Phi-3).
    FusedGated,
}

/// Whether a projection carries a bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bias {
    /// Always, whatever the config says.
    Always,
    /// Never, whatever the config says.
    Never,
    /// When the config's flag says so (`attention_bias` for the attention
    /// projections, `mlp_bias` for the MLP); GGUF has no flags: there a bias
    /// is used when its tensor exists.
    Declared,
}

impl Bias {
    /// The rule applied to a config flag.
    pub fn applies(self, declared: bool) -> bool {
        match self {
            Bias::Always => true,
            Bias::Never => false,
            Bias::Declared => declared,
        }
    }
}

/// The biases of a family's projections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Biases {
    /// Query, key and value projections.
    pub qkv: Bias,
    /// The attention output projection.
    pub o: Bias,
    /// The MLP projections.
    pub mlp: Bias,
}

/// What the attention scores are multiplied by when the config gives no
/// scale of its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum QueryScale {
    /// `1/√head_dim`.
    HeadDim,
    /// `1/√query_pre_attn_scalar` (Gemma 2/3). llama.cpp writes no such
    /// key and uses `1/√(hidden / heads)` for the model of
    /// `gguf_hidden_per_head_at` layers (the 27B), `1/√head_dim` otherwise.
    PreAttnScalar {
        /// transformers' default `query_pre_attn_scalar`.
        hf_default: f64,
        /// The layer count of the model llama.cpp scales by hidden / heads.
        gguf_hidden_per_head_at: usize,
    },
}

/// Which layers attend through a sliding window, when the config declares
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlidingLayers {
    /// None; a declared window is ignored, as transformers does.
    Never,
    /// Every layer (Mistral, Phi-3).
    All,
    /// Hugging Face: only with `use_sliding_window`, and from layer
    /// `max_window_layers` (default `first_layer`) on; GGUF: none
    /// (llama.cpp ignores the window). Qwen2/3.
    OptIn {
        /// transformers' default `max_window_layers`.
        first_layer: usize,
    },
    /// The last layer of every `period` attends fully, the others slide
    /// (Gemma 2/3).
    Pattern {
        /// Layers per period.
        period: usize,
        /// The config may set the period (`sliding_window_pattern`).
        configurable: bool,
        /// transformers' default window.
        hf_default_window: usize,
    },
}

/// Whether layer `i` slides under a pattern of `period` layers.
pub(crate) fn slides_in_pattern(i: usize, period: usize) -> bool {
    period == 0 || i % period < period - 1
}

/// Config flags selecting variants perplex does not implement.
#[derive(Debug)]
pub(crate) struct HfUnsupported {
    /// Each boolean key and the value that selects the variant.
    pub flags: &'static [(&'static str, bool)],
    /// The problem reported when one does.
    pub problem: &'static str,
}

/// Where a checkpoint keeps the decoder's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Root {
    /// Before every name but the head's (`model.`, `transformer.`, a text
    /// tower's `language_model.model.`).
    pub prefix: &'static str,
    /// The output head's name (`lm_head`, `output`).
    pub head: &'static str,
}

/// One way a Hugging Face checkpoint may be laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HfRoot {
    /// Where the tensors are stored.
    pub stored: Root,
    /// Where the in-memory module tree has them (what PEFT adapters name,
    /// whatever the base's format).
    pub modules: Root,
}

/// What a part's tensors are called: `{prefix}{name}.weight` (`.bias`), a
/// layer's `{prefix}{layers}.{i}.{name}.weight`. Empty: the family has no
/// such part.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TensorNames {
    pub embed: &'static str,
    pub pos_embed: &'static str,
    pub final_norm: &'static str,
    pub layers: &'static str,
    pub attn_norm: &'static str,
    pub q: &'static str,
    pub k: &'static str,
    pub v: &'static str,
    pub qkv: &'static str,
    pub q_norm: &'static str,
    pub k_norm: &'static str,
    pub o: &'static str,
    pub post_attn_norm: &'static str,
    pub ffn_norm: &'static str,
    pub gate: &'static str,
    pub up: &'static str,
    pub gate_up: &'static str,
    pub down: &'static str,
    pub post_ffn_norm: &'static str,
}

/// A family's Hugging Face tensors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HfTensors {
    pub names: TensorNames,
    /// The layouts to try, in order: the first whose embedding exists,
    /// else the last.
    pub roots: &'static [HfRoot],
    /// The projections are `Conv1D`, stored `[in, out]` (GPT-2).
    pub conv1d: bool,
}

/// A family's GGUF tensors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GgufTensors {
    pub names: TensorNames,
    pub root: Root,
    /// llama.cpp stores `attn_q`/`attn_k` rows permuted for its RoPE (its
    /// `llama` architecture only); the loader undoes it.
    pub permuted_qk: bool,
}

/// transformers' names for the Llama-style decoders.
const HF_LLAMA_NAMES: TensorNames = TensorNames {
    embed: "embed_tokens",
    pos_embed: "embed_positions",
    final_norm: "norm",
    layers: "layers",
    attn_norm: "input_layernorm",
    q: "self_attn.q_proj",
    k: "self_attn.k_proj",
    v: "self_attn.v_proj",
    qkv: "self_attn.qkv_proj",
    q_norm: "self_attn.q_norm",
    k_norm: "self_attn.k_norm",
    o: "self_attn.o_proj",
    post_attn_norm: "post_attention_layernorm",
    // in every family without sandwich norms the norm before the MLP
    ffn_norm: "post_attention_layernorm",
    gate: "mlp.gate_proj",
    up: "mlp.up_proj",
    gate_up: "mlp.gate_up_proj",
    down: "mlp.down_proj",
    post_ffn_norm: "post_feedforward_layernorm",
};

/// Gemma 2/3: `post_attention_layernorm` follows attention.
const HF_GEMMA2_NAMES: TensorNames = TensorNames {
    ffn_norm: "pre_feedforward_layernorm",
    ..HF_LLAMA_NAMES
};

const HF_GPT2_NAMES: TensorNames = TensorNames {
    embed: "wte",
    pos_embed: "wpe",
    final_norm: "ln_f",
    layers: "h",
    attn_norm: "ln_1",
    q: "",
    k: "",
    v: "",
    qkv: "attn.c_attn",
    q_norm: "",
    k_norm: "",
    o: "attn.c_proj",
    post_attn_norm: "",
    ffn_norm: "ln_2",
    gate: "",
    up: "mlp.c_fc",
    gate_up: "",
    down: "mlp.c_proj",
    post_ffn_norm: "",
};

/// llama.cpp's names, the same for every architecture.
const GGUF_NAMES_ALL: TensorNames = TensorNames {
    embed: "token_embd",
    pos_embed: "position_embd",
    final_norm: "output_norm",
    layers: "blk",
    attn_norm: "attn_norm",
    q: "attn_q",
    k: "attn_k",
    v: "attn_v",
    qkv: "attn_qkv",
    q_norm: "attn_q_norm",
    k_norm: "attn_k_norm",
    o: "attn_output",
    post_attn_norm: "post_attention_norm",
    ffn_norm: "ffn_norm",
    gate: "ffn_gate",
    up: "ffn_up",
    // Phi-3's fused gate-up matrix is llama.cpp's ffn_up
    gate_up: "ffn_up",
    down: "ffn_down",
    post_ffn_norm: "post_ffw_norm",
};

const fn root(prefix: &'static str, head: &'static str) -> Root {
    Root { prefix, head }
}

/// A decoder as `…ForCausalLM` saves it, or as the text tower of a
/// multimodal checkpoint (two transformers layouts).
const HF_DECODER_ROOTS: &[HfRoot] = &[
    HfRoot {
        stored: root("language_model.model.", "language_model.lm_head"),
        modules: root("model.language_model.", "lm_head"),
    },
    HfRoot {
        stored: root("model.language_model.", "lm_head"),
        modules: root("model.language_model.", "lm_head"),
    },
    HfRoot {
        stored: root("model.", "lm_head"),
        modules: root("model.", "lm_head"),
    },
];

/// GPT-2's checkpoints store the decoder under `transformer.` or at the top.
const HF_GPT2_ROOTS: &[HfRoot] = &[
    HfRoot {
        stored: root("transformer.", "lm_head"),
        modules: root("transformer.", "lm_head"),
    },
    HfRoot {
        stored: root("", "lm_head"),
        modules: root("transformer.", "lm_head"),
    },
];

const GGUF_TENSORS: GgufTensors = GgufTensors {
    names: GGUF_NAMES_ALL,
    root: root("", "output"),
    permuted_qk: false,
};

const GPT2: FamilyRules = FamilyRules {
    family: Family::Gpt2,
    name: "gpt2",
    hf_architecture: "GPT2LMHeadModel",
    hf_model_type: "gpt2",
    hf_text_tower: None,
    gguf_architecture: Some("gpt2"),
    positions: Positions::Learned,
    norm: NormKind::Layer,
    norm_eps: 1e-5,
    hf_norm_offset: 0.0,
    activation: Activation::GeluTanh,
    hf_gelu_is_tanh: false,
    fused_qkv: true,
    mlp: Mlp::Plain,
    biases: Biases {
        qkv: Bias::Always,
        o: Bias::Always,
        mlp: Bias::Always,
    },
    qk_norm: false,
    sandwich_norms: false,
    embed_scale: false,
    query_scale: QueryScale::HeadDim,
    hf_softcap: false,
    tied_head: true,
    needs_bos: false,
    rope_theta: 10_000.0,
    local_rope_theta: None,
    sliding: SlidingLayers::Never,
    hf_intermediate_factor: Some(4),
    hf_unsupported: Some(HfUnsupported {
        flags: &[
            ("scale_attn_by_inverse_layer_idx", true),
            ("reorder_and_upcast_attn", true),
            ("scale_attn_weights", false),
        ],
        problem: "GPT-2 attention variants (scale_attn_by_inverse_layer_idx, \
                  reorder_and_upcast_attn, scale_attn_weights = false) are not supported",
    }),
    hf_tensors: HfTensors {
        names: HF_GPT2_NAMES,
        roots: HF_GPT2_ROOTS,
        conv1d: true,
    },
    gguf_tensors: GGUF_TENSORS,
};

const LLAMA: FamilyRules = FamilyRules {
    family: Family::Llama,
    name: "llama",
    hf_architecture: "LlamaForCausalLM",
    hf_model_type: "llama",
    hf_text_tower: None,
    gguf_architecture: Some("llama"),
    positions: Positions::Rope,
    norm: NormKind::Rms,
    norm_eps: 1e-5,
    hf_norm_offset: 0.0,
    activation: Activation::Silu,
    hf_gelu_is_tanh: false,
    fused_qkv: false,
    mlp: Mlp::Gated,
    biases: Biases {
        qkv: Bias::Declared,
        o: Bias::Declared,
        mlp: Bias::Declared,
    },
    qk_norm: false,
    sandwich_norms: false,
    embed_scale: false,
    query_scale: QueryScale::HeadDim,
    hf_softcap: false,
    tied_head: false,
    needs_bos: false,
    rope_theta: 10_000.0,
    local_rope_theta: None,
    sliding: SlidingLayers::Never,
    hf_intermediate_factor: None,
    hf_unsupported: None,
    hf_tensors: HfTensors {
        names: HF_LLAMA_NAMES,
        roots: HF_DECODER_ROOTS,
        conv1d: false,
    },
    gguf_tensors: GgufTensors {
        permuted_qk: true,
        ..GGUF_TENSORS
    },
};

const MISTRAL: FamilyRules = FamilyRules {
    family: Family::Mistral,
    name: "mistral",
    hf_architecture: "MistralForCausalLM",
    hf_model_type: "mistral",
    gguf_architecture: None,
    sliding: SlidingLayers::All,
    ..LLAMA
};

const QWEN2: FamilyRules = FamilyRules {
    family: Family::Qwen2,
    name: "qwen2",
    hf_architecture: "Qwen2ForCausalLM",
    hf_model_type: "qwen2",
    gguf_architecture: Some("qwen2"),
    biases: Biases {
        qkv: Bias::Always,
        o: Bias::Never,
        mlp: Bias::Declared,
    },
    rope_theta: 1_000_000.0,
    sliding: SlidingLayers::OptIn { first_layer: 28 },
    gguf_tensors: GGUF_TENSORS,
    ..LLAMA
};

const QWEN3: FamilyRules = FamilyRules {
    family: Family::Qwen3,
    name: "qwen3",
    hf_architecture: "Qwen3ForCausalLM",
    hf_model_type: "qwen3",
    gguf_architecture: Some("qwen3"),
    qk_norm: true,
    rope_theta: 1_000_000.0,
    sliding: SlidingLayers::OptIn { first_layer: 28 },
    gguf_tensors: GGUF_TENSORS,
    ..LLAMA
};

const GEMMA: FamilyRules = FamilyRules {
    family: Family::Gemma,
    name: "gemma",
    hf_architecture: "GemmaForCausalLM",
    hf_model_type: "gemma",
    gguf_architecture: Some("gemma"),
    norm_eps: 1e-6,
    hf_norm_offset: 1.0,
    activation: Activation::GeluTanh,
    hf_gelu_is_tanh: true,
    embed_scale: true,
    tied_head: true,
    needs_bos: true,
    gguf_tensors: GGUF_TENSORS,
    ..LLAMA
};

const GEMMA2: FamilyRules = FamilyRules {
    family: Family::Gemma2,
    name: "gemma2",
    hf_architecture: "Gemma2ForCausalLM",
    hf_model_type: "gemma2",
    gguf_architecture: Some("gemma2"),
    hf_gelu_is_tanh: false,
    sandwich_norms: true,
    query_scale: QueryScale::PreAttnScalar {
        hf_default: 256.0,
        gguf_hidden_per_head_at: 46,
    },
    hf_softcap: true,
    sliding: SlidingLayers::Pattern {
        period: 2,
        configurable: false,
        hf_default_window: 4096,
    },
    hf_tensors: HfTensors {
        names: HF_GEMMA2_NAMES,
        ..LLAMA.hf_tensors
    },
    ..GEMMA
};

const GEMMA3: FamilyRules = FamilyRules {
    family: Family::Gemma3,
    name: "gemma3",
    hf_architecture: "Gemma3ForCausalLM",
    hf_model_type: "gemma3_text",
    hf_text_tower: Some(TextTower {
        architecture: "Gemma3ForConditionalGeneration",
        model_type: "gemma3",
        // Gemma3TextConfig's field defaults
        defaults: r#"{
            "vocab_size": 262208, "num_attention_heads": 8, "num_key_value_heads": 4,
            "head_dim": 256, "max_position_embeddings": 131072,
            "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-6, "sliding_window": 4096
        }"#,
    }),
    gguf_architecture: Some("gemma3"),
    qk_norm: true,
    query_scale: QueryScale::PreAttnScalar {
        hf_default: 256.0,
        gguf_hidden_per_head_at: 62,
    },
    rope_theta: 1_000_000.0,
    local_rope_theta: Some(10_000.0),
    sliding: SlidingLayers::Pattern {
        period: 6,
        configurable: true,
        hf_default_window: 4096,
    },
    ..GEMMA2
};

const PHI3: FamilyRules = FamilyRules {
    family: Family::Phi3,
    name: "phi3",
    hf_architecture: "Phi3ForCausalLM",
    hf_model_type: "phi3",
    gguf_architecture: Some("phi3"),
    fused_qkv: true,
    mlp: Mlp::FusedGated,
    sliding: SlidingLayers::All,
    gguf_tensors: GGUF_TENSORS,
    ..LLAMA
};

/// The table: one row per [`Family`], in its order.
pub(crate) const FAMILIES: &[FamilyRules] = &[
    GPT2, LLAMA, MISTRAL, QWEN2, QWEN3, GEMMA, GEMMA2, GEMMA3, PHI3,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_enum_and_names_are_unique() {
        for (i, row) in FAMILIES.iter().enumerate() {
            assert_eq!(row.family as usize, i, "{}", row.name);
            assert_eq!(row.family.rules().name, row.name);
            assert_eq!(
                Family::from_hf_architecture(row.hf_architecture),
                Some(row.family)
            );
            assert_eq!(
                Family::from_hf_model_type(row.hf_model_type),
                Some(row.family)
            );
            if let Some(arch) = row.gguf_architecture {
                assert_eq!(Family::from_gguf_architecture(arch), Some(row.family));
            }
            if let Some(tower) = &row.hf_text_tower {
                let defaults: serde_json::Value = serde_json::from_str(tower.defaults).unwrap();
                assert!(defaults.is_object(), "{}", row.name);
            }
        }
    }

    #[test]
    fn the_supported_lists_follow_the_table() {
        assert_eq!(
            SUPPORTED_HF_ARCHITECTURES,
            [
                "Gemma3ForConditionalGeneration",
                "GPT2LMHeadModel",
                "LlamaForCausalLM",
                "MistralForCausalLM",
                "Qwen2ForCausalLM",
                "Qwen3ForCausalLM",
                "GemmaForCausalLM",
                "Gemma2ForCausalLM",
                "Gemma3ForCausalLM",
                "Phi3ForCausalLM",
            ]
        );
        assert_eq!(
            SUPPORTED_GGUF_ARCHITECTURES,
            ["gpt2", "llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3"]
        );
    }

    #[test]
    fn sliding_patterns_leave_the_last_layer_of_each_period_full() {
        let full: Vec<usize> = (0..12).filter(|&i| !slides_in_pattern(i, 6)).collect();
        assert_eq!(full, [5, 11]);
        let even: Vec<bool> = (0..4).map(|i| slides_in_pattern(i, 2)).collect();
        assert_eq!(even, [true, false, true, false]);
        assert!(slides_in_pattern(3, 0));
    }
}
