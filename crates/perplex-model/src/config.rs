//! Llama-family hyperparameters, from a Hugging Face `config.json` or from
//! GGUF metadata, validated once.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use serde::Deserialize;

use crate::error::ModelError;

/// The `architectures` values of config.json that perplex implements.
pub const SUPPORTED_HF_ARCHITECTURES: &[&str] = &["LlamaForCausalLM", "MistralForCausalLM"];
/// The `general.architecture` values of GGUF files that perplex implements.
pub const SUPPORTED_GGUF_ARCHITECTURES: &[&str] = &["llama"];

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
}

/// Validated hyperparameters of a Llama-family model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `LlamaForCausalLM`, `MistralForCausalLM` or `llama` (GGUF).
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
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling.
    pub rope_scaling: RopeScaling,
    /// Declared context length.
    pub max_position_embeddings: usize,
    /// Sliding-window attention span (Mistral), when set.
    pub sliding_window: Option<usize>,
    /// Whether the output head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Biases on the attention projections.
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
}

impl LlamaConfig {
    /// The longest window the model accepts, when it declares one. Dynamic
    /// NTK scaling exists to go past `max_position_embeddings`, so it has none.
    pub fn max_context(&self) -> Option<usize> {
        match self.rope_scaling {
            RopeScaling::Dynamic { .. } => None,
            _ => Some(self.max_position_embeddings),
        }
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
        if !self.head_dim.is_multiple_of(2) {
            return Err(bad(format!("head_dim {} is odd", self.head_dim)));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(bad(format!(
                "rms_norm_eps {} is not positive",
                self.rms_norm_eps
            )));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(bad(format!(
                "rope_theta {} is not positive",
                self.rope_theta
            )));
        }
        if self.sliding_window == Some(0) {
            return Err(bad("sliding_window is 0".into()));
        }
        let factor_ok = |f: f64| f.is_finite() && f > 0.0;
        match &self.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } | RopeScaling::Dynamic { factor } => {
                if !factor_ok(*factor) {
                    return Err(bad(format!("rope scaling factor {factor} is not positive")));
                }
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                if !(factor_ok(*factor)
                    && factor_ok(*low_freq_factor)
                    && factor_ok(*high_freq_factor)
                    && factor_ok(*original_max_position_embeddings)
                    && high_freq_factor != low_freq_factor)
                {
                    return Err(bad(format!(
                        "invalid llama3 rope scaling (factor {factor}, low_freq_factor \
                         {low_freq_factor}, high_freq_factor {high_freq_factor}, \
                         original_max_position_embeddings {original_max_position_embeddings})"
                    )));
                }
            }
            RopeScaling::Factors(f) => {
                if f.len() != self.head_dim / 2 {
                    return Err(bad(format!(
                        "rope_freqs has {} entries, expected head_dim / 2 = {}",
                        f.len(),
                        self.head_dim / 2
                    )));
                }
                if let Some(x) = f.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                    return Err(bad(format!("rope_freqs holds {x}")));
                }
            }
        }
        Ok(self)
    }

    /// Parses and validates a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self, ModelError> {
        let raw: HfConfig = serde_json::from_str(text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |problem: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            problem,
        };
        let architecture = match (&raw.architectures, &raw.model_type) {
            (Some(archs), _) if !archs.is_empty() => {
                match archs
                    .iter()
                    .find(|a| SUPPORTED_HF_ARCHITECTURES.contains(&a.as_str()))
                {
                    Some(a) => a.clone(),
                    None => {
                        return Err(ModelError::UnsupportedArchitecture {
                            path: path.to_path_buf(),
                            architecture: archs.join(", "),
                            supported: SUPPORTED_HF_ARCHITECTURES.join(", "),
                        })
                    }
                }
            }
            (_, Some(mt)) if mt == "llama" => "LlamaForCausalLM".to_string(),
            (_, Some(mt)) if mt == "mistral" => "MistralForCausalLM".to_string(),
            (_, mt) => {
                return Err(ModelError::UnsupportedArchitecture {
                    path: path.to_path_buf(),
                    architecture: mt.clone().unwrap_or_else(|| "(none declared)".into()),
                    supported: SUPPORTED_HF_ARCHITECTURES.join(", "),
                })
            }
        };
        let need =
            |v: Option<usize>, name: &str| v.ok_or_else(|| bad(format!("`{name}` is missing")));
        let hidden_size = need(raw.hidden_size, "hidden_size")?;
        let num_heads = need(raw.num_attention_heads, "num_attention_heads")?;
        // transformers v5 moves rope_theta and rope_scaling into rope_parameters
        let params = raw.rope_parameters.as_ref();
        let rope_theta = raw
            .rope_theta
            .or_else(|| {
                params
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|v| v.as_f64())
            })
            .unwrap_or(10_000.0);
        let scaling = raw
            .rope_scaling
            .as_ref()
            .filter(|s| !s.is_empty())
            .or(params);
        let max_position_embeddings = raw.max_position_embeddings.unwrap_or(2048);
        let rope_scaling = match scaling {
            None => RopeScaling::None,
            Some(s) => hf_rope_scaling(s, max_position_embeddings, path)?,
        };
        if head_dim_mismatch(raw.head_dim, hidden_size, num_heads) {
            return Err(bad(format!(
                "hidden_size {hidden_size} is not a multiple of num_attention_heads {num_heads} \
                 and head_dim is not given"
            )));
        }
        let config = LlamaConfig {
            sliding_window: if architecture == "MistralForCausalLM" {
                raw.sliding_window
            } else {
                None
            },
            architecture,
            vocab_size: need(raw.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: need(raw.intermediate_size, "intermediate_size")?,
            num_layers: need(raw.num_hidden_layers, "num_hidden_layers")?,
            num_heads,
            num_kv_heads: raw.num_key_value_heads.unwrap_or(num_heads),
            head_dim: raw.head_dim.unwrap_or(hidden_size / num_heads.max(1)),
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            attention_bias: raw.attention_bias.unwrap_or(false),
            mlp_bias: raw.mlp_bias.unwrap_or(false),
        };
        config.validate(path)
    }

    /// Reads the `llama.*` hyperparameters of a GGUF file. `vocab_rows` is the
    /// number of rows of `token_embd`; `rope_freqs` the contents of the
    /// `rope_freqs` tensor, when the file has one; `tied` whether the file has
    /// no `output` tensor.
    pub fn from_gguf(
        content: &gguf_file::Content,
        path: &Path,
        vocab_rows: usize,
        rope_freqs: Option<Vec<f32>>,
        tied: bool,
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
        if !SUPPORTED_GGUF_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: arch,
                supported: SUPPORTED_GGUF_ARCHITECTURES.join(", "),
            });
        }
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
        if let Some(rot) = uint("rope.dimension_count")? {
            if rot != head_dim {
                return Err(bad(format!(
                    "rope.dimension_count {rot} differs from the head size {head_dim} (partial \
                     rotary embeddings are not supported)"
                )));
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
            (Some(other), _) => {
                return Err(ModelError::UnsupportedRopeScaling {
                    path: path.to_path_buf(),
                    kind: other.to_string(),
                })
            }
        };
        if let Some(factors) = rope_freqs {
            if rope_scaling != RopeScaling::None {
                return Err(bad(
                    "both a rope_freqs tensor and a rope scaling type are declared".into(),
                ));
            }
            rope_scaling = RopeScaling::Factors(factors);
        }
        let config = LlamaConfig {
            architecture: arch.clone(),
            vocab_size: uint("vocab_size")?.unwrap_or(vocab_rows),
            hidden_size,
            intermediate_size: need(uint("feed_forward_length")?, "feed_forward_length")?,
            num_layers: need(uint("block_count")?, "block_count")?,
            num_heads,
            num_kv_heads: uint("attention.head_count_kv")?.unwrap_or(num_heads),
            head_dim,
            rms_norm_eps: float("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
            rope_theta: float("rope.freq_base")?.unwrap_or(10_000.0),
            rope_scaling,
            max_position_embeddings,
            sliding_window: None,
            tie_word_embeddings: tied,
            attention_bias: false,
            mlp_bias: false,
        };
        config.validate(path)
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
    s: &HashMap<String, serde_json::Value>,
    max_position_embeddings: usize,
    path: &Path,
) -> Result<RopeScaling, ModelError> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let num = |k: &str| s.get(k).and_then(|v| v.as_f64());
    let need = |k: &str| {
        num(k).ok_or_else(|| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            problem: format!("rope scaling `{kind}` needs `{k}`"),
        })
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
        other => {
            return Err(ModelError::UnsupportedRopeScaling {
                path: path.to_path_buf(),
                kind: other.to_string(),
            })
        }
    })
}

