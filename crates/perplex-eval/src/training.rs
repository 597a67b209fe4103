//! Evaluation inside a training loop.
//!
//! A [`TrainingEvaluator`] tokenises the evaluation text once, with the
//! model's tokenizer and the chosen protocol, and then scores the same
//! tokens with the model as it is at each call: the weights stay in the
//! training loop's memory behind the [`CausalLm`] seam. Each call returns
//! the same [`Report`] `perplex eval` writes, and the evaluator keeps the
//! curve, so [`TrainingEvaluator::curve`] gives the `perplex sweep` report
//! with its diagnoses.

use std::time::Instant;

use perplex_core::diagnose::{diagnose, DiagnoseSettings};
use perplex_core::lm::CausalLm;
use perplex_core::report::{
    fill_changes, ModelIdentity, Report, SweepPoint, SweepReport, TrainerLoss, SWEEP_SCHEMA_VERSION,
};
use perplex_core::sink::NullSink;
use perplex_data::tokenizer::TextTokenizer;
use perplex_data::Corpus;

use crate::error::EvalError;
use crate::evaluate::{timing, tool_info, Evaluation};
use crate::options::EvalOptions;

/// Scores fixed evaluation text with a model that keeps changing.
pub struct TrainingEvaluator {
    tokenizer: TextTokenizer,
    evaluation: Evaluation<'static>,
    threads: usize,
    points: Vec<SweepPoint>,
    losses: Vec<TrainerLoss>,
    started: Instant,
}

impl std::fmt::Debug for TrainingEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingEvaluator")
            .field("options", self.evaluation.options())
            .field("points", &self.points.len())
            .finish_non_exhaustive()
    }
}

impl TrainingEvaluator {
    /// Tokenises `corpus` once with `tokenizer` under `options`; reports
    /// record `threads` compute threads (see [`TrainingEvaluator::threads`]).
    pub fn new(
        tokenizer: TextTokenizer,
        corpus: Corpus,
        options: EvalOptions,
        threads: usize,
    ) -> Result<Self, EvalError> {
        let evaluation = Evaluation::new(&tokenizer, &corpus, &options)?.into_owned();
        Ok(TrainingEvaluator {
            tokenizer,
            evaluation,
            threads,
            points: Vec::new(),
            losses: Vec::new(),
            started: Instant::now(),
        })
    }

    /// The compute threads reports record: those the training loop's model
    /// runs on, as given to [`TrainingEvaluator::new`].
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Scores the text with `model` as it is now, records the point of
    /// `step` (with the training loss, when given) and returns the report.
    pub fn evaluate(
        &mut self,
        step: u64,
        model: &mut dyn CausalLm,
        identity: &ModelIdentity,
        train_loss: Option<f64>,
    ) -> Result<Report, EvalError> {
        let report = self.evaluation.run(
            model,
            &self.tokenizer,
            identity,
            self.threads,
            &mut NullSink,
        )?;
        self.points.push(SweepPoint {
            train_loss,
            ..SweepPoint::from_summary(step, identity.spec.clone(), &report.summary)
        });
        if train_loss.is_some() {
            self.losses.push(TrainerLoss {
                step,
                loss: train_loss,
                eval_loss: None,
            });
        }
        Ok(report)
    }

    /// The curve so far, as `perplex sweep` reports it (the first point is
    /// the reference for "from base"), with its diagnoses.
    pub fn curve(&self, run: &str) -> SweepReport {
        let mut points = self.points.clone();
        let first = points.first().and_then(|p| p.perplexity);
        fill_changes(&mut points, first);
        let diagnoses = diagnose(&points, None, &[], DiagnoseSettings::default());
        SweepReport {
            schema_version: SWEEP_SCHEMA_VERSION,
            tool: tool_info(),
            run: run.to_string(),
            corpus: self.evaluation.corpus_identity(),
            protocol: self.evaluation.protocol_info(self.threads),
            base: None,
            trainer: self.losses.clone(),
            timing: timing(
                points.iter().map(|p| p.scored_tokens).sum(),
                self.started.elapsed().as_secs_f64(),
            ),
            points,
            diagnoses,
            warnings: Vec::new(),
        }
    }
}
