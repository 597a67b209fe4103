//! GGUF vocabularies to the Hugging Face `tokenizer.json` of the same model
//! family.
//!
//! A GGUF file stores the vocabulary (`tokenizer.ggml.tokens`, `scores`,
//! `token_type`, `merges`) and names the pre-tokenizer
//! (`tokenizer.ggml.pre`); the splitting rules themselves live in
//! llama.cpp's `llama-vocab.cpp`. This module writes the equivalent
//! `tokenizer.json` as Hugging Face ships it for those families and loads it
//! with the `tokenizers` library, so the ids are Hugging Face's.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{GgufVocab, Info, TextStyle, TextTokenizer, TokenizerError};

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const BYTE: i32 = 6;
}

/// How text is split before byte-level BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreSplit {
    /// GPT-2's regex, as `ByteLevel(use_regex = true)` applies it.
    Gpt2,
    /// Every `\p{N}` on its own, then GPT-2's regex (StarCoder, SmolLM).
    DigitsThenGpt2,
    /// Llama 3's regex (numbers in runs of up to three digits); BPE ignores
    /// merges for words that are whole tokens.
    Llama3,
    /// Llama 3's regex with single digits, after NFC normalisation (Qwen2).
    Qwen2,
}

/// The `tokenizer.ggml.pre` names understood, after llama.cpp's table.
const PRE_TOKENIZERS: &[(&str, PreSplit)] = &[
    ("default", PreSplit::Gpt2),
    ("gpt-2", PreSplit::Gpt2),
    ("phi-2", PreSplit::Gpt2),
    ("smollm", PreSplit::DigitsThenGpt2),
    ("starcoder", PreSplit::DigitsThenGpt2),
    ("refact", PreSplit::DigitsThenGpt2),
    ("command-r", PreSplit::DigitsThenGpt2),
    ("codeshell", PreSplit::DigitsThenGpt2),
    ("exaone", PreSplit::DigitsThenGpt2),
    ("minerva-7b", PreSplit::DigitsThenGpt2),
    ("llama3", PreSplit::Llama3),
    ("llama-v3", PreSplit::Llama3),
    ("llama-bpe", PreSplit::Llama3),
    ("falcon3", PreSplit::Llama3),
    ("qwen2", PreSplit::Qwen2),
];

/// The `tokenizer.ggml.pre` values [`TextTokenizer::from_gguf_vocab`]
/// accepts for `gpt2` vocabularies (an absent value means `default`).
pub fn supported_pre_tokenizers() -> impl Iterator<Item = &'static str> {
    PRE_TOKENIZERS.iter().map(|&(name, _)| name)
}

/// Llama 3's pre-tokenizer regex, as in its `tokenizer.json`.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's: Llama 3's with `\p{N}` alone.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// SentencePiece's space marker, U+2581.
const SPACE_MARKER: &str = "\u{2581}";

pub(super) fn build(vocab: &GgufVocab, file: &str) -> Result<TextTokenizer, TokenizerError> {
    // Tolerate a caller that already wrote the `gguf:` of the identity.
    let file = file.strip_prefix("gguf:").unwrap_or(file);
    validate(vocab, file)?;
    let types = token_types(vocab);
    let built = match vocab.model.as_str() {
        "gpt2" => gpt2(vocab, &types, file)?,
        "llama" => llama(vocab, &types, file)?,
        other => {
            return Err(TokenizerError::UnsupportedModel {
                model: other.to_owned(),
                file: file.to_owned(),
            })
        }
    };
    let inner: tokenizers::Tokenizer =
        serde_json::from_value(built.json).map_err(|source| TokenizerError::Build {
            file: file.to_owned(),
            source,
        })?;

    let bos_id = vocab.bos_id.or(built.fallback_bos);
    let adds_bos = match (vocab.add_bos, bos_id) {
        (Some(true), None) => {
            return Err(TokenizerError::BosWithoutId {
                file: file.to_owned(),
            })
        }
        (Some(flag), _) => flag,
        (None, bos) => built.adds_bos_by_default && bos.is_some(),
    };
    let info = Info {
        source: format!("gguf:{file}"),
        kind: built.kind,
        vocab_size: Some(vocab.tokens.len()),
        bos_id,
        eos_id: vocab.eos_id,
        adds_bos,
        style: built.style,
    };
    TextTokenizer::new(inner, info)
}

