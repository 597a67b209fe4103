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
    fill_changes, ModelIdentity, SweepPoint, SweepReport, TrainerLoss, SWEEP_SCHEMA_VERSION,
};
use perplex_data::tokenizer::TextTokenizer;
use perplex_eval::NullSink;

use crate::{timing, tool_info, Corpus, Error, EvalOptions, Prepared, Report};

/// Scores fixed evaluation text with a model that keeps changing.
pub struct TrainingEvaluator {
    corpus: Corpus,
    options: EvalOptions,
    tokenizer: TextTokenizer,
    prepared: Prepared<'static>,
    points: Vec<SweepPoint>,
    losses: Vec<TrainerLoss>,
    started: Instant,
}

impl std::fmt::Debug for TrainingEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingEvaluator")
            .field("options", &self.options)
            .field("points", &self.points.len())
            .finish_non_exhaustive()
    }
}

impl TrainingEvaluator {
    /// Tokenises `corpus` once with `tokenizer` under `options`.
    pub fn new(
        tokenizer: TextTokenizer,
        corpus: Corpus,
        options: EvalOptions,
    ) -> Result<Self, Error> {
        let prepared = Prepared::new(&tokenizer, &corpus, &options)?;
        let prepared = Prepared {
            documents: std::borrow::Cow::Owned(prepared.documents.into_owned()),
            tokens: prepared.tokens,
            bos: prepared.bos,
        };
        Ok(TrainingEvaluator {
            corpus,
            options,
            tokenizer,
            prepared,
            points: Vec::new(),
            losses: Vec::new(),
            started: Instant::now(),
        })
    }

    /// Scores the text with `model` as it is now, records the point of
    /// `step` (with the training loss, when given) and returns the report.
    pub fn evaluate(
        &mut self,
        step: u64,
        model: &mut dyn CausalLm,
        identity: &ModelIdentity,
        train_loss: Option<f64>,
    ) -> Result<Report, Error> {
        self.options.protocol.validate(model.info().max_context)?;
        let settings = self.prepared.settings(&self.options);
        let start = Instant::now();
        let outcome =
            perplex_eval::evaluate(model, &self.prepared.tokens, &settings, &mut NullSink)?;
        let report = self.prepared.report(
            identity,
            &self.tokenizer,
            &self.corpus,
            &self.options,
            &outcome,
            start.elapsed().as_secs_f64(),
        );
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
            corpus: self.prepared.corpus_identity(&self.corpus, &self.options),
            protocol: self.prepared.protocol_info(&self.options),
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
