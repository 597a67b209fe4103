//! Model hyperparameters, from a Hugging Face `config.json` or from GGUF
//! metadata, validated once into a [`ModelConfig`].
//!
//! Every supported family is one decoder-only transformer with switches
//! ([`Family`] names them); this module is where a family's conventions are
//! turned into those switches, so the forward pass never asks which family it
//! runs. The defaults for keys a `config.json` leaves out are transformers'
//! (5.x) defaults for that family; for GGUF they are llama.cpp's.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::ModelError;

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

/// `config.json` `architectures` values and the family each loads as.
const HF_ARCHITECTURES: &[(&str, Family)] = &[
    ("GPT2LMHeadModel", Family::Gpt2),
    ("LlamaForCausalLM", Family::Llama),
    ("MistralForCausalLM", Family::Mistral),
    ("Qwen2ForCausalLM", Family::Qwen2),
    ("Qwen3ForCausalLM", Family::Qwen3),
    ("GemmaForCausalLM", Family::Gemma),
    ("Gemma2ForCausalLM", Family::Gemma2),
    ("Gemma3ForCausalLM", Family::Gemma3),
    ("Phi3ForCausalLM", Family::Phi3),
];

/// Multimodal architectures whose text tower perplex evaluates: the
/// architecture, its `model_type`, and the family of its `text_config`.
const HF_TEXT_TOWERS: &[(&str, &str, Family)] =
    &[("Gemma3ForConditionalGeneration", "gemma3", Family::Gemma3)];

/// `config.json` `model_type` values, for configs without `architectures`.
const HF_MODEL_TYPES: &[(&str, Family)] = &[
    ("gpt2", Family::Gpt2),
    ("llama", Family::Llama),
    ("mistral", Family::Mistral),
    ("qwen2", Family::Qwen2),
    ("qwen3", Family::Qwen3),
    ("gemma", Family::Gemma),
    ("gemma2", Family::Gemma2),
    ("gemma3_text", Family::Gemma3),
    ("phi3", Family::Phi3),
];

/// GGUF `general.architecture` values (llama.cpp writes Mistral as `llama`).
const GGUF_ARCHITECTURES: &[(&str, Family)] = &[
    ("gpt2", Family::Gpt2),
    ("llama", Family::Llama),
    ("qwen2", Family::Qwen2),
    ("qwen3", Family::Qwen3),
    ("gemma", Family::Gemma),
    ("gemma2", Family::Gemma2),
    ("gemma3", Family::Gemma3),
    ("phi3", Family::Phi3),
];

/// The `architectures` values of config.json that perplex implements.
pub const SUPPORTED_HF_ARCHITECTURES: &[&str] = &[
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
];
/// The `general.architecture` values of GGUF files that perplex implements.
pub const SUPPORTED_GGUF_ARCHITECTURES: &[&str] = &[
    "gpt2", "llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3",
];