/// The fields of config.json perplex reads; everything else is ignored.
#[derive(Debug, Deserialize)]
struct HfConfig {
    architectures: Option<Vec<String>>,
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<HashMap<String, serde_json::Value>>,
    rope_parameters: Option<HashMap<String, serde_json::Value>>,
    max_position_embeddings: Option<usize>,
    sliding_window: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
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
        let c = LlamaConfig::from_hf_json(SMOL, Path::new("config.json")).unwrap();
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.num_kv_heads, 3);
        assert_eq!(c.rope_theta, 100_000.0);
        assert_eq!(c.rope_scaling, RopeScaling::None);
        // llama ignores sliding_window, as transformers does
        assert_eq!(c.sliding_window, None);
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
            LlamaConfig::from_hf_json(&text, Path::new("config.json"))
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
            "unsupported rope scaling `yarn` in config.json (supported: none, linear, dynamic, llama3)"
        );
    }

    #[test]
    fn rejects_other_architectures() {
        let text = SMOL.replace("LlamaForCausalLM", "GPT2LMHeadModel");
        let err = LlamaConfig::from_hf_json(&text, Path::new("m/config.json")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported architecture `GPT2LMHeadModel` in m/config.json (supported: \
             LlamaForCausalLM, MistralForCausalLM)"
        );
        assert!(err.hint().is_some());
    }

    #[test]
    fn mistral_keeps_its_sliding_window() {
        let text = SMOL.replace("LlamaForCausalLM", "MistralForCausalLM");
        let c = LlamaConfig::from_hf_json(&text, Path::new("config.json")).unwrap();
        assert_eq!(c.sliding_window, Some(4096));
    }

    #[test]
    fn reports_missing_and_inconsistent_values() {
        let text = SMOL.replace(r#""num_key_value_heads": 3"#, r#""num_key_value_heads": 4"#);
        let err = LlamaConfig::from_hf_json(&text, Path::new("config.json")).unwrap_err();
        assert!(
            err.to_string()
                .contains("num_attention_heads 9 is not a multiple of num_key_value_heads 4"),
            "{err}"
        );
        let text = SMOL.replace(r#""hidden_size": 576,"#, "");
        let err = LlamaConfig::from_hf_json(&text, Path::new("config.json")).unwrap_err();
        assert!(
            err.to_string().contains("`hidden_size` is missing"),
            "{err}"
        );
    }
}
