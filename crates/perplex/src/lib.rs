//! perplex: how well does a causal language model predict this text?
//!
//! The library behind the `perplex` binary. It loads a model (a Hugging Face
//! folder, a hub-cache repo id or a GGUF file), turns a corpus into token ids,
//! plans windows by a named protocol, scores them and returns a versioned
//! [`Report`]. The crates it stands on, in pipeline order:
//!
//! | crate | role |
//! |---|---|
//! | [`perplex_data`] | corpora → documents → token ids |
//! | [`perplex_core`] | windows, the [`CausalLm`] seam, accumulators, the report schema |
//! | [`perplex_model`] | model loading and forward passes (the only one naming candle) |
//! | [`perplex_eval`] | the engine: batches windows through the seam into sinks |
//! | [`perplex_report`] | table, JSON, CSV and per-token writers |
//!
//! ```no_run
//! use perplex::{Corpus, EvalOptions, Evaluator};
//! use perplex::core::Protocol;
//!
//! let mut evaluator = Evaluator::load("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let options = EvalOptions::new(Protocol::Chunks { context: 512 });
//! let corpus = Corpus::from_texts(["The cat sat on the mat.", "Rust is a language."]);
//! let report = evaluator.evaluate(&corpus, &options)?;
//! println!("perplexity {:.3}", report.summary.perplexity.unwrap());
//! # Ok::<(), perplex::Error>(())
//! ```

mod compare;
pub mod sweep;
pub mod training;
pub mod watch;

use std::path::Path;
use std::time::Instant;

pub use compare::{compare, CompareOptions};

pub use perplex_core as core;
pub use perplex_data as data;
pub use perplex_eval as eval;
pub use perplex_model as model;
pub use perplex_report as output;

use perplex_core::inspect::{Check, Level};
use perplex_core::lm::CausalLm;
use perplex_core::mock::{HashLm, UniformLm};
use perplex_core::plan::{BosPolicy, PlanError, Protocol, ResolvedBos};
use perplex_core::report::{
    CorpusIdentity, DocumentReport, DocumentStatus, Hash, ModelIdentity, ProtocolInfo, Report,
    Summary, Timing, ToolInfo, SCHEMA_VERSION,
};
use perplex_data::corpus::Document;
use perplex_data::counts::{byte_count, word_count};
use perplex_data::tokenizer::{TextTokenizer, TokenizerError};
use perplex_eval::{EvalError, EvalSettings, NullSink, Sink};
use perplex_model::{LoadOptions, LoadedModel, ModelError};

pub use perplex_core::report;

/// The report type every command produces.
pub use perplex_core::report::Report as EvalReport;

/// How to evaluate a corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Window protocol.
    pub protocol: Protocol,
    /// BOS policy (`auto` follows the tokenizer).
    pub bos: BosPolicy,
    /// Windows per forward pass.
    pub batch_size: usize,
    /// Corpus token limit applied before windowing.
    pub max_tokens: Option<usize>,
    /// Join all documents into one with this separator before tokenising.
    pub join: Option<String>,
}

impl EvalOptions {
    /// Options with `protocol`, BOS `auto`, the batch size
    /// [`EvalOptions::default_batch_size`] picks, no limit, no join.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            bos: BosPolicy::Auto,
            batch_size: Self::default_batch_size(&protocol),
            max_tokens: None,
            join: None,
        }
    }

    /// Windows per forward pass when none is asked for: as many equal-length
    /// windows as make about 2,048 tokens (each weight matrix, dequantized or
    /// packed once per pass, then serves more rows), and one for `truncate`,
    /// whose windows are whole documents of any length (batching would pad
    /// them). Results never depend on it.
    pub fn default_batch_size(protocol: &Protocol) -> usize {
        match *protocol {
            Protocol::Truncate { .. } => 1,
            Protocol::Chunks { context }
            | Protocol::Sliding { context, .. }
            | Protocol::LlamaCpp { context } => (2048 / context.max(1)).max(1),
        }
    }
}

/// The documents to evaluate and where they came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Corpus {
    /// Documents in input order (empty ones included: they are counted).
    pub documents: Vec<Document>,
    /// Input sources in order.
    pub sources: Vec<String>,
    /// How sources were split into documents.
    pub split: String,
}

