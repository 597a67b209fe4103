//! The versioned schema of `perplex inspect`: what a model declares, read
//! before any weights are loaded, and what was found wrong with it.
//!
//! Like [`crate::report`], the JSON form is this struct serialised; fields
//! are only added within a schema version. See `docs/inspect-schema.md`.

use serde::{Deserialize, Serialize};

use crate::report::{TokenizerIdentity, ToolInfo};

/// The schema version written into every inspection.
pub const INSPECT_SCHEMA_VERSION: u32 = 1;

/// Everything `perplex inspect` reports about one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// [`INSPECT_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The tool that made the inspection.
    pub tool: ToolInfo,
    /// Where the model is and how it is stored.
    pub model: InspectedModel,
    /// The architecture's hyperparameters.
    pub architecture: InspectedArchitecture,
    /// The tokenizer the model comes with.
    pub tokenizer: InspectedTokenizer,
    /// Problems found, most severe first; empty when all is well.
    pub checks: Vec<Check>,
    /// The memory an evaluation needs, estimated from the shapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<InspectedMemory>,
}

/// The memory an evaluation needs on this machine, estimated before any
/// weight is loaded (an estimate that errs high; `eval` checks the same
/// figure before its first forward pass).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectedMemory {
    /// Bytes the weights take once loaded: f16/bf16 matrices and quantized
    /// GGUF types as stored, f32 as f32.
    pub weights_bytes: u64,
    /// Windows per batch of the run estimated (`eval`'s default).
    pub batch: usize,
    /// Tokens per window of the run estimated (`eval`'s default `--context`,
    /// or the model's context when shorter).
    pub context: usize,
    /// One batch's working set: activations, tiles and masks.
    pub working_bytes: u64,
    /// What each further window of the batch adds to the working set.
    pub working_bytes_per_window: u64,
    /// Weights and working set: the run's peak.
    pub peak_bytes: u64,
}

/// Files and storage of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectedModel {
    /// What the user passed.
    pub spec: String,
    /// The resolved file or folder.
    pub path: String,
    /// `hf-folder` or `gguf`.
    pub format: String,
    /// The weight (and config) files with their sizes in bytes.
    pub files: Vec<InspectedFile>,
    /// Elements of every tensor stored in the weight files.
    pub parameters: u64,
    /// Tensors and elements per stored type, most elements first
    /// (adapters included).
    pub storage: Vec<StorageType>,
    /// LoRA adapters given as `BASE+ADAPTER`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<String>,
}

/// One file of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectedFile {
    /// Its path.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The tensors stored in one type (`f32`, `bf16`, `q4_k`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageType {
    /// The type's name, lowercase.
    pub dtype: String,
    /// Tensors stored in it.
    pub tensors: usize,
    /// Elements stored in it.
    pub parameters: u64,
}

/// Hyperparameters, as perplex will use them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectedArchitecture {
    /// `architectures[0]` of config.json or GGUF's `general.architecture`.
    pub name: String,
    /// The family whose conventions apply (`gpt2`, `llama`, `gemma3`, …).
    pub family: String,
    /// Decoder layers.
    pub layers: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Embedding rows.
    pub vocab_size: usize,
    /// Longest window the model accepts (`None`: no fixed limit).
    pub context_length: Option<usize>,
    /// `rope` or `learned`.
    pub positions: String,
    /// RoPE base of the global layers (`None` for learned positions).
    pub rope_theta: Option<f64>,
    /// RoPE base of the local layers, when they have their own.
    pub local_rope_theta: Option<f64>,
    /// RoPE scaling, e.g. `none`, `linear x8`, `llama3 x8`, `longrope`.
    pub rope_scaling: String,
    /// Per layer, `full` or `sliding:<window>`, run-length encoded, e.g.
    /// `5 x sliding:512, full` repeated; `all full` when nothing slides.
    pub attention: String,
    /// `rms` or `layer`, with the family's `(1 + w)` noted.
    pub norm: String,
    /// `silu`, `gelu-tanh` or `gelu`.
    pub activation: String,
    /// Whether the output head is the embedding matrix.
    pub tied_embeddings: bool,
    /// Attention-score soft-capping, when used.
    pub attn_softcap: Option<f64>,
    /// Logit soft-capping, when used.
    pub final_softcap: Option<f64>,
    /// Whether the family needs BOS at the start of every sequence.
    pub needs_bos: bool,
}

/// The tokenizer, with the text of its special tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectedTokenizer {
    /// Source, kind, vocabulary, BOS/EOS ids and add-BOS, as `eval` records them.
    #[serde(flatten)]
    pub identity: TokenizerIdentity,
    /// BOS token text.
    pub bos_token: Option<String>,
    /// EOS token text.
    pub eos_token: Option<String>,
    /// Whether a chat template is present (`tokenizer_config.json`,
    /// `chat_template.jinja`, or GGUF `tokenizer.chat_template`).
    pub chat_template: bool,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The model cannot be evaluated as it is.
    Error,
    /// Results will be misleading unless the user acts.
    Warning,
    /// Worth knowing; nothing to do.
    Note,
}

/// One finding of the consistency checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// How serious it is.
    pub level: Level,
    /// A stable name for the kind of finding, e.g. `bos-not-added`.
    pub code: String,
    /// What was found, with the values.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}
