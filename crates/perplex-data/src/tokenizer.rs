//! Tokenizer adapters: one [`TextTokenizer`] whether the vocabulary comes
//! from a Hugging Face `tokenizer.json` or from the metadata of a GGUF file.
//!
//! Both paths run the Hugging Face `tokenizers` library, so the ids are
//! exactly those of `tokenizer.encode(text, add_special_tokens=False)` in
//! Python: the normalizer, pre-tokenizer, model and added tokens all apply,
//! and no special token is ever added. BOS is the window planner's business
//! ([`perplex_core::BosPolicy`]); the tokenizer only reports its BOS/EOS ids
//! and whether it would add BOS by default.
//!
//! A GGUF vocabulary ([`GgufVocab`]) is turned into the `tokenizer.json`
//! that Hugging Face uses for the same model family (see
//! [`TextTokenizer::from_gguf_vocab`]): byte-level BPE with the pre-tokenizer
//! llama.cpp names in `tokenizer.ggml.pre`, or SentencePiece BPE as a BPE
//! model with byte fallback whose merges are derived from the piece scores.

mod gguf;
mod hf;

use std::collections::HashSet;
use std::path::Path;

pub use gguf::supported_pre_tokenizers;

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
///
/// Cheap to share across threads (`Send + Sync`); cloning copies the vocabulary.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    source: String,
    kind: String,
    vocab_size: usize,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    adds_bos: bool,
    style: TextStyle,
    added_ids: HashSet<u32>,
}

