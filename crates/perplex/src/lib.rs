//! perplex: how well does a causal language model predict this text?
//!
//! The library behind the `perplex` binary: it loads models (a Hugging Face
//! folder, a hub-cache repo id, a GGUF file, `BASE+ADAPTER`, or a mock) into
//! the [`Model`] a run takes, and re-exports the crates it stands on, in
//! pipeline order:
//!
//! | crate | role |
//! |---|---|
//! | [`perplex_data`] | inputs → corpus → token ids, with the corpus identity |
//! | [`perplex_core`] | windows, the [`CausalLm`] seam, accumulators, sinks, the report schema |
//! | [`perplex_model`] | model loading and forward passes (the only one naming candle) |
//! | [`perplex_hub`] | `org/name[@revision]` hub ids: the local hub cache, downloads |
//! | [`perplex_eval`] | a run end to end: options, batching, scoring, reports, compare, sweep, watch, per-document scores of streamed corpora and their merge |
//! | [`perplex_report`] | table, JSON, CSV, per-token and plot writers |
//!
//! ```no_run
//! use perplex::{Corpus, EvalOptions, Evaluator};
//! use perplex::core::Protocol;
//!
//! let mut evaluator = Evaluator::load("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let options = EvalOptions::new(Protocol::Chunks { context: 512 })?;
//! let corpus = Corpus::from_texts(["The cat sat on the mat.", "Rust is a language."]);
//! let report = evaluator.evaluate(&corpus, &options)?;
//! println!("perplexity {:.3}", report.summary.perplexity.unwrap());
//! # Ok::<(), perplex::Error>(())
//! ```

mod resolve;

use std::path::Path;

pub use perplex_core as core;
pub use perplex_data as data;
pub use perplex_eval as eval;
pub use perplex_hub as hub;
pub use perplex_model as model;
pub use perplex_report as output;

pub use perplex_core::report;
pub use perplex_data::{Corpus, Inputs};
pub use perplex_eval::{
    compare, score, sweep, training, watch, CompareOptions, EvalError, EvalOptions, Model,
};
pub use resolve::{inspect_model, resolve_model};

use perplex_core::lm::CausalLm;
use perplex_core::mock::{HashLm, UniformLm};
use perplex_core::report::{ModelIdentity, Report};
use perplex_core::sink::{NullSink, Sink};
use perplex_data::tokenizer::{TextTokenizer, TokenizerError};
use perplex_model::{LoadOptions, LoadedModel, ModelError};

// The README's library example compiles (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The report type every command produces.
pub use perplex_core::report::Report as EvalReport;

/// Why loading or evaluating failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A hub model is not in the hub cache and could not be downloaded.
    #[error(transparent)]
    Hub(#[from] perplex_hub::HubError),
    /// A `mock:` model spec names no mock model.
    #[error("unknown mock model `{0}`")]
    UnknownMock(String),
    /// A mock model's tokenizer could not be read.
    #[error("could not read the mock model's tokenizer {path}")]
    MockTokenizer {
        /// The tokenizer path.
        path: String,
        /// Why.
        #[source]
        source: TokenizerError,
    },
    /// The run failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// An input could not be read (the CLI and the Python package read
    /// inputs through [`Inputs::read`]).
    #[error(transparent)]
    Input(#[from] perplex_data::corpus::CorpusError),
}

/// The messages of `error`'s sources, in order, without the repeats of
/// `transparent` variants (which share their message with their source):
/// the `caused by:` lines of the CLI and of the Python package's exceptions.
pub fn causes(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut last = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if text != last {
            out.push(text.clone());
        }
        last = text;
        source = cause.source();
    }
    out
}

/// What kind of failure an [`Error`] is: what the CLI's exit code and the
/// Python package's exception class say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Options that do not make sense (exit code 2).
    Usage,
    /// An input that cannot be read or scored (exit code 3).
    Input,
    /// The model could not be loaded (exit code 4).
    Model,
    /// The run failed (exit code 1).
    Evaluation,
    /// The run was asked to stop (by a signal or a sink) and did.
    Interrupted,
}

impl ErrorKind {
    /// The process exit code of this kind; an interrupted run exits with
    /// its signal's code, which only the process knows (1 here).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Usage => 2,
            ErrorKind::Input => 3,
            ErrorKind::Model => 4,
            ErrorKind::Evaluation | ErrorKind::Interrupted => 1,
        }
    }
}

