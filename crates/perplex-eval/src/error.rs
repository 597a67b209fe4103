//! Why a run failed: one error type for every command the crate runs.

use perplex_core::lm::LmError;
use perplex_core::plan::PlanError;
use perplex_data::tokenizer::TextTokenizer;
use perplex_data::TokenizeError;

use crate::options::OptionsError;

/// Why an evaluation, comparison or sweep failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Options no model could run with.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The protocol or BOS policy does not fit this model or tokenizer.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A document could not be tokenised.
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
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
    /// A model gives a scored token probability zero: its perplexity would
    /// be infinite.
    #[error(
        "{} gives probability zero to token {}{} at position {} of document {}: the perplexity \
         is infinite",
        .0.who(), .0.token, .0.quoted(), .0.position, .0.doc
    )]
    ZeroProbability(ZeroAt),
    /// A compared model rules out a token the base does not, so
    /// `KL(P_base ‖ P_other)` is infinite.
    #[error(
        "{} gives probability zero to token {}{}, which the base does not, at position {} of \
         document {}: the KL divergence is infinite",
        .0.who(), .0.token, .0.quoted(), .0.position, .0.doc
    )]
    InfiniteDivergence(ZeroAt),
    /// One batch would need more memory than is available.
    #[error(
        "a batch of {windows} window{} of {len} tokens needs about {} of memory, more than the {} \
         available ({limited_by})",
        if *windows == 1 { "" } else { "s" },
        crate::memory::human(*needed),
        crate::memory::human(*available)
    )]
    OutOfMemory {
        /// Windows per batch.
        windows: usize,
        /// Tokens of the longest window.
        len: usize,
        /// Bytes one batch needs (an estimate that errs high).
        needed: u64,
        /// Bytes available.
        available: u64,
        /// What set `available`.
        limited_by: String,
        /// The most windows per batch that fit (0: not even one).
        fits: usize,
    },
    /// The memory limit in the environment is not a size.
    #[error("{}={value:?} is not a size", crate::memory::LIMIT_VAR)]
    MemoryLimit {
        /// The variable's value.
        value: String,
    },
    /// The model broke the seam's contract.
    #[error("the model returned {got} scores for a window that scores {expected}")]
    ScoreCount {
        /// Scores expected.
        expected: usize,
        /// Scores returned.
        got: usize,
    },
    /// The sink asked the run to stop (an interrupt) before it finished.
    #[error("interrupted")]
    Interrupted,
    /// The sink could not write.
    #[error("could not write a scored token")]
    Sink(#[source] std::io::Error),
    /// Models whose outputs cannot be compared token by token.
    #[error("{0}")]
    Incomparable(String),
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
    /// No token of the corpus can be scored: a report without a perplexity
    /// would pass for a result.
    #[error("nothing to score in {sources}: {why}")]
    NothingToScore {
        /// The corpus's sources, e.g. `` `data.txt` `` or `stdin`.
        sources: String,
        /// Why, e.g. `every document is empty (3 documents)`.
        why: String,
        /// Whether a token limit is what left nothing.
        limited: bool,
    },
    /// The run folder to sweep or watch is not a folder.
    #[error("run folder {} {}", path.display(), if path.exists() { "is not a folder" } else { "does not exist" })]
    NoRunFolder {
        /// What was given.
        path: std::path::PathBuf,
    },
    /// Another watcher owns the state file.
    #[error(
        "another perplex watch{} owns the state file {}",
        holder.map(|p| format!(" (process {p})")).unwrap_or_default(),
        state.display()
    )]
    WatchLocked {
        /// The state file.
        state: std::path::PathBuf,
        /// The holder's process id, when it could be read.
        holder: Option<u32>,
    },
    /// A run folder that cannot be swept or watched.
    #[error(transparent)]
    Sweep(#[from] crate::sweep_error::SweepError),
    /// A score run's inputs or outputs, or a merge's shards.
    #[error(transparent)]
    Score(#[from] crate::score::ScoreError),
}

/// Where a model gave a token probability zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroAt {
    /// Index of the model among those run (0: the only one, or the base).
    pub model: usize,
    /// The model's spec, once known.
    pub spec: Option<String>,
    /// The document, counted from 0 (as in `--per-token` output).
    pub doc: usize,
    /// The position predicted, among the document's tokens, from 0.
    pub position: usize,
    /// The token id.
    pub token: u32,
    /// The token's text, once known.
    pub text: Option<String>,
}

impl ZeroAt {
    /// Token `token` at `position` of document `doc`, under model `model`;
    /// spec and text are filled in by [`EvalError::naming`].
    pub(crate) fn new(model: usize, (doc, position, token): (usize, usize, u32)) -> Self {
        ZeroAt {
            model,
            spec: None,
            doc,
            position,
            token,
            text: None,
        }
    }

    fn who(&self) -> String {
        self.spec
            .as_ref()
            .map_or_else(|| "the model".to_string(), |s| format!("`{s}`"))
    }