impl Corpus {
    /// A corpus of in-memory texts, one document each.
    pub fn from_texts<S: Into<String>>(texts: impl IntoIterator<Item = S>) -> Self {
        Self {
            documents: perplex_data::corpus::from_args(texts),
            sources: vec!["arguments".into()],
            split: "whole".into(),
        }
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A document could not be tokenised.
    #[error("could not tokenise document {source_name}")]
    Tokenize {
        /// The document's source.
        source_name: String,
        /// The tokenizer's error.
        #[source]
        source: TokenizerError,
    },
    /// The protocol or BOS policy does not fit the model.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The engine failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A `mock:` model spec names no mock model.
    #[error("unknown mock model `{0}`")]
    UnknownMock(String),
    /// Two models to compare tokenise the corpus differently.
    #[error("`{other}` tokenises the corpus differently from `{base}`: {detail}")]
    TokenizersDiffer {
        /// The base's spec.
        base: String,
        /// The other model's spec.
        other: String,
        /// Where the ids first differ.
        detail: String,
    },
    /// A comparison that cannot be made as asked.
    #[error("{0}")]
    Compare(String),
    /// A run folder that cannot be swept.
    #[error("{0}")]
    Sweep(String),
}

impl Error {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Model(e) => e.hint(),
            Error::Tokenize { source, .. } => source.hint(),
            Error::Plan(PlanError::ContextTooLong { max, .. }) => Some(format!(
                "use --context (or --max-length) of at most {max}, the model's context length"
            )),
            Error::Plan(PlanError::NoBosToken) => {
                Some("use --bos none, or a tokenizer that defines a BOS token".into())
            }
            Error::Plan(PlanError::BadStride { context, .. }) => {
                Some(format!("pick --stride between 1 and {context}"))
            }
            Error::Plan(PlanError::WindowTooShort { min, .. }) => {
                Some(format!("windows need at least {min} tokens"))
            }
            Error::Eval(EvalError::Model { source: perplex_core::LmError::NonFinite { .. }, .. }) => Some(
                "the weights or the computation overflowed; check the model file, or report it with the window above".into(),
            ),
            Error::Eval(_) => None,
            Error::TokenizersDiffer { .. } => Some(
                "token-level comparisons (KL divergence, paired NLL) need the same tokens; models \
                 with different tokenizers can be compared by bits per byte: add \
                 --bits-per-byte"
                    .into(),
            ),
            Error::Compare(_) | Error::Sweep(_) => None,
            Error::UnknownMock(_) => Some("use mock:uniform:<tokenizer.json> or mock:hash:<tokenizer.json>".into()),
        }
    }
}

/// A loaded model ready to evaluate corpora.
pub struct Evaluator {
    model: LoadedModel,
}

impl Evaluator {
    /// Loads a model folder, GGUF file or hub-cache repo id with default options.
    pub fn load(spec: &str) -> Result<Self, Error> {
        Self::load_with(spec, &LoadOptions::default())
    }

    /// Loads a model with explicit options.
    ///
    /// `mock:uniform:<tokenizer.json>` and `mock:hash:<tokenizer.json>` load
    /// the deterministic mock models of [`perplex_core::mock`] with that
    /// tokenizer: the CLI tests run the real binary against them.
    pub fn load_with(spec: &str, options: &LoadOptions) -> Result<Self, Error> {
        let model = match spec.strip_prefix("mock:") {
            Some(mock) => load_mock(spec, mock)?,
            None => perplex_model::load(spec, options)?,
        };
        Ok(Self { model })
    }

    /// Wraps an already loaded model.
    pub fn new(model: LoadedModel) -> Self {
        Self { model }
    }

    /// The loaded model.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// The loaded model, taken out (e.g. to [`compare`] it with others).
    pub fn into_model(self) -> LoadedModel {
        self.model
    }

    /// Evaluates `corpus` and returns the report.
    pub fn evaluate(&mut self, corpus: &Corpus, options: &EvalOptions) -> Result<Report, Error> {
        self.evaluate_into(corpus, options, &mut NullSink)
    }

    /// Evaluates `corpus`, passing every scored token to `sink` as it is scored.
    pub fn evaluate_into(
        &mut self,
        corpus: &Corpus,
        options: &EvalOptions,
        sink: &mut dyn Sink,
    ) -> Result<Report, Error> {
        let warnings = self.warnings(options);
        let LoadedModel {
            model,
            tokenizer,
            identity,
            ..
        } = &mut self.model;
        let mut report = evaluate(model.as_mut(), tokenizer, identity, corpus, options, sink)?;
        report.warnings = warnings;
        Ok(report)
    }