impl From<perplex_eval::OptionsError> for Error {
    fn from(e: perplex_eval::OptionsError) -> Self {
        Error::Eval(e.into())
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use perplex_eval::EvalError as E;
        match self {
            Error::Model(_) | Error::Hub(_) => ErrorKind::Model,
            Error::MockTokenizer { .. } | Error::Input(_) => ErrorKind::Input,
            Error::UnknownMock(_) => ErrorKind::Usage,
            Error::Eval(e) => match e {
                E::Sweep(_) | E::NoRunFolder { .. } | E::Tokenize(_) | E::NothingToScore { .. } => {
                    ErrorKind::Input
                }
                E::Options(_)
                | E::Plan(_)
                | E::TokenizersDiffer { .. }
                | E::Compare(_)
                | E::WatchLocked { .. }
                | E::OutOfMemory { .. }
                | E::MemoryLimit { .. } => ErrorKind::Usage,
                E::Score(e) => {
                    use perplex_eval::score::ScoreError as S;
                    match e {
                        S::ResumeMismatch { .. }
                        | S::OutputExists { .. }
                        | S::UnknownFormat { .. } => ErrorKind::Usage,
                        _ => ErrorKind::Input,
                    }
                }
                E::Interrupted => ErrorKind::Interrupted,
                E::Model { .. }
                | E::ZeroProbability(_)
                | E::InfiniteDivergence(_)
                | E::ScoreCount { .. }
                | E::Sink(_)
                | E::Incomparable(_) => ErrorKind::Evaluation,
            },
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Model(e) => e.hint(),
            Error::Hub(e) => e.hint(),
            Error::MockTokenizer { source, .. } => source.hint(),
            Error::Eval(e) => e.hint(),
            Error::Input(e) => e.hint(),
            Error::UnknownMock(_) => Some(
                "use mock:uniform:<tokenizer.json>, mock:hash:<tokenizer.json>, \
                 mock:slow:<tokenizer.json> or mock:zero:<tokenizer.json>"
                    .into(),
            ),
        }
    }
}

/// Loads `spec` as a run's [`Model`]: a model folder, GGUF file, hub repo
/// id or `BASE+ADAPTER` ([`resolve_model`], then
/// [`perplex_model::load_spec`]), or `mock:uniform:<tokenizer.json>` /
/// `mock:hash:<tokenizer.json>`, the deterministic mock models of
/// [`perplex_core::mock`] with that tokenizer (the CLI tests run the real
/// binary against them; `mock:slow` is the hash mock taking 20 ms a window,
/// `mock:zero` the hash mock giving token [`ZERO_MOCK_TOKEN`] probability
/// zero). Hub ids use the environment's hub settings
/// ([`load_with_hub`] takes others).
pub fn load(spec: &str, options: &LoadOptions) -> Result<Model, Error> {
    load_with_hub(spec, options, &perplex_hub::HubOptions::default())
}

/// [`load`] with explicit hub settings (cache, endpoint, token, offline
/// mode, download progress).
pub fn load_with_hub(
    spec: &str,
    options: &LoadOptions,
    hub: &perplex_hub::HubOptions,
) -> Result<Model, Error> {
    let loaded = match spec.strip_prefix("mock:") {
        Some(mock) => load_mock(spec, mock)?,
        None => {
            let (spec, source) = resolve_model(spec, hub)?;
            perplex_model::load_spec(&spec, &source, options)?
        }
    };
    Ok(into_model(loaded, options))
}

fn into_model(loaded: LoadedModel, options: &LoadOptions) -> Model {
    let LoadedModel {
        family,
        checks,
        model,
        tokenizer,
        identity,
    } = loaded;
    Model {
        lm: model,
        tokenizer,
        identity,
        checks,
        threads: perplex_model::threads_for(options),
        needs_bos: family.filter(|f| f.needs_bos()).map(|f| f.to_string()),
    }
}

/// A loaded model ready to evaluate corpora.
#[derive(Debug)]
pub struct Evaluator {
    model: Model,
}

impl Evaluator {
    /// Loads a model folder, GGUF file or hub-cache repo id with default options.
    pub fn load(spec: &str) -> Result<Self, Error> {
        Self::load_with(spec, &LoadOptions::default())
    }

    /// Loads a model with explicit options (see [`load`]).
    pub fn load_with(spec: &str, options: &LoadOptions) -> Result<Self, Error> {
        Ok(Self {
            model: load(spec, options)?,
        })
    }

    /// Wraps an already loaded model.
    pub fn new(model: Model) -> Self {
        Self { model }
    }

