//! The model seam: what the engine asks of a causal language model.
//!
//! A [`CausalLm`] scores a batch of token windows. For a window
//! `tokens[0..n]` and its `score_from = s` (with `1 <= s <= n`), the model
//! returns, for every position `i` in `s..n`, the negative log-likelihood of
//! `tokens[i]` given `tokens[..i]` — i.e. `-log_softmax(logits[i - 1])[tokens[i]]`
//! — together with the id of the most probable token at that position.
//!
//! Contract every implementation keeps (the invariance tests check it):
//! - windows are independent: the scores of one window do not depend on the
//!   other windows of the batch, their lengths, or the padding the
//!   implementation uses to batch them;
//! - scores are computed from full-precision logits and returned in window
//!   order, position order;
//! - a logit of `-inf` is a probability of zero: allowed for any token but
//!   the target, whose zero probability is an [`LmError::ZeroProbability`]
//!   (its NLL, and so the perplexity, would be infinite);
//! - any other non-finite logit (NaN, `+inf`), a row of nothing but `-inf`,
//!   or a non-finite NLL is an [`LmError::NonFinite`], never a number;
//! - memory does not grow with batch × length × vocabulary: implementations
//!   reduce logits to scores in bounded tiles.
//!
//! Comparing two models needs more than scores: both full distributions at
//! the same position (KL divergence, top-token agreement). [`CausalLm::logits`]
//! gives them without a vocabulary-sized row per position ever existing: it
//! runs the forward pass once and returns a [`LogitTiles`] from which any
//! range of token ids can be read for all scored positions. The logits are
//! exactly those [`CausalLm::score_batch`] reduces.

use serde::{Deserialize, Serialize};

/// One window of a batch: the token ids the model sees and the first position
/// whose token is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRef<'a> {
    /// Token ids, starting at RoPE/absolute position 0.
    pub tokens: &'a [u32],
    /// First scored position; every position from here to the end is scored.
    pub score_from: usize,
}

impl WindowRef<'_> {
    /// Number of positions this window scores.
    pub fn scored(&self) -> usize {
        self.tokens.len().saturating_sub(self.score_from)
    }
}

/// The score of one target token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenScore {
    /// `-ln p(target | prefix)`, in nats.
    pub nll: f64,
    /// The most probable token at this position (ties: the lowest id).
    pub argmax: u32,
}

/// What the engine needs to know about a model before planning windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Rows of the output head: valid token ids are `0..vocab_size`.
    pub vocab_size: usize,
    /// Longest window the model supports, when it declares one.
    pub max_context: Option<usize>,
}

/// Why a model could not score a batch.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    /// The model produced a NaN or infinite logit or NLL.
    #[error(
        "the model produced a non-finite value ({value}) at window {window}, position {position}"
    )]
    NonFinite {
        /// Index of the window in the batch.
        window: usize,
        /// Position within the window.
        position: usize,
        /// The offending value, rendered.
        value: String,
    },
    /// The model gives the target token probability zero (a logit of `-inf`).
    #[error(
        "the model gives probability zero to the token at window {window}, position {position}"
    )]
    ZeroProbability {
        /// Index of the window in the batch.
        window: usize,
        /// Position within the window.
        position: usize,
    },
    /// A token id is outside the model's vocabulary.
    #[error("token id {id} is outside the model's vocabulary of {vocab_size}")]
    TokenOutOfRange {
        /// The token id.
        id: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A window is longer than the model can attend over.
    #[error("a window of {len} tokens is longer than the model's context of {max}")]
    WindowTooLong {
        /// Window length.
        len: usize,
        /// The model's maximum context.
        max: usize,
    },
    /// A window's `score_from` is 0 or past its end.
    #[error("invalid window: score_from {score_from} with {len} tokens")]
    InvalidWindow {
        /// The requested first scored position.
        score_from: usize,
        /// Window length.
        len: usize,
    },
    /// The backend (tensor library) failed.
    #[error("the model backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A causal language model seen through the only question perplexity asks.
pub trait CausalLm {
    /// Vocabulary size and context limit.
    fn info(&self) -> &ModelInfo;

    /// Scores every window of `batch`, returning one vector per window with
    /// `window.scored()` entries, in order. See the module docs for the contract.
    fn score_batch(&mut self, batch: &[WindowRef<'_>]) -> Result<Vec<Vec<TokenScore>>, LmError>;

    /// Runs the forward pass of `batch` and returns the logits of its scored
    /// positions (those [`score_batch`](Self::score_batch) reduces: position
    /// `i - 1`'s logits predict `tokens[i]`), windows in order, positions in
    /// order, to be read in vocabulary tiles.
    fn logits<'a>(
        &'a mut self,
        batch: &[WindowRef<'_>],
    ) -> Result<Box<dyn LogitTiles + 'a>, LmError>;

    /// Bytes of memory, beyond what the loaded model already holds, that
    /// scoring a batch of `windows` windows of up to `len` tokens needs at
    /// its peak: an estimate that errs high, checked before the first
    /// forward pass. `None` (the default): negligible or not known.
    fn working_memory(&self, windows: usize, len: usize) -> Option<u64> {
        let _ = (windows, len);
        None
    }
}

/// The logits of a batch's scored positions, held as whatever the model
/// needs to produce them (a transformer keeps the final hidden states) and
/// read a range of token ids at a time.
pub trait LogitTiles {
    /// Number of scored positions.
    fn positions(&self) -> usize;

    /// Writes the logits of token ids `first..first + len` for every scored
    /// position into `out`, row-major `[positions, len]` (`out` is resized).
    fn tile(&self, first: usize, len: usize, out: &mut Vec<f32>) -> Result<(), LmError>;
}

impl<M: CausalLm + ?Sized> CausalLm for Box<M> {
    fn info(&self) -> &ModelInfo {
        (**self).info()
    }
    fn score_batch(&mut self, batch: &[WindowRef<'_>]) -> Result<Vec<Vec<TokenScore>>, LmError> {
        (**self).score_batch(batch)
    }
    fn logits<'a>(
        &'a mut self,
        batch: &[WindowRef<'_>],
    ) -> Result<Box<dyn LogitTiles + 'a>, LmError> {
        (**self).logits(batch)
    }
    fn working_memory(&self, windows: usize, len: usize) -> Option<u64> {
        (**self).working_memory(windows, len)
    }
}

/// Checks the parts of the contract that do not depend on the model: every
/// window scores at least one position, and its tokens fit `info`.
pub fn validate_batch(info: &ModelInfo, batch: &[WindowRef<'_>]) -> Result<(), LmError> {
    for w in batch {
        if w.score_from == 0 || w.score_from > w.tokens.len() {
            return Err(LmError::InvalidWindow {
                score_from: w.score_from,
                len: w.tokens.len(),
            });
        }
        if let Some(max) = info.max_context {
            if w.tokens.len() > max {
                return Err(LmError::WindowTooLong {
                    len: w.tokens.len(),
                    max,
                });
            }
        }
        if let Some(&id) = w.tokens.iter().find(|&&t| t as usize >= info.vocab_size) {
            return Err(LmError::TokenOutOfRange {
                id,
                vocab_size: info.vocab_size,
            });
        }
    }
    Ok(())
}
