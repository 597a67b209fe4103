//! A model as a run sees it: the scoring seam, its tokenizer, its identity
//! and what loading it found, whatever crate loaded it.

use perplex_core::inspect::{Check, Level};
use perplex_core::lm::CausalLm;
use perplex_core::plan::ResolvedBos;
use perplex_core::report::ModelIdentity;
use perplex_data::tokenizer::TextTokenizer;

use crate::options::EvalOptions;

/// A loaded model, ready to be evaluated.
pub struct Model {
    /// The model behind the scoring seam.
    pub lm: Box<dyn CausalLm + Send>,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// Identity for the report.
    pub identity: ModelIdentity,
    /// Non-fatal findings of loading (warnings, notes).
    pub checks: Vec<Check>,
    /// Compute threads its forward passes use (reports record it).
    pub threads: usize,
    /// The family's name when its models were trained with BOS at the start
    /// of every sequence (Gemma), so that scoring without BOS misleads.
    pub needs_bos: Option<String>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("identity", &self.identity)
            .field("tokenizer", &self.tokenizer.source())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// What a run with `options` should warn about: the model's load-time
    /// warnings, and a model that needs BOS about to be scored without it.
    pub fn warnings(&self, options: &EvalOptions) -> Vec<Check> {
        // whether BOS is added is decided by the options, not the tokenizer
        let mut out: Vec<Check> = self
            .checks
            .iter()
            .filter(|c| c.level == Level::Warning && c.code != "bos-not-added")
            .cloned()
            .collect();
        let bos = ResolvedBos::resolve(
            options.bos(),
            &options.protocol(),
            self.tokenizer.bos_id(),
            self.tokenizer.adds_bos(),
        );
        if let (Some(family), Ok(ResolvedBos::None)) = (&self.needs_bos, bos) {
            if self.tokenizer.bos_id().is_some() {
                out.push(Check {
                    level: Level::Warning,
                    code: "no-bos".into(),
                    message: format!(
                        "{family} models were trained with BOS at the start of every sequence \
                         and this run scores without it: the perplexity it reports is far \
                         above the model's real one"
                    ),
                    hint: Some(
                        "evaluate with `--bos document` (BOS before each document) or `--bos \
                         window`"
                            .into(),
                    ),
                });
            }
        }
        out
    }
}

/// Adds each warning of `more` not yet in `warnings`, in order.
pub(crate) fn add_new(warnings: &mut Vec<Check>, more: Vec<Check>) {
    for w in more {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
}
