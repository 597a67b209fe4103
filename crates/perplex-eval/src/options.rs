//! How to evaluate, validated once: [`EvalOptions`] and [`CompareOptions`]
//! are built by their builders, which refuse what cannot work on any model
//! (a zero batch, a stride outside the window, a window too short to score,
//! a confidence outside (0, 1)). Once built they are immutable; what
//! depends on a model (its context length, its BOS token) is checked when
//! a run starts.

use perplex_core::plan::{BosPolicy, PlanError, Protocol};

/// An option that no model could evaluate with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionsError {
    /// The protocol's parameters do not fit together.
    #[error(transparent)]
    Protocol(#[from] PlanError),
    /// Zero windows per forward pass.
    #[error("the batch size must be at least 1")]
    ZeroBatch,
    /// Zero documents per committed block.
    #[error("a block must hold at least 1 document")]
    ZeroBlock,
    /// A confidence that is not a probability strictly between 0 and 1.
    #[error("confidence {0} is not between 0 and 1")]
    Confidence(f64),
}

impl OptionsError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            OptionsError::Protocol(PlanError::BadStride { context, .. }) => {
                Some(format!("pick --stride between 1 and {context}"))
            }
            OptionsError::Protocol(PlanError::WindowTooShort { min, .. }) => {
                Some(format!("windows need at least {min} tokens"))
            }
            OptionsError::Protocol(_) => None,
            OptionsError::ZeroBatch => Some("use --batch-size 1 or more".into()),
            OptionsError::ZeroBlock => Some("use --block 1 or more".into()),
            OptionsError::Confidence(_) => Some("use e.g. --confidence 0.95".into()),
        }
    }
}

/// How to evaluate a corpus: protocol, BOS policy, batching, token limit
/// and joining. Built by [`EvalOptions::builder`] (or [`EvalOptions::new`]
/// for the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    protocol: Protocol,
    bos: BosPolicy,
    batch_size: usize,
    /// Whether `batch_size` was asked for (else a default the engine may
    /// lower to fit in memory).
    batch_asked: bool,
    max_tokens: Option<usize>,
    join: Option<String>,
}

impl EvalOptions {
    /// `protocol` with BOS `auto`, the default batch size, no limit and no
    /// join.
    pub fn new(protocol: Protocol) -> Result<Self, OptionsError> {
        Self::builder(protocol).build()
    }

    /// A builder starting from the defaults of [`EvalOptions::new`].
    pub fn builder(protocol: Protocol) -> EvalOptionsBuilder {
        EvalOptionsBuilder {
            protocol,
            bos: BosPolicy::Auto,
            batch_size: None,
            max_tokens: None,
            join: None,
        }
    }

    /// Windows per forward pass when none is asked for: as many equal-length
    /// windows as make about 2,048 tokens (each weight matrix, dequantized or
    /// packed once per pass, then serves more rows), and one for `truncate`,
    /// whose windows are whole documents of any length (batching would pad
    /// them). Results never depend on it.
    pub fn default_batch_size(protocol: &Protocol) -> usize {
        match *protocol {
            Protocol::Truncate { .. } => 1,
            Protocol::Chunks { context }
            | Protocol::Sliding { context, .. }
            | Protocol::LlamaCpp { context } => (2048 / context.max(1)).max(1),
        }
    }

    /// The window protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The BOS policy (`auto` follows the tokenizer).
    pub fn bos(&self) -> BosPolicy {
        self.bos
    }

    /// Windows per forward pass (at least 1).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Whether the batch size was asked for. A default one is lowered when
    /// its batches would not fit in memory; one asked for is refused.
    pub fn batch_size_asked(&self) -> bool {
        self.batch_asked
    }

    /// The corpus token limit applied before windowing.
    pub fn max_tokens(&self) -> Option<usize> {
        self.max_tokens
    }

    /// The separator documents are joined with before tokenising, when they are.
    pub fn join(&self) -> Option<&str> {
        self.join.as_deref()
    }
}

/// Builds [`EvalOptions`]; see the module docs for what is checked.
#[derive(Debug, Clone)]
pub struct EvalOptionsBuilder {
    protocol: Protocol,
    bos: BosPolicy,
    batch_size: Option<usize>,
    max_tokens: Option<usize>,
    join: Option<String>,
}