impl Family {
    /// The family's short name (`gpt2`, `llama`, `gemma2`, …).
    pub fn name(self) -> &'static str {
        match self {
            Family::Gpt2 => "gpt2",
            Family::Llama => "llama",
            Family::Mistral => "mistral",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
            Family::Gemma => "gemma",
            Family::Gemma2 => "gemma2",
            Family::Gemma3 => "gemma3",
            Family::Phi3 => "phi3",
        }
    }

    /// Whether the model was trained with every sequence starting with BOS
    /// and degrades badly without it (Gemma: perplexity in the thousands).
    pub fn needs_bos(self) -> bool {
        matches!(self, Family::Gemma | Family::Gemma2 | Family::Gemma3)
    }

    fn is_gemma(self) -> bool {
        self.needs_bos()
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

    /// Parses and validates a Hugging Face `config.json`. For a multimodal
    /// model (Gemma 3 4B and up) this is its text tower's configuration,
    /// with transformers' defaults for the keys `text_config` leaves out.
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self, ModelError> {
        let json_error = |source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        };
        let value: Json = serde_json::from_str(text).map_err(json_error)?;
        let declares = |name: &str, model_type: &str| {
            value["architectures"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == name))
                || value["model_type"] == model_type
        };
        if let Some(&(name, _, family)) = HF_TEXT_TOWERS
            .iter()
            .find(|(name, model_type, _)| declares(name, model_type))
        {
            let mut text_config = value["text_config"].clone();
            let Some(fields) = text_config.as_object_mut() else {
                return Err(ModelError::InvalidConfig {
                    path: path.to_path_buf(),
                    problem: format!("{name} without a `text_config`"),
                });
            };
            for (k, v) in text_tower_defaults(family) {
                fields.entry(k.to_string()).or_insert(v);
            }
            let tower = HF_ARCHITECTURES
                .iter()
                .find(|(_, f)| *f == family)
                .expect("every family has an architecture")
                .0;
            fields.insert("architectures".into(), Json::from(vec![tower]));
            let mut config = Self::from_hf_json(&text_config.to_string(), path)?;
            config.architecture = name.to_string();
            return Ok(config);
        }
        let raw: HfConfig = serde_json::from_value(value).map_err(json_error)?;
        let bad = |problem: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            problem,
        };
        let unsupported = |architecture: String| ModelError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            architecture,
            supported: SUPPORTED_HF_ARCHITECTURES.join(", "),
        };
        let (architecture, family) = match (&raw.architectures, &raw.model_type) {
            (Some(archs), _) if !archs.is_empty() => archs
                .iter()
                .find_map(|a| {
                    HF_ARCHITECTURES
                        .iter()
                        .find(|(name, _)| name == a)
                        .map(|&(name, family)| (name.to_string(), family))
                })
                .ok_or_else(|| unsupported(archs.join(", ")))?,
            (_, Some(mt)) => HF_MODEL_TYPES
                .iter()
                .find(|(name, _)| name == mt)
                .map(|&(_, family)| {
                    let arch = HF_ARCHITECTURES.iter().find(|(_, f)| *f == family);
                    (
                        arch.expect("every family has an architecture").0.into(),
                        family,
                    )
                })
                .ok_or_else(|| unsupported(mt.clone()))?,
            (_, None) => return Err(unsupported("(none declared)".into())),
        };
        let need =
            |v: Option<usize>, name: &str| v.ok_or_else(|| bad(format!("`{name}` is missing")));
        let hidden_size = need(raw.hidden_size, "hidden_size")?;
        let num_heads = need(raw.num_attention_heads, "num_attention_heads")?;
        let num_layers = need(raw.num_hidden_layers, "num_hidden_layers")?;
        if head_dim_mismatch(raw.head_dim, hidden_size, num_heads) {
            return Err(bad(format!(
                "hidden_size {hidden_size} is not a multiple of num_attention_heads {num_heads} \
                 and head_dim is not given"
            )));
        }
        let head_dim = raw.head_dim.unwrap_or(hidden_size / num_heads.max(1));
        let max_position_embeddings = raw.max_position_embeddings.unwrap_or(2048);
        if let Some(f) = raw.partial_rotary_factor.filter(|&f| f != 1.0) {
            return Err(bad(format!(
                "partial_rotary_factor {f} (partial rotary embeddings are not supported)"
            )));
        }

        // RoPE: transformers 5 writes `rope_parameters` (per layer type for
        // Gemma 3); older configs `rope_theta` + `rope_scaling`.
        let params = raw.rope_parameters.as_ref();
        let per_type = |t: &str| params.and_then(|p| p.get(t)).and_then(Json::as_object);
        let (global, local) = match (per_type("full_attention"), per_type("sliding_attention")) {
            (None, None) => (params.cloned().map(|p| p.into_iter().collect()), None),
            (g, l) => (
                g.map(|m| m.clone().into_iter().collect::<HashMap<_, _>>()),
                l.map(|m| m.clone().into_iter().collect::<HashMap<_, _>>()),
            ),
        };
        let theta_of = |p: Option<&HashMap<String, Json>>| {
            p.and_then(|p| p.get("rope_theta")).and_then(Json::as_f64)
        };
        let default_theta = match family {
            Family::Qwen2 | Family::Qwen3 | Family::Gemma3 => 1_000_000.0,
            _ => 10_000.0,
        };
        let rope_theta = raw
            .rope_theta
            .or_else(|| theta_of(global.as_ref()))
            .unwrap_or(default_theta);
        let scaling = raw
            .rope_scaling
            .as_ref()
            .filter(|s| !s.is_empty())
            .or(global.as_ref());
        let original_max = raw.original_max_position_embeddings;
        let rope_scaling = match scaling {
            None => RopeScaling::None,
            Some(s) => hf_rope_scaling(s, max_position_embeddings, original_max, path)?,
        };
        let local_rope_theta = (family == Family::Gemma3).then(|| {
            theta_of(local.as_ref())
                .or(raw.rope_local_base_freq)
                .unwrap_or(10_000.0)
        });

        // Which layers slide, as transformers decides it.
        let window = match family {
            Family::Qwen2 | Family::Qwen3 if !raw.use_sliding_window.unwrap_or(false) => None,
            Family::Llama | Family::Gpt2 | Family::Gemma => None,
            Family::Gemma2 | Family::Gemma3 => Some(raw.sliding_window.unwrap_or(4096)),
            _ => raw.sliding_window,
        };
        let sliding: Vec<bool> = match (&raw.layer_types, window) {
            (_, None) => vec![false; num_layers],
            (Some(types), Some(_)) => types.iter().map(|t| t == "sliding_attention").collect(),
            (None, Some(_)) => (0..num_layers)
                .map(|i| match family {
                    Family::Gemma2 => i % 2 == 0,
                    Family::Gemma3 => (i + 1) % raw.sliding_window_pattern.unwrap_or(6) != 0,
                    Family::Qwen2 | Family::Qwen3 => i >= raw.max_window_layers.unwrap_or(28),
                    _ => true,
                })
                .collect(),
        };
        let layers = sliding
            .iter()
            .map(|&s| LayerAttention {
                sliding_window: if s { window } else { None },
                local_rope: s && family == Family::Gemma3,
            })
            .collect();

        let gemma = family.is_gemma();
        let activation_name = raw
            .hidden_activation
            .as_deref()
            .or(raw.hidden_act.as_deref())
            .or(raw.activation_function.as_deref());
        let activation = match (family, activation_name) {
            // transformers maps Gemma's legacy "gelu" to the tanh approximation
            (Family::Gemma, Some("gelu")) => Activation::GeluTanh,
            (_, None) if gemma || family == Family::Gpt2 => Activation::GeluTanh,
            (_, None) => Activation::Silu,
            (_, Some("silu" | "swish")) => Activation::Silu,
            (_, Some("gelu_new" | "gelu_pytorch_tanh" | "gelu_fast")) => Activation::GeluTanh,
            (_, Some("gelu")) => Activation::GeluErf,
            (_, Some(other)) => {
                return Err(bad(format!(
                    "activation `{other}` (supported: silu, gelu, gelu_new, gelu_pytorch_tanh)"
                )))
            }
        };
        if family == Family::Gpt2
            && (raw.scale_attn_by_inverse_layer_idx == Some(true)
                || raw.reorder_and_upcast_attn == Some(true)
                || raw.scale_attn_weights == Some(false))
        {
            return Err(bad(
                "GPT-2 attention variants (scale_attn_by_inverse_layer_idx, \
                 reorder_and_upcast_attn, scale_attn_weights = false) are not supported"
                    .into(),
            ));
        }
        let attention_scale = match (gemma && family != Family::Gemma, raw.query_pre_attn_scalar) {
            (true, Some(s)) => 1.0 / s.sqrt(),
            (true, None) => 1.0 / 256f64.sqrt(),
            (false, _) => 1.0 / (head_dim as f64).sqrt(),
        };
        let attention_bias = raw.attention_bias.unwrap_or(false);
        let config = ModelConfig {
            family,
            architecture,
            vocab_size: need(raw.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: match family {
                Family::Gpt2 => raw.intermediate_size.unwrap_or(4 * hidden_size),
                _ => need(raw.intermediate_size, "intermediate_size")?,
            },
            num_layers,
            num_heads,
            num_kv_heads: raw.num_key_value_heads.unwrap_or(num_heads),
            head_dim,
            norm: if family == Family::Gpt2 {
                NormKind::Layer
            } else {
                NormKind::Rms
            },
            norm_eps: raw
                .rms_norm_eps
                .or(raw.layer_norm_epsilon)
                .unwrap_or(if gemma { 1e-6 } else { 1e-5 }),
            norm_weight_offset: if gemma { 1.0 } else { 0.0 },
            activation,
            gated_mlp: family != Family::Gpt2,
            positions: if family == Family::Gpt2 {
                Positions::Learned
            } else {
                Positions::Rope
            },
            rope_theta,
            rope_scaling,
            local_rope_theta,
            max_position_embeddings,
            layers,
            tie_word_embeddings: raw
                .tie_word_embeddings
                .unwrap_or(matches!(family, Family::Gpt2) || gemma),
            qkv_bias: match family {
                Family::Gpt2 | Family::Qwen2 => true,
                _ => attention_bias,
            },
            o_bias: family == Family::Gpt2 || (family != Family::Qwen2 && attention_bias),
            mlp_bias: family == Family::Gpt2 || raw.mlp_bias.unwrap_or(false),
            qk_norm: matches!(family, Family::Qwen3 | Family::Gemma3),
            sandwich_norms: matches!(family, Family::Gemma2 | Family::Gemma3),
            embed_scale: gemma.then(|| (hidden_size as f64).sqrt()),
            attention_scale,
            attn_softcap: if family == Family::Gemma2 || family == Family::Gemma3 {
                raw.attn_logit_softcapping
            } else {
                None
            },
            final_softcap: if family == Family::Gemma2 || family == Family::Gemma3 {
                raw.final_logit_softcapping
            } else {
                None
            },
        };
        config.validate(path)
    }

    /// Reads the hyperparameters of a GGUF file. `tensors` tells what only
    /// the tensors say: embedding rows, whether there is an output head, and
    /// the RoPE factor tensors.
    pub fn from_gguf(
        content: &gguf_file::Content,
        path: &Path,
        tensors: GgufTensorFacts,
    ) -> Result<Self, ModelError> {
        let md = &content.metadata;
        let bad = |problem: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            problem,
        };
        let arch = match md.get("general.architecture") {
            Some(gguf_file::Value::String(s)) => s.clone(),
            _ => return Err(bad("`general.architecture` is missing".into())),
        };
        let Some(&(_, family)) = GGUF_ARCHITECTURES.iter().find(|(name, _)| *name == arch) else {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: arch,
                supported: SUPPORTED_GGUF_ARCHITECTURES.join(", "),
            });
        };
        let key = |k: &str| format!("{arch}.{k}");
        let uint = |k: &str| -> Result<Option<usize>, ModelError> {
            md.get(&key(k))
                .map(|v| {
                    gguf_uint(v)
                        .ok_or_else(|| bad(format!("`{}` is not an unsigned integer", key(k))))
                })
                .transpose()
        };
        let float = |k: &str| -> Result<Option<f64>, ModelError> {
            md.get(&key(k))
                .map(|v| gguf_float(v).ok_or_else(|| bad(format!("`{}` is not a number", key(k)))))
                .transpose()
        };
        let need =
            |v: Option<usize>, k: &str| v.ok_or_else(|| bad(format!("`{}` is missing", key(k))));
        let hidden_size = need(uint("embedding_length")?, "embedding_length")?;
        let num_heads = need(uint("attention.head_count")?, "attention.head_count")?;
        let num_layers = need(uint("block_count")?, "block_count")?;
        let head_dim = match uint("attention.key_length")? {
            Some(d) => d,
            None => {
                if head_dim_mismatch(None, hidden_size, num_heads) {
                    return Err(bad(format!(
                        "embedding_length {hidden_size} is not a multiple of head_count {num_heads}"
                    )));
                }
                hidden_size / num_heads.max(1)
            }
        };
        if let Some(v) = uint("attention.value_length")? {
            if v != head_dim {
                return Err(bad(format!(
                    "attention.value_length {v} differs from attention.key_length {head_dim}"
                )));
            }
        }
        if family != Family::Gpt2 {
            if let Some(rot) = uint("rope.dimension_count")? {
                if rot != head_dim {
                    return Err(bad(format!(
                        "rope.dimension_count {rot} differs from the head size {head_dim} \
                         (partial rotary embeddings are not supported)"
                    )));
                }
            }
        }
        let max_position_embeddings = uint("context_length")?.unwrap_or(2048);
        let scaling_type = match md.get(&key("rope.scaling.type")) {
            Some(gguf_file::Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let factor = float("rope.scaling.factor")?.or(float("rope.scale_linear")?);
        let mut rope_scaling = match (scaling_type.as_deref(), factor) {
            (None | Some("none"), None) | (Some("none"), _) => RopeScaling::None,
            (None | Some("linear"), Some(1.0)) => RopeScaling::None,
            (None | Some("linear"), Some(factor)) => RopeScaling::Linear { factor },
            (Some("linear"), None) => RopeScaling::None,
            // Phi-3 declares LongRoPE through its factor tensors
            (Some("longrope" | "su"), _) if tensors.rope_long.is_some() => RopeScaling::None,
            (Some(other), _) => {
                return Err(ModelError::UnsupportedRopeScaling {
                    path: path.to_path_buf(),
                    kind: other.to_string(),
                })
            }
        };
        if let Some(factors) = tensors.rope_freqs {
            if rope_scaling != RopeScaling::None {
                return Err(bad(
                    "both a rope_freqs tensor and a rope scaling type are declared".into(),
                ));
            }
            rope_scaling = RopeScaling::Factors(factors);
        }
        match (tensors.rope_short, tensors.rope_long) {
            (Some(short), Some(long)) => {
                let original = uint("rope.scaling.original_context_length")?.ok_or_else(|| {
                    bad(format!(
                        "LongRoPE factor tensors without `{}`",
                        key("rope.scaling.original_context_length")
                    ))
                })?;
                let attention_factor = match float("rope.scaling.attn_factor")? {
                    Some(f) => f,
                    None => longrope_attention_factor(max_position_embeddings, original),
                };
                rope_scaling = RopeScaling::LongRope {
                    short,
                    long,
                    original_max_position_embeddings: original,
                    attention_factor,
                };
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "only one of rope_factors_short / rope_factors_long is present".into(),
                ))
            }
        }

        // llama.cpp's layer patterns: Gemma 2 slides on even layers, Gemma 3
        // on all but every sixth, with a local RoPE base of
        // `rope.freq_base_swa` (10000 in files that predate that key).
        let window = uint("attention.sliding_window")?;
        let pattern = match family {
            Family::Gemma2 => Some(2),
            Family::Gemma3 => Some(uint("attention.sliding_window_pattern")?.unwrap_or(6)),
            _ => None,
        };
        let layers = (0..num_layers)
            .map(|i| {
                let sliding = match (family, pattern, window) {
                    (_, _, None) => false,
                    (_, Some(p), Some(_)) => p == 0 || i % p < p - 1,
                    (Family::Mistral | Family::Phi3, None, Some(_)) => true,
                    _ => false,
                };
                LayerAttention {
                    sliding_window: if sliding { window } else { None },
                    local_rope: sliding && family == Family::Gemma3,
                }
            })
            .collect();
        let gemma = family.is_gemma();
        // llama.cpp derives Gemma 2/3's query scale from the model size:
        // hidden / heads for the 27B models, head_dim otherwise.
        let attention_scale = match float("attention.scale")? {
            Some(s) => s,
            None => {
                let big = matches!(
                    (family, num_layers),
                    (Family::Gemma2, 46) | (Family::Gemma3, 62)
                );
                let d = if big {
                    hidden_size / num_heads
                } else {
                    head_dim
                };
                1.0 / (d as f64).sqrt()
            }
        };
        let norm_eps = match family {
            Family::Gpt2 => float("attention.layer_norm_epsilon")?.unwrap_or(1e-5),
            _ => float("attention.layer_norm_rms_epsilon")?.unwrap_or(if gemma {
                1e-6
            } else {
                1e-5
            }),
        };
        let config = ModelConfig {
            family,
            architecture: arch.clone(),
            vocab_size: uint("vocab_size")?.unwrap_or(tensors.vocab_rows),
            hidden_size,
            intermediate_size: need(uint("feed_forward_length")?, "feed_forward_length")?,
            num_layers,
            num_heads,
            num_kv_heads: uint("attention.head_count_kv")?.unwrap_or(num_heads),
            head_dim,
            norm: if family == Family::Gpt2 {
                NormKind::Layer
            } else {
                NormKind::Rms
            },
            norm_eps,
            norm_weight_offset: 0.0,
            activation: if gemma || family == Family::Gpt2 {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            gated_mlp: family != Family::Gpt2,
            positions: if family == Family::Gpt2 {
                Positions::Learned
            } else {
                Positions::Rope
            },
            rope_theta: float("rope.freq_base")?.unwrap_or(match family {
                Family::Gemma3 | Family::Qwen2 | Family::Qwen3 => 1_000_000.0,
                _ => 10_000.0,
            }),
            rope_scaling,
            local_rope_theta: if family == Family::Gemma3 {
                Some(float("rope.freq_base_swa")?.unwrap_or(10_000.0))
            } else {
                None
            },
            max_position_embeddings,
            layers,
            tie_word_embeddings: tensors.tied,
            // GGUF has no bias flags: a bias is used when its tensor exists
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: matches!(family, Family::Qwen3 | Family::Gemma3),
            sandwich_norms: matches!(family, Family::Gemma2 | Family::Gemma3),
            embed_scale: gemma.then(|| (hidden_size as f64).sqrt()),
            attention_scale,
            attn_softcap: float("attn_logit_softcapping")?,
            final_softcap: float("final_logit_softcapping")?,
        };
        config.validate(path)
    }
}

