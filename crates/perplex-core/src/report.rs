//! The versioned report schema: what `perplex eval` knows about a run.
//!
//! Every writer (table, JSON, CSV) is a function of [`Report`]. The JSON form
//! is this struct serialised; fields are only ever added within a schema
//! version, and `schema_version` changes when a field changes meaning or is
//! removed. See `docs/report-schema.md`.

use serde::{Deserialize, Serialize};

use crate::accum::NllStats;
use crate::plan::{Protocol, ResolvedBos};

/// The schema version written into every report.
pub const SCHEMA_VERSION: u32 = 1;

/// A complete evaluation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The tool that made the report.
    pub tool: ToolInfo,
    /// What model was evaluated.
    pub model: ModelIdentity,
    /// Which tokenizer produced the ids.
    pub tokenizer: TokenizerIdentity,
    /// What text was evaluated.
    pub corpus: CorpusIdentity,
    /// How windows were built and scored.
    pub protocol: ProtocolInfo,
    /// The corpus-level results.
    pub summary: Summary,
    /// One entry per input document, in input order.
    pub documents: Vec<DocumentReport>,
    /// Wall time and throughput; the only field that varies between identical runs.
    pub timing: Timing,
    /// What the user should know about this run's validity (e.g. a model
    /// that needs BOS scored without it), most severe first.
    #[serde(default)]
    pub warnings: Vec<crate::inspect::Check>,
    /// The corpus perplexity's label, when asked for (`--bands`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpretation: Option<crate::bands::Interpretation>,
}

/// Tool name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Always `perplex`.
    pub name: String,
    /// The crate version.
    pub version: String,
}

/// A content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hash {
    /// Hash algorithm, e.g. `blake3`.
    pub algorithm: String,
    /// Lowercase hex digest.
    pub value: String,
}

/// The model as loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// What the user passed (`path`, `org/name@rev`).
    pub spec: String,
    /// The resolved file or folder.
    pub path: String,
    /// `hf-folder`, `gguf` or `mock`.
    pub format: String,
    /// Architecture, e.g. `llama`.
    pub architecture: String,
    /// Number of parameters.
    pub parameters: u64,
    /// Storage types of the weights and how many tensors use each, e.g. `q4_1: 210, f32: 61`.
    pub weights: String,
    /// Precision of the forward pass's matrix products: `f32` (the exact
    /// mode), `bf16` (the fast mode: bf16-rounded weights and activations,
    /// f32 sums; everything else f32), `f64` for mocks.
    pub compute_dtype: String,
    /// Where the forward passes ran, e.g. `cpu`.
    pub device: String,
    /// The kernels the matrix products ran on: `avx512` or `avx2` (perplex's
    /// packed kernels, the same products bit for bit), `portable`, or
    /// `candle` (candle's ops); absent for mocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<String>,
    /// Hash over the weight files (and config), identifying the exact weights.
    pub hash: Hash,
    /// The family whose conventions were applied (`gpt2`, `llama`, `gemma3`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// LoRA adapters applied on top of the weights, in order (`BASE+ADAPTER`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<String>,
}

impl ModelIdentity {
    /// The identity of a model that lives in memory (a mock, a training
    /// loop's model): no path, no files to hash; the caller overrides what
    /// it knows with struct update syntax.
    pub fn in_memory(spec: &str, architecture: &str) -> Self {
        ModelIdentity {
            spec: spec.to_string(),
            path: String::new(),
            format: "in-memory".into(),
            architecture: architecture.to_string(),
            parameters: 0,
            weights: "none".into(),
            compute_dtype: "f64".into(),
            device: "cpu".into(),
            kernels: None,
            hash: Hash {
                algorithm: "none".into(),
                value: String::new(),
            },
            family: None,
            adapters: Vec::new(),
        }
    }
}

/// The tokenizer as used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerIdentity {
    /// Where it came from: a `tokenizer.json` path or `gguf:<file>`.
    pub source: String,
    /// Its kind, e.g. `bpe (byte-level)` or `gguf gpt2/smollm`.
    pub kind: String,
    /// Number of tokens it can produce.
    pub vocab_size: usize,
    /// BOS id, when it has one.
    pub bos_id: Option<u32>,
    /// EOS id, when it has one.
    pub eos_id: Option<u32>,
    /// Whether the tokenizer adds BOS by default.
    pub adds_bos: bool,
}

