//! The window planner: how a document's tokens become model windows, and
//! which positions of each window are scored.
//!
//! Every protocol is a named, validated value recorded in the report:
//!
//! | protocol | windows | scored |
//! |---|---|---|
//! | `truncate` | the first `max_length` tokens | every token after the first |
//! | `chunks` | non-overlapping windows of `context` | every token after a window's first; a final partial window counts |
//! | `sliding` | transformers' strided recipe: windows of `context` starting every `stride` tokens | each token once, with at least `context − stride` tokens before it (fewer only at the start) |
//! | `llama-cpp` | `llama-perplexity`'s: ⌊n / context⌋ full chunks, a partial one dropped | the second half of each chunk: positions `context/2 + 1 .. context` |
//!
//! BOS is explicit ([`BosPolicy`]): none, once at the start of the document,
//! or at the start of every window (then every text token is scored, since
//! even a window's first text token has BOS before it). `llama-cpp` follows
//! llama.cpp: with BOS, the document starts with BOS and each chunk's first
//! token is replaced by BOS.

use serde::{Deserialize, Serialize};

/// An evaluation protocol with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Protocol {
    /// Each document cut to `max_length` tokens (BOS included) and scored once.
    Truncate {
        /// Longest window, BOS included.
        max_length: usize,
    },
    /// Non-overlapping windows of `context` tokens.
    Chunks {
        /// Window length, BOS included.
        context: usize,
    },
    /// transformers' strided sliding window.
    Sliding {
        /// Window length, BOS included.
        context: usize,
        /// How far each window moves; `stride == context` is `chunks`.
        stride: usize,
    },
    /// llama.cpp's `perplexity` tool: second half of full chunks.
    LlamaCpp {
        /// Chunk length (`n_ctx`).
        context: usize,
    },
}

impl Protocol {
    /// The protocol's name as written on the command line and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Truncate { .. } => "truncate",
            Protocol::Chunks { .. } => "chunks",
            Protocol::Sliding { .. } => "sliding",
            Protocol::LlamaCpp { .. } => "llama-cpp",
        }
    }

    /// The longest window this protocol builds.
    pub fn window_len(&self) -> usize {
        match *self {
            Protocol::Truncate { max_length } => max_length,
            Protocol::Chunks { context }
            | Protocol::Sliding { context, .. }
            | Protocol::LlamaCpp { context } => context,
        }
    }

    /// Whether every token of a document (after its first, or all of them
    /// with a per-window BOS) is scored, which byte- and word-normalised
    /// metrics need.
    pub fn covers_whole_documents(&self) -> bool {
        matches!(self, Protocol::Chunks { .. } | Protocol::Sliding { .. })
    }

    /// Checks the parameters against each other: a window long enough to
    /// score, a stride within the window. What no model could run.
    pub fn check(&self) -> Result<(), PlanError> {
        let len = self.window_len();
        let min = if matches!(self, Protocol::LlamaCpp { .. }) {
            4
        } else {
            2
        };
        if len < min {
            return Err(PlanError::WindowTooShort {
                protocol: self.name(),
                len,
                min,
            });
        }
        if let Protocol::Sliding { context, stride } = *self {
            if stride == 0 || stride > context {
                return Err(PlanError::BadStride { stride, context });
            }
        }
        Ok(())
    }

    /// Checks the windows against a model's context length, when it has one.
    pub fn fits(&self, max_context: Option<usize>) -> Result<(), PlanError> {
        let len = self.window_len();
        match max_context {
            Some(max) if len > max => Err(PlanError::ContextTooLong { len, max }),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Protocol::Truncate { max_length } => write!(f, "truncate (max length {max_length})"),
            Protocol::Chunks { context } => write!(f, "chunks (context {context})"),
            Protocol::Sliding { context, stride } => {
                write!(f, "sliding (context {context}, stride {stride})")
            }
            Protocol::LlamaCpp { context } => {
                write!(f, "llama-cpp (context {context}, second half scored)")
            }
        }
    }
}