/// A `tokenizer.json` and the facts that go with it.
struct Built {
    json: Value,
    kind: String,
    style: TextStyle,
    adds_bos_by_default: bool,
    /// BOS when the metadata names none.
    fallback_bos: Option<u32>,
}

fn validate(vocab: &GgufVocab, file: &str) -> Result<(), TokenizerError> {
    let n = vocab.tokens.len();
    if n == 0 {
        return Err(TokenizerError::EmptyVocab {
            file: file.to_owned(),
        });
    }
    let lengths = [
        ("scores", vocab.scores.as_ref().map(Vec::len)),
        ("token_type", vocab.token_types.as_ref().map(Vec::len)),
    ];
    for (key, len) in lengths {
        if let Some(len) = len.filter(|&len| len != n) {
            return Err(TokenizerError::LengthMismatch {
                file: file.to_owned(),
                key,
                len,
                tokens: n,
            });
        }
    }
    let ids = [
        ("bos_token_id", vocab.bos_id),
        ("eos_token_id", vocab.eos_id),
        ("unknown_token_id", vocab.unk_id),
        ("padding_token_id", vocab.pad_id),
    ];
    for (key, id) in ids {
        if let Some(id) = id.filter(|&id| id as usize >= n) {
            return Err(TokenizerError::IdOutOfRange {
                file: file.to_owned(),
                key,
                id,
                vocab_size: n,
            });
        }
    }
    Ok(())
}

/// Token types, inferred when the file has none: `<0xNN>` pieces are bytes,
/// everything else normal.
fn token_types(vocab: &GgufVocab) -> Vec<i32> {
    match &vocab.token_types {
        Some(types) => types.clone(),
        None => vocab
            .tokens
            .iter()
            .map(|t| {
                if super::sentencepiece_byte(t).is_some() {
                    token_type::BYTE
                } else {
                    token_type::NORMAL
                }
            })
            .collect(),
    }
}

/// Token → id, the first id when a string occurs twice.
fn token_ids(tokens: &[String]) -> HashMap<&str, u32> {
    let mut ids = HashMap::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        ids.entry(token.as_str()).or_insert(id as u32);
    }
    ids
}

/// The BPE `vocab` object, first id of duplicated strings.
fn vocab_json(tokens: &[String]) -> Value {
    let mut map = Map::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        if !map.contains_key(token) {
            map.insert(token.clone(), json!(id));
        }
    }
    Value::Object(map)
}

/// Unknown, control and user-defined tokens become added tokens, matched in
/// the raw text before the model runs (`normalized: false`), as in Hugging
/// Face's conversions; control and unknown ones are special.
fn added_tokens_json(tokens: &[String], types: &[i32]) -> Value {
    let added: Vec<Value> = tokens
        .iter()
        .zip(types)
        .enumerate()
        .filter(|(_, (token, &ty))| {
            !token.is_empty()
                && matches!(
                    ty,
                    token_type::UNKNOWN | token_type::CONTROL | token_type::USER_DEFINED
                )
        })
        .map(|(id, (token, &ty))| {
            json!({
                "id": id,
                "content": token,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": ty != token_type::USER_DEFINED,
            })
        })
        .collect();
    Value::Array(added)
}

fn byte_level(use_regex: bool) -> Value {
    json!({
        "type": "ByteLevel",
        "add_prefix_space": false,
        "trim_offsets": true,
        "use_regex": use_regex,
    })
}

fn regex_split(regex: &str) -> Value {
    json!({
        "type": "Split",
        "pattern": {"Regex": regex},
        "behavior": "Isolated",
        "invert": false,
    })
}