/// The evaluated text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusIdentity {
    /// Input sources in order (`arg`, `stdin`, file paths).
    pub sources: Vec<String>,
    /// How sources were split into documents (`whole`, `lines`, `paragraphs`, `jsonl:<field>`).
    pub split: String,
    /// Documents read, empty ones included.
    pub documents: usize,
    /// Empty documents, counted and skipped.
    pub empty_documents: usize,
    /// Whether documents were joined into one before tokenising.
    pub joined: bool,
    /// The separator used when joining.
    pub separator: Option<String>,
    /// Hash of the documents' text as evaluated.
    pub hash: Hash,
}

/// The protocol, BOS policy and engine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolInfo {
    /// Protocol and its parameters.
    pub protocol: Protocol,
    /// Human description, e.g. `chunks (context 512)`.
    pub description: String,
    /// Resolved BOS policy.
    pub bos: ResolvedBos,
    /// Corpus token limit applied before windowing.
    pub max_tokens: Option<usize>,
    /// Windows per forward pass.
    pub batch_size: usize,
    /// Compute threads.
    pub threads: usize,
}

/// Corpus-level metrics. Perplexity is token-weighted: `exp(ΣNLL / Σtokens)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Text tokens in the evaluated documents (after `max_tokens`).
    pub tokens: u64,
    /// Tokens scored.
    pub scored_tokens: u64,
    /// Tokens the model processed (window lengths summed, BOS included).
    pub processed_tokens: u64,
    /// Windows evaluated.
    pub windows: u64,
    /// Documents with at least one scored token.
    pub scored_documents: usize,
    /// Documents too short to predict any token.
    pub too_short_documents: usize,
    /// ΣNLL, nats.
    pub nll_sum: f64,
    /// Mean NLL per scored token, nats.
    pub mean_nll: Option<f64>,
    /// Mean NLL per scored token, bits.
    pub mean_nll_bits: Option<f64>,
    /// Standard error of the mean NLL (tokens as independent samples), nats.
    pub mean_nll_stderr: Option<f64>,
    /// Token-weighted corpus perplexity.
    pub perplexity: Option<f64>,
    /// 95 % interval of the perplexity, `exp(mean ± 1.96·se)`.
    pub perplexity_ci95: Option<[f64; 2]>,
    /// HF `evaluate`'s `mean_perplexity`: the unweighted mean of per-document
    /// perplexities. Not the corpus perplexity.
    pub mean_document_perplexity: Option<f64>,
    /// Top-1 token accuracy.
    pub token_accuracy: Option<f64>,
    /// UTF-8 bytes of the evaluated documents.
    pub bytes: u64,
    /// Words (lm-evaluation-harness: pieces of `re.split(r"\s+", text)`).
    pub words: u64,
    /// ΣNLL / (bytes · ln 2); only when the protocol scores whole documents.
    pub bits_per_byte: Option<f64>,
    /// exp(ΣNLL / bytes); only when the protocol scores whole documents.
    pub byte_perplexity: Option<f64>,
    /// exp(ΣNLL / words); only when the protocol scores whole documents.
    pub word_perplexity: Option<f64>,
}

/// Why a document has or has no score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentStatus {
    /// At least one token was scored.
    Scored,
    /// The document had no text; skipped.
    Empty,
    /// Too few tokens to predict any (e.g. one token and no BOS).
    TooShort,
    /// Cut away by `max_tokens`.
    BeyondTokenLimit,
}

/// One document's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentReport {
    /// Index in input order.
    pub index: usize,
    /// Where it came from, e.g. `data.jsonl:12`.
    pub source: String,
    /// Whether it was scored.
    pub status: DocumentStatus,
    /// Text tokens.
    pub tokens: u64,
    /// Scored tokens.
    pub scored_tokens: u64,
    /// ΣNLL, nats.
    pub nll_sum: f64,
    /// Mean NLL, nats.
    pub mean_nll: Option<f64>,
    /// `exp(mean NLL)`.
    pub perplexity: Option<f64>,
    /// Top-1 accuracy.
    pub token_accuracy: Option<f64>,
    /// UTF-8 bytes.
    pub bytes: u64,
    /// Words.
    pub words: u64,
}