/// How a vocabulary piece maps back to text, for [`TextTokenizer::token_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextStyle {
    /// GPT-2 byte-level: every char of a piece stands for one byte.
    ByteLevel,
    /// SentencePiece: `▁` is a space, `<0xNN>` is a byte.
    SentencePiece,
    /// Pieces are text.
    Raw,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("source", &self.source)
            .field("kind", &self.kind)
            .field("vocab_size", &self.vocab_size)
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("adds_bos", &self.adds_bos)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (and BOS/EOS/add-BOS from `tokenizer_config.json`,
    /// `generation_config.json`, `config.json`) from a model folder.
    ///
    /// Whether BOS is added: `add_bos_token` in `tokenizer_config.json` when
    /// it is set, else whether the post-processor puts a special token first
    /// (a `TemplateProcessing` starting with one, or a BERT/RoBERTa
    /// processor). The BOS id: that special token's, else `bos_token` of
    /// `tokenizer_config.json`, else `bos_token_id` of
    /// `generation_config.json`, else of `config.json`; EOS likewise
    /// (`eos_token`, then `eos_token_id`, the first of a list).
    pub fn from_hf_folder(dir: &Path) -> Result<Self, TokenizerError> {
        hf::from_folder(dir)
    }

    /// Loads a `tokenizer.json` file alone: BOS and add-BOS come from its
    /// post-processor only, and there is no EOS.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self, TokenizerError> {
        hf::from_file(path)
    }

    /// Builds the tokenizer a GGUF file describes; `source` names the file.
    ///
    /// - `gpt2`: byte-level BPE with the file's tokens and merges; control
    ///   (type 3) and user-defined (type 4) tokens are added tokens matched in
    ///   the text as Hugging Face does; the pre-tokenizer follows
    ///   `tokenizer.ggml.pre` (see [`supported_pre_tokenizers`]; absent means
    ///   `default`, the GPT-2 split).
    /// - `llama`: SentencePiece BPE expressed as Hugging Face does for legacy
    ///   Llama tokenizers: normalizer `Prepend("▁")` (unless
    ///   `add_space_prefix` is false) and `Replace(" ", "▁")`, no
    ///   pre-tokenizer, BPE with byte fallback to the `<0xNN>` tokens, merges
    ///   ranked by the merged piece's score.
    ///
    /// Add-BOS defaults as in llama.cpp when the file does not say: true for
    /// `llama` and for the Llama-3 pre-tokenizers, false otherwise.
    pub fn from_gguf_vocab(vocab: &GgufVocab, source: &str) -> Result<Self, TokenizerError> {
        gguf::build(vocab, source)
    }

    /// Token ids of `text`, no special tokens added.
    ///
    /// Special tokens written in the text (e.g. `<|endoftext|>`) are
    /// recognised as Hugging Face does by default.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|source| TokenizerError::Encode { source })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Whether special-token text in the input (e.g. `<|endoftext|>`, `<s>`)
    /// is matched as the special token (`true`, the default: Hugging Face's
    /// `split_special_tokens=False`) or tokenized as plain text (`false`:
    /// llama.cpp's `parse_special=false`, which `llama-perplexity` uses).
    /// User-defined (non-special) added tokens are matched either way, as in
    /// both libraries.
    #[must_use]
    pub fn with_parse_special(mut self, parse: bool) -> Self {
        self.inner.set_encode_special_tokens(!parse);
        self
    }

    /// See [`with_parse_special`](Self::with_parse_special).
    pub fn parses_special(&self) -> bool {
        !self.inner.get_encode_special_tokens()
    }

    /// The text of one token, for per-token output.
    ///
    /// Byte-level pieces are mapped back to their bytes and SentencePiece's
    /// `▁` to a space; bytes that do not form valid UTF-8 on their own (part
    /// of a multi-byte character) are written as `\xNN`. Special tokens are
    /// their content; an id outside the vocabulary gives an empty string.
    pub fn token_text(&self, id: u32) -> String {
        let Some(piece) = self.inner.id_to_token(id) else {
            return String::new();
        };
        if self.added_ids.contains(&id) {
            return piece;
        }
        match self.style {
            TextStyle::Raw => piece,
            TextStyle::ByteLevel => {
                let mut bytes = Vec::with_capacity(piece.len());
                for c in piece.chars() {
                    match byte_level_byte(c) {
                        Some(b) => bytes.push(b),
                        None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                escape_invalid_utf8(&bytes)
            }
            TextStyle::SentencePiece => match sentencepiece_byte(&piece) {
                Some(b) => escape_invalid_utf8(&[b]),
                None => piece.replace('\u{2581}', " "),
            },
        }
    }

    /// Number of ids the tokenizer can produce (added tokens included):
    /// one more than the largest id.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// BOS id.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// EOS id.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Whether the tokenizer adds BOS by default.
    pub fn adds_bos(&self) -> bool {
        self.adds_bos
    }

    /// Where the tokenizer came from: a `tokenizer.json` path or `gguf:<file>`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Its kind, e.g. `bpe (byte-level)` or `gguf gpt2 (pre: smollm)`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Identity for the report.
    pub fn identity(&self) -> perplex_core::report::TokenizerIdentity {
        perplex_core::report::TokenizerIdentity {
            source: self.source.clone(),
            kind: self.kind.clone(),
            vocab_size: self.vocab_size,
            bos_id: self.bos_id,
            eos_id: self.eos_id,
            adds_bos: self.adds_bos,
        }
    }

    /// The Hugging Face `tokenizer.json` equivalent of this tokenizer, e.g. to
    /// check a GGUF vocabulary against the model's own tokenizer.
    pub fn to_tokenizer_json(&self, pretty: bool) -> Result<String, TokenizerError> {
        self.inner
            .to_string(pretty)
            .map_err(|source| TokenizerError::Serialize { source })
    }

    /// Wraps a loaded `tokenizers::Tokenizer`, disabling truncation and
    /// padding (a `tokenizer.json` may carry either, and both change ids).
    fn new(mut inner: tokenizers::Tokenizer, info: Info) -> Result<Self, TokenizerError> {
        inner
            .with_truncation(None)
            .map_err(|source| TokenizerError::Load {
                path: info.source.clone(),
                source,
            })?;
        inner.with_padding(None);
        let vocab_size = info.vocab_size.unwrap_or_else(|| {
            inner
                .get_vocab(true)
                .values()
                .max()
                .map_or(0, |&max| max as usize + 1)
        });
        let added_ids = inner.get_added_tokens_decoder().keys().copied().collect();
        Ok(TextTokenizer {
            inner,
            source: info.source,
            kind: info.kind,
            vocab_size,
            bos_id: info.bos_id,
            eos_id: info.eos_id,
            adds_bos: info.adds_bos,
            style: info.style,
            added_ids,
        })
    }
}

/// What the loaders know besides the `tokenizers::Tokenizer` itself.
struct Info {
    source: String,
    kind: String,
    /// When the loader knows better than "largest id + 1" (GGUF: the token count).
    vocab_size: Option<usize>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    adds_bos: bool,
    style: TextStyle,
}

/// The byte a GPT-2 byte-level character stands for.
///
/// GPT-2 maps the printable bytes `!`..=`~`, `¡`..=`¬`, `®`..=`ÿ` to the
/// characters with the same code point, and the other 68 bytes, in
/// increasing order, to U+0100, U+0101, … (`bytes_to_unicode` in GPT-2's
/// `encoder.py`).
fn byte_level_byte(c: char) -> Option<u8> {
    let c = u32::from(c);
    match c {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => u8::try_from(c).ok(),
        0x100..=0x143 => {
            let n = c - 0x100;
            let byte = match n {
                0..=32 => n,              // 0x00..=0x20
                33..=66 => 0x7F + n - 33, // 0x7F..=0xA0
                _ => 0xAD,                // the soft hyphen
            };
            u8::try_from(byte).ok()
        }
        _ => None,
    }
}

/// `<0xNN>` → `NN`.
fn sentencepiece_byte(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// UTF-8 text of `bytes`, with every byte outside a valid sequence as `\xNN`.
fn escape_invalid_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Tokenizer errors.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A tokenizer or config file could not be read.
    #[error("could not read `{path}`")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A model folder has no `tokenizer.json`.
    #[error("no `tokenizer.json` in `{dir}`")]
    MissingTokenizerJson {
        /// The folder.
        dir: String,
        /// Whether it has a SentencePiece `tokenizer.model` instead.
        has_sentencepiece_model: bool,
    },
    /// `tokenizer.json` could not be loaded by the `tokenizers` library.
    #[error("could not load the tokenizer `{path}`")]
    Load {
        /// The file.
        path: String,
        /// The library's error.
        #[source]
        source: tokenizers::Error,
    },
    /// A config file is not JSON.
    #[error("`{path}` is not valid JSON")]
    Json {
        /// The file.
        path: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A config value has an unexpected type or names an unknown token.
    #[error("`{path}`: `{key}` is {found}, expected {expected}")]
    Config {
        /// The file.
        path: String,
        /// The key, e.g. `bos_token_id`.
        key: String,
        /// What was found.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The tokenizer adds BOS but no BOS id is known.
    #[error("`{file}` asks for BOS to be added but defines no BOS token")]
    BosWithoutId {
        /// The tokenizer source.
        file: String,
    },
    /// A GGUF `tokenizer.ggml.model` this crate cannot build.
    #[error("unsupported GGUF tokenizer model `{model}` in `{file}` (supported: gpt2, llama)")]
    UnsupportedModel {
        /// `tokenizer.ggml.model`.
        model: String,
        /// The GGUF file.
        file: String,
    },
    /// A GGUF `tokenizer.ggml.pre` this crate does not know.
    #[error("unsupported GGUF pre-tokenizer `{pre}` in `{file}` (supported: {supported})")]
    UnsupportedPreTokenizer {
        /// `tokenizer.ggml.pre`.
        pre: String,
        /// The GGUF file.
        file: String,
        /// The supported names, comma-separated.
        supported: String,
    },
    /// The GGUF vocabulary has no tokens.
    #[error("`{file}` has an empty tokenizer.ggml.tokens")]
    EmptyVocab {
        /// The GGUF file.
        file: String,
    },
    /// A per-token GGUF array does not have one entry per token.
    #[error(
        "`{file}`: tokenizer.ggml.{key} has {len} entries but tokenizer.ggml.tokens has {tokens}"
    )]
    LengthMismatch {
        /// The GGUF file.
        file: String,
        /// The key after `tokenizer.ggml.`, e.g. `scores`.
        key: &'static str,
        /// Its length.
        len: usize,
        /// The number of tokens.
        tokens: usize,
    },
    /// A GGUF special-token id is not a token.
    #[error("`{file}`: tokenizer.ggml.{key} is {id}, outside the {vocab_size} tokens")]
    IdOutOfRange {
        /// The GGUF file.
        file: String,
        /// The key after `tokenizer.ggml.`, e.g. `bos_token_id`.
        key: &'static str,
        /// The id.
        id: u32,
        /// The number of tokens.
        vocab_size: usize,
    },
    /// A GGUF `gpt2` vocabulary without merges.
    #[error("`{file}` has no tokenizer.ggml.merges, which a gpt2 (BPE) vocabulary needs")]
    MissingMerges {
        /// The GGUF file.
        file: String,
    },
    /// A GGUF `llama` vocabulary without scores.
    #[error(
        "`{file}` has no tokenizer.ggml.scores, which a llama (SentencePiece) vocabulary needs"
    )]
    MissingScores {
        /// The GGUF file.
        file: String,
    },
    /// A GGUF merge that does not join two tokens into a token.
    #[error("`{file}`: merge {index} `{merge}` does not join two tokens into a token")]
    BadMerge {
        /// The GGUF file.
        file: String,
        /// 0-based index in tokenizer.ggml.merges.
        index: usize,
        /// The merge as stored.
        merge: String,
    },
    /// The `tokenizer.json` built from GGUF metadata was rejected.
    #[error("could not build a tokenizer from the vocabulary of `{file}`")]
    Build {
        /// The GGUF file.
        file: String,
        /// The library's error.
        #[source]
        source: serde_json::Error,
    },
    /// Tokenization failed.
    #[error("could not tokenize the text")]
    Encode {
        /// The library's error.
        #[source]
        source: tokenizers::Error,
    },
    /// The tokenizer could not be written as JSON.
    #[error("could not serialize the tokenizer")]
    Serialize {
        /// The library's error.
        #[source]
        source: tokenizers::Error,
    },
}

