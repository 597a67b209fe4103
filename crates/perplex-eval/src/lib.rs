//! perplex-eval owns an evaluation run, end to end: options validated once,
//! the corpus tokenised and planned, windows batched through the
//! [`CausalLm`](perplex_core::CausalLm) seam, scores pushed into
//! [`Sink`]s and accumulated, and the versioned reports
//! assembled. It is generic over the model and names no ML framework:
//! models come in as a [`Model`] (anything behind the seam, with its
//! tokenizer and identity), loaded by whoever calls.
//!
//! | module | what it owns |
//! |---|---|
//! | [`options`] | [`EvalOptions`] and [`CompareOptions`], checked by their builders |
//! | [`engine`] | planning, the one batch loop, per-document and corpus accumulators; the tile-by-tile comparison of several models |
//! | [`evaluate`](mod@evaluate) | one model on one corpus: the [`Report`](perplex_core::report::Report) |
//! | [`compare`](mod@compare) | a base and others on the same tokens, or by bits per byte: the compare report |
//! | [`sweep`](mod@sweep) / [`watch`](mod@watch) | every checkpoint of a training run, at once or as they appear (with a resumable state file) |
//! | [`score`](mod@score) | per-document scores of a streamed corpus, sharded, committed as they go and resumable; [`merge`](score::merge()) of shards |
//! | [`training`] | scoring inside a training loop, keeping the curve |
//! | [`checkpoint`] | an eval's progress saved as it goes, so a killed run resumes |
//! | [`files`] | atomic writes of the files a run leaves |
//! | [`memory`] | the memory a run may use, and the batch size that fits in it |
//!
//! ```
//! use perplex_core::mock::UniformLm;
//! use perplex_core::report::ModelIdentity;
//! use perplex_core::{NullSink, Protocol};
//! use perplex_data::{tokenizer::TextTokenizer, Corpus};
//! use perplex_eval::{evaluate, EvalOptions, Model};
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("tokenizer.json");
//! # std::fs::write(&path, r#"{"version":"1.0","model":{"type":"WordLevel","vocab":{"<unk>":0,"a":1,"b":2},"unk_token":"<unk>"},"pre_tokenizer":{"type":"Whitespace"}}"#)?;
//! let tokenizer = TextTokenizer::from_tokenizer_json(&path)?;
//! let mut model = Model {
//!     lm: Box::new(UniformLm::new(3, None)),
//!     tokenizer,
//!     identity: ModelIdentity::in_memory("uniform", "mock"),
//!     checks: Vec::new(),
//!     threads: 1,
//!     needs_bos: None,
//! };
//! let options = EvalOptions::new(Protocol::Chunks { context: 4 })?;
//! let report = evaluate(&mut model, &Corpus::from_texts(["a b a b a b a b"]), &options, &mut NullSink)?;
//! assert_eq!(report.summary.scored_tokens, 6); // two windows of 4, each scoring 3
//! assert!((report.summary.perplexity.unwrap() - 3.0).abs() < 1e-9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod checkpoint;
pub mod compare;
pub mod engine;
mod error;
pub mod evaluate;
pub mod files;
pub mod memory;
mod model;
pub mod options;
pub mod score;
pub mod sweep;
mod sweep_error;
pub mod training;
pub mod watch;

pub use compare::compare;
pub use error::{EvalError, ZeroAt};
pub use evaluate::{evaluate, evaluate_saving, Evaluation};
pub use model::Model;
pub use options::{CompareOptions, EvalOptions, EvalOptionsBuilder, OptionsError};
pub use perplex_core::sink::{CollectSink, NullSink, Sink, TokenEvent};
pub use sweep_error::SweepError;