    /// What a run with `options` should warn about: the model's consistency
    /// warnings, and a model that needs BOS (Gemma) about to be scored
    /// without it.
    pub fn warnings(&self, options: &EvalOptions) -> Vec<Check> {
        run_warnings(&self.model, options)
    }
}

/// [`Evaluator::warnings`] for any loaded model.
pub fn run_warnings(m: &LoadedModel, options: &EvalOptions) -> Vec<Check> {
    // whether BOS is added is decided by the options, not the tokenizer
    let mut out: Vec<Check> = m
        .checks
        .iter()
        .filter(|c| c.level == Level::Warning && c.code != "bos-not-added")
        .cloned()
        .collect();
    let bos = ResolvedBos::resolve(
        options.bos,
        &options.protocol,
        m.tokenizer.bos_id(),
        m.tokenizer.adds_bos(),
    );
    if let (Some(family), Ok(ResolvedBos::None)) = (m.family, bos) {
        if family.needs_bos() && m.tokenizer.bos_id().is_some() {
            out.push(Check {
                level: Level::Warning,
                code: "no-bos".into(),
                message: format!(
                    "{family} models were trained with BOS at the start of every sequence and \
                     this run scores without it: the perplexity it reports is far above the \
                     model's real one"
                ),
                hint: Some(
                    "evaluate with `--bos document` (BOS before each document) or `--bos window`"
                        .into(),
                ),
            });
        }
    }
    out
}

/// Evaluates `corpus` with any [`CausalLm`]: the function behind
/// [`Evaluator::evaluate`], usable with a mock model.
pub fn evaluate(
    model: &mut dyn CausalLm,
    tokenizer: &TextTokenizer,
    identity: &ModelIdentity,
    corpus: &Corpus,
    options: &EvalOptions,
    sink: &mut dyn Sink,
) -> Result<Report, Error> {
    let prepared = Prepared::new(tokenizer, corpus, options)?;
    options.protocol.validate(model.info().max_context)?;
    let settings = prepared.settings(options);
    let start = Instant::now();
    let outcome = perplex_eval::evaluate(model, &prepared.tokens, &settings, sink)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(prepared.report(identity, tokenizer, corpus, options, &outcome, seconds))
}

/// A corpus made ready for one tokenizer: the documents (joined when
/// asked), their token ids and the resolved BOS.
pub(crate) struct Prepared<'c> {
    pub(crate) documents: std::borrow::Cow<'c, [Document]>,
    pub(crate) tokens: Vec<Vec<u32>>,
    pub(crate) bos: ResolvedBos,
}

impl<'c> Prepared<'c> {
    pub(crate) fn new(
        tokenizer: &TextTokenizer,
        corpus: &'c Corpus,
        options: &EvalOptions,
    ) -> Result<Self, Error> {
        let documents: std::borrow::Cow<'c, [Document]> = match &options.join {
            Some(separator) => {
                let non_empty: Vec<Document> = corpus
                    .documents
                    .iter()
                    .filter(|d| !d.text.is_empty())
                    .cloned()
                    .collect();
                vec![perplex_data::corpus::join(&non_empty, separator)].into()
            }
            None => (&corpus.documents[..]).into(),
        };
        let bos = ResolvedBos::resolve(
            options.bos,
            &options.protocol,
            tokenizer.bos_id(),
            tokenizer.adds_bos(),
        )?;
        let tokens = documents
            .iter()
            .map(|d| {
                tokenizer.encode(&d.text).map_err(|source| Error::Tokenize {
                    source_name: d.source.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Prepared {
            documents,
            tokens,
            bos,
        })
    }

    pub(crate) fn settings(&self, options: &EvalOptions) -> EvalSettings {
        EvalSettings {
            protocol: options.protocol,
            bos: self.bos,
            batch_size: options.batch_size.max(1),
            max_tokens: options.max_tokens,
        }
    }

    /// The report of one model's `outcome` on these documents.
    pub(crate) fn report(
        &self,
        identity: &ModelIdentity,
        tokenizer: &TextTokenizer,
        corpus: &Corpus,
        options: &EvalOptions,
        outcome: &perplex_eval::Outcome,
        seconds: f64,
    ) -> Report {
        let documents = &self.documents;
        let tokens = &self.tokens;
        let doc_reports: Vec<DocumentReport> = documents
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let stats = &outcome.per_document[i];
                let kept = outcome.evaluated_tokens[i];
                let status = if d.text.is_empty() {
                    DocumentStatus::Empty
                } else if kept == 0 {
                    DocumentStatus::BeyondTokenLimit
                } else if stats.is_empty() {
                    DocumentStatus::TooShort
                } else {
                    DocumentStatus::Scored
                };
                // Byte and word counts describe the evaluated text: a document cut
                // by --max-tokens has no exact text extent, so it counts only when whole.
                let whole = kept == tokens[i].len() && !d.text.is_empty();
                DocumentReport {
                    index: i,
                    source: d.source.clone(),
                    status,
                    tokens: kept as u64,
                    scored_tokens: stats.count,
                    nll_sum: stats.sum,
                    mean_nll: stats.mean_nll().map(|n| n.0),
                    perplexity: stats.perplexity(),
                    token_accuracy: stats.accuracy(),
                    bytes: if whole { byte_count(&d.text) } else { 0 },
                    words: if whole { word_count(&d.text) } else { 0 },
                }
            })
            .collect();
        let cut = doc_reports
            .iter()
            .zip(tokens)
            .any(|(d, t)| d.tokens as usize != t.len());
        let summary = Summary::from_parts(
            &outcome.total,
            &doc_reports,
            outcome.processed_tokens,
            outcome.windows,
            options.protocol.covers_whole_documents() && !cut,
        );
        Report {
            schema_version: SCHEMA_VERSION,
            tool: tool_info(),
            model: identity.clone(),
            tokenizer: tokenizer.identity(),
            corpus: self.corpus_identity(corpus, options),
            protocol: self.protocol_info(options),
            summary,
            documents: doc_reports,
            timing: timing(outcome.processed_tokens, seconds),
            warnings: Vec::new(),
            interpretation: None,
        }
    }