/// Where BOS goes, as the user asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BosPolicy {
    /// What the tokenizer does by default: `document` when it adds BOS, else `none`.
    #[default]
    Auto,
    /// Never add BOS.
    None,
    /// One BOS before each document's first token.
    Document,
    /// BOS at the start of every window.
    Window,
}

/// The BOS policy after resolving `auto` against the tokenizer and the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "kebab-case")]
pub enum ResolvedBos {
    /// No BOS anywhere.
    None,
    /// One BOS before each document.
    Document {
        /// BOS token id.
        id: u32,
    },
    /// BOS at the start of every window.
    Window {
        /// BOS token id.
        id: u32,
    },
    /// llama.cpp's: BOS before the document and in place of each chunk's first token.
    ReplaceFirst {
        /// BOS token id.
        id: u32,
    },
}

impl ResolvedBos {
    /// Resolves `policy` for `protocol`, given the tokenizer's BOS id and
    /// whether it adds BOS by default.
    pub fn resolve(
        policy: BosPolicy,
        protocol: &Protocol,
        bos_id: Option<u32>,
        adds_bos: bool,
    ) -> Result<Self, PlanError> {
        let wanted = match policy {
            BosPolicy::Auto if adds_bos => BosPolicy::Document,
            BosPolicy::Auto => BosPolicy::None,
            other => other,
        };
        if wanted == BosPolicy::None {
            return Ok(ResolvedBos::None);
        }
        let id = bos_id.ok_or(PlanError::NoBosToken)?;
        Ok(match (protocol, wanted) {
            (Protocol::LlamaCpp { .. }, _) => ResolvedBos::ReplaceFirst { id },
            (Protocol::Truncate { .. }, _) | (_, BosPolicy::Document) => {
                ResolvedBos::Document { id }
            }
            _ => ResolvedBos::Window { id },
        })
    }

    /// The policy's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            ResolvedBos::None => "none",
            ResolvedBos::Document { .. } => "document",
            ResolvedBos::Window { .. } => "window",
            ResolvedBos::ReplaceFirst { .. } => "replace-first",
        }
    }

    /// The BOS id, when BOS is used.
    pub fn id(&self) -> Option<u32> {
        match *self {
            ResolvedBos::None => None,
            ResolvedBos::Document { id }
            | ResolvedBos::Window { id }
            | ResolvedBos::ReplaceFirst { id } => Some(id),
        }
    }
}

/// A planned model window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Index of the document the window comes from.
    pub doc: usize,
    /// Token ids the model sees (BOS included where the policy puts one).
    pub tokens: Vec<u32>,
    /// First scored position in `tokens`.
    pub score_from: usize,
    /// Index, among the document's text tokens (BOS excluded), of
    /// `tokens[score_from]`; later scored tokens follow consecutively.
    pub first_target: usize,
}

impl Window {
    /// Number of scored positions.
    pub fn scored(&self) -> usize {
        self.tokens.len() - self.score_from
    }
}

/// An invalid protocol or policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The window cannot score anything.
    #[error("a {protocol} window of {len} tokens is too short (at least {min})")]
    WindowTooShort {
        /// Protocol name.
        protocol: &'static str,
        /// Requested length.
        len: usize,
        /// Smallest useful length.
        min: usize,
    },
    /// `stride` is 0 or larger than the window.
    #[error("stride {stride} must be between 1 and the context ({context})")]
    BadStride {
        /// Requested stride.
        stride: usize,
        /// Requested context.
        context: usize,
    },
    /// Longer windows than the model's context.
    #[error("a window of {len} tokens is longer than the model's context of {max} tokens")]
    ContextTooLong {
        /// Requested window length.
        len: usize,
        /// The model's context.
        max: usize,
    },
    /// BOS was asked for but the tokenizer has none.
    #[error("BOS was requested but the tokenizer defines no BOS token")]
    NoBosToken,
}

