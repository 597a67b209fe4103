//! The engine: plan windows, batch them, score them through the
//! [`CausalLm`] seam, and push every scored token into a [`Sink`].
//!
//! The engine is generic over the model and knows nothing of tensors,
//! tokenizers or files. Its contract:
//! - the corpus is cut to `max_tokens` text tokens first (in document order);
//! - each document is planned on its own ([`plan_document`]);
//! - windows are scored `batch_size` at a time, in plan order, by one batch
//!   loop that [`score`] and [`compare()`] share; batching never
//!   changes a score (the seam's contract), so results are the same for any
//!   batch size;
//! - before the first forward pass, a batch's memory is checked against
//!   what is available ([`crate::memory`]): a default batch size is lowered
//!   to fit, one asked for that does not fit is an error;
//! - every scored token reaches the sink exactly once, in document order and,
//!   within a document, in position order;
//! - per-document and corpus statistics are [`NllStats`] merged with `+=`.
//!
//! ```
//! use perplex_core::{mock::UniformLm, NullSink, Protocol, ResolvedBos};
//! use perplex_eval::engine::{score, EvalSettings};
//! use perplex_eval::EvalOptions;
//!
//! let mut model = UniformLm::new(100, None);
//! let docs = vec![vec![5, 6, 7, 8, 9], vec![1, 2]];
//! let options = EvalOptions::builder(Protocol::Chunks { context: 4 }).batch_size(2).build()?;
//! let settings = EvalSettings::new(&options, ResolvedBos::None);
//! let outcome = score(&mut model, &docs, &settings, &mut NullSink)?;
//! assert_eq!(outcome.total.count, 4);
//! assert!((outcome.total.perplexity().unwrap() - 100.0).abs() < 1e-9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod compare;

pub use compare::{compare, CompareOutcome};

use perplex_core::lm::{CausalLm, LmError, WindowRef};
use perplex_core::plan::{plan_document, Protocol, ResolvedBos, Window};
use perplex_core::sink::{Sink, TokenEvent};
use perplex_core::NllStats;

use crate::error::{EvalError, ZeroAt};
use crate::memory;
use crate::options::EvalOptions;

/// What the engine runs: [`EvalOptions`] with BOS resolved for one
/// tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalSettings {
    protocol: Protocol,
    bos: ResolvedBos,
    batch_size: usize,
    batch_asked: bool,
    max_tokens: Option<usize>,
}

impl EvalSettings {
    /// `options` with `bos` as resolved for the tokenizer at hand.
    pub fn new(options: &EvalOptions, bos: ResolvedBos) -> Self {
        EvalSettings {
            protocol: options.protocol(),
            bos,
            batch_size: options.batch_size(),
            batch_asked: options.batch_size_asked(),
            max_tokens: options.max_tokens(),
        }
    }

    /// Windows per forward pass, before the memory check.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Whether the batch size was asked for (see
    /// [`EvalOptions::batch_size_asked`]).
    pub fn batch_size_asked(&self) -> bool {
        self.batch_asked
    }

    /// Marks the batch size as asked for (an error when it does not fit in
    /// memory) or not (lowered to fit).
    pub(crate) fn set_batch_asked(&mut self, asked: bool) {
        self.batch_asked = asked;
    }

    /// The window protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The resolved BOS policy.
    pub fn bos(&self) -> ResolvedBos {
        self.bos
    }
}

/// What a run produced besides the sink's output.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
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

    /// Counts `window` as processed.
    fn count(&mut self, window: &Window) {
        self.processed_tokens += window.tokens.len() as u64;
        self.windows += 1;
    }

    /// Merges the per-document statistics into `total`.
    fn total_up(&mut self) {
        for stats in &self.per_document {
            self.total += stats;
        }
    }
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