    pub(crate) fn corpus_identity(&self, corpus: &Corpus, options: &EvalOptions) -> CorpusIdentity {
        CorpusIdentity {
            sources: corpus.sources.clone(),
            split: corpus.split.clone(),
            documents: corpus.documents.len(),
            empty_documents: corpus
                .documents
                .iter()
                .filter(|d| d.text.is_empty())
                .count(),
            joined: options.join.is_some(),
            separator: options.join.clone(),
            hash: corpus_hash(&self.documents),
        }
    }

    pub(crate) fn protocol_info(&self, options: &EvalOptions) -> ProtocolInfo {
        ProtocolInfo {
            protocol: options.protocol,
            description: options.protocol.to_string(),
            bos: self.bos,
            max_tokens: options.max_tokens,
            batch_size: options.batch_size.max(1),
            threads: perplex_model::threads(),
        }
    }
}

pub(crate) fn tool_info() -> ToolInfo {
    ToolInfo {
        name: "perplex".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

pub(crate) fn timing(processed_tokens: u64, seconds: f64) -> Timing {
    Timing {
        seconds,
        tokens_per_second: if seconds > 0.0 {
            processed_tokens as f64 / seconds
        } else {
            0.0
        },
    }
}

fn load_mock(spec: &str, mock: &str) -> Result<LoadedModel, Error> {
    let (kind, path) = mock.split_once(':').unwrap_or((mock, ""));
    let tokenizer =
        TextTokenizer::from_tokenizer_json(Path::new(path)).map_err(|source| Error::Tokenize {
            source_name: path.to_string(),
            source,
        })?;
    let vocab = tokenizer.vocab_size();
    let model: Box<dyn CausalLm + Send> = match kind {
        "uniform" => Box::new(UniformLm::new(vocab, Some(4096))),
        "hash" => Box::new(HashLm::new(vocab, Some(4096))),
        other => return Err(Error::UnknownMock(other.to_string())),
    };
    let identity = ModelIdentity {
        path: path.to_string(),
        format: "mock".into(),
        ..ModelIdentity::in_memory(spec, kind)
    };
    Ok(LoadedModel {
        family: None,
        model,
        tokenizer,
        identity,
        checks: Vec::new(),
    })
}

/// blake3 over the documents' text, each prefixed by its length so that
/// different splits of the same bytes hash differently.
fn corpus_hash(documents: &[Document]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    for d in documents {
        hasher.update(&(d.text.len() as u64).to_le_bytes());
        hasher.update(d.text.as_bytes());
    }
    Hash {
        algorithm: "blake3".into(),
        value: hasher.finalize().to_hex().to_string(),
    }
}