/// transformers' defaults for what a multimodal checkpoint's `text_config`
/// may leave out (Gemma 3: `Gemma3TextConfig`'s field defaults).
fn text_tower_defaults(family: Family) -> Vec<(&'static str, Json)> {
    match family {
        Family::Gemma3 => vec![
            ("vocab_size", 262_208.into()),
            ("num_attention_heads", 8.into()),
            ("num_key_value_heads", 4.into()),
            ("head_dim", 256.into()),
            ("max_position_embeddings", 131_072.into()),
            ("query_pre_attn_scalar", 256.into()),
            ("rms_norm_eps", 1e-6.into()),
            ("sliding_window", 4096.into()),
        ],
        _ => Vec::new(),
    }
}

/// What a GGUF file's tensors say about its hyperparameters.
#[derive(Debug, Clone, Default)]
pub struct GgufTensorFacts {
    /// Rows of `token_embd`.
    pub vocab_rows: usize,
    /// No `output` tensor: the head is the embedding.
    pub tied: bool,
    /// `rope_freqs` (Llama 3 scaling).
    pub rope_freqs: Option<Vec<f32>>,
    /// `rope_factors_short` (Phi-3 LongRoPE).
    pub rope_short: Option<Vec<f32>>,
    /// `rope_factors_long` (Phi-3 LongRoPE).
    pub rope_long: Option<Vec<f32>>,
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

/// An unsigned integer of any GGUF integer type.
pub(crate) fn gguf_uint(v: &gguf_file::Value) -> Option<usize> {
    use gguf_file::Value as V;
    let x: i128 = match v {
        V::U8(x) => (*x).into(),
        V::I8(x) => (*x).into(),
        V::U16(x) => (*x).into(),
        V::I16(x) => (*x).into(),
        V::U32(x) => (*x).into(),
        V::I32(x) => (*x).into(),
        V::U64(x) => (*x).into(),
        V::I64(x) => (*x).into(),
        _ => return None,
    };
    usize::try_from(x).ok()
}

/// A number of any GGUF numeric type.
pub(crate) fn gguf_float(v: &gguf_file::Value) -> Option<f64> {
    use gguf_file::Value as V;
    match v {
        V::F32(x) => Some((*x).into()),
        V::F64(x) => Some(*x),
        other => gguf_uint(other).map(|x| x as f64),
    }
}

fn hf_rope_scaling(
    s: &HashMap<String, Json>,
    max_position_embeddings: usize,
    original_max_position_embeddings: Option<usize>,
    path: &Path,
) -> Result<RopeScaling, ModelError> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let num = |k: &str| s.get(k).and_then(|v| v.as_f64());
    let bad = |problem: String| ModelError::InvalidConfig {
        path: path.to_path_buf(),
        problem,
    };
    let need = |k: &str| num(k).ok_or_else(|| bad(format!("rope scaling `{kind}` needs `{k}`")));
    let factors = |k: &str| -> Result<Vec<f32>, ModelError> {
        s.get(k)
            .and_then(Json::as_array)
            .and_then(|a| a.iter().map(|x| x.as_f64().map(|x| x as f32)).collect())
            .ok_or_else(|| bad(format!("rope scaling `{kind}` needs a list `{k}`")))
    };
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: need("factor")?,
        },
        "dynamic" => RopeScaling::Dynamic {
            factor: need("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")
                .unwrap_or(max_position_embeddings as f64),
        },
        // Phi-3's legacy names for the same scheme
        "longrope" | "su" => {
            let original = num("original_max_position_embeddings")
                .map(|x| x as usize)
                .or(original_max_position_embeddings)
                .ok_or_else(|| bad("longrope needs `original_max_position_embeddings`".into()))?;
            // transformers: an explicit factor only sets the attention factor
            // when the two context lengths do not
            let attention_factor = match (num("attention_factor"), num("factor")) {
                (Some(a), _) => a,
                (None, _) if original > 0 => {
                    longrope_attention_factor(max_position_embeddings, original)
                }
                (None, Some(f)) if f > 1.0 => (1.0 + f.ln() / (original as f64).ln()).sqrt(),
                (None, _) => 1.0,
            };
            RopeScaling::LongRope {
                short: factors("short_factor")?,
                long: factors("long_factor")?,
                original_max_position_embeddings: original,
                attention_factor,
            }
        }
        other => {
            return Err(ModelError::UnsupportedRopeScaling {
                path: path.to_path_buf(),
                kind: other.to_string(),
            })
        }
    })
}

