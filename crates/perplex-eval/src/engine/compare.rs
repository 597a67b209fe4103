//! Comparing models on the same windows in one pass.
//!
//! Every batch of windows goes through every model's forward pass once
//! ([`CausalLm::logits`]); then, one vocabulary tile at a time, the models'
//! logits of each scored position are folded into a [`PositionReduction`]
//! (model 0 is the base). Each model's scores come out exactly as
//! [`super::score`] would give them, and each pair's per-token KL
//! divergence, top-1 agreement and `Δp` as well, with no full-vocabulary
//! row ever stored: memory is the models' final hidden states plus one tile
//! of logits per model.

use perplex_core::compare::{PairStats, PositionReduction, Unscorable};
use perplex_core::lm::{CausalLm, LmError, LogitTiles, WindowRef};
use perplex_core::plan::Window;
use perplex_core::sink::Sink;

use super::{drive, failed_on, locate, plan_corpus, EvalSettings, Outcome};
use crate::error::{EvalError, ZeroAt};

/// f32 logits held at once across the models' tiles.
const TILE_LOGITS: usize = 8 << 20;

/// What a comparison run produced.
#[derive(Debug, Clone, Default)]
pub struct CompareOutcome {
    /// Per model, base first: what [`super::score`] returns for it.
    pub models: Vec<Outcome>,
    /// Per other model: its statistics against the base (`pairs[k]` is model
    /// `k + 1`).
    pub pairs: Vec<PairStats>,
}

/// Scores `docs` (text token ids, BOS excluded) with every model of
/// `models`, the first being the base, on the same windows. Only
/// [`Sink::progress`] is called on `sink`.
pub fn compare(
    models: &mut [&mut dyn CausalLm],
    docs: &[Vec<u32>],
    settings: &EvalSettings,
    sink: &mut dyn Sink,
) -> Result<CompareOutcome, EvalError> {
    let Some(first) = models.first() else {
        return Err(EvalError::Incomparable("no models to compare".into()));
    };
    let vocab = first.info().vocab_size;
    for m in models.iter() {
        settings.protocol.fits(m.info().max_context)?;
        if m.info().vocab_size != vocab {
            return Err(EvalError::Incomparable(format!(
                "the models' vocabularies differ ({vocab} and {} embedding rows); KL divergence \
                 needs the same token ids",
                m.info().vocab_size
            )));
        }
    }
    let n = models.len();
    let lengths: Vec<usize> = docs.iter().map(Vec::len).collect();
    let windows = plan_corpus(docs, settings);
    let empty = Outcome::empty(&lengths, settings.max_tokens);
    let mut out = CompareOutcome {
        models: vec![empty; n],
        pairs: vec![PairStats::new(); n - 1],
    };
    let need = |w, l| models.iter().filter_map(|m| m.working_memory(w, l)).max();
    let batch_size = crate::memory::fit_batch(need, &windows, settings)?;
    drive(&windows, batch_size, sink, |batch, refs, _| {
        let reductions = reduce_batch(models, batch, refs, vocab)?;
        out.push_batch(batch, reductions)
    })?;
    out.models.iter_mut().for_each(Outcome::total_up);
    Ok(out)
}

