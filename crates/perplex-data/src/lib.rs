//! From corpora to token ids.
//!
//! - [`corpus`]: reading inputs (arguments, files split whole / by line / by
//!   paragraph, JSONL fields, stdin) into [`corpus::Document`]s, with errors
//!   that name the file, line and byte offset;
//! - [`tokenizer`]: one [`tokenizer::TextTokenizer`] whether the vocabulary
//!   comes from a Hugging Face `tokenizer.json` or from GGUF metadata
//!   ([`tokenizer::GgufVocab`]); BOS/EOS are reported, never added silently
//!   (the window planner adds BOS by policy);
//! - [`counts`]: byte and word counts for bits-per-byte and word perplexity.

pub mod corpus;
pub mod counts;
pub mod tokenizer;