/// Plans the windows of one document whose text tokens are `text`.
pub fn plan_document(
    protocol: &Protocol,
    bos: ResolvedBos,
    doc: usize,
    text: &[u32],
) -> Vec<Window> {
    // The stream the protocol cuts: a document-level BOS is part of it.
    let (stream, doc_prefix): (Vec<u32>, usize) = match bos {
        ResolvedBos::Document { id } | ResolvedBos::ReplaceFirst { id } => {
            (std::iter::once(id).chain(text.iter().copied()).collect(), 1)
        }
        ResolvedBos::None | ResolvedBos::Window { .. } => (text.to_vec(), 0),
    };
    let window_bos = match bos {
        ResolvedBos::Window { id } => Some(id),
        _ => None,
    };
    let make = |start: usize, end: usize, first_scored: usize| -> Option<Window> {
        // `first_scored` is a stream index; a stream token is scorable when
        // something precedes it in its window.
        let prefix = usize::from(window_bos.is_some());
        let first_scored = first_scored.max(start + 1 - prefix).max(doc_prefix);
        if first_scored >= end {
            return None;
        }
        let tokens: Vec<u32> = window_bos
            .into_iter()
            .chain(stream[start..end].iter().copied())
            .collect();
        Some(Window {
            doc,
            score_from: prefix + first_scored - start,
            first_target: first_scored - doc_prefix,
            tokens,
        })
    };
    let n = stream.len();
    match *protocol {
        Protocol::Truncate { max_length } => make(0, n.min(max_length), 0).into_iter().collect(),
        Protocol::Chunks { context } => {
            let len = context - usize::from(window_bos.is_some());
            strided(n, len, len, make)
        }
        Protocol::Sliding { context, stride } => {
            let len = context - usize::from(window_bos.is_some());
            strided(n, len, stride.min(len), make)
        }
        Protocol::LlamaCpp { context } => {
            let replace = bos
                .id()
                .filter(|_| matches!(bos, ResolvedBos::ReplaceFirst { .. }));
            (0..n / context)
                .filter_map(|k| {
                    let start = k * context;
                    let mut w = make(start, start + context, start + context / 2 + 1)?;
                    if let Some(id) = replace {
                        w.tokens[0] = id;
                    }
                    Some(w)
                })
                .collect()
        }
    }
}

