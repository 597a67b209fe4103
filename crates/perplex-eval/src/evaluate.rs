//! One model on one corpus: tokenise, resolve BOS, score, and assemble the
//! versioned [`Report`].
//!
//! An [`Evaluation`] is the corpus made ready for one tokenizer and one set
//! of options; it can score any number of models that share that tokenizer
//! (a training loop's model at every step, every model of a comparison),
//! each run returning the same report `perplex eval` writes.

use std::time::Instant;

use perplex_core::lm::CausalLm;
use perplex_core::plan::ResolvedBos;
use perplex_core::report::{
    CorpusIdentity, DocumentReport, DocumentStatus, ModelIdentity, ProtocolInfo, Report, Summary,
    Timing, ToolInfo, SCHEMA_VERSION,
};
use perplex_core::sink::Sink;
use perplex_data::tokenizer::TextTokenizer;
use perplex_data::{Corpus, TokenizedCorpus};

use crate::checkpoint::{EvalIdentity, EvalJournal};
use crate::engine::{self, EvalSettings, Outcome};
use crate::error::EvalError;
use crate::model::Model;
use crate::options::EvalOptions;

/// Evaluates `corpus` with `model` and returns the report, with the
/// model's warnings for this run in it.
pub fn evaluate(
    model: &mut Model,
    corpus: &Corpus,
    options: &EvalOptions,
    sink: &mut dyn Sink,
) -> Result<Report, EvalError> {
    evaluate_saving(model, corpus, options, sink, None)
}

/// [`evaluate`], resuming from `journal`'s last save and saving as it goes
/// ([`crate::checkpoint`]; open the journal with
/// [`Evaluation::resume_identity`]).
pub fn evaluate_saving(
    model: &mut Model,
    corpus: &Corpus,
    options: &EvalOptions,
    sink: &mut dyn Sink,
    journal: Option<&mut EvalJournal>,
) -> Result<Report, EvalError> {
    let evaluation = Evaluation::new(&model.tokenizer, corpus, options)?;
    let mut report = evaluation.run_saving(
        model.lm.as_mut(),
        &model.tokenizer,
        &model.identity,
        model.threads,
        sink,
        journal,
    )?;
    report.warnings = model.warnings(options);
    Ok(report)
}

/// A corpus made ready for one tokenizer under one set of options: the
/// documents (joined when asked), their token ids and the resolved BOS.
#[derive(Debug, Clone)]
pub struct Evaluation<'c> {
    corpus: TokenizedCorpus<'c>,
    options: EvalOptions,
    bos: ResolvedBos,
}

impl<'c> Evaluation<'c> {
    /// Tokenises `corpus` with `tokenizer` and resolves the BOS policy.
    pub fn new(
        tokenizer: &TextTokenizer,
        corpus: &'c Corpus,
        options: &EvalOptions,
    ) -> Result<Self, EvalError> {
        let bos = ResolvedBos::resolve(
            options.bos(),
            &options.protocol(),
            tokenizer.bos_id(),
            tokenizer.adds_bos(),
        )?;
        Ok(Evaluation {
            corpus: TokenizedCorpus::new(tokenizer, corpus, options.join())?,
            options: options.clone(),
            bos,
        })
    }