/// Wall time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds spent scoring.
    pub seconds: f64,
    /// Processed tokens per second.
    pub tokens_per_second: f64,
}

impl Summary {
    /// Builds the corpus summary from the merged statistics and per-document results.
    pub fn from_parts(
        stats: &NllStats,
        documents: &[DocumentReport],
        processed_tokens: u64,
        windows: u64,
        whole_documents: bool,
    ) -> Self {
        let scored: Vec<&DocumentReport> = documents
            .iter()
            .filter(|d| d.status == DocumentStatus::Scored)
            .collect();
        let bytes: u64 = documents.iter().map(|d| d.bytes).sum();
        let words: u64 = documents.iter().map(|d| d.words).sum();
        let normalised = |units: u64| {
            (whole_documents && units > 0 && stats.count > 0).then(|| stats.sum / units as f64)
        };
        let per_byte = normalised(bytes);
        Summary {
            tokens: documents.iter().map(|d| d.tokens).sum(),
            scored_tokens: stats.count,
            processed_tokens,
            windows,
            scored_documents: scored.len(),
            too_short_documents: documents
                .iter()
                .filter(|d| d.status == DocumentStatus::TooShort)
                .count(),
            nll_sum: stats.sum,
            mean_nll: stats.mean_nll().map(|n| n.0),
            mean_nll_bits: stats.mean_nll().map(|n| n.bits()),
            mean_nll_stderr: stats.standard_error().map(|n| n.0),
            perplexity: stats.perplexity(),
            perplexity_ci95: stats.perplexity_ci95().map(|(lo, hi)| [lo, hi]),
            mean_document_perplexity: (!scored.is_empty()).then(|| {
                scored.iter().filter_map(|d| d.perplexity).sum::<f64>() / scored.len() as f64
            }),
            token_accuracy: stats.accuracy(),
            bytes,
            words,
            bits_per_byte: per_byte.map(|x| x / std::f64::consts::LN_2),
            byte_perplexity: per_byte.map(f64::exp),
            word_perplexity: normalised(words).map(f64::exp),
        }
    }
}

// ---------------------------------------------------------------------------
// `perplex compare`

/// The schema version of [`CompareReport`].
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

/// A comparison of a base model with others on the same scored tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    /// [`COMPARE_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The tool that made the report.
    pub tool: ToolInfo,
    /// What text was evaluated (tokenised once: every model has the same tokenizer).
    pub corpus: CorpusIdentity,
    /// How windows were built and scored (the same for every model).
    pub protocol: ProtocolInfo,
    /// The models, base first, each with everything `eval` reports.
    pub models: Vec<ComparedModel>,
    /// One entry per other model, against the base.
    pub pairs: Vec<PairReport>,
    /// What the user should know about the run's validity.
    pub warnings: Vec<crate::inspect::Check>,
    /// Wall time of the whole comparison.
    pub timing: Timing,
}

/// One model of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedModel {
    /// What was loaded.
    pub model: ModelIdentity,
    /// Its tokenizer.
    pub tokenizer: TokenizerIdentity,
    /// Its corpus-level results on the shared windows.
    pub summary: Summary,
    /// Its per-document results.
    pub documents: Vec<DocumentReport>,
}

/// One model against the base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairReport {
    /// Index of the base in `models` (always 0).
    pub base: usize,
    /// Index of the other model in `models`.
    pub other: usize,
    /// The paired statistics; `None` when no token was scored, and in a
    /// bits-per-byte comparison.
    pub stats: Option<crate::compare::PairSummary>,
    /// The bits-per-byte comparison (`--bits-per-byte`: models whose
    /// tokenizers differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits_per_byte: Option<crate::compare::BitsPerByteSummary>,
    /// Per document with scored tokens, the most improved first.
    pub documents: Vec<DocumentDelta>,
}

/// How one document changed from the base to the other model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentDelta {
    /// Document index.
    pub index: usize,
    /// Its source.
    pub source: String,
    /// Scored tokens.
    pub tokens: u64,
    /// The base's perplexity on it.
    pub base_perplexity: f64,
    /// The other model's.
    pub other_perplexity: f64,
    /// Mean `nll_other − nll_base` (negative: better).
    pub mean_nll_difference: f64,
    /// `(base − other) / base × 100`.
    pub improvement_percent: f64,
}

