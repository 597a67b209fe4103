//! What a model declares, read from its headers without loading weights,
//! and the tokenizer/model consistency checks that [`crate::load`] also
//! runs before any forward pass. Adapters (`BASE+ADAPTER`) are read and
//! described, and checked for being untrained; whether their modules fit the
//! base is checked when the model loads.

use std::path::{Path, PathBuf};

use perplex_core::inspect::{
    Check, InspectedArchitecture, InspectedFile, InspectedMemory, InspectedModel,
    InspectedTokenizer, Inspection, Level, StorageType, INSPECT_SCHEMA_VERSION,
};
use perplex_core::report::ToolInfo;
use perplex_data::tokenizer::TextTokenizer;

use crate::config::{Activation, ModelConfig, NormKind, Positions, RopeScaling};
use crate::error::ModelError;
use crate::lora::LoraAdapter;
use crate::source::{ModelSource, ModelSpec};
use crate::{gguf, gguf_config, load_tokenizer, memory, safetensors, Compute, TokenizerSource};

/// Reads `spec`'s configuration, tensor headers and tokenizer, and checks
/// them against each other; `spec` names local paths (see
/// [`ModelSource::local`]). Weights are not read, so this is quick even for
/// large models. An unsupported architecture or an unreadable file is an
/// error, as it would be for `load`; inconsistencies are [`Check`]s.
pub fn inspect(spec: &str) -> Result<Inspection, ModelError> {
    let spec = ModelSpec::parse(spec)?;
    let source = ModelSource::local(&spec.base)?;
    inspect_spec(&spec, &source)
}