    /// The same, owning its corpus.
    pub fn into_owned(self) -> Evaluation<'static> {
        Evaluation {
            corpus: self.corpus.into_owned(),
            options: self.options,
            bos: self.bos,
        }
    }

    /// The tokenised corpus.
    pub fn corpus(&self) -> &TokenizedCorpus<'c> {
        &self.corpus
    }

    /// The resolved BOS policy.
    pub fn bos(&self) -> ResolvedBos {
        self.bos
    }

    /// The options.
    pub fn options(&self) -> &EvalOptions {
        &self.options
    }

    /// What the engine runs.
    pub fn settings(&self) -> EvalSettings {
        EvalSettings::new(&self.options, self.bos)
    }

    /// Scores the corpus with `lm` (which `tokenizer` tokenised for) on
    /// `threads` compute threads, and returns the report (no warnings:
    /// those belong to the caller, who knows the model).
    pub fn run(
        &self,
        lm: &mut dyn CausalLm,
        tokenizer: &TextTokenizer,
        identity: &ModelIdentity,
        threads: usize,
        sink: &mut dyn Sink,
    ) -> Result<Report, EvalError> {
        self.run_saving(lm, tokenizer, identity, threads, sink, None)
    }

    /// [`run`](Self::run), resuming from `journal`'s last save and saving as
    /// it goes ([`crate::checkpoint`]).
    pub fn run_saving(
        &self,
        lm: &mut dyn CausalLm,
        tokenizer: &TextTokenizer,
        identity: &ModelIdentity,
        threads: usize,
        sink: &mut dyn Sink,
        journal: Option<&mut EvalJournal>,
    ) -> Result<Report, EvalError> {
        let start = Instant::now();
        let outcome =
            engine::score_saving(lm, self.corpus.tokens(), &self.settings(), sink, journal)
                .map_err(|e| e.naming(tokenizer, &[&identity.spec]))?;
        self.check_scored(&outcome)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(self.report(identity, tokenizer, &outcome, threads, seconds))
    }

    /// Fails when `outcome` scored no token (the planner plans no window
    /// that scores nothing, so no forward pass was spent on it), saying why.
    pub(crate) fn check_scored(&self, outcome: &Outcome) -> Result<(), EvalError> {
        if outcome.total.count > 0 {
            return Ok(());
        }
        let corpus = self.corpus.source();
        let (count, empty) = (corpus.documents.len(), corpus.empty_documents());
        let sources = match corpus.sources.as_slice() {
            [] => "the corpus".to_string(),
            names => names
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let limit = self.options.max_tokens();
        let why = if count == 0 {
            "it holds no documents".to_string()
        } else if empty == count {
            format!("every document is empty ({})", documents(count))
        } else if let Some(limit) = limit {
            format!("the token limit of {limit} leaves no token to score")
        } else {
            let empty = match empty {
                0 => String::new(),
                n => format!(", {n} empty"),
            };
            format!(
                "no document is long enough to score ({}{empty}; BOS {}, {})",
                documents(count),
                self.bos.name(),
                self.options.protocol()
            )
        };
        let limited = limit.is_some() && empty < count;
        Err(EvalError::NothingToScore {
            sources,
            why,
            limited,
        })
    }

    /// The report of one model's `outcome` on these documents.
    pub(crate) fn report(
        &self,
        identity: &ModelIdentity,
        tokenizer: &TextTokenizer,
        outcome: &Outcome,
        threads: usize,
        seconds: f64,
    ) -> Report {
        let documents = self.document_reports(outcome);
        let cut = documents
            .iter()
            .zip(self.corpus.tokens())
            .any(|(d, t)| d.tokens as usize != t.len());
        let summary = Summary::from_parts(
            &outcome.total,
            &documents,
            outcome.processed_tokens,
            outcome.windows,
            self.options.protocol().covers_whole_documents() && !cut,
        );
        Report {
            schema_version: SCHEMA_VERSION,
            tool: tool_info(),
            model: identity.clone(),
            tokenizer: tokenizer.identity(),
            corpus: self.corpus_identity(),
            protocol: self.protocol_info(threads),
            summary,
            documents,
            timing: timing(outcome.processed_tokens, seconds),
            warnings: Vec::new(),
            interpretation: None,
        }
    }

    fn document_reports(&self, outcome: &Outcome) -> Vec<DocumentReport> {
        let tokens = self.corpus.tokens();
        self.corpus
            .documents()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let stats = &outcome.per_document[i];
                let kept = outcome.evaluated_tokens[i];
                let status = if d.is_empty() {
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
                let whole = kept == tokens[i].len() && !d.is_empty();
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
                    bytes: if whole { self.corpus.bytes(i) } else { 0 },
                    words: if whole { self.corpus.words(i) } else { 0 },
                }
            })
            .collect()
    }

    /// What identifies a run of this evaluation with a model: what a
    /// resumed run must match ([`crate::checkpoint`]).
    pub fn resume_identity(
        &self,
        model: &ModelIdentity,
        tokenizer: &TextTokenizer,
        per_token: bool,
    ) -> EvalIdentity {
        let info = self.protocol_info(1);
        EvalIdentity {
            model_hash: model.hash.value.clone(),
            tokenizer_hash: crate::score::journal::tokenizer_hash(tokenizer).value,
            sources: self.corpus.source().sources.clone(),
            corpus_hash: self.corpus.hash().clone(),
            protocol: format!(
                "{}, BOS {}, token limit {}",
                info.description,
                info.bos.name(),
                info.max_tokens
                    .map_or("none".to_string(), |n| n.to_string())
            ),
            per_token,
        }
    }

    /// The corpus identity reports record.
    pub fn corpus_identity(&self) -> CorpusIdentity {
        self.corpus.identity()
    }

    /// The protocol, BOS and engine settings reports record.
    pub fn protocol_info(&self, threads: usize) -> ProtocolInfo {
        let protocol = self.options.protocol();
        ProtocolInfo {
            protocol,
            description: protocol.to_string(),
            bos: self.bos,
            max_tokens: self.options.max_tokens(),
            batch_size: self.options.batch_size(),
            threads,
        }
    }
}

fn documents(n: usize) -> String {
    format!("{n} document{}", if n == 1 { "" } else { "s" })
}

/// This tool, as reports name it.
pub(crate) fn tool_info() -> ToolInfo {
    ToolInfo {
        name: "perplex".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Wall time of scoring `processed_tokens` in `seconds`.
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
