//! Units: negative log-likelihoods are kept in nats (natural log) and
//! converted to bits or perplexity only at the edge.

use serde::{Deserialize, Serialize};

/// A negative log-likelihood (or mean of them) in nats.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Nats(pub f64);

impl Nats {
    /// The same quantity in bits (log base 2).
    pub fn bits(self) -> f64 {
        self.0 / std::f64::consts::LN_2
    }

    /// `exp(nats)`: the perplexity when `self` is a mean NLL per token.
    pub fn perplexity(self) -> f64 {
        self.0.exp()
    }
}