/// Byte-level BPE (`tokenizer.ggml.model = gpt2`).
fn gpt2(vocab: &GgufVocab, types: &[i32], file: &str) -> Result<Built, TokenizerError> {
    let pre = vocab.pre.as_deref().unwrap_or("default");
    let split = PRE_TOKENIZERS
        .iter()
        .find(|&&(name, _)| name == pre)
        .map(|&(_, split)| split)
        .ok_or_else(|| TokenizerError::UnsupportedPreTokenizer {
            pre: pre.to_owned(),
            file: file.to_owned(),
            supported: supported_pre_tokenizers().collect::<Vec<_>>().join(", "),
        })?;
    let merges = vocab
        .merges
        .as_ref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| TokenizerError::MissingMerges {
            file: file.to_owned(),
        })?;

    let ids = token_ids(&vocab.tokens);
    let mut merges_json = Vec::with_capacity(merges.len());
    for (index, merge) in merges.iter().enumerate() {
        let bad = || TokenizerError::BadMerge {
            file: file.to_owned(),
            index,
            merge: merge.clone(),
        };
        // Byte-level pieces never contain a space (U+0020 is written `Ġ`).
        let (left, right) = merge.split_once(' ').ok_or_else(bad)?;
        if !ids.contains_key(left)
            || !ids.contains_key(right)
            || !ids.contains_key(format!("{left}{right}").as_str())
        {
            return Err(bad());
        }
        merges_json.push(json!([left, right]));
    }

    let (normalizer, pre_tokenizer) = match split {
        PreSplit::Gpt2 => (Value::Null, byte_level(true)),
        PreSplit::DigitsThenGpt2 => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true),
            ]}),
        ),
        PreSplit::Llama3 => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [regex_split(LLAMA3_REGEX), byte_level(false)]}),
        ),
        PreSplit::Qwen2 => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [regex_split(QWEN2_REGEX), byte_level(false)]}),
        ),
    };
    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens_json(&vocab.tokens, types),
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": split == PreSplit::Llama3,
            "vocab": vocab_json(&vocab.tokens),
            "merges": merges_json,
        },
    });
    Ok(Built {
        json,
        kind: format!("gguf gpt2 (pre: {pre})"),
        style: TextStyle::ByteLevel,
        adds_bos_by_default: split == PreSplit::Llama3,
        fallback_bos: None,
    })
}

/// SentencePiece BPE (`tokenizer.ggml.model = llama`), as Hugging Face's
/// legacy Llama `tokenizer.json`.
fn llama(vocab: &GgufVocab, types: &[i32], file: &str) -> Result<Built, TokenizerError> {
    let scores = vocab
        .scores
        .as_ref()
        .ok_or_else(|| TokenizerError::MissingScores {
            file: file.to_owned(),
        })?;
    let ids = token_ids(&vocab.tokens);
    let unk = vocab
        .unk_id
        .or_else(|| {
            types
                .iter()
                .position(|&t| t == token_type::UNKNOWN)
                .map(|i| i as u32)
        })
        .map(|id| vocab.tokens[id as usize].clone());
    let merges: Vec<Value> = sentencepiece_merges(&vocab.tokens, scores, types)
        .into_iter()
        .map(|(left, right)| json!([left, right]))
        .collect();

    let add_space_prefix = vocab.add_space_prefix.unwrap_or(true);
    let mut normalizers = Vec::new();
    if add_space_prefix {
        normalizers.push(json!({"type": "Prepend", "prepend": SPACE_MARKER}));
    }
    normalizers
        .push(json!({"type": "Replace", "pattern": {"String": " "}, "content": SPACE_MARKER}));
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": SPACE_MARKER}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_space_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens_json(&vocab.tokens, types),
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": unk,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": true,
            "byte_fallback": true,
            "ignore_merges": false,
            "vocab": vocab_json(&vocab.tokens),
            "merges": merges,
        },
    });
    Ok(Built {
        json,
        kind: "gguf llama (sentencepiece)".to_owned(),
        style: TextStyle::SentencePiece,
        adds_bos_by_default: true,
        fallback_bos: ids.get("<s>").copied(),
    })
}

