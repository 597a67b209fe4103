//! Where scored tokens go as a run goes: the [`Sink`] every driver pushes
//! into, and the [`TokenEvent`] it receives.
//!
//! Contract: a driver calls [`Sink::token`] once per scored token, in
//! document order and, within a document, in position order; and
//! [`Sink::progress`] after each batch. A sink's I/O error stops the run,
//! and so does [`Sink::should_stop`] (asked before each batch: an
//! interrupted run ends between batches, never inside one).
//! Writers (per-token JSONL, progress bars) implement it outside this crate.

use crate::lm::TokenScore;

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

    /// Whether the run should stop now (e.g. the user pressed Ctrl-C).
    fn should_stop(&self) -> bool {
        false
    }

    /// Hands everything received so far to the operating system (a resumable
    /// run saves its progress only after its sink flushed).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