impl TokenizerError {
    /// A suggestion for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        const USE_TOKENIZER_JSON: &str =
            "use the model's original tokenizer.json (from its Hugging Face repository) instead of the GGUF vocabulary";
        match self {
            TokenizerError::Read { source, .. } => {
                (source.kind() == std::io::ErrorKind::NotFound).then(|| "check the path".to_owned())
            }
            TokenizerError::MissingTokenizerJson {
                dir,
                has_sentencepiece_model,
            } => Some(if *has_sentencepiece_model {
                format!(
                    "the folder has only a SentencePiece tokenizer.model; write a tokenizer.json with \
                     transformers: `AutoTokenizer.from_pretrained(\"{dir}\").save_pretrained(\"{dir}\")`"
                )
            } else {
                "point perplex at a folder or file with a Hugging Face tokenizer.json".to_owned()
            }),
            TokenizerError::Load { .. } => Some(
                "the file may be truncated or written by a newer `tokenizers`; re-save it with transformers"
                    .to_owned(),
            ),
            TokenizerError::Json { .. } | TokenizerError::Config { .. } => {
                Some("fix or remove the config file".to_owned())
            }
            TokenizerError::BosWithoutId { .. } => {
                Some("evaluate without BOS, or use a tokenizer that defines a BOS token".to_owned())
            }
            TokenizerError::UnsupportedModel { .. } | TokenizerError::UnsupportedPreTokenizer { .. } => {
                Some(USE_TOKENIZER_JSON.to_owned())
            }
            TokenizerError::EmptyVocab { .. }
            | TokenizerError::LengthMismatch { .. }
            | TokenizerError::IdOutOfRange { .. }
            | TokenizerError::MissingMerges { .. }
            | TokenizerError::MissingScores { .. }
            | TokenizerError::BadMerge { .. }
            | TokenizerError::Build { .. } => Some(format!(
                "the GGUF file's tokenizer metadata is inconsistent; re-convert the model, or {USE_TOKENIZER_JSON}"
            )),
            TokenizerError::Encode { .. } | TokenizerError::Serialize { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_mapping_is_a_bijection_onto_bytes() {
        let chars: Vec<char> = (0u32..0x200).filter_map(char::from_u32).collect();
        let mut seen = [false; 256];
        for c in chars {
            if let Some(b) = byte_level_byte(c) {
                assert!(!seen[b as usize], "byte {b} twice");
                seen[b as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(byte_level_byte('Ġ'), Some(b' '));
        assert_eq!(byte_level_byte('Ċ'), Some(b'\n'));
        assert_eq!(byte_level_byte('ĉ'), Some(b'\t'));
        assert_eq!(byte_level_byte('a'), Some(b'a'));
        assert_eq!(byte_level_byte('Ń'), Some(0xAD));
        assert_eq!(byte_level_byte(' '), None);
    }

    #[test]
    fn invalid_utf8_is_escaped() {
        assert_eq!(escape_invalid_utf8(b"a\xe2\x82"), "a\\xe2\\x82");
        assert_eq!(escape_invalid_utf8("é".as_bytes()), "é");
        assert_eq!(sentencepiece_byte("<0x0A>"), Some(10));
        assert_eq!(sentencepiece_byte("<0x0A"), None);
        assert_eq!(sentencepiece_byte("<0xABC>"), None);
    }
}