/// SentencePiece BPE's merge order, as Hugging Face's converter writes it
/// into `tokenizer.json`: every split of a normal piece into two vocabulary
/// pieces is a merge, ranked by the merged piece's score (higher first);
/// ties keep vocabulary order of the merged piece, then the order of the
/// split point (shorter left piece first).
///
/// SentencePiece itself ranks by the merged piece alone, so the order of
/// two merges into the same piece cannot change a tokenization; the
/// tie-breaks only make the list identical to Hugging Face's.
fn sentencepiece_merges<'a>(
    tokens: &'a [String],
    scores: &[f32],
    types: &[i32],
) -> Vec<(&'a str, &'a str)> {
    let ids = token_ids(tokens);
    struct Merge<'a> {
        score: f32,
        merged: u32,
        pieces: (&'a str, &'a str),
    }
    let mut merges = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        let id = id as u32;
        if types[id as usize] != token_type::NORMAL || ids.get(piece.as_str()) != Some(&id) {
            continue;
        }
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            if ids.contains_key(left) && ids.contains_key(right) {
                merges.push(Merge {
                    // `+ 0.0` makes -0.0 equal to 0.0, as Python's sort sees them.
                    score: scores[id as usize] + 0.0,
                    merged: id,
                    pieces: (left, right),
                });
            }
        }
    }
    // Stable: merges into one piece stay in split-point order.
    merges.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.merged.cmp(&b.merged)));
    merges.into_iter().map(|m| m.pieces).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 256 byte-level characters, in byte order.
    fn byte_chars() -> Vec<String> {
        let mut chars = vec![String::new(); 256];
        for c in (0u32..0x200).filter_map(char::from_u32) {
            if let Some(b) = crate::tokenizer::byte_level_byte(c) {
                chars[b as usize] = c.to_string();
            }
        }
        chars
    }

    /// A byte-level vocabulary: the 256 bytes, `extra` tokens and merges.
    fn gpt2_vocab(pre: Option<&str>, extra: &[&str], merges: &[&str]) -> GgufVocab {
        let mut tokens = vec!["<|endoftext|>".to_owned()];
        tokens.extend(byte_chars());
        tokens.extend(extra.iter().map(|s| s.to_string()));
        let mut types = vec![token_type::NORMAL; tokens.len()];
        types[0] = token_type::CONTROL;
        GgufVocab {
            model: "gpt2".into(),
            pre: pre.map(str::to_owned),
            token_types: Some(types),
            merges: Some(merges.iter().map(|s| s.to_string()).collect()),
            tokens,
            bos_id: Some(0),
            eos_id: Some(0),
            ..GgufVocab::default()
        }
    }

    fn pieces(tok: &TextTokenizer, text: &str) -> Vec<String> {
        tok.encode(text)
            .unwrap()
            .into_iter()
            .map(|id| tok.token_text(id))
            .collect()
    }

    #[test]
    fn gpt2_default_merges_digits_and_smollm_splits_them() {
        let vocab = gpt2_vocab(None, &["12", "Ġ1", "Ġ12"], &["Ġ 1", "Ġ1 2", "1 2"]);
        let tok = TextTokenizer::from_gguf_vocab(&vocab, "t.gguf").unwrap();
        assert_eq!(pieces(&tok, "a 12"), ["a", " 12"]);
        assert_eq!(tok.kind(), "gguf gpt2 (pre: default)");
        assert_eq!(tok.source(), "gguf:t.gguf");
        assert_eq!(tok.vocab_size(), 260);
        assert!(!tok.adds_bos());
        // Control tokens in the text are matched, as Hugging Face does.
        assert_eq!(tok.encode("<|endoftext|>").unwrap(), [0]);

        let vocab = GgufVocab {
            pre: Some("smollm".into()),
            ..vocab
        };
        let tok = TextTokenizer::from_gguf_vocab(&vocab, "t.gguf").unwrap();
        assert_eq!(pieces(&tok, "a 12"), ["a", " ", "1", "2"]);
    }

    #[test]
    fn llama3_groups_three_digits_and_ignores_merges_for_whole_words() {
        // "abc" is a token but no merge builds it: only ignore_merges finds it.
        let vocab = gpt2_vocab(Some("llama-bpe"), &["abc", "12"], &["1 2"]);
        let tok = TextTokenizer::from_gguf_vocab(&vocab, "t.gguf").unwrap();
        assert_eq!(pieces(&tok, "abc 1234"), ["abc", " ", "12", "3", "4"]);
        assert!(tok.adds_bos(), "llama3 adds BOS by default");

        let vocab = GgufVocab {
            pre: Some("qwen2".into()),
            ..vocab
        };
        let tok = TextTokenizer::from_gguf_vocab(&vocab, "t.gguf").unwrap();
        assert_eq!(pieces(&tok, "abc 12"), ["a", "b", "c", " ", "1", "2"]);
    }

    #[test]
    fn unknown_pre_tokenizer_lists_the_supported_ones() {
        let vocab = gpt2_vocab(Some("deepseek-llm"), &[], &[]);
        let err = TextTokenizer::from_gguf_vocab(&vocab, "m.gguf").unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("unsupported GGUF pre-tokenizer `deepseek-llm` in `m.gguf` (supported: default, gpt-2,"), "{message}");
        assert!(message.contains("smollm") && message.contains("qwen2"));
        assert!(err.hint().unwrap().contains("tokenizer.json"));
    }

    #[test]
    fn inconsistent_metadata_is_rejected() {
        let base = gpt2_vocab(None, &["12"], &["1 2"]);
        let check = |vocab: GgufVocab, expected: &str| {
            let err = TextTokenizer::from_gguf_vocab(&vocab, "m.gguf").unwrap_err();
            assert_eq!(err.to_string(), expected);
            assert!(err.hint().is_some());
        };
        check(
            GgufVocab {
                scores: Some(vec![0.0; 3]),
                ..base.clone()
            },
            "`m.gguf`: tokenizer.ggml.scores has 3 entries but tokenizer.ggml.tokens has 258",
        );
        check(
            GgufVocab {
                bos_id: Some(258),
                ..base.clone()
            },
            "`m.gguf`: tokenizer.ggml.bos_token_id is 258, outside the 258 tokens",
        );
        check(
            GgufVocab {
                merges: Some(vec!["1 2".into(), "2 1".into()]),
                ..base.clone()
            },
            "`m.gguf`: merge 1 `2 1` does not join two tokens into a token",
        );
        check(
            GgufVocab {
                merges: None,
                ..base.clone()
            },
            "`m.gguf` has no tokenizer.ggml.merges, which a gpt2 (BPE) vocabulary needs",
        );
        check(
            GgufVocab {
                model: "bert".into(),
                ..base.clone()
            },
            "unsupported GGUF tokenizer model `bert` in `m.gguf` (supported: gpt2, llama)",
        );
        check(
            GgufVocab {
                add_bos: Some(true),
                bos_id: None,
                ..base.clone()
            },
            "`m.gguf` asks for BOS to be added but defines no BOS token",
        );
        check(
            GgufVocab {
                tokens: vec![],
                ..base
            },
            "`m.gguf` has an empty tokenizer.ggml.tokens",
        );
    }

    /// A SentencePiece vocabulary: `<unk>`, `<s>`, `</s>`, the 256 byte
    /// tokens, then normal pieces scored by rank.
    fn spm_vocab(pieces: &[&str]) -> GgufVocab {
        let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
        let mut types = vec![
            token_type::UNKNOWN,
            token_type::CONTROL,
            token_type::CONTROL,
        ];
        let mut scores = vec![0.0, 0.0, 0.0];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(token_type::BYTE);
            scores.push(0.0);
        }
        for (rank, piece) in pieces.iter().enumerate() {
            tokens.push(piece.to_string());
            types.push(token_type::NORMAL);
            scores.push(-(rank as f32));
        }
        GgufVocab {
            model: "llama".into(),
            tokens,
            scores: Some(scores),
            token_types: Some(types),
            bos_id: Some(1),
            eos_id: Some(2),
            unk_id: Some(0),
            ..GgufVocab::default()
        }
    }

    #[test]
    fn sentencepiece_merges_follow_scores() {
        // "▁a" outranks "ab"; "▁ab" is reachable only as ▁a + b.
        let vocab = spm_vocab(&["▁", "a", "b", "▁a", "ab", "▁ab"]);
        let merges = sentencepiece_merges(
            &vocab.tokens,
            vocab.scores.as_ref().unwrap(),
            vocab.token_types.as_ref().unwrap(),
        );
        assert_eq!(merges, [("▁", "a"), ("a", "b"), ("▁", "ab"), ("▁a", "b")]);

        let tok = TextTokenizer::from_gguf_vocab(&vocab, "s.gguf").unwrap();
        assert_eq!(pieces(&tok, "ab ab"), [" ab", " ab"]);
        assert_eq!(tok.kind(), "gguf llama (sentencepiece)");
        assert!(tok.adds_bos());
        assert_eq!(tok.bos_id(), Some(1));
        // Characters outside the vocabulary fall back to their UTF-8 bytes.
        let ids = tok.encode("é").unwrap();
        assert_eq!(ids.len(), 3); // ▁, <0xC3>, <0xA9>
        assert_eq!(tok.token_text(ids[1]), "\\xc3");
        assert_eq!(tok.token_text(3 + 0x0A), "\n");
        // Control tokens written in the text are matched.
        assert_eq!(tok.encode("<s>").unwrap(), [1]);
        assert!(tok.encode("").unwrap().is_empty());

        let no_prefix = GgufVocab {
            add_space_prefix: Some(false),
            ..vocab
        };
        let tok = TextTokenizer::from_gguf_vocab(&no_prefix, "s.gguf").unwrap();
        assert_eq!(pieces(&tok, "ab ab"), ["ab", " ab"]);
    }
}
