//! The perplex engine: plan windows, batch them, score them through the
//! [`CausalLm`] seam, and push every scored token into a [`Sink`].
//!
//! The engine is generic over the model and knows nothing of tensors or
//! files. Its contract:
//! - the corpus is cut to `max_tokens` text tokens first (in document order);
//! - each document is planned on its own ([`plan_document`]);
//! - windows are scored `batch_size` at a time, in plan order; batching never
//!   changes a score (the seam's contract), so results are the same for any
//!   batch size;
//! - every scored token reaches the sink exactly once, in document order and,
//!   within a document, in position order;
//! - per-document and corpus statistics are [`NllStats`] merged with `+=`.
//!
//! ```
//! use perplex_core::{mock::UniformLm, Protocol, ResolvedBos};
//! use perplex_eval::{evaluate, EvalSettings, NullSink};
//!
//! let mut model = UniformLm::new(100, None);
//! let docs = vec![vec![5, 6, 7, 8, 9], vec![1, 2]];
//! let settings = EvalSettings {
//!     protocol: Protocol::Chunks { context: 4 },
//!     bos: ResolvedBos::None,
//!     batch_size: 2,
//!     max_tokens: None,
//! };
//! let outcome = evaluate(&mut model, &docs, &settings, &mut NullSink).unwrap();
//! assert_eq!(outcome.total.count, 4);
//! assert!((outcome.total.perplexity().unwrap() - 100.0).abs() < 1e-9);
//! ```

mod compare;

pub use compare::{compare, CompareOutcome};

use perplex_core::lm::{CausalLm, LmError, TokenScore, WindowRef};
use perplex_core::plan::{plan_document, PlanError, Protocol, ResolvedBos, Window};
use perplex_core::NllStats;

/// How to evaluate, already validated by [`Protocol::validate`] and
/// [`ResolvedBos::resolve`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSettings {
    /// Window protocol.
    pub protocol: Protocol,
    /// Resolved BOS policy.
    pub bos: ResolvedBos,
    /// Windows per forward pass (at least 1).
    pub batch_size: usize,
    /// Corpus token limit applied before planning.
    pub max_tokens: Option<usize>,
}

/// One scored token, as the sink sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenEvent {
    /// Document index.
    pub doc: usize,
    /// Index of the token among the document's text tokens (BOS excluded).
    pub position: usize,
    /// The target token id.
    pub token: u32,
    /// Its score.
    pub score: TokenScore,
}

/// Receives scored tokens and progress as the run goes.
pub trait Sink {
    /// Called once per scored token, in document and position order.
    fn token(&mut self, event: &TokenEvent) -> std::io::Result<()>;

    /// Called after each batch with processed and total window tokens.
    fn progress(&mut self, _processed: u64, _total: u64) {}
}

/// A sink that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl Sink for NullSink {
    fn token(&mut self, _: &TokenEvent) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sink that keeps every event, for tests and small corpora.
#[derive(Debug, Default, Clone)]
pub struct CollectSink {
    /// The events, in order.
    pub events: Vec<TokenEvent>,
}

impl Sink for CollectSink {
    fn token(&mut self, event: &TokenEvent) -> std::io::Result<()> {
        self.events.push(*event);
        Ok(())
    }
}

/// What a run produced besides the sink's output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Statistics per document, in input order.
    pub per_document: Vec<NllStats>,
    /// Text tokens of each document that were evaluated (after `max_tokens`).
    pub evaluated_tokens: Vec<usize>,
    /// All scored tokens merged.
    pub total: NllStats,
    /// Tokens the model processed (window lengths summed).
    pub processed_tokens: u64,
    /// Windows scored.
    pub windows: u64,
}

impl Outcome {
    /// An empty outcome for documents of `lengths` tokens cut by `max_tokens`.
    fn empty(lengths: &[usize], max_tokens: Option<usize>) -> Self {
        Outcome {
            per_document: vec![NllStats::new(); lengths.len()],
            evaluated_tokens: token_budget(lengths, max_tokens),
            ..Outcome::default()
        }
    }