impl EvalOptionsBuilder {
    /// The BOS policy.
    pub fn bos(mut self, bos: BosPolicy) -> Self {
        self.bos = bos;
        self
    }

    /// Windows per forward pass; `None`: [`EvalOptions::default_batch_size`].
    pub fn batch_size(mut self, batch_size: impl Into<Option<usize>>) -> Self {
        self.batch_size = batch_size.into();
        self
    }

    /// Evaluate only the first `max_tokens` text tokens of the corpus.
    pub fn max_tokens(mut self, max_tokens: impl Into<Option<usize>>) -> Self {
        self.max_tokens = max_tokens.into();
        self
    }

    /// Join all documents into one with this separator before tokenising.
    pub fn join(mut self, separator: impl Into<Option<String>>) -> Self {
        self.join = separator.into();
        self
    }

    /// The options, checked.
    pub fn build(self) -> Result<EvalOptions, OptionsError> {
        self.protocol.check()?;
        let batch_size = self
            .batch_size
            .unwrap_or_else(|| EvalOptions::default_batch_size(&self.protocol));
        if batch_size == 0 {
            return Err(OptionsError::ZeroBatch);
        }
        Ok(EvalOptions {
            protocol: self.protocol,
            bos: self.bos,
            batch_size,
            batch_asked: self.batch_size.is_some(),
            max_tokens: self.max_tokens,
            join: self.join,
        })
    }
}

/// How to compare models: the evaluation options they share, the
/// confidence of the intervals and verdicts, and whether to compare by bits
/// per byte.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    eval: EvalOptions,
    confidence: f64,
    bits_per_byte: bool,
}

impl CompareOptions {
    /// `eval` at 95 % confidence, token by token.
    pub fn new(eval: EvalOptions) -> Self {
        CompareOptions {
            eval,
            confidence: 0.95,
            bits_per_byte: false,
        }
    }

    /// At `confidence` (strictly between 0 and 1).
    pub fn with_confidence(mut self, confidence: f64) -> Result<Self, OptionsError> {
        if !(confidence > 0.0 && confidence < 1.0) {
            return Err(OptionsError::Confidence(confidence));
        }
        self.confidence = confidence;
        Ok(self)
    }

    /// Compare bits per byte, each model with its own tokenizer, instead of
    /// token by token (for models whose tokenizers differ).
    pub fn with_bits_per_byte(mut self, bits_per_byte: bool) -> Self {
        self.bits_per_byte = bits_per_byte;
        self
    }

    /// The evaluation options all models share.
    pub fn eval(&self) -> &EvalOptions {
        &self.eval
    }

    /// The confidence of the intervals and the verdict.
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// Whether models are compared by bits per byte.
    pub fn bits_per_byte(&self) -> bool {
        self.bits_per_byte
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_no_model_could_run_is_refused_at_build() {
        let sliding = Protocol::Sliding {
            context: 8,
            stride: 9,
        };
        assert!(matches!(
            EvalOptions::new(sliding),
            Err(OptionsError::Protocol(PlanError::BadStride { .. }))
        ));
        let chunks = Protocol::Chunks { context: 8 };
        assert_eq!(
            EvalOptions::builder(chunks).batch_size(0).build(),
            Err(OptionsError::ZeroBatch)
        );
        let options = EvalOptions::new(chunks).unwrap();
        assert_eq!(options.batch_size(), 256);
        assert!(CompareOptions::new(options.clone())
            .with_confidence(1.0)
            .is_err());
        assert_eq!(
            CompareOptions::new(options)
                .with_confidence(0.9)
                .unwrap()
                .confidence(),
            0.9
        );
    }

    #[test]
    fn default_batches_hold_about_2048_tokens() {
        let b = |p| EvalOptions::default_batch_size(&p);
        assert_eq!(b(Protocol::Chunks { context: 512 }), 4);
        assert_eq!(b(Protocol::LlamaCpp { context: 4096 }), 1);
        assert_eq!(b(Protocol::Truncate { max_length: 16 }), 1);
    }
}
