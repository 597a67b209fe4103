//! PEFT LoRA adapters, applied to a base model without merging.
//!
//! An adapter folder holds `adapter_config.json` and
//! `adapter_model.safetensors`. PEFT names each low-rank pair after the
//! module it adapts, `base_model.model.<module>.lora_A.weight` (`[r, in]`)
//! and `….lora_B.weight` (`[out, r]`), and stores `modules_to_save` as whole
//! tensors under the base's own names (`base_model.model.lm_head.weight`).
//! A linear layer with adapters computes
//! `y = x·Wᵀ + b + Σ s·(x·Aᵀ)·Bᵀ` with `s = alpha / r` (`alpha / √r` under
//! rsLoRA; per-module `rank_pattern` / `alpha_pattern` override both), which
//! equals the merged weights `W + s·B·A` up to float rounding and works on a
//! quantized base as well. The product is orientation-free, so GPT-2's
//! `fan_in_fan_out` (Conv1D) adapters need nothing special.
//!
//! Every adapter tensor must land on a module of the base; one that does not
//! (an adapter trained for another architecture) is an error. Adapters stack
//! (`BASE+A+B`): their deltas add up, as PEFT's do with several active
//! adapters; two adapters replacing the same whole tensor are refused.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::Deserialize;

use crate::error::ModelError;
use crate::safetensors::SafetensorsFile;

/// One low-rank update of a linear layer.
#[derive(Debug, Clone)]
pub(crate) struct LoraDelta {
    /// `[r, in]`.
    pub(crate) a: Tensor,
    /// `[out, r]`.
    pub(crate) b: Tensor,
    /// `alpha / r` or `alpha / √r`.
    pub(crate) scale: f64,
}

/// An opened adapter.
#[derive(Debug)]
pub struct LoraAdapter {
    /// The adapter folder.
    pub path: PathBuf,
    /// Default rank.
    pub rank: usize,
    /// Default alpha.
    pub alpha: f64,
    /// rsLoRA scaling.
    pub rslora: bool,
    /// Modules adapted, by the base's module name.
    deltas: BTreeMap<String, LoraDelta>,
    /// Whole tensors replacing the base's (`modules_to_save`), by tensor name.
    replacements: BTreeMap<String, Tensor>,
    /// Stored dtype and element count of every tensor, for the identity.
    pub(crate) storage: Vec<(String, usize)>,
    /// Files to hash into the model identity.
    pub(crate) files: Vec<PathBuf>,
}

/// The fields of adapter_config.json perplex reads.
#[derive(Debug, Deserialize)]
struct AdapterConfig {
    peft_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    bias: Option<String>,
    #[serde(default)]
    rank_pattern: HashMap<String, usize>,
    #[serde(default)]
    alpha_pattern: HashMap<String, f64>,
}

/// `pattern` matches `module` as PEFT's patterns do: the whole name or a
/// dot-separated suffix of it.
fn matches(pattern: &str, module: &str) -> bool {
    module == pattern || module.ends_with(&format!(".{pattern}"))
}

