//! Model hyperparameters, from a Hugging Face `config.json` or from GGUF
//! metadata, validated once into a [`ModelConfig`].
//!
//! Every supported family is one decoder-only transformer with switches
//! ([`Family`] names them). What a family is (its conventions, its defaults,
//! its tensor names) is one row of the family table (`config/family.rs`,
//! which says how to add a family); the two parsers turn a config into
//! switches by that row: `hf.rs` reads `config.json` with transformers'
//! (5.x) defaults, `gguf.rs` reads GGUF metadata with llama.cpp's. The
//! forward pass never asks which family it runs.

mod family;
mod gguf;
mod hf;

use std::path::Path;

use crate::error::ModelError;

pub(crate) use family::{slides_in_pattern, FamilyRules, Mlp, QueryScale, SlidingLayers};
pub use family::{Family, SUPPORTED_GGUF_ARCHITECTURES, SUPPORTED_HF_ARCHITECTURES};
pub(crate) use family::{Root, TensorNames};
pub use gguf::GgufTensorFacts;

/// How RoPE frequencies are scaled for long contexts (transformers'
/// `rope_scaling` / `rope_parameters`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor` (inverse frequencies divided by it).
    Linear {
        /// Scale factor.
        factor: f64,
    },
    /// Dynamic NTK: the base grows with the window length once a window is
    /// longer than `max_position_embeddings`.
    Dynamic {
        /// Scale factor.
        factor: f64,
    },
    /// Llama 3.1 frequency-dependent scaling.
    Llama3 {
        /// Scale factor for low frequencies.
        factor: f64,
        /// Wavelength threshold factor for the low band.
        low_freq_factor: f64,
        /// Wavelength threshold factor for the high band.
        high_freq_factor: f64,
        /// Context length the model was pre-trained with.
        original_max_position_embeddings: f64,
    },
    /// Per-frequency divisors read from a GGUF `rope_freqs` tensor (how
    /// llama.cpp stores Llama 3 scaling): `inv_freq[i] / factors[i]`.
    Factors(Vec<f32>),
    /// LongRoPE (Phi-3): per-frequency divisors, `short` for windows of at
    /// most `original_max_position_embeddings` positions and `long` past
    /// that, with cos and sin multiplied by `attention_factor`.
    LongRope {
        /// Divisors for short windows.
        short: Vec<f32>,
        /// Divisors for long windows.
        long: Vec<f32>,
        /// The pre-training context that separates short from long.
        original_max_position_embeddings: usize,
        /// Multiplier of the cos/sin tables.
        attention_factor: f64,
    },
}

/// Which normalisation the blocks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// RMSNorm: `x / rms(x) · (offset + w)`.
    Rms,
    /// LayerNorm with a bias (GPT-2).
    Layer,
}

/// The MLP's activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (swish).
    Silu,
    /// GELU, tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// GELU, exact (erf).
    GeluErf,
}

/// How positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// Rotary embeddings on queries and keys.
    Rope,
    /// A learned table added to the token embeddings (GPT-2).
    Learned,
}

/// What one layer's attention sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerAttention {
    /// Keys further back than this many positions (the query's own
    /// included) are masked; `None`: full causal attention.
    pub sliding_window: Option<usize>,
    /// The layer uses the local RoPE (Gemma 3's sliding layers) rather than
    /// the global one.
    pub local_rope: bool,
}