/// The batch loop every run goes through: `windows` in plan order,
/// `batch_size` at a time, each batch handed to `step` with its seam views;
/// progress reported to `sink` after each.
pub(crate) fn drive(
    windows: &[Window],
    batch_size: usize,
    sink: &mut dyn Sink,
    mut step: impl FnMut(&[Window], &[WindowRef<'_>], &mut dyn Sink) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    let total: u64 = windows.iter().map(|w| w.tokens.len() as u64).sum();
    let mut processed = 0u64;
    for batch in windows.chunks(batch_size) {
        if sink.should_stop() {
            return Err(EvalError::Interrupted);
        }
        let refs: Vec<WindowRef<'_>> = batch
            .iter()
            .map(|w| WindowRef {
                tokens: &w.tokens,
                score_from: w.score_from,
            })
            .collect();
        step(batch, &refs, sink)?;
        processed += batch.iter().map(|w| w.tokens.len() as u64).sum::<u64>();
        sink.progress(processed, total);
    }
    Ok(())
}

/// The error of a model that failed on `batch`, located at its first window
/// (a zero probability: at its token).
fn failed_on(batch: &[Window]) -> impl Fn(LmError) -> EvalError + '_ {
    move |source| match source {
        LmError::ZeroProbability { window, position } => {
            EvalError::ZeroProbability(ZeroAt::new(0, locate(batch, window, position)))
        }
        source => EvalError::Model {
            doc: batch[0].doc,
            first_target: batch[0].first_target,
            source,
        },
    }
}

/// `(document, position in the document, token)` of position `position` of
/// window `window` of `batch` (a scored position).
fn locate(batch: &[Window], window: usize, position: usize) -> (usize, usize, u32) {
    let w = &batch[window];
    let in_doc = w.first_target + position - w.score_from;
    (w.doc, in_doc, w.tokens[position])
}

/// Scores `docs` (text token ids, BOS excluded) with `model`.
pub fn score<M: CausalLm + ?Sized>(
    model: &mut M,
    docs: &[Vec<u32>],
    settings: &EvalSettings,
    sink: &mut dyn Sink,
) -> Result<Outcome, EvalError> {
    score_saving(model, docs, settings, sink, None)
}

/// [`score`], resuming from `journal`'s last save and saving as it goes
/// (see [`crate::checkpoint`]).
pub fn score_saving<M: CausalLm + ?Sized>(
    model: &mut M,
    docs: &[Vec<u32>],
    settings: &EvalSettings,
    sink: &mut dyn Sink,
    mut journal: Option<&mut crate::checkpoint::EvalJournal>,
) -> Result<Outcome, EvalError> {
    settings.protocol.fits(model.info().max_context)?;
    let lengths: Vec<usize> = docs.iter().map(Vec::len).collect();
    let windows = plan_corpus(docs, settings);
    let resumed = journal.as_ref().and_then(|j| j.resumed().cloned());
    let (done, mut outcome) = match resumed {
        Some(c) if c.windows <= windows.len() && c.outcome.per_document.len() == docs.len() => {
            (c.windows, c.outcome)
        }
        _ => (0, Outcome::empty(&lengths, settings.max_tokens)),
    };
    let batch_size = memory::fit_batch(|w, l| model.working_memory(w, l), &windows, settings)?;
    let mut scored = done;
    let driven = drive(&windows[done..], batch_size, sink, |batch, refs, sink| {
        let scores = model.score_batch(refs).map_err(failed_on(batch))?;
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
            outcome.count(window);
        }
        scored += batch.len();
        if let Some(journal) = journal.as_deref_mut() {
            journal.save(scored, &outcome, sink, false)?;
        }
        Ok(())
    });
    if let (Err(EvalError::Interrupted), Some(journal)) = (&driven, journal) {
        // asked to stop between batches: keep everything scored so far
        journal.save(scored, &outcome, sink, true)?;
    }
    driven?;
    outcome.total_up();
    Ok(outcome)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use perplex_core::mock::{HashLm, UniformLm};
    use perplex_core::plan::PlanError;
    use perplex_core::sink::{CollectSink, NullSink};

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

    /// Engine settings for tests.
    pub(crate) fn settings(
        protocol: Protocol,
        bos: ResolvedBos,
        batch_size: usize,
    ) -> EvalSettings {
        let options = EvalOptions::builder(protocol)
            .batch_size(batch_size)
            .build()
            .unwrap();
        EvalSettings::new(&options, bos)
    }

    #[test]
    fn a_zero_probability_is_located_in_its_document() {
        // token 7 first appears at position 12 of document 1, in its second
        // sliding window, behind a BOS
        let docs: Vec<Vec<u32>> = vec![
            (0..20).map(|i| i % 5).collect(),
            (0..30).map(|i| if i == 12 { 7 } else { i % 6 }).collect(),
        ];
        let sliding = Protocol::Sliding {
            context: 8,
            stride: 4,
        };
        for bos in [ResolvedBos::None, ResolvedBos::Window { id: 9 }] {
            for batch in [1, 3, 16] {
                let mut m = HashLm::ruling_out(10, None, 7);
                let err = score(&mut m, &docs, &settings(sliding, bos, batch), &mut NullSink)
                    .unwrap_err();
                assert!(
                    matches!(
                        err,
                        EvalError::ZeroProbability(ZeroAt {
                            model: 0,
                            doc: 1,
                            position: 12,
                            token: 7,
                            ..
                        })
                    ),
                    "{bos:?}, batch {batch}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn uniform_model_has_perplexity_v() {
        let mut m = UniformLm::new(50, None);
        let out = score(
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
                        score(
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
        score(
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
        let options = EvalOptions::builder(Protocol::Chunks { context: 64 })
            .batch_size(2)
            .max_tokens(40)
            .build()
            .unwrap();
        let s = EvalSettings::new(&options, ResolvedBos::None);
        let out = score(&mut m, &corpus(), &s, &mut NullSink).unwrap();
        assert_eq!(out.evaluated_tokens, vec![37, 1, 0, 2, 0, 0]);
        assert_eq!(out.total.count, 36 + 1);
    }

    #[test]
    fn a_context_longer_than_the_model_is_refused_before_any_work() {
        let mut m = UniformLm::new(50, Some(16));
        let err = score(
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
