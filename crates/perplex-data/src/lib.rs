//! From corpora to token ids.
//!
//! - [`corpus`]: reading inputs (arguments, files split whole / by line / by
//!   paragraph, JSONL fields, stdin) into [`corpus::Document`]s, with errors
//!   that name the file, line and byte offset;
//! - [`tokenizer`]: one [`tokenizer::TextTokenizer`] whether the vocabulary
//!   comes from a Hugging Face `tokenizer.json` or from GGUF metadata
//!   ([`tokenizer::GgufVocab`]); BOS/EOS are reported, never added silently
//!   (the window planner adds BOS by policy);
//! - [`counts`]: byte and word counts for bits-per-byte and word perplexity;
//! - [`inputs`]: the inputs a user names, read into one [`Corpus`] with its
//!   sources and split;
//! - [`tokenized`]: a corpus tokenised for one tokenizer, with the identity
//!   (sources, split, counts, hash) every report records;
//! - [`stream`]: documents streamed from text, JSONL and Parquet files with
//!   bounded memory (one line or one Parquet row group at a time), with ids
//!   and kept columns, every file checked before the first document;
//! - [`rows`]: score row files (one [`perplex_core::score::ScoreRow`] per
//!   document) written and read as JSON Lines or Parquet, a fixed column
//!   contract with exact, byte-deterministic output.
//!
//! ```
//! use perplex_data::corpus::{join, split_text, Split};
//! use perplex_data::counts::{byte_count, word_count};
//!
//! let docs = split_text("Paris is\nthe capital.\n\n", "notes.txt", Split::Lines);
//! assert_eq!(docs.len(), 3); // the empty third line is a document too
//! let all = join(&docs, "\n");
//! assert_eq!(all.source, "notes.txt");
//! assert_eq!((byte_count(&all.text), word_count(&all.text)), (22, 5));
//! ```

pub mod corpus;
pub mod counts;
pub mod inputs;
mod pages;
pub mod rows;
pub mod stream;
pub mod tokenized;
pub mod tokenizer;

pub use inputs::{Corpus, Inputs};
pub use tokenized::{TokenizeError, TokenizedCorpus};
