//! The vocabulary of perplex: units, mergeable accumulators, the window
//! planner, the [`CausalLm`] seam every model implements, a deterministic mock
//! model, and the versioned report schema.
//!
//! This crate names no ML framework and does no I/O. The pipeline it
//! describes is: documents → token ids → [`Window`]s (planned from a
//! [`Protocol`] and a [`BosPolicy`]) → per-token [`TokenScore`]s from a
//! [`CausalLm`] → [`NllStats`] accumulators (and every token to a
//! [`Sink`]) → a [`report::Report`].

pub mod accum;
pub mod bands;
pub mod compare;
pub mod diagnose;
pub mod inspect;
pub mod lm;
pub mod mock;
pub mod plan;
pub mod report;
pub mod score;
pub mod sink;
pub mod units;

pub use accum::NllStats;
pub use lm::{CausalLm, LmError, ModelInfo, TokenScore, WindowRef};
pub use plan::{BosPolicy, PlanError, Protocol, ResolvedBos, Window};
pub use sink::{CollectSink, NullSink, Sink, TokenEvent};
pub use units::Nats;
