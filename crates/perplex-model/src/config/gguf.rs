//! GGUF metadata → [`ModelConfig`], with llama.cpp's defaults and
//! conventions for what a file leaves out. What a family implies comes from
//! its row of the family table; this file only reads keys (and the facts
//! only the tensors tell, [`GgufTensorFacts`]).

use std::path::Path;

use candle_core::quantized::gguf_file;

use super::{
    head_dim_mismatch, layer_attentions, layer_count, longrope_attention_factor, slides_in_pattern,
    Family, FamilyRules, LayerAttention, Mlp, ModelConfig, NormKind, Positions, QueryScale,
    RopeScaling, SlidingLayers, SUPPORTED_GGUF_ARCHITECTURES,
};
use crate::error::ModelError;

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

/// The `{arch}.…` keys of one file, read with their types checked.
struct Meta<'a> {
    md: &'a std::collections::HashMap<String, gguf_file::Value>,
    arch: &'a str,
    path: &'a Path,
}

impl Meta<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    fn bad(&self, problem: String) -> ModelError {
        ModelError::InvalidConfig {
            path: self.path.to_path_buf(),
            problem,
        }
    }

    fn uint(&self, k: &str) -> Result<Option<usize>, ModelError> {
        self.md
            .get(&self.key(k))
            .map(|v| {
                gguf_uint(v).ok_or_else(|| {
                    self.bad(format!("`{}` is not an unsigned integer", self.key(k)))
                })
            })
            .transpose()
    }

    fn float(&self, k: &str) -> Result<Option<f64>, ModelError> {
        self.md
            .get(&self.key(k))
            .map(|v| {
                gguf_float(v).ok_or_else(|| self.bad(format!("`{}` is not a number", self.key(k))))
            })
            .transpose()
    }

    fn need(&self, k: &str) -> Result<usize, ModelError> {
        self.uint(k)?
            .ok_or_else(|| self.bad(format!("`{}` is missing", self.key(k))))
    }
}

impl ModelConfig {
    /// Reads the hyperparameters of a GGUF file. `tensors` tells what only
    /// the tensors say: embedding rows, whether there is an output head, and
    /// the RoPE factor tensors.
    pub fn from_gguf(
        content: &gguf_file::Content,
        path: &Path,
        tensors: GgufTensorFacts,
    ) -> Result<Self, ModelError> {
        let md = &content.metadata;
        let arch = match md.get("general.architecture") {
            Some(gguf_file::Value::String(s)) => s.clone(),
            _ => {
                return Err(ModelError::InvalidConfig {
                    path: path.to_path_buf(),
                    problem: "`general.architecture` is missing".into(),
                })
            }
        };
        let Some(family) = Family::from_gguf_architecture(&arch) else {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: arch,
                supported: SUPPORTED_GGUF_ARCHITECTURES.join(", "),
            });
        };
        let rules = family.rules();
        let meta = Meta {
            md,
            arch: &arch,
            path,
        };
        let hidden_size = meta.need("embedding_length")?;
        let num_heads = meta.need("attention.head_count")?;
        let num_layers = layer_count(meta.need("block_count")?, &meta.key("block_count"))
            .map_err(|problem| meta.bad(problem))?;
        let head_dim = gguf_head_dim(&meta, rules, hidden_size, num_heads)?;
        let max_position_embeddings = meta.uint("context_length")?.unwrap_or(2048);
        let rope_scaling = gguf_rope_scaling(&meta, &tensors, max_position_embeddings)?;
        let layers = gguf_layers(&meta, rules, num_layers)?;
        let attention_scale = match meta.float("attention.scale")? {
            Some(s) => s,
            None => {
                // llama.cpp derives Gemma 2/3's query scale from the model
                // size: hidden / heads for the 27B models, head_dim otherwise
                let d = match rules.query_scale {
                    QueryScale::PreAttnScalar {
                        gguf_hidden_per_head_at,
                        ..
                    } if gguf_hidden_per_head_at == num_layers => hidden_size / num_heads.max(1),
                    _ => head_dim,
                };
                1.0 / (d as f64).sqrt()
            }
        };
        let norm_eps_key = match rules.norm {
            NormKind::Layer => "attention.layer_norm_epsilon",
            NormKind::Rms => "attention.layer_norm_rms_epsilon",
        };
        let norm_eps = meta.float(norm_eps_key)?.unwrap_or(rules.norm_eps);
        let config = ModelConfig {
            family,
            architecture: arch.clone(),
            vocab_size: meta.uint("vocab_size")?.unwrap_or(tensors.vocab_rows),
            hidden_size,
            intermediate_size: meta.need("feed_forward_length")?,
            num_layers,
            num_heads,
            num_kv_heads: meta.uint("attention.head_count_kv")?.unwrap_or(num_heads),
            head_dim,
            norm: rules.norm,
            norm_eps,
            // llama.cpp's converter adds Gemma's offset to the stored weights
            norm_weight_offset: 0.0,
            activation: rules.activation,
            gated_mlp: rules.mlp != Mlp::Plain,
            positions: rules.positions,
            rope_theta: meta.float("rope.freq_base")?.unwrap_or(rules.rope_theta),
            rope_scaling,
            // 10000 (the table's default) in files that predate the key
            local_rope_theta: match rules.local_rope_theta {
                Some(default) => Some(meta.float("rope.freq_base_swa")?.unwrap_or(default)),
                None => None,
            },
            max_position_embeddings,
            layers,
            tie_word_embeddings: tensors.tied,
            // GGUF has no bias flags: a bias is used when its tensor exists
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: rules.qk_norm,
            sandwich_norms: rules.sandwich_norms,
            embed_scale: rules.embed_scale.then(|| (hidden_size as f64).sqrt()),
            attention_scale,
            // written only for the families that soft-cap
            attn_softcap: meta.float("attn_logit_softcapping")?,
            final_softcap: meta.float("final_logit_softcapping")?,
        };
        config.validate(path)
    }
}