    /// Merges the per-document statistics into `total`.
    fn total_up(&mut self) {
        for stats in &self.per_document {
            self.total += stats;
        }
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The protocol or policy is invalid for this model.
    #[error("invalid evaluation protocol")]
    Plan(#[from] PlanError),
    /// The model failed on a batch.
    #[error("the model failed on the window of document {doc} starting at token {first_target}")]
    Model {
        /// Document of the first window in the failing batch.
        doc: usize,
        /// First target position of that window.
        first_target: usize,
        /// The model's error.
        #[source]
        source: LmError,
    },
    /// The model broke the seam's contract.
    #[error("the model returned {got} scores for a window that scores {expected}")]
    ScoreCount {
        /// Scores expected.
        expected: usize,
        /// Scores returned.
        got: usize,
    },
    /// The sink could not write.
    #[error("could not write a scored token")]
    Sink(#[source] std::io::Error),
    /// Models that cannot be compared token by token.
    #[error("{0}")]
    Incomparable(String),
}

/// Text tokens of each document kept by a corpus-wide `limit`, in order.
pub fn token_budget(lengths: &[usize], limit: Option<usize>) -> Vec<usize> {
    let mut left = limit.unwrap_or(usize::MAX);
    lengths
        .iter()
        .map(|&n| {
            let keep = n.min(left);
            left -= keep;
            keep
        })
        .collect()
}

/// Plans every window of the corpus.
pub fn plan_corpus(docs: &[Vec<u32>], settings: &EvalSettings) -> Vec<Window> {
    let lengths: Vec<usize> = docs.iter().map(Vec::len).collect();
    let budget = token_budget(&lengths, settings.max_tokens);
    docs.iter()
        .zip(budget)
        .enumerate()
        .flat_map(|(i, (doc, keep))| {
            plan_document(&settings.protocol, settings.bos, i, &doc[..keep])
        })
        .collect()
}

/// Evaluates `docs` (text token ids, BOS excluded) with `model`.
pub fn evaluate<M: CausalLm + ?Sized>(
    model: &mut M,
    docs: &[Vec<u32>],
    settings: &EvalSettings,
    sink: &mut dyn Sink,
) -> Result<Outcome, EvalError> {
    settings.protocol.validate(model.info().max_context)?;
    let lengths: Vec<usize> = docs.iter().map(Vec::len).collect();
    let windows = plan_corpus(docs, settings);
    let total_tokens: u64 = windows.iter().map(|w| w.tokens.len() as u64).sum();
    let mut outcome = Outcome::empty(&lengths, settings.max_tokens);
    for batch in windows.chunks(settings.batch_size.max(1)) {
        let refs: Vec<WindowRef<'_>> = batch
            .iter()
            .map(|w| WindowRef {
                tokens: &w.tokens,
                score_from: w.score_from,
            })
            .collect();
        let scores = model
            .score_batch(&refs)
            .map_err(|source| EvalError::Model {
                doc: batch[0].doc,
                first_target: batch[0].first_target,
                source,
            })?;
        for (window, scores) in batch.iter().zip(&scores) {
            if scores.len() != window.scored() {
                return Err(EvalError::ScoreCount {
                    expected: window.scored(),
                    got: scores.len(),
                });
            }
            let stats = &mut outcome.per_document[window.doc];
            for (k, score) in scores.iter().enumerate() {
                let token = window.tokens[window.score_from + k];
                stats.push(score.nll, score.argmax == token);
                sink.token(&TokenEvent {
                    doc: window.doc,
                    position: window.first_target + k,
                    token,
                    score: *score,
                })
                .map_err(EvalError::Sink)?;
            }
            outcome.processed_tokens += window.tokens.len() as u64;
            outcome.windows += 1;
        }
        sink.progress(outcome.processed_tokens, total_tokens);
    }
    outcome.total_up();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use perplex_core::mock::{HashLm, UniformLm};

    fn corpus() -> Vec<Vec<u32>> {
        // mixed lengths, including too-short and empty documents
        vec![
            (0..37).map(|i| (i * 7 % 50) as u32).collect(),
            vec![3],
            vec![],
            (0..5).collect(),
            (0..90).map(|i| (i * 13 % 50) as u32).collect(),
            (0..16).map(|i| (i % 9) as u32 + 1).collect(),
        ]
    }

    fn settings(protocol: Protocol, bos: ResolvedBos, batch_size: usize) -> EvalSettings {
        EvalSettings {
            protocol,
            bos,
            batch_size,
            max_tokens: None,
        }
    }

    #[test]
    fn uniform_model_has_perplexity_v() {
        let mut m = UniformLm::new(50, None);
        let out = evaluate(
            &mut m,
            &corpus(),
            &settings(Protocol::Chunks { context: 8 }, ResolvedBos::None, 3),
            &mut NullSink,
        )
        .unwrap();
        assert!((out.total.perplexity().unwrap() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn batch_size_does_not_change_any_score() {
        let protocols = [
            Protocol::Truncate { max_length: 20 },
            Protocol::Chunks { context: 8 },
            Protocol::Sliding {
                context: 12,
                stride: 5,
            },
            Protocol::LlamaCpp { context: 8 },
        ];
        for protocol in protocols {
            for bos in [ResolvedBos::None, ResolvedBos::Document { id: 0 }] {
                let bos = match (protocol, bos) {
                    (Protocol::LlamaCpp { .. }, ResolvedBos::Document { id }) => {
                        ResolvedBos::ReplaceFirst { id }
                    }
                    _ => bos,
                };
                let runs: Vec<Vec<TokenEvent>> = [1, 3, 8]
                    .iter()
                    .map(|&b| {
                        let mut sink = CollectSink::default();
                        evaluate(
                            &mut HashLm::new(50, None),
                            &corpus(),
                            &settings(protocol, bos, b),
                            &mut sink,
                        )
                        .unwrap();
                        sink.events
                    })
                    .collect();
                assert!(!runs[0].is_empty());
                assert_eq!(runs[0], runs[1], "{protocol}");
                assert_eq!(runs[0], runs[2], "{protocol}");
            }
        }
    }

    #[test]
    fn events_arrive_in_document_and_position_order_once_each() {
        let mut sink = CollectSink::default();
        let docs = corpus();
        evaluate(
            &mut HashLm::new(50, None),
            &docs,
            &settings(
                Protocol::Sliding {
                    context: 10,
                    stride: 3,
                },
                ResolvedBos::None,
                4,
            ),
            &mut sink,
        )
        .unwrap();
        let mut expected = Vec::new();
        for (d, doc) in docs.iter().enumerate() {
            expected.extend((1..doc.len()).map(|p| (d, p, doc[p])));
        }
        let got: Vec<_> = sink
            .events
            .iter()
            .map(|e| (e.doc, e.position, e.token))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn max_tokens_cuts_the_corpus_in_order() {
        assert_eq!(token_budget(&[5, 3, 4], Some(7)), vec![5, 2, 0]);
        assert_eq!(token_budget(&[5, 3], None), vec![5, 3]);
        let mut m = UniformLm::new(50, None);
        let mut s = settings(Protocol::Chunks { context: 64 }, ResolvedBos::None, 2);
        s.max_tokens = Some(40);
        let out = evaluate(&mut m, &corpus(), &s, &mut NullSink).unwrap();
        assert_eq!(out.evaluated_tokens, vec![37, 1, 0, 2, 0, 0]);
        assert_eq!(out.total.count, 36 + 1);
    }

    #[test]
    fn a_context_longer_than_the_model_is_refused_before_any_work() {
        let mut m = UniformLm::new(50, Some(16));
        let err = evaluate(
            &mut m,
            &corpus(),
            &settings(Protocol::Chunks { context: 32 }, ResolvedBos::None, 1),
            &mut NullSink,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            EvalError::Plan(PlanError::ContextTooLong { .. })
        ));
    }
}