    fn quoted(&self) -> String {
        self.text
            .as_ref()
            .map(|t| format!(" ({t:?})"))
            .unwrap_or_default()
    }
}

impl EvalError {
    /// Names the model and the token of a [`ZeroProbability`] or
    /// [`InfiniteDivergence`] (the engine knows neither): `specs` in the
    /// order the models were run. Other errors are returned as they are.
    ///
    /// [`ZeroProbability`]: EvalError::ZeroProbability
    /// [`InfiniteDivergence`]: EvalError::InfiniteDivergence
    pub(crate) fn naming(mut self, tokenizer: &TextTokenizer, specs: &[&str]) -> Self {
        if let EvalError::ZeroProbability(at) | EvalError::InfiniteDivergence(at) = &mut self {
            at.spec = specs.get(at.model).map(|s| s.to_string());
            at.text = Some(tokenizer.token_text(at.token));
        }
        self
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            EvalError::Options(e) => e.hint(),
            EvalError::Tokenize(e) => e.hint(),
            EvalError::Plan(PlanError::ContextTooLong { max, .. }) => Some(format!(
                "use --context (or --max-length) of at most {max}, the model's context length"
            )),
            EvalError::Plan(PlanError::NoBosToken) => {
                Some("use --bos none, or a tokenizer that defines a BOS token".into())
            }
            EvalError::Plan(e) => OptionsError::Protocol(e.clone()).hint(),
            EvalError::Model {
                source: LmError::NonFinite { .. },
                ..
            } => Some(
                "the weights or the computation overflowed; check the model file, or report it \
                 with the window above"
                    .into(),
            ),
            EvalError::ZeroProbability(_) => Some(
                "a model that rules a token out cannot be measured by perplexity on text that \
                 contains it: check the model's logit masks or biases (or its quantisation), or \
                 leave that document out"
                    .into(),
            ),
            EvalError::InfiniteDivergence(_) => Some(
                "the compared model rules out a token the base allows (a logit mask or bias?); \
                 their perplexities can still be compared, without KL divergence: add \
                 --bits-per-byte"
                    .into(),
            ),
            EvalError::OutOfMemory { fits: 0, len, .. } => Some(format!(
                "not even one window of {len} tokens fits: free memory (or raise {}), or use a \
                 shorter --context (or --max-length)",
                crate::memory::LIMIT_VAR
            )),
            EvalError::OutOfMemory { fits, .. } => Some(format!(
                "use --batch-size {fits} or less (results do not depend on it), or free memory"
            )),
            EvalError::MemoryLimit { .. } => Some(format!(
                "give {} in bytes or as a size such as 8G or 512M, or unset it",
                crate::memory::LIMIT_VAR
            )),
            EvalError::NothingToScore { limited: true, .. } => {
                Some("raise --max-tokens, or drop it to score the whole corpus".into())
            }
            EvalError::NothingToScore { .. } => Some(
                "give text with at least two tokens per document (a document of one token is \
                 scored only with --bos document or window)"
                    .into(),
            ),
            EvalError::WatchLocked { .. } => Some(
                "let the running watcher go on (or stop it first), or give this one its own \
                 --state file"
                    .into(),
            ),
            EvalError::NoRunFolder { .. } => Some(
                "give the training run's output folder (the Trainer's output_dir, holding \
                 checkpoint-N folders)"
                    .into(),
            ),
            EvalError::Interrupted => Some(
                "the run stopped between two batches; the reports it would have written were \
                 not written"
                    .into(),
            ),
            EvalError::TokenizersDiffer { .. } => Some(
                "token-level comparisons (KL divergence, paired NLL) need the same tokens; models \
                 with different tokenizers can be compared by bits per byte: add \
                 --bits-per-byte"
                    .into(),
            ),
            EvalError::Model {
                source: LmError::TokenOutOfRange { .. },
                ..
            } => Some(
                "the tokenizer produced an id the model has no embedding for: the tokenizer and \
                 the weights seem to come from different models"
                    .into(),
            ),
            EvalError::Model {
                source: LmError::WindowTooLong { max, .. },
                ..
            } => Some(format!(
                "use --context (or --max-length) of at most {max}, the model's context length"
            )),
            EvalError::Model { .. } | EvalError::ScoreCount { .. } => Some(
                "the model's implementation failed on this window; report it with the model and \
                 the command"
                    .into(),
            ),
            EvalError::Sink(_) => {
                Some("check that the disk the scored tokens go to has room and is writable".into())
            }
            EvalError::Incomparable(_) => Some(
                "token-level comparisons need the same vocabulary; models whose vocabularies \
                 differ can be compared by bits per byte: add --bits-per-byte"
                    .into(),
            ),
            EvalError::Compare(_) => Some(
                "bits per byte divides each model's NLL by the bytes of whole documents, so \
                 every document must be scored to its end"
                    .into(),
            ),
            EvalError::Sweep(e) => Some(e.hint()),
            EvalError::Score(e) => e.hint(),
        }
    }
}