/// The fields of config.json perplex reads; everything else is ignored.
/// GPT-2's own names are accepted as aliases.
#[derive(Debug, Deserialize)]
struct HfConfig {
    architectures: Option<Vec<String>>,
    model_type: Option<String>,
    vocab_size: Option<usize>,
    #[serde(alias = "n_embd")]
    hidden_size: Option<usize>,
    #[serde(alias = "n_inner")]
    intermediate_size: Option<usize>,
    #[serde(alias = "n_layer")]
    num_hidden_layers: Option<usize>,
    #[serde(alias = "n_head")]
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    layer_norm_epsilon: Option<f64>,
    hidden_act: Option<String>,
    hidden_activation: Option<String>,
    activation_function: Option<String>,
    rope_theta: Option<f64>,
    rope_scaling: Option<HashMap<String, Json>>,
    rope_parameters: Option<HashMap<String, Json>>,
    rope_local_base_freq: Option<f64>,
    partial_rotary_factor: Option<f64>,
    #[serde(alias = "n_positions")]
    max_position_embeddings: Option<usize>,
    original_max_position_embeddings: Option<usize>,
    sliding_window: Option<usize>,
    use_sliding_window: Option<bool>,
    max_window_layers: Option<usize>,
    sliding_window_pattern: Option<usize>,
    layer_types: Option<Vec<String>>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    query_pre_attn_scalar: Option<f64>,
    attn_logit_softcapping: Option<f64>,
    final_logit_softcapping: Option<f64>,
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
    reorder_and_upcast_attn: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOL: &str = r#"{
        "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "rms_norm_eps": 1e-5, "rope_theta": 100000, "max_position_embeddings": 8192,
        "tie_word_embeddings": true, "vocab_size": 49152, "rope_scaling": null,
        "head_dim": null, "sliding_window": 4096
    }"#;

    #[test]
    fn parses_a_llama_config() {
        let c = ModelConfig::from_hf_json(SMOL, Path::new("config.json")).unwrap();
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.num_kv_heads, 3);
        assert_eq!(c.rope_theta, 100_000.0);
        assert_eq!(c.rope_scaling, RopeScaling::None);
        // llama ignores sliding_window, as transformers does
        assert!(c.sliding_windows().is_empty());
        assert_eq!(c.family, Family::Llama);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.max_context(), Some(8192));
    }

    #[test]
    fn parses_rope_scaling_variants() {
        let with = |scaling: &str| {
            let text = SMOL.replace(
                r#""rope_scaling": null"#,
                &format!(r#""rope_scaling": {scaling}"#),
            );
            ModelConfig::from_hf_json(&text, Path::new("config.json"))
        };
        assert_eq!(
            with(r#"{"type": "linear", "factor": 2.0}"#)
                .unwrap()
                .rope_scaling,
            RopeScaling::Linear { factor: 2.0 }
        );
        assert_eq!(
            with(r#"{"rope_type": "dynamic", "factor": 4}"#)
                .unwrap()
                .max_context(),
            None
        );
        assert_eq!(
            with(r#"{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#)
                .unwrap()
                .rope_scaling,
            RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0
            }
        );
        let err = with(r#"{"rope_type": "yarn", "factor": 4}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported rope scaling `yarn` in config.json (supported: none, linear, dynamic, llama3, longrope)"
        );
    }

    #[test]
    fn rejects_other_architectures() {
        let text = SMOL.replace("LlamaForCausalLM", "BertForMaskedLM");
        let err = ModelConfig::from_hf_json(&text, Path::new("m/config.json")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "unsupported architecture `BertForMaskedLM` in m/config.json (supported: {})",
                SUPPORTED_HF_ARCHITECTURES.join(", ")
            )
        );
        assert!(err.hint().is_some());
    }

    #[test]
    fn mistral_keeps_its_sliding_window() {
        let text = SMOL.replace("LlamaForCausalLM", "MistralForCausalLM");
        let c = ModelConfig::from_hf_json(&text, Path::new("config.json")).unwrap();
        assert_eq!(c.sliding_windows(), vec![4096]);
        assert!(c.layers.iter().all(|l| l.sliding_window == Some(4096)));
    }

    #[test]
    fn reports_missing_and_inconsistent_values() {
        let text = SMOL.replace(r#""num_key_value_heads": 3"#, r#""num_key_value_heads": 4"#);
        let err = ModelConfig::from_hf_json(&text, Path::new("config.json")).unwrap_err();
        assert!(
            err.to_string()
                .contains("num_attention_heads 9 is not a multiple of num_key_value_heads 4"),
            "{err}"
        );
        let text = SMOL.replace(r#""hidden_size": 576,"#, "");
        let err = ModelConfig::from_hf_json(&text, Path::new("config.json")).unwrap_err();
        assert!(
            err.to_string().contains("`hidden_size` is missing"),
            "{err}"
        );
    }

    fn parse(json: serde_json::Value) -> ModelConfig {
        ModelConfig::from_hf_json(&json.to_string(), Path::new("config.json")).unwrap()
    }

    #[test]
    fn gpt2_reads_its_own_key_names() {
        let c = parse(serde_json::json!({
            "architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": 2, "n_head": 4,
            "n_positions": 128, "n_inner": null, "vocab_size": 100,
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5
        }));
        assert_eq!(c.family, Family::Gpt2);
        assert_eq!(
            (c.hidden_size, c.intermediate_size, c.head_dim),
            (64, 256, 16)
        );
        assert_eq!(c.positions, Positions::Learned);
        assert_eq!(c.norm, NormKind::Layer);
        assert_eq!(c.activation, Activation::GeluTanh);
        assert!(c.tie_word_embeddings && c.qkv_bias && c.o_bias && c.mlp_bias && !c.gated_mlp);
        assert_eq!(c.max_context(), Some(128));
    }

    #[test]
    fn qwen2_slides_only_when_asked() {
        let base = serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
            "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 100, "sliding_window": 32, "max_window_layers": 2,
            "use_sliding_window": false
        });
        let c = parse(base.clone());
        assert!(c.sliding_windows().is_empty());
        assert!(c.qkv_bias && !c.o_bias);
        assert_eq!(c.rope_theta, 1_000_000.0);
        let mut on = base;
        on["use_sliding_window"] = true.into();
        let windows: Vec<_> = parse(on).layers.iter().map(|l| l.sliding_window).collect();
        assert_eq!(windows, [None, None, Some(32), Some(32)]);
    }

    #[test]
    fn gemma3_layers_follow_their_types_and_ropes() {
        let c = parse(serde_json::json!({
            "architectures": ["Gemma3ForCausalLM"], "hidden_size": 48, "intermediate_size": 96,
            "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 1,
            "head_dim": 16, "vocab_size": 100, "sliding_window": 8,
            "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
            "query_pre_attn_scalar": 16,
            "rope_parameters": {
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}
            }
        }));
        let windows: Vec<_> = c
            .layers
            .iter()
            .map(|l| (l.sliding_window, l.local_rope))
            .collect();
        assert_eq!(windows, [(Some(8), true), (Some(8), true), (None, false)]);
        assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 8.0 });
        assert_eq!((c.rope_theta, c.local_rope_theta), (1e6, Some(1e4)));
        assert_eq!(c.attention_scale, 0.25);
        assert_eq!(c.embed_scale, Some(48f64.sqrt()));
        assert_eq!(c.norm_weight_offset, 1.0);
        assert!(c.qk_norm && c.sandwich_norms && c.tie_word_embeddings);
        assert_eq!(c.activation, Activation::GeluTanh);
    }

    #[test]
    fn gemma2_defaults_alternate_and_softcap() {
        let c = parse(serde_json::json!({
            "architectures": ["Gemma2ForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 3, "num_attention_heads": 2, "head_dim": 16,
            "vocab_size": 100, "sliding_window": 8, "final_logit_softcapping": 30.0,
            "attn_logit_softcapping": 50.0, "query_pre_attn_scalar": 64
        }));
        let windows: Vec<_> = c.layers.iter().map(|l| l.sliding_window).collect();
        assert_eq!(windows, [Some(8), None, Some(8)]);
        assert_eq!((c.attn_softcap, c.final_softcap), (Some(50.0), Some(30.0)));
        assert_eq!(c.attention_scale, 0.125);
    }

    #[test]
    fn phi3_longrope_picks_up_its_factors() {
        let c = parse(serde_json::json!({
            "architectures": ["Phi3ForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 100,
            "max_position_embeddings": 128, "original_max_position_embeddings": 32,
            "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.5, 2.0, 2.5],
                             "long_factor": [3.0, 3.5, 4.0, 4.5]}
        }));
        let RopeScaling::LongRope {
            short,
            long,
            original_max_position_embeddings,
            attention_factor,
        } = &c.rope_scaling
        else {
            panic!("{:?}", c.rope_scaling)
        };
        assert_eq!(
            (short.len(), long.len(), *original_max_position_embeddings),
            (4, 4, 32)
        );
        let expected = (1.0 + 4f64.ln() / 32f64.ln()).sqrt();
        assert!((attention_factor - expected).abs() < 1e-12);
        let err = ModelConfig::from_hf_json(
            &serde_json::json!({
                "architectures": ["Phi3ForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 100,
                "partial_rotary_factor": 0.75
            })
            .to_string(),
            Path::new("config.json"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("partial_rotary_factor 0.75"),
            "{err}"
        );
    }

    #[test]
    fn a_multimodal_gemma3_is_read_through_its_text_config() {
        // the sparse text_config of the Gemma 3 4B checkpoints
        let c = parse(serde_json::json!({
            "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
            "text_config": {
                "hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                "sliding_window": 1024
            },
            "vision_config": {"model_type": "siglip_vision_model"}
        }));
        assert_eq!(c.architecture, "Gemma3ForConditionalGeneration");
        assert_eq!(c.family, Family::Gemma3);
        assert_eq!(
            (c.vocab_size, c.num_heads, c.num_kv_heads, c.head_dim),
            (262_208, 8, 4, 256)
        );
        assert_eq!(c.attention_scale, 1.0 / 16.0);
        assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 8.0 });
        assert_eq!((c.rope_theta, c.local_rope_theta), (1e6, Some(1e4)));
        let full: Vec<usize> = (0..34)
            .filter(|&i| c.layers[i].sliding_window.is_none())
            .collect();
        assert_eq!(full, [5, 11, 17, 23, 29]);
        assert_eq!(c.sliding_windows(), vec![1024]);
        assert_eq!(c.max_context(), Some(131_072));
    }
}