/// `attention.key_length`, else `embedding_length / head_count`; a value
/// length or rotary width that differs is refused.
fn gguf_head_dim(
    meta: &Meta<'_>,
    rules: &FamilyRules,
    hidden_size: usize,
    num_heads: usize,
) -> Result<usize, ModelError> {
    let head_dim = match meta.uint("attention.key_length")? {
        Some(d) => d,
        None => {
            if num_heads == 0 {
                return Err(meta.bad("head_count is 0".into()));
            }
            if head_dim_mismatch(None, hidden_size, num_heads) {
                return Err(meta.bad(format!(
                    "embedding_length {hidden_size} is not a multiple of head_count {num_heads}"
                )));
            }
            hidden_size / num_heads.max(1)
        }
    };
    if let Some(v) = meta.uint("attention.value_length")? {
        if v != head_dim {
            return Err(meta.bad(format!(
                "attention.value_length {v} differs from attention.key_length {head_dim}"
            )));
        }
    }
    if rules.positions == Positions::Rope {
        if let Some(rot) = meta.uint("rope.dimension_count")? {
            if rot != head_dim {
                return Err(meta.bad(format!(
                    "rope.dimension_count {rot} differs from the head size {head_dim} \
                     (partial rotary embeddings are not supported)"
                )));
            }
        }
    }
    Ok(head_dim)
}

/// The RoPE scaling the metadata declares, or the factor tensors carry
/// (`rope_freqs`: Llama 3; `rope_factors_short`/`_long`: Phi-3 LongRoPE).
fn gguf_rope_scaling(
    meta: &Meta<'_>,
    tensors: &GgufTensorFacts,
    max_position_embeddings: usize,
) -> Result<RopeScaling, ModelError> {
    let scaling_type = match meta.md.get(&meta.key("rope.scaling.type")) {
        Some(gguf_file::Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let factor = meta
        .float("rope.scaling.factor")?
        .or(meta.float("rope.scale_linear")?);
    let mut rope_scaling = match (scaling_type.as_deref(), factor) {
        (None | Some("none"), None) | (Some("none"), _) => RopeScaling::None,
        (None | Some("linear"), Some(1.0)) => RopeScaling::None,
        (None | Some("linear"), Some(factor)) => RopeScaling::Linear { factor },
        (Some("linear"), None) => RopeScaling::None,
        // Phi-3 declares LongRoPE through its factor tensors
        (Some("longrope" | "su"), _) if tensors.rope_long.is_some() => RopeScaling::None,
        (Some(other), _) => {
            return Err(ModelError::UnsupportedRopeScaling {
                path: meta.path.to_path_buf(),
                kind: other.to_string(),
            })
        }
    };
    if let Some(factors) = &tensors.rope_freqs {
        if rope_scaling != RopeScaling::None {
            return Err(
                meta.bad("both a rope_freqs tensor and a rope scaling type are declared".into())
            );
        }
        rope_scaling = RopeScaling::Factors(factors.clone());
    }
    match (&tensors.rope_short, &tensors.rope_long) {
        (Some(short), Some(long)) => {
            let original = meta
                .uint("rope.scaling.original_context_length")?
                .ok_or_else(|| {
                    meta.bad(format!(
                        "LongRoPE factor tensors without `{}`",
                        meta.key("rope.scaling.original_context_length")
                    ))
                })?;
            let attention_factor = match meta.float("rope.scaling.attn_factor")? {
                Some(f) => f,
                None => longrope_attention_factor(max_position_embeddings, original),
            };
            rope_scaling = RopeScaling::LongRope {
                short: short.clone(),
                long: long.clone(),
                original_max_position_embeddings: original,
                attention_factor,
            };
        }
        (None, None) => {}
        _ => {
            return Err(
                meta.bad("only one of rope_factors_short / rope_factors_long is present".into())
            )
        }
    }
    Ok(rope_scaling)
}

/// Which layers slide, as llama.cpp decides it: by the family's pattern
/// (Gemma 3's period from `attention.sliding_window_pattern`), with the
/// window of `attention.sliding_window`.
fn gguf_layers(
    meta: &Meta<'_>,
    rules: &FamilyRules,
    num_layers: usize,
) -> Result<Vec<LayerAttention>, ModelError> {
    let window = meta.uint("attention.sliding_window")?;
    let period = match rules.sliding {
        SlidingLayers::Pattern {
            period,
            configurable: true,
            ..
        } => meta
            .uint("attention.sliding_window_pattern")?
            .unwrap_or(period),
        SlidingLayers::Pattern { period, .. } => period,
        _ => 0,
    };
    let sliding = (0..num_layers).map(|i| match rules.sliding {
        // llama.cpp ignores Qwen's opt-in window
        SlidingLayers::Never | SlidingLayers::OptIn { .. } => false,
        SlidingLayers::All => true,
        SlidingLayers::Pattern { .. } => slides_in_pattern(i, period),
    });
    Ok(layer_attentions(rules, window, sliding))
}

/// An unsigned integer of any GGUF integer type.
fn gguf_uint(v: &gguf_file::Value) -> Option<usize> {
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
fn gguf_float(v: &gguf_file::Value) -> Option<f64> {
    use gguf_file::Value as V;
    match v {
        V::F32(x) => Some((*x).into()),
        V::F64(x) => Some(*x),
        other => gguf_uint(other).map(|x| x as f64),
    }
}