/// Validated hyperparameters of a supported model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The family whose conventions apply.
    pub family: Family,
    /// `architectures[0]` of config.json, or GGUF's `general.architecture`.
    pub architecture: String,
    /// Embedding rows (the model's vocabulary).
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (GQA when fewer than `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Normalisation kind.
    pub norm: NormKind,
    /// Normalisation epsilon.
    pub norm_eps: f64,
    /// Added to every stored norm weight (1 for Gemma's `(1 + w)` in HF
    /// checkpoints; llama.cpp's converter adds it to the stored weights).
    pub norm_weight_offset: f32,
    /// MLP activation.
    pub activation: Activation,
    /// `act(gate(x)) · up(x)` (true) or `act(up(x))` (GPT-2).
    pub gated_mlp: bool,
    /// How positions are encoded.
    pub positions: Positions,
    /// RoPE base of the global layers.
    pub rope_theta: f64,
    /// RoPE scaling of the global layers.
    pub rope_scaling: RopeScaling,
    /// RoPE base of the local layers (Gemma 3), which are never scaled.
    pub local_rope_theta: Option<f64>,
    /// Declared context length.
    pub max_position_embeddings: usize,
    /// One entry per layer.
    pub layers: Vec<LayerAttention>,
    /// Whether the output head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Biases on the query/key/value projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub o_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    /// RMSNorm over each query and key head before RoPE (Qwen3, Gemma 3).
    pub qk_norm: bool,
    /// Norms after attention and after the MLP too (Gemma 2/3).
    pub sandwich_norms: bool,
    /// Multiplier of the token embeddings (Gemma: `√hidden`).
    pub embed_scale: Option<f64>,
    /// Multiplier of the attention scores (`1/√head_dim` unless the family
    /// says otherwise).
    pub attention_scale: f64,
    /// `tanh` soft-capping of attention scores (Gemma 2).
    pub attn_softcap: Option<f64>,
    /// `tanh` soft-capping of the output logits (Gemma 2).
    pub final_softcap: Option<f64>,
}

impl ModelConfig {
    /// The longest window the model accepts, when it declares one. Dynamic
    /// NTK scaling exists to go past `max_position_embeddings`, so it has
    /// none; learned positions end where their table ends.
    pub fn max_context(&self) -> Option<usize> {
        match self.rope_scaling {
            RopeScaling::Dynamic { .. } if self.positions == Positions::Rope => None,
            _ => Some(self.max_position_embeddings),
        }
    }

    /// The distinct sliding windows of the layers, in first-use order.
    pub fn sliding_windows(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for w in self.layers.iter().filter_map(|l| l.sliding_window) {
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }

    fn validate(self, path: &Path) -> Result<Self, ModelError> {
        let bad = |problem: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            problem,
        };
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return Err(bad(format!("{name} is 0")));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_heads, self.num_kv_heads
            )));
        }
        if self.positions == Positions::Rope && !self.head_dim.is_multiple_of(2) {
            return Err(bad(format!("head_dim {} is odd", self.head_dim)));
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.norm_eps) {
            return Err(bad(format!(
                "norm epsilon {} is not positive",
                self.norm_eps
            )));
        }
        for (name, theta) in [
            ("rope_theta", Some(self.rope_theta)),
            ("the local rope_theta", self.local_rope_theta),
        ] {
            if let Some(theta) = theta.filter(|t| !positive(*t)) {
                return Err(bad(format!("{name} {theta} is not positive")));
            }
        }
        if self.layers.len() != self.num_layers {
            return Err(bad(format!(
                "{} layer types for {} layers",
                self.layers.len(),
                self.num_layers
            )));
        }
        if self.layers.iter().any(|l| l.sliding_window == Some(0)) {
            return Err(bad("sliding_window is 0".into()));
        }
        for (name, cap) in [
            ("attn_logit_softcapping", self.attn_softcap),
            ("final_logit_softcapping", self.final_softcap),
        ] {
            if let Some(cap) = cap.filter(|c| !positive(*c)) {
                return Err(bad(format!("{name} {cap} is not positive")));
            }
        }
        if !positive(self.attention_scale) {
            return Err(bad(format!(
                "attention scale {} is not positive",
                self.attention_scale
            )));
        }
        let half = self.head_dim / 2;
        let factors_ok = |name: &str, f: &[f32]| -> Result<(), ModelError> {
            if f.len() != half {
                return Err(bad(format!(
                    "{name} has {} entries, expected head_dim / 2 = {half}",
                    f.len()
                )));
            }
            match f.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                Some(x) => Err(bad(format!("{name} holds {x}"))),
                None => Ok(()),
            }
        };
        match &self.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } | RopeScaling::Dynamic { factor } => {
                if !positive(*factor) {
                    return Err(bad(format!("rope scaling factor {factor} is not positive")));
                }
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                if !(positive(*factor)
                    && positive(*low_freq_factor)
                    && positive(*high_freq_factor)
                    && positive(*original_max_position_embeddings)
                    && high_freq_factor != low_freq_factor)
                {
                    return Err(bad(format!(
                        "invalid llama3 rope scaling (factor {factor}, low_freq_factor \
                         {low_freq_factor}, high_freq_factor {high_freq_factor}, \
                         original_max_position_embeddings {original_max_position_embeddings})"
                    )));
                }
            }
            RopeScaling::Factors(f) => factors_ok("rope_freqs", f)?,
            RopeScaling::LongRope {
                short,
                long,
                original_max_position_embeddings,
                attention_factor,
            } => {
                factors_ok("short_factor", short)?;
                factors_ok("long_factor", long)?;
                if *original_max_position_embeddings == 0 || !positive(*attention_factor) {
                    return Err(bad(format!(
                        "invalid longrope scaling (original_max_position_embeddings \
                         {original_max_position_embeddings}, attention_factor {attention_factor})"
                    )));
                }
            }
        }
        Ok(self)
    }
}

/// More layers than any model has: a larger count is a corrupt value,
/// refused before anything is sized by it (the per-layer table is built
/// before the configuration is validated).
pub(crate) const MAX_LAYERS: usize = 4096;

/// `num_layers`, read from `name`, when it is at most [`MAX_LAYERS`]; else
/// the problem.
fn layer_count(num_layers: usize, name: &str) -> Result<usize, String> {
    if num_layers > MAX_LAYERS {
        return Err(format!(
            "{name} is {num_layers}, more than perplex supports ({MAX_LAYERS})"
        ));
    }
    Ok(num_layers)
}

/// One [`LayerAttention`] per entry of `sliding`: the layer slides (with
/// `window`) when its entry says so and there is a window, and then uses the
/// family's local RoPE if it has one.
fn layer_attentions(
    rules: &FamilyRules,
    window: Option<usize>,
    sliding: impl IntoIterator<Item = bool>,
) -> Vec<LayerAttention> {
    sliding
        .into_iter()
        .map(|s| {
            let slides = s && window.is_some();
            LayerAttention {
                sliding_window: if slides { window } else { None },
                local_rope: slides && rules.local_rope_theta.is_some(),
            }
        })
        .collect()
}

/// transformers' default LongRoPE attention factor.
fn longrope_attention_factor(max_position_embeddings: usize, original: usize) -> f64 {
    let factor = max_position_embeddings as f64 / original as f64;
    if factor <= 1.0 {
        1.0
    } else {
        (1.0 + factor.ln() / (original as f64).ln()).sqrt()
    }
}

fn head_dim_mismatch(head_dim: Option<usize>, hidden: usize, heads: usize) -> bool {
    head_dim.is_none() && (heads == 0 || !hidden.is_multiple_of(heads))
}
