//! `config.json` → [`ModelConfig`], with transformers' (5.x) defaults for
//! what a config leaves out. What a family implies comes from its row of the
//! family table; this file only reads keys.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value as Json;

use super::{
    head_dim_mismatch, layer_attentions, layer_count, longrope_attention_factor, slides_in_pattern,
    Activation, Family, FamilyRules, LayerAttention, Mlp, ModelConfig, QueryScale, RopeScaling,
    SlidingLayers, SUPPORTED_HF_ARCHITECTURES,
};
use crate::error::ModelError;

impl ModelConfig {
    /// Parses and validates a Hugging Face `config.json`. For a multimodal
    /// model (Gemma 3 4B and up) this is its text tower's configuration,
    /// with transformers' defaults for the keys `text_config` leaves out.
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self, ModelError> {
        let json_error = |source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        };
        let value: Json = serde_json::from_str(text).map_err(json_error)?;
        if let Some(config) = text_tower(&value, path)? {
            return Ok(config);
        }
        let raw = HfConfig::deserialize(&value).map_err(json_error)?;
        let (architecture, family) = identify(&raw, path)?;
        let rules = family.rules();
        let bad = |problem: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            problem,
        };
        let need =
            |v: Option<usize>, name: &str| v.ok_or_else(|| bad(format!("`{name}` is missing")));
        let hidden_size = need(raw.hidden_size, "hidden_size")?;
        let num_heads = need(raw.num_attention_heads, "num_attention_heads")?;
        let num_layers = need(raw.num_hidden_layers, "num_hidden_layers")?;
        let num_layers = layer_count(num_layers, "num_hidden_layers").map_err(bad)?;
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
        let rope = hf_rope(&raw, rules, max_position_embeddings, path)?;
        let layers = hf_layers(&raw, rules, num_layers);
        let activation = hf_activation(&raw, rules).map_err(bad)?;
        if let Some(problem) = unsupported_variant(&value, rules) {
            return Err(bad(problem.into()));
        }
        let attention_scale = match rules.query_scale {
            QueryScale::PreAttnScalar { hf_default, .. } => {
                1.0 / raw.query_pre_attn_scalar.unwrap_or(hf_default).sqrt()
            }
            QueryScale::HeadDim => 1.0 / (head_dim as f64).sqrt(),
        };
        let vocab_size = need(raw.vocab_size, "vocab_size")?;
        let intermediate_size = match rules.hf_intermediate_factor {
            Some(factor) => raw.intermediate_size.unwrap_or(factor * hidden_size),
            None => need(raw.intermediate_size, "intermediate_size")?,
        };
        let attention_bias = raw.attention_bias.unwrap_or(false);
        let softcap = |cap: Option<f64>| cap.filter(|_| rules.hf_softcap);
        let config = ModelConfig {
            family,
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads,
            num_kv_heads: raw.num_key_value_heads.unwrap_or(num_heads),
            head_dim,
            norm: rules.norm,
            norm_eps: raw
                .rms_norm_eps
                .or(raw.layer_norm_epsilon)
                .unwrap_or(rules.norm_eps),
            norm_weight_offset: rules.hf_norm_offset,
            activation,
            gated_mlp: rules.mlp != Mlp::Plain,
            positions: rules.positions,
            rope_theta: rope.theta,
            rope_scaling: rope.scaling,
            local_rope_theta: rope.local_theta,
            max_position_embeddings,
            layers,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(rules.tied_head),
            qkv_bias: rules.biases.qkv.applies(attention_bias),
            o_bias: rules.biases.o.applies(attention_bias),
            mlp_bias: rules.biases.mlp.applies(raw.mlp_bias.unwrap_or(false)),
            qk_norm: rules.qk_norm,
            sandwich_norms: rules.sandwich_norms,
            embed_scale: rules.embed_scale.then(|| (hidden_size as f64).sqrt()),
            attention_scale,
            attn_softcap: softcap(raw.attn_logit_softcapping),
            final_softcap: softcap(raw.final_logit_softcapping),
        };
        config.validate(path)
    }
}

/// The configuration of a multimodal checkpoint's text tower, when `value`
/// declares one: its `text_config` with the table's defaults, read as the
/// tower's family, keeping the multimodal architecture's name.
fn text_tower(value: &Json, path: &Path) -> Result<Option<ModelConfig>, ModelError> {
    let declares = |name: &str, model_type: &str| {
        value["architectures"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == name))
            || value["model_type"] == model_type
    };
    let Some((rules, tower)) = super::family::FAMILIES.iter().find_map(|r| {
        r.hf_text_tower
            .as_ref()
            .filter(|t| declares(t.architecture, t.model_type))
            .map(|t| (r, t))
    }) else {
        return Ok(None);
    };
    let mut text_config = value["text_config"].clone();
    let Some(fields) = text_config.as_object_mut() else {
        return Err(ModelError::InvalidConfig {
            path: path.to_path_buf(),
            problem: format!("{} without a `text_config`", tower.architecture),
        });
    };
    let defaults: serde_json::Map<String, Json> =
        serde_json::from_str(tower.defaults).expect("the family table's defaults are JSON");
    for (k, v) in defaults {
        fields.entry(k).or_insert(v);
    }
    fields.insert(
        "architectures".into(),
        Json::from(vec![rules.hf_architecture]),
    );
    let mut config = ModelConfig::from_hf_json(&text_config.to_string(), path)?;
    config.architecture = tower.architecture.to_string();
    Ok(Some(config))
}