/// Every model's forward pass on one batch, folded tile by tile into one
/// reduction per scored position.
fn reduce_batch(
    models: &mut [&mut dyn CausalLm],
    batch: &[Window],
    refs: &[WindowRef<'_>],
    vocab: usize,
) -> Result<Vec<PositionReduction>, EvalError> {
    let n = models.len();
    let targets: Vec<u32> = batch
        .iter()
        .flat_map(|w| w.tokens[w.score_from..].iter().copied())
        .collect();
    let positions = targets.len();
    let mut reductions = vec![PositionReduction::new(n); positions];
    let sources: Vec<Box<dyn LogitTiles + '_>> = models
        .iter_mut()
        .map(|m| m.logits(refs))
        .collect::<Result<_, _>>()
        .map_err(failed_on(batch))?;
    if let Some(s) = sources.iter().find(|s| s.positions() != positions) {
        return Err(EvalError::ScoreCount {
            expected: positions,
            got: s.positions(),
        });
    }
    let tile = (TILE_LOGITS / (positions.max(1) * n))
        .max(256)
        .min(vocab.max(1));
    let mut bufs = vec![Vec::new(); n];
    for first in (0..vocab).step_by(tile) {
        let len = tile.min(vocab - first);
        for (source, buf) in sources.iter().zip(&mut bufs) {
            source.tile(first, len, buf).map_err(failed_on(batch))?;
        }
        for (p, (r, &target)) in reductions.iter_mut().zip(&targets).enumerate() {
            let rows: Vec<&[f32]> = bufs.iter().map(|b| &b[p * len..(p + 1) * len]).collect();
            r.update(&rows, first as u32, target);
        }
    }
    Ok(reductions)
}

/// The error for position `position` of window `window` of `batch`.
fn unscorable(batch: &[Window], window: usize, position: usize, why: Unscorable) -> EvalError {
    let (doc, in_doc, target) = locate(batch, window, position);
    match why {
        Unscorable::NonFinite { value, .. } => failed_on(batch)(LmError::NonFinite {
            window,
            position,
            value: value.to_string(),
        }),
        Unscorable::ZeroProbability { model } => {
            EvalError::ZeroProbability(ZeroAt::new(model, (doc, in_doc, target)))
        }
        Unscorable::InfiniteDivergence { model, token } => {
            EvalError::InfiniteDivergence(ZeroAt::new(model, (doc, in_doc, token)))
        }
    }
}

impl CompareOutcome {
    /// Adds one batch's finished reductions (in position order) to every
    /// model's and pair's statistics.
    fn push_batch(
        &mut self,
        batch: &[Window],
        reductions: Vec<PositionReduction>,
    ) -> Result<(), EvalError> {
        let mut reductions = reductions.iter();
        for (window_index, window) in batch.iter().enumerate() {
            for pair in &mut self.pairs {
                pair.begin_window();
            }
            for k in 0..window.scored() {
                let position = window.score_from + k;
                let token = window.tokens[position];
                let result = reductions
                    .next()
                    .expect("one reduction per scored position")
                    .finish()
                    .map_err(|why| unscorable(batch, window_index, position, why))?;
                for (model, score) in self.models.iter_mut().zip(&result.scores) {
                    model.per_document[window.doc].push(score.nll, score.argmax == token);
                }
                for (pair, t) in self.pairs.iter_mut().zip(&result.pairs) {
                    pair.push(window.doc, result.scores[0].nll, t);
                }
            }
            for model in &mut self.models {
                model.count(window);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::score as evaluate;
    use crate::engine::tests::settings as engine_settings;
    use perplex_core::mock::{HashLm, UniformLm};
    use perplex_core::{NullSink, Protocol, ResolvedBos};

    fn corpus() -> Vec<Vec<u32>> {
        vec![
            (0..37).map(|i| (i * 7 % 50) as u32).collect(),
            vec![],
            (0..90).map(|i| (i * 13 % 50) as u32).collect(),
        ]
    }

    fn settings(batch_size: usize) -> EvalSettings {
        let sliding = Protocol::Sliding {
            context: 16,
            stride: 8,
        };
        engine_settings(sliding, ResolvedBos::None, batch_size)
    }

    #[test]
    fn each_model_scores_as_evaluate_does() {
        let docs = corpus();
        let mut hash = HashLm::new(50, None);
        let mut uniform = UniformLm::new(50, None);
        let out = compare(
            &mut [&mut hash, &mut uniform],
            &docs,
            &settings(3),
            &mut NullSink,
        )
        .unwrap();
        let alone = evaluate(
            &mut HashLm::new(50, None),
            &docs,
            &settings(3),
            &mut NullSink,
        )
        .unwrap();
        let (a, b) = (&out.models[0], &alone);
        assert_eq!(a.total.count, b.total.count);
        // the engine's logits are f32; HashLm's own scores are f64
        assert!((a.total.sum - b.total.sum).abs() < 1e-4 * b.total.count as f64);
        assert_eq!(a.total.correct, b.total.correct);
        assert_eq!(
            (a.windows, a.processed_tokens),
            (b.windows, b.processed_tokens)
        );
        let u = &out.models[1].total;
        assert!((u.perplexity().unwrap() - 50.0).abs() < 1e-4);
        assert_eq!(out.pairs[0].tokens(), b.total.count);
    }

    #[test]
    fn batching_does_not_change_a_comparison() {
        let docs = corpus();
        let run = |batch| {
            let (mut a, mut b) = (HashLm::new(50, None), UniformLm::new(50, None));
            compare(
                &mut [&mut a, &mut b],
                &docs,
                &settings(batch),
                &mut NullSink,
            )
            .unwrap()
            .pairs[0]
                .summary(0.95)
                .unwrap()
        };
        let (one, many) = (run(1), run(5));
        assert_eq!(one.kl_divergence, many.kl_divergence);
        assert_eq!(one.bootstrap, many.bootstrap);
        assert_eq!(one.mean_nll_difference, many.mean_nll_difference);
    }

    #[test]
    fn a_model_compared_with_itself_is_no_different() {
        let docs = corpus();
        let (mut a, mut b) = (HashLm::new(50, None), HashLm::new(50, None));
        let out = compare(&mut [&mut a, &mut b], &docs, &settings(2), &mut NullSink).unwrap();
        let s = out.pairs[0].summary(0.95).unwrap();
        assert_eq!(s.kl_divergence.mean, 0.0);
        assert_eq!(s.kl_divergence.max, 0.0);
        assert_eq!(s.top1_agreement.value, 1.0);
        assert_eq!(s.mean_nll_difference.value, 0.0);
        assert_eq!(
            s.verdict.outcome,
            perplex_core::compare::Outcome::NoSignificantDifference
        );
    }

    #[test]
    fn different_vocabularies_cannot_be_compared() {
        let (mut a, mut b) = (HashLm::new(50, None), HashLm::new(60, None));
        let err = compare(
            &mut [&mut a, &mut b],
            &corpus(),
            &settings(1),
            &mut NullSink,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("vocabularies differ (50 and 60"),
            "{err}"
        );
    }
}