impl LoraAdapter {
    /// Opens `dir` and reads every adapter tensor (they are small).
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let config_path = dir.join("adapter_config.json");
        let weights_path = dir.join("adapter_model.safetensors");
        let bad = |problem: String| ModelError::InvalidAdapter {
            path: dir.to_path_buf(),
            problem,
        };
        if !config_path.is_file() {
            return Err(bad("no adapter_config.json".into()));
        }
        if !weights_path.is_file() {
            let problem = if dir.join("adapter_model.bin").is_file() {
                "only adapter_model.bin (a pickle); perplex reads adapter_model.safetensors"
            } else {
                "no adapter_model.safetensors"
            };
            return Err(bad(problem.into()));
        }
        let text = fs_err::read_to_string(&config_path)?;
        let config: AdapterConfig =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: config_path.clone(),
                source,
            })?;
        match config.peft_type.as_deref() {
            Some("LORA") | None => {}
            Some(other) => {
                return Err(bad(format!("peft_type `{other}` (only LORA is supported)")))
            }
        }
        if config.use_dora {
            return Err(bad("use_dora (DoRA adapters are not supported)".into()));
        }
        if let Some(b) = config.bias.as_deref().filter(|b| *b != "none") {
            return Err(bad(format!("bias `{b}` (only `none` is supported)")));
        }
        let mut file = SafetensorsFile::open(&weights_path)?;
        let names: Vec<String> = file.names().cloned().collect();
        let mut pairs: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
        let mut replacements = BTreeMap::new();
        let mut storage = Vec::new();
        for name in names {
            let (shape, dtype) = file.info(&name).expect("listed");
            storage.push((dtype, shape.iter().product()));
            let tensor = file.read_f32(&name)?;
            let Some(rest) = name.strip_prefix("base_model.model.") else {
                return Err(bad(format!(
                    "tensor `{name}` is not named like a PEFT adapter's"
                )));
            };
            if let Some(module) = rest.strip_suffix(".lora_A.weight") {
                pairs.entry(module.to_string()).or_default().0 = Some(tensor);
            } else if let Some(module) = rest.strip_suffix(".lora_B.weight") {
                pairs.entry(module.to_string()).or_default().1 = Some(tensor);
            } else if rest.contains(".lora_") {
                return Err(bad(format!(
                    "tensor `{name}`: only lora_A / lora_B weights are supported"
                )));
            } else {
                replacements.insert(rest.to_string(), tensor);
            }
        }
        let mut deltas = BTreeMap::new();
        for (module, pair) in pairs {
            let (Some(a), Some(b)) = pair else {
                return Err(bad(format!("`{module}` has only one of lora_A and lora_B")));
            };
            let (r, _) = a.dims2().map_err(|e| bad(format!("`{module}`: {e}")))?;
            let (_, rb) = b.dims2().map_err(|e| bad(format!("`{module}`: {e}")))?;
            let pattern_rank = config
                .rank_pattern
                .iter()
                .find(|(p, _)| matches(p, &module))
                .map_or(config.r, |(_, &r)| r);
            if r != rb || r != pattern_rank {
                return Err(bad(format!(
                    "`{module}`: lora_A has rank {r}, lora_B {rb}, the config says {pattern_rank}"
                )));
            }
            let alpha = config
                .alpha_pattern
                .iter()
                .find(|(p, _)| matches(p, &module))
                .map_or(config.lora_alpha, |(_, &a)| a);
            let scale = if config.use_rslora {
                alpha / (r as f64).sqrt()
            } else {
                alpha / r as f64
            };
            deltas.insert(module, LoraDelta { a, b, scale });
        }
        if deltas.is_empty() && replacements.is_empty() {
            return Err(bad("the adapter holds no tensors".into()));
        }
        Ok(LoraAdapter {
            path: dir.to_path_buf(),
            rank: config.r,
            alpha: config.lora_alpha,
            rslora: config.use_rslora,
            deltas,
            replacements,
            storage,
            files: vec![config_path, weights_path],
        })
    }

    /// Whether every `lora_B` is zero: a freshly initialised adapter that
    /// changes nothing (and it replaces no whole tensor).
    pub fn is_untrained(&self) -> bool {
        self.replacements.is_empty()
            && self.deltas.values().all(|d| {
                d.b.abs()
                    .and_then(|t| t.max_all())
                    .and_then(|m| m.to_scalar::<f32>())
                    .is_ok_and(|m| m == 0.0)
            })
    }

    /// One line for the model identity.
    pub fn describe(&self) -> String {
        format!(
            "{} (LoRA r={}, alpha={}{}, {} modules{})",
            self.path.display(),
            self.rank,
            self.alpha,
            if self.rslora { ", rsLoRA" } else { "" },
            self.deltas.len(),
            if self.replacements.is_empty() {
                String::new()
            } else {
                format!(", replaces {}", self.replacements.len())
            }
        )
    }
}

/// The adapters of one model, consumed module by module while the base
/// loads; whatever is left over at the end did not fit the base.
#[derive(Debug, Default)]
pub(crate) struct LoraSet {
    deltas: BTreeMap<String, Vec<(PathBuf, LoraDelta)>>,
    replacements: BTreeMap<String, (PathBuf, Tensor)>,
}

impl LoraSet {
    /// Stacks `adapters` in order.
    pub(crate) fn new(adapters: &[LoraAdapter]) -> Result<Self, ModelError> {
        let mut set = LoraSet::default();
        for adapter in adapters {
            for (module, delta) in &adapter.deltas {
                set.deltas
                    .entry(module.clone())
                    .or_default()
                    .push((adapter.path.clone(), delta.clone()));
            }
            for (name, t) in &adapter.replacements {
                if let Some((first, _)) = set.replacements.get(name) {
                    return Err(ModelError::InvalidAdapter {
                        path: adapter.path.clone(),
                        problem: format!(
                            "it replaces `{name}`, which {} replaces too",
                            first.display()
                        ),
                    });
                }
                set.replacements
                    .insert(name.clone(), (adapter.path.clone(), t.clone()));
            }
        }
        Ok(set)
    }

    /// Takes the deltas of `module`.
    pub(crate) fn take_deltas(&mut self, module: &str) -> Vec<LoraDelta> {
        self.deltas
            .remove(module)
            .map(|v| v.into_iter().map(|(_, d)| d).collect())
            .unwrap_or_default()
    }

    /// Whether a whole tensor `name` is replaced.
    pub(crate) fn replaces(&self, name: &str) -> bool {
        self.replacements.contains_key(name)
    }

    /// Takes the replacement of tensor `name`, with its adapter's folder.
    pub(crate) fn take_replacement(&mut self, name: &str) -> Option<(PathBuf, Tensor)> {
        self.replacements.remove(name)
    }

    /// An error naming what no module of the base took.
    pub(crate) fn leftovers(&self) -> Option<ModelError> {
        let mut left: Vec<(&PathBuf, &String)> = self
            .deltas
            .iter()
            .flat_map(|(m, v)| v.iter().map(move |(p, _)| (p, m)))
            .chain(self.replacements.iter().map(|(n, (p, _))| (p, n)))
            .collect();
        left.sort();
        let (path, _) = left.first()?;
        let modules: Vec<String> = left
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, m)| (*m).clone())
            .collect();
        Some(ModelError::AdapterMismatch {
            path: (*path).clone(),
            modules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names_or_dotted_suffixes() {
        assert!(matches("q_proj", "model.layers.0.self_attn.q_proj"));
        assert!(matches(
            "self_attn.q_proj",
            "model.layers.0.self_attn.q_proj"
        ));
        assert!(!matches("proj", "model.layers.0.self_attn.q_proj"));
    }
}