/// The architecture (the first supported `architectures` entry, else the
/// `model_type`'s family's) and its family.
fn identify(raw: &HfConfig, path: &Path) -> Result<(String, Family), ModelError> {
    let unsupported = |architecture: String| ModelError::UnsupportedArchitecture {
        path: path.to_path_buf(),
        architecture,
        supported: SUPPORTED_HF_ARCHITECTURES.join(", "),
    };
    match (&raw.architectures, &raw.model_type) {
        (Some(archs), _) if !archs.is_empty() => archs
            .iter()
            .find_map(|a| Family::from_hf_architecture(a).map(|f| (a.clone(), f)))
            .ok_or_else(|| unsupported(archs.join(", "))),
        (_, Some(mt)) => Family::from_hf_model_type(mt)
            .map(|f| (f.rules().hf_architecture.to_string(), f))
            .ok_or_else(|| unsupported(mt.clone())),
        (_, None) => Err(unsupported("(none declared)".into())),
    }
}

/// The RoPE of the global layers and the local layers' base.
struct HfRope {
    theta: f64,
    scaling: RopeScaling,
    local_theta: Option<f64>,
}

/// transformers 5 writes `rope_parameters` (per layer type for Gemma 3);
/// older configs `rope_theta` + `rope_scaling`.
fn hf_rope(
    raw: &HfConfig,
    rules: &FamilyRules,
    max_position_embeddings: usize,
    path: &Path,
) -> Result<HfRope, ModelError> {
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
    let theta = raw
        .rope_theta
        .or_else(|| theta_of(global.as_ref()))
        .unwrap_or(rules.rope_theta);
    let scaling = raw
        .rope_scaling
        .as_ref()
        .filter(|s| !s.is_empty())
        .or(global.as_ref());
    let original_max = raw.original_max_position_embeddings;
    let scaling = match scaling {
        None => RopeScaling::None,
        Some(s) => hf_rope_scaling(s, max_position_embeddings, original_max, path)?,
    };
    let local_theta = rules.local_rope_theta.map(|default| {
        theta_of(local.as_ref())
            .or(raw.rope_local_base_freq)
            .unwrap_or(default)
    });
    Ok(HfRope {
        theta,
        scaling,
        local_theta,
    })
}

/// Which layers slide, as transformers decides it: `layer_types` when
/// given, else the family's pattern.
fn hf_layers(raw: &HfConfig, rules: &FamilyRules, num_layers: usize) -> Vec<LayerAttention> {
    let window = match rules.sliding {
        SlidingLayers::Never => None,
        SlidingLayers::All => raw.sliding_window,
        SlidingLayers::OptIn { .. } => raw
            .sliding_window
            .filter(|_| raw.use_sliding_window.unwrap_or(false)),
        SlidingLayers::Pattern {
            hf_default_window, ..
        } => Some(raw.sliding_window.unwrap_or(hf_default_window)),
    };
    let sliding: Vec<bool> = match (&raw.layer_types, window) {
        (_, None) => vec![false; num_layers],
        (Some(types), Some(_)) => types.iter().map(|t| t == "sliding_attention").collect(),
        (None, Some(_)) => (0..num_layers)
            .map(|i| match rules.sliding {
                SlidingLayers::Never | SlidingLayers::All => true,
                SlidingLayers::OptIn { first_layer } => {
                    i >= raw.max_window_layers.unwrap_or(first_layer)
                }
                SlidingLayers::Pattern {
                    period,
                    configurable,
                    ..
                } => {
                    let period = if configurable {
                        raw.sliding_window_pattern.unwrap_or(period)
                    } else {
                        period
                    };
                    slides_in_pattern(i, period)
                }
            })
            .collect(),
    };
    layer_attentions(rules, window, sliding)
}

/// The activation the config names (under any of its three keys), else the
/// family's; the error is the problem to report.
fn hf_activation(raw: &HfConfig, rules: &FamilyRules) -> Result<Activation, String> {
    let name = raw
        .hidden_activation
        .as_deref()
        .or(raw.hidden_act.as_deref())
        .or(raw.activation_function.as_deref());
    Ok(match name {
        None => rules.activation,
        // transformers maps Gemma's legacy "gelu" to the tanh approximation
        Some("gelu") if rules.hf_gelu_is_tanh => Activation::GeluTanh,
        Some("silu" | "swish") => Activation::Silu,
        Some("gelu_new" | "gelu_pytorch_tanh" | "gelu_fast") => Activation::GeluTanh,
        Some("gelu") => Activation::GeluErf,
        Some(other) => {
            return Err(format!(
                "activation `{other}` (supported: silu, gelu, gelu_new, gelu_pytorch_tanh)"
            ))
        }
    })
}

/// The family's unsupported-variant problem, when a flag in `value` selects one.
fn unsupported_variant(value: &Json, rules: &FamilyRules) -> Option<&'static str> {
    let variants = rules.hf_unsupported.as_ref()?;
    variants
        .flags
        .iter()
        .any(|&(key, selects)| value.get(key).and_then(Json::as_bool) == Some(selects))
        .then_some(variants.problem)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NormKind, Positions};

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

    /// Found by fuzzing (the GGUF twin is in fuzz/regressions/gguf/): a
    /// huge layer count sized the per-layer table before validation.
    #[test]
    fn an_implausible_layer_count_is_refused() {
        let text = SMOL.replace(
            r#""num_hidden_layers": 30"#,
            r#""num_hidden_layers": 134217728"#,
        );
        let err = ModelConfig::from_hf_json(&text, Path::new("config.json")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid model configuration in config.json: num_hidden_layers is 134217728, more \
             than perplex supports (4096)"
        );
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
