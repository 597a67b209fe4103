//! Tokenizer adapters. (API fixed by the lead; bodies being written.)

use std::path::Path;

/// The tokenizer fields of a GGUF file's metadata (`tokenizer.ggml.*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE) or `llama` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer name, e.g. `smollm`, `llama-bpe`.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores`.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges`, each `"left right"`.
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
}

/// A tokenizer turning text into ids without special tokens.
pub struct TextTokenizer {
    _private: (),
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (and BOS/EOS/add-BOS from `tokenizer_config.json`,
    /// `generation_config.json`, `config.json`) from a model folder.
    pub fn from_hf_folder(_dir: &Path) -> Result<Self, TokenizerError> {
        unimplemented!()
    }
    /// Builds the tokenizer a GGUF file describes; `source` names the file.
    pub fn from_gguf_vocab(_vocab: &GgufVocab, _source: &str) -> Result<Self, TokenizerError> {
        unimplemented!()
    }
    /// Token ids of `text`, no special tokens added.
    pub fn encode(&self, _text: &str) -> Result<Vec<u32>, TokenizerError> {
        unimplemented!()
    }
    /// The text of one token, for per-token output.
    pub fn token_text(&self, _id: u32) -> String {
        unimplemented!()
    }
    /// Number of ids the tokenizer can produce (added tokens included).
    pub fn vocab_size(&self) -> usize {
        unimplemented!()
    }
    /// BOS id.
    pub fn bos_id(&self) -> Option<u32> {
        unimplemented!()
    }
    /// EOS id.
    pub fn eos_id(&self) -> Option<u32> {
        unimplemented!()
    }
    /// Whether the tokenizer adds BOS by default.
    pub fn adds_bos(&self) -> bool {
        unimplemented!()
    }
    /// Identity for the report.
    pub fn identity(&self) -> perplex_core::report::TokenizerIdentity {
        unimplemented!()
    }
}

/// Tokenizer errors.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {}