// ---------------------------------------------------------------------------
// `perplex sweep`

/// The schema version of [`SweepReport`].
pub const SWEEP_SCHEMA_VERSION: u32 = 1;

/// Perplexity over the checkpoints of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// [`SWEEP_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The tool that made the report.
    pub tool: ToolInfo,
    /// The run folder.
    pub run: String,
    /// What text was evaluated.
    pub corpus: CorpusIdentity,
    /// How windows were built and scored.
    pub protocol: ProtocolInfo,
    /// The base model and its results, when the run has one (adapter
    /// checkpoints, or `--base`).
    pub base: Option<(ModelIdentity, Summary)>,
    /// One point per checkpoint, by step.
    pub points: Vec<SweepPoint>,
    /// The trainer's logged losses by step (`trainer_state.json`).
    pub trainer: Vec<TrainerLoss>,
    /// What the curve says, in plain words with its evidence.
    pub diagnoses: Vec<crate::diagnose::Diagnosis>,
    /// What the user should know about the run's validity.
    pub warnings: Vec<crate::inspect::Check>,
    /// Wall time of the whole sweep.
    pub timing: Timing,
}

/// One checkpoint's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Training step.
    pub step: u64,
    /// What was loaded (`BASE+ADAPTER` for adapter checkpoints).
    pub spec: String,
    /// Token-weighted perplexity.
    pub perplexity: Option<f64>,
    /// Its 95 % interval.
    pub perplexity_ci95: Option<[f64; 2]>,
    /// Mean NLL, nats.
    pub mean_nll: Option<f64>,
    /// Its standard error.
    pub mean_nll_stderr: Option<f64>,
    /// Scored tokens.
    pub scored_tokens: u64,
    /// The checkpoint's tokenizer gave the same ids as the first model's.
    pub same_tokens_as_first: bool,
    /// `(ppl − previous ppl) / previous ppl × 100`.
    pub change_from_previous_percent: Option<f64>,
    /// `(ppl − base ppl) / base ppl × 100`.
    pub change_from_base_percent: Option<f64>,
    /// The trainer's training loss logged at this step.
    pub train_loss: Option<f64>,
    /// The trainer's `eval_loss` at this step.
    pub eval_loss: Option<f64>,
    /// `exp(eval_loss)`: the trainer's own perplexity, on its eval set.
    pub eval_loss_perplexity: Option<f64>,
    /// The perplexity's label, when asked for (`--bands`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl SweepPoint {
    /// The point of `step` with `summary`'s numbers; changes, trainer losses
    /// and label left empty.
    pub fn from_summary(step: u64, spec: String, summary: &Summary) -> Self {
        SweepPoint {
            step,
            spec,
            perplexity: summary.perplexity,
            perplexity_ci95: summary.perplexity_ci95,
            mean_nll: summary.mean_nll,
            mean_nll_stderr: summary.mean_nll_stderr,
            scored_tokens: summary.scored_tokens,
            same_tokens_as_first: true,
            change_from_previous_percent: None,
            change_from_base_percent: None,
            train_loss: None,
            eval_loss: None,
            eval_loss_perplexity: None,
            label: None,
        }
    }
}

/// Fills each point's change from the previous point and from `base`
/// (points in step order; a point without perplexity keeps the last one as
/// "previous").
pub fn fill_changes(points: &mut [SweepPoint], base: Option<f64>) {
    let mut previous: Option<f64> = None;
    for p in points {
        let change = |from: Option<f64>| match (from, p.perplexity) {
            (Some(a), Some(b)) => Some((b - a) / a * 100.0),
            _ => None,
        };
        p.change_from_previous_percent = change(previous);
        p.change_from_base_percent = change(base);
        previous = p.perplexity.or(previous);
    }
}

/// Losses a trainer logged at one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainerLoss {
    /// Step.
    pub step: u64,
    /// Training loss.
    pub loss: Option<f64>,
    /// Evaluation loss.
    pub eval_loss: Option<f64>,
}