/// transformers' strided recipe over a stream of `n` tokens: windows
/// `[begin, min(begin + len, n))` for `begin = 0, stride, …`, each scoring the
/// tokens after the previous window's end, stopping at the window that reaches `n`.
fn strided(
    n: usize,
    len: usize,
    stride: usize,
    make: impl Fn(usize, usize, usize) -> Option<Window>,
) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut prev_end = 0;
    let mut begin = 0;
    while begin < n {
        let end = (begin + len).min(n);
        windows.extend(make(begin, end, prev_end));
        prev_end = end;
        if end == n {
            break;
        }
        begin += stride;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<u32> {
        (10..10 + n).collect()
    }

    /// Text-token indices scored by `windows`, in order.
    fn targets(windows: &[Window]) -> Vec<usize> {
        windows
            .iter()
            .flat_map(|w| w.first_target..w.first_target + w.scored())
            .collect()
    }

    #[test]
    fn chunks_score_every_token_after_each_window_start() {
        let p = Protocol::Chunks { context: 4 };
        let w = plan_document(&p, ResolvedBos::None, 0, &ids(10));
        assert_eq!(w.len(), 3);
        assert_eq!(w[2].tokens, vec![18, 19]);
        assert_eq!(targets(&w), vec![1, 2, 3, 5, 6, 7, 9]);
    }

    #[test]
    fn a_final_single_token_chunk_scores_nothing_and_is_dropped() {
        let p = Protocol::Chunks { context: 4 };
        let w = plan_document(&p, ResolvedBos::None, 0, &ids(9));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn sliding_with_stride_equal_to_context_is_chunks() {
        for n in [1, 2, 5, 8, 9, 23] {
            let a = plan_document(
                &Protocol::Chunks { context: 4 },
                ResolvedBos::None,
                0,
                &ids(n),
            );
            let b = plan_document(
                &Protocol::Sliding {
                    context: 4,
                    stride: 4,
                },
                ResolvedBos::None,
                0,
                &ids(n),
            );
            assert_eq!(a, b, "n = {n}");
        }
    }

    #[test]
    fn sliding_scores_each_token_once_with_enough_context() {
        let p = Protocol::Sliding {
            context: 8,
            stride: 3,
        };
        let text = ids(20);
        let w = plan_document(&p, ResolvedBos::None, 0, &text);
        assert_eq!(targets(&w), (1..20).collect::<Vec<_>>());
        for win in &w[1..] {
            assert!(win.score_from >= 8 - 3, "{win:?}");
        }
        assert_eq!(w.last().unwrap().tokens.last(), text.last());
    }

    #[test]
    fn window_bos_scores_every_text_token() {
        let p = Protocol::Chunks { context: 4 };
        let w = plan_document(&p, ResolvedBos::Window { id: 1 }, 0, &ids(7));
        assert_eq!(w[0].tokens, vec![1, 10, 11, 12]);
        assert!(w.iter().all(|w| w.tokens[0] == 1 && w.score_from == 1));
        assert_eq!(targets(&w), (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn document_bos_precedes_only_the_first_window() {
        let p = Protocol::Chunks { context: 4 };
        let w = plan_document(&p, ResolvedBos::Document { id: 1 }, 0, &ids(7));
        assert_eq!(w[0].tokens, vec![1, 10, 11, 12]);
        assert_eq!(w[1].tokens, vec![13, 14, 15, 16]);
        assert_eq!(targets(&w), vec![0, 1, 2, 4, 5, 6]);
    }

    #[test]
    fn truncate_keeps_max_length_tokens_bos_included() {
        let p = Protocol::Truncate { max_length: 5 };
        let w = plan_document(&p, ResolvedBos::Document { id: 1 }, 3, &ids(9));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].doc, 3);
        assert_eq!(w[0].tokens, vec![1, 10, 11, 12, 13]);
        assert_eq!(targets(&w), vec![0, 1, 2, 3]);
    }

    #[test]
    fn llama_cpp_scores_second_half_of_full_chunks() {
        let p = Protocol::LlamaCpp { context: 8 };
        let w = plan_document(&p, ResolvedBos::None, 0, &ids(20));
        assert_eq!(w.len(), 2);
        assert!(w.iter().all(|w| w.score_from == 5 && w.scored() == 3));
        assert_eq!(targets(&w), vec![5, 6, 7, 13, 14, 15]);
    }

    #[test]
    fn llama_cpp_with_bos_replaces_each_chunk_start() {
        let p = Protocol::LlamaCpp { context: 8 };
        let w = plan_document(&p, ResolvedBos::ReplaceFirst { id: 1 }, 0, &ids(20));
        // stream = BOS + 20 tokens = 21: two chunks of 8
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].tokens[..2], [1, 10]);
        assert_eq!(w[1].tokens[..2], [1, 18]);
        assert_eq!(targets(&w), vec![4, 5, 6, 12, 13, 14]);
    }

    #[test]
    fn bos_resolution() {
        let p = Protocol::Chunks { context: 8 };
        assert_eq!(
            ResolvedBos::resolve(BosPolicy::Auto, &p, Some(1), true),
            Ok(ResolvedBos::Document { id: 1 })
        );
        assert_eq!(
            ResolvedBos::resolve(BosPolicy::Auto, &p, Some(1), false),
            Ok(ResolvedBos::None)
        );
        assert_eq!(
            ResolvedBos::resolve(BosPolicy::Window, &p, None, false),
            Err(PlanError::NoBosToken)
        );
        let l = Protocol::LlamaCpp { context: 8 };
        assert_eq!(
            ResolvedBos::resolve(BosPolicy::Document, &l, Some(1), false),
            Ok(ResolvedBos::ReplaceFirst { id: 1 })
        );
    }

    #[test]
    fn validation_names_the_bad_value() {
        assert!(matches!(
            Protocol::Sliding {
                context: 8,
                stride: 9
            }
            .check(),
            Err(PlanError::BadStride { stride: 9, .. })
        ));
        assert!(matches!(
            Protocol::Chunks { context: 4096 }.fits(Some(2048)),
            Err(PlanError::ContextTooLong {
                len: 4096,
                max: 2048
            })
        ));
        assert!(Protocol::Truncate { max_length: 1 }.check().is_err());
        assert!(Protocol::Chunks { context: 4096 }.fits(None).is_ok());
    }
}