    /// The loaded model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The loaded model, taken out (e.g. to [`compare()`] it with others).
    pub fn into_model(self) -> Model {
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
        Ok(perplex_eval::evaluate(
            &mut self.model,
            corpus,
            options,
            sink,
        )?)
    }

    /// Scores every document of `inputs` into `output`, one row each,
    /// resuming an interrupted run (see [`perplex_eval::score`](mod@perplex_eval::score)).
    pub fn score(
        &mut self,
        inputs: &perplex_data::stream::StreamInputs,
        options: &perplex_eval::score::ScoreOptions,
        output: &perplex_eval::score::ScoreOutput,
        progress: &mut dyn perplex_eval::score::ScoreProgress,
    ) -> Result<perplex_eval::score::Scored, Error> {
        Ok(perplex_eval::score::score(
            &mut self.model,
            inputs,
            options,
            output,
            progress,
        )?)
    }

    /// Scores documents held in memory and returns their rows (what
    /// [`Evaluator::score`] writes for them).
    pub fn score_texts(
        &mut self,
        documents: Vec<perplex_data::stream::SourceDocument>,
        options: &perplex_eval::score::ScoreOptions,
    ) -> Result<Vec<perplex_core::score::ScoreRow>, Error> {
        Ok(perplex_eval::score::score_texts(
            &mut self.model,
            documents,
            options,
        )?)
    }

    /// What a run with `options` should warn about (see [`Model::warnings`]).
    pub fn warnings(&self, options: &EvalOptions) -> Vec<perplex_core::inspect::Check> {
        self.model.warnings(options)
    }
}

/// Evaluates `corpus` with any [`CausalLm`] and its tokenizer (a mock, a
/// model in a training loop's memory): [`Evaluator::evaluate`] without a
/// loaded [`Model`]; reports record this process's compute threads.
pub fn evaluate(
    model: &mut dyn CausalLm,
    tokenizer: &TextTokenizer,
    identity: &ModelIdentity,
    corpus: &Corpus,
    options: &EvalOptions,
    sink: &mut dyn Sink,
) -> Result<Report, Error> {
    let evaluation = perplex_eval::Evaluation::new(tokenizer, corpus, options)?;
    let threads = perplex_model::threads();
    Ok(evaluation.run(model, tokenizer, identity, threads, sink)?)
}

/// The token `mock:zero` gives probability zero.
pub const ZERO_MOCK_TOKEN: u32 = 42;

/// `mock:slow`: the hash mock taking 20 ms per window, so that the CLI
/// tests can interrupt a run that is still going.
struct Slow(HashLm);

impl Slow {
    fn wait(batch: &[perplex_core::WindowRef<'_>]) {
        std::thread::sleep(std::time::Duration::from_millis(20) * batch.len() as u32);
    }
}

impl CausalLm for Slow {
    fn info(&self) -> &perplex_core::ModelInfo {
        self.0.info()
    }

    fn score_batch(
        &mut self,
        batch: &[perplex_core::WindowRef<'_>],
    ) -> Result<Vec<Vec<perplex_core::TokenScore>>, perplex_core::LmError> {
        Self::wait(batch);
        self.0.score_batch(batch)
    }

    fn logits<'a>(
        &'a mut self,
        batch: &[perplex_core::WindowRef<'_>],
    ) -> Result<Box<dyn perplex_core::lm::LogitTiles + 'a>, perplex_core::LmError> {
        Self::wait(batch);
        self.0.logits(batch)
    }
}

fn load_mock(spec: &str, mock: &str) -> Result<LoadedModel, Error> {
    let (kind, path) = mock.split_once(':').unwrap_or((mock, ""));
    // the kind first: an unknown one is named as such, whatever the path
    type Make = fn(usize) -> Box<dyn CausalLm + Send>;
    let make: Make = match kind {
        "uniform" => |vocab| Box::new(UniformLm::new(vocab, Some(4096))),
        "hash" => |vocab| Box::new(HashLm::new(vocab, Some(4096))),
        "slow" => |vocab| Box::new(Slow(HashLm::new(vocab, Some(4096)))),
        "zero" => |vocab| Box::new(HashLm::ruling_out(vocab, Some(4096), ZERO_MOCK_TOKEN)),
        other => return Err(Error::UnknownMock(other.to_string())),
    };
    let tokenizer = TextTokenizer::from_tokenizer_json(Path::new(path)).map_err(|source| {
        Error::MockTokenizer {
            path: path.to_string(),
            source,
        }
    })?;
    let model = make(tokenizer.vocab_size());
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