/// Like [`inspect`], for a spec whose base is already resolved to `source`
/// (e.g. by a hub resolver).
pub fn inspect_spec(spec: &ModelSpec, source: &ModelSource) -> Result<Inspection, ModelError> {
    let adapters = &spec.adapters;
    let mut storage: Vec<StorageType> = Vec::new();
    let mut add = |dtype: String, elems: u64| match storage.iter_mut().find(|s| s.dtype == dtype) {
        Some(s) => {
            s.tensors += 1;
            s.parameters += elems;
        }
        None => storage.push(StorageType {
            dtype,
            tensors: 1,
            parameters: elems,
        }),
    };
    let (config, files, tokenizer_source, chat_template) = match source {
        ModelSource::HfFolder(dir) => {
            let config_path = dir.join("config.json");
            let text = fs_err::read_to_string(&config_path)?;
            let config = ModelConfig::from_hf_json(&text, &config_path)?;
            let set = safetensors::SafetensorsSet::open_folder(dir)?;
            for (shape, dtype) in set.tensors() {
                add(dtype, shape.iter().product::<usize>() as u64);
            }
            let mut files = vec![config_path];
            files.extend(set.paths());
            let chat_template = hf_chat_template(dir)?;
            (
                config,
                files,
                TokenizerSource::HfFolder(dir.clone()),
                chat_template,
            )
        }
        ModelSource::Gguf(path) => {
            let mut file = gguf::GgufFile::open(path)?;
            let config = gguf_config(&mut file)?;
            for info in file.content.tensor_infos.values() {
                add(
                    crate::weights::ggml_type_name(info.ggml_dtype).to_string(),
                    info.shape.elem_count() as u64,
                );
            }
            let chat_template = file
                .content
                .metadata
                .contains_key("tokenizer.chat_template");
            (
                config,
                vec![path.clone()],
                TokenizerSource::Gguf(path.clone(), Box::new(file.content)),
                chat_template,
            )
        }
    };
    let mut files = files;
    for adapter in adapters {
        for (dtype, elems) in &adapter.storage {
            add(dtype.clone(), *elems as u64);
        }
        files.extend(adapter.files.iter().cloned());
    }
    storage.sort_by(|a, b| b.parameters.cmp(&a.parameters).then(a.dtype.cmp(&b.dtype)));
    let tokenizer = load_tokenizer(&tokenizer_source)?;
    let files = files
        .iter()
        .map(|p| {
            Ok(InspectedFile {
                path: p.display().to_string(),
                bytes: fs_err::metadata(p)?.len(),
            })
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    let text = |id: Option<u32>| id.map(|id| tokenizer.token_text(id));
    let memory = memory_estimate(&config, &storage);
    Ok(Inspection {
        schema_version: INSPECT_SCHEMA_VERSION,
        tool: ToolInfo {
            name: "perplex".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        model: InspectedModel {
            spec: spec.spec.clone(),
            path: source.path().display().to_string(),
            format: source.format().to_string(),
            files,
            parameters: storage.iter().map(|s| s.parameters).sum(),
            storage,
            adapters: adapters.iter().map(LoraAdapter::describe).collect(),
        },
        architecture: describe(&config),
        tokenizer: InspectedTokenizer {
            identity: tokenizer.identity(),
            bos_token: text(tokenizer.bos_id()),
            eos_token: text(tokenizer.eos_id()),
            chat_template,
        },
        checks: {
            let mut checks = consistency_checks(&config, &tokenizer);
            checks.extend(
                adapters
                    .iter()
                    .filter(|a| a.is_untrained())
                    .map(|a| crate::untrained_check(&a.path)),
            );
            checks.sort_by_key(|c| c.level);
            checks
        },
        memory: Some(memory),
    })
}

/// `eval`'s default run: windows of `--context 512` in batches of about
/// 2,048 tokens (`perplex_eval::EvalOptions::default_batch_size`).
const DEFAULT_RUN: (usize, usize) = (4, 512);

/// The memory of `eval`'s default run of `config` with weights `storage`.
fn memory_estimate(config: &ModelConfig, storage: &[StorageType]) -> InspectedMemory {
    let context = config
        .max_context()
        .map_or(DEFAULT_RUN.1, |c| c.min(DEFAULT_RUN.1));
    let batch = (DEFAULT_RUN.0 * DEFAULT_RUN.1 / context.max(1)).max(1);
    let weights_bytes =
        memory::weight_bytes(storage.iter().map(|s| (s.dtype.as_str(), s.parameters)));
    let working = |w| memory::working_bytes(config, Compute::Exact, w, context);
    let working_bytes = working(batch);
    InspectedMemory {
        weights_bytes,
        batch,
        context,
        working_bytes,
        working_bytes_per_window: working(batch + 1) - working_bytes,
        peak_bytes: weights_bytes + working_bytes,
    }
}

/// Whether a Hugging Face folder carries a chat template.
fn hf_chat_template(dir: &Path) -> Result<bool, ModelError> {
    if dir.join("chat_template.jinja").is_file() || dir.join("chat_template.json").is_file() {
        return Ok(true);
    }
    let path: PathBuf = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(false);
    }
    let text = fs_err::read_to_string(&path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ModelError::Json { path, source })?;
    Ok(value.get("chat_template").is_some_and(|t| !t.is_null()))
}

/// The tokenizer checked against the model, most severe first. Errors are
/// what [`crate::load`] refuses; warnings and notes are for the user.
pub fn consistency_checks(config: &ModelConfig, tokenizer: &TextTokenizer) -> Vec<Check> {
    let rows = config.vocab_size;
    let mut checks = Vec::new();
    let error = |code: &str, e: ModelError| Check {
        level: Level::Error,
        code: code.into(),
        message: e.to_string(),
        hint: e.hint(),
    };
    if tokenizer.vocab_size() > rows {
        checks.push(error(
            "vocab-mismatch",
            ModelError::VocabMismatch {
                tokenizer: tokenizer.vocab_size(),
                model: rows,
            },
        ));
    } else if tokenizer.vocab_size() < rows {
        checks.push(Check {
            level: Level::Note,
            code: "embedding-padding".into(),
            message: format!(
                "the embedding has {rows} rows for {} tokenizer tokens; the extra rows are \
                 padding and are still part of every softmax",
                tokenizer.vocab_size()
            ),
            hint: None,
        });
    }
    for (token, id) in [("BOS", tokenizer.bos_id()), ("EOS", tokenizer.eos_id())] {
        if let Some(id) = id.filter(|&id| id as usize >= rows) {
            checks.push(error(
                "special-token-out-of-range",
                ModelError::SpecialTokenOutOfRange { token, id, rows },
            ));
        }
    }
    if config.family.needs_bos() {
        match tokenizer.bos_id() {
            None => checks.push(Check {
                level: Level::Warning,
                code: "no-bos-token".into(),
                message: format!(
                    "{} models need BOS at the start of every sequence, but the tokenizer \
                     declares no BOS token",
                    config.family
                ),
                hint: Some("use the tokenizer that came with the model".into()),
            }),
            Some(_) if !tokenizer.adds_bos() => checks.push(Check {
                level: Level::Warning,
                code: "bos-not-added".into(),
                message: format!(
                    "{} models need BOS at the start of every sequence, but the tokenizer \
                     does not add it, so `--bos auto` would score without it and report a \
                     perplexity far above the model's real one",
                    config.family
                ),
                hint: Some("evaluate with `--bos document` (or `--bos window`)".into()),
            }),
            Some(_) => {}
        }
    }
    checks.sort_by_key(|c| c.level);
    checks
}

/// The hyperparameters in the inspection's words.
fn describe(c: &ModelConfig) -> InspectedArchitecture {
    let rope = c.positions == Positions::Rope;
    InspectedArchitecture {
        name: c.architecture.clone(),
        family: c.family.name().into(),
        layers: c.num_layers,
        hidden_size: c.hidden_size,
        intermediate_size: c.intermediate_size,
        heads: c.num_heads,
        kv_heads: c.num_kv_heads,
        head_dim: c.head_dim,
        vocab_size: c.vocab_size,
        context_length: c.max_context(),
        positions: if rope { "rope" } else { "learned" }.into(),
        rope_theta: rope.then_some(c.rope_theta),
        local_rope_theta: c.local_rope_theta,
        rope_scaling: match &c.rope_scaling {
            _ if !rope => "none".into(),
            RopeScaling::None => "none".into(),
            RopeScaling::Linear { factor } => format!("linear x{factor}"),
            RopeScaling::Dynamic { factor } => format!("dynamic x{factor}"),
            RopeScaling::Llama3 { factor, .. } => format!("llama3 x{factor}"),
            RopeScaling::Factors(_) => "rope_freqs tensor".into(),
            RopeScaling::LongRope {
                original_max_position_embeddings,
                attention_factor,
                ..
            } => format!(
                "longrope (original context {original_max_position_embeddings}, attention \
                 factor {attention_factor:.4})"
            ),
        },
        attention: describe_layers(c),
        norm: match (c.norm, c.norm_weight_offset != 0.0) {
            (NormKind::Layer, _) => "layer".into(),
            (NormKind::Rms, false) => "rms".into(),
            (NormKind::Rms, true) => "rms (1 + w)".into(),
        },
        activation: match c.activation {
            Activation::Silu => "silu",
            Activation::GeluTanh => "gelu-tanh",
            Activation::GeluErf => "gelu",
        }
        .into(),
        tied_embeddings: c.tie_word_embeddings,
        attn_softcap: c.attn_softcap,
        final_softcap: c.final_softcap,
        needs_bos: c.family.needs_bos(),
    }
}

/// `all full`, `all sliding:4096`, or each kind with its count and, when
/// few, its layers: `sliding:512 x 22, full x 4 (layers 5, 11, 17, 23)`.
fn describe_layers(c: &ModelConfig) -> String {
    let kind = |w: Option<usize>| match w {
        None => "full".to_string(),
        Some(w) => format!("sliding:{w}"),
    };
    let mut kinds: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, l) in c.layers.iter().enumerate() {
        let k = kind(l.sliding_window);
        match kinds.iter_mut().find(|(name, _)| *name == k) {
            Some((_, layers)) => layers.push(i),
            None => kinds.push((k, vec![i])),
        }
    }
    if let [(only, _)] = kinds.as_slice() {
        return format!("all {only}");
    }
    kinds.sort_by_key(|(_, layers)| std::cmp::Reverse(layers.len()));
    let most = kinds[0].1.len();
    kinds
        .iter()
        .map(|(name, layers)| {
            if layers.len() < most && layers.len() <= 8 {
                let list: Vec<String> = layers.iter().map(ToString::to_string).collect();
                format!("{name} x {} (layers {})", layers.len(), list.join(", "))
            } else {
                format!("{name} x {}", layers.len())
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
