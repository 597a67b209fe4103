//! GGUF metadata to a [`GgufVocab`]: reads the `tokenizer.ggml.*` keys and
//! nothing else; [`perplex_data`] turns the vocabulary into a tokenizer.
//!
//! Writers disagree on integer widths (token ids appear as `u32`, `i32` or
//! `u64`; token types as `i32` or `u32`), so every integer type is accepted
//! where an integer is expected, and `f32` or `f64` where a float is.

use candle_core::quantized::gguf_file::{Content, Value};
use perplex_data::tokenizer::GgufVocab;

/// Why the tokenizer metadata of a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufVocabError {
    /// A required key is absent.
    #[error("the GGUF metadata has no `{key}`")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A key holds a value of the wrong type.
    #[error("the GGUF metadata key `{key}` is {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it holds, e.g. `a string`, `u32`.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// An array element has the wrong type.
    #[error("element {index} of the GGUF metadata array `{key}` is {found}, expected {expected}")]
    WrongElement {
        /// The key.
        key: &'static str,
        /// 0-based index.
        index: usize,
        /// What it holds.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// An integer does not fit the type it stands for.
    #[error("the GGUF metadata key `{key}` is {value}, out of range for {expected}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value.
        value: i128,
        /// What it stands for, e.g. `a token id`.
        expected: &'static str,
    },
}

impl GgufVocabError {
    /// A suggestion for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            GgufVocabError::Missing {
                key: MODEL | TOKENS,
            } => Some(
                "this GGUF file carries no tokenizer; use the model's tokenizer.json instead"
                    .to_owned(),
            ),
            _ => Some(
                "the GGUF file's tokenizer metadata is malformed; re-convert the model, or use its tokenizer.json"
                    .to_owned(),
            ),
        }
    }
}

const MODEL: &str = "tokenizer.ggml.model";
const TOKENS: &str = "tokenizer.ggml.tokens";

/// Reads the `tokenizer.ggml.*` keys of a GGUF file's metadata.
///
/// `model` and `tokens` are required; every other key is optional. A
/// negative special-token id (some writers store -1 for "none") reads as
/// absent.
pub fn vocab_from_gguf(content: &Content) -> Result<GgufVocab, GgufVocabError> {
    let md = &content.metadata;
    let get = |key: &'static str| md.get(key);
    let required = |key: &'static str| get(key).ok_or(GgufVocabError::Missing { key });

    Ok(GgufVocab {
        model: string(MODEL, required(MODEL)?)?,
        pre: get("tokenizer.ggml.pre")
            .map(|v| string("tokenizer.ggml.pre", v))
            .transpose()?,
        tokens: array(TOKENS, required(TOKENS)?, "a string", |v| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })?,
        scores: get("tokenizer.ggml.scores")
            .map(|v| {
                array("tokenizer.ggml.scores", v, "a float", |v| match v {
                    Value::F32(x) => Some(*x),
                    // Narrowing is the intent: llama.cpp keeps scores as f32.
                    Value::F64(x) => Some(*x as f32),
                    _ => None,
                })
            })
            .transpose()?,
        token_types: get("tokenizer.ggml.token_type")
            .map(|v| {
                array("tokenizer.ggml.token_type", v, "an i32", |v| {
                    integer(v).and_then(|x| i32::try_from(x).ok())
                })
            })
            .transpose()?,
        merges: get("tokenizer.ggml.merges")
            .map(|v| {
                array("tokenizer.ggml.merges", v, "a string", |v| match v {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
            })
            .transpose()?,
        bos_id: token_id(md, "tokenizer.ggml.bos_token_id")?,
        eos_id: token_id(md, "tokenizer.ggml.eos_token_id")?,
        unk_id: token_id(md, "tokenizer.ggml.unknown_token_id")?,
        pad_id: token_id(md, "tokenizer.ggml.padding_token_id")?,
        add_bos: boolean(md, "tokenizer.ggml.add_bos_token")?,
        add_eos: boolean(md, "tokenizer.ggml.add_eos_token")?,
        add_space_prefix: boolean(md, "tokenizer.ggml.add_space_prefix")?,
    })
}

type Metadata = std::collections::HashMap<String, Value>;

/// `a string`, `an array`, `u32`, … for messages.
fn describe(value: &Value) -> String {
    match value {
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        other => format!("{:?}", other.value_type()).to_lowercase(),
    }
}

/// Any integer value, widened.
fn integer(value: &Value) -> Option<i128> {
    Some(match *value {
        Value::U8(x) => x.into(),
        Value::I8(x) => x.into(),
        Value::U16(x) => x.into(),
        Value::I16(x) => x.into(),
        Value::U32(x) => x.into(),
        Value::I32(x) => x.into(),
        Value::U64(x) => x.into(),
        Value::I64(x) => x.into(),
        _ => return None,
    })
}

fn string(key: &'static str, value: &Value) -> Result<String, GgufVocabError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(GgufVocabError::WrongType {
            key,
            found: describe(other),
            expected: "a string",
        }),
    }
}

fn array<T>(
    key: &'static str,
    value: &Value,
    expected: &'static str,
    element: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, GgufVocabError> {
    let Value::Array(items) = value else {
        return Err(GgufVocabError::WrongType {
            key,
            found: describe(value),
            expected: "an array",
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            element(item).ok_or_else(|| GgufVocabError::WrongElement {
                key,
                index,
                found: describe(item),
                expected,
            })
        })
        .collect()
}

fn token_id(md: &Metadata, key: &'static str) -> Result<Option<u32>, GgufVocabError> {
    let Some(value) = md.get(key) else {
        return Ok(None);
    };
    let x = integer(value).ok_or_else(|| GgufVocabError::WrongType {
        key,
        found: describe(value),
        expected: "an integer",
    })?;
    if x < 0 {
        return Ok(None);
    }
    u32::try_from(x)
        .map(Some)
        .map_err(|_| GgufVocabError::OutOfRange {
            key,
            value: x,
            expected: "a token id",
        })
}

fn boolean(md: &Metadata, key: &'static str) -> Result<Option<bool>, GgufVocabError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(GgufVocabError::WrongType {
            key,
            found: describe(other),
            expected: "a boolean",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::VersionedMagic;

    fn content(entries: Vec<(&str, Value)>) -> Content {
        Content {
            magic: VersionedMagic::GgufV3,
            metadata: entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            tensor_infos: Default::default(),
            tensor_data_offset: 0,
        }
    }

    fn strings(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
    }

    #[test]
    fn reads_every_key_and_any_integer_width() {
        let c = content(vec![
            (MODEL, Value::String("llama".into())),
            ("tokenizer.ggml.pre", Value::String("default".into())),
            (TOKENS, strings(&["<unk>", "<s>", "</s>", "a"])),
            (
                "tokenizer.ggml.scores",
                Value::Array(vec![
                    Value::F32(0.0),
                    Value::F32(0.0),
                    Value::F64(0.0),
                    Value::F32(-1.5),
                ]),
            ),
            (
                "tokenizer.ggml.token_type",
                Value::Array(vec![
                    Value::I32(2),
                    Value::U32(3),
                    Value::I64(3),
                    Value::U8(1),
                ]),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
            ("tokenizer.ggml.eos_token_id", Value::I32(2)),
            ("tokenizer.ggml.unknown_token_id", Value::U64(0)),
            ("tokenizer.ggml.padding_token_id", Value::I32(-1)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
            ("tokenizer.ggml.add_space_prefix", Value::Bool(false)),
        ]);
        let v = vocab_from_gguf(&c).unwrap();
        assert_eq!(v.model, "llama");
        assert_eq!(v.pre.as_deref(), Some("default"));
        assert_eq!(v.tokens, ["<unk>", "<s>", "</s>", "a"]);
        assert_eq!(v.scores, Some(vec![0.0, 0.0, 0.0, -1.5]));
        assert_eq!(v.token_types, Some(vec![2, 3, 3, 1]));
        assert_eq!(v.merges, None);
        assert_eq!(
            (v.bos_id, v.eos_id, v.unk_id, v.pad_id),
            (Some(1), Some(2), Some(0), None)
        );
        assert_eq!(
            (v.add_bos, v.add_eos, v.add_space_prefix),
            (Some(true), None, Some(false))
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = vocab_from_gguf(&content(vec![])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the GGUF metadata has no `tokenizer.ggml.model`"
        );
        assert!(err.hint().unwrap().contains("tokenizer.json"));

        let err = vocab_from_gguf(&content(vec![
            (MODEL, Value::String("gpt2".into())),
            (
                TOKENS,
                Value::Array(vec![Value::String("a".into()), Value::U32(3)]),
            ),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "element 1 of the GGUF metadata array `tokenizer.ggml.tokens` is u32, expected a string"
        );

        let err = vocab_from_gguf(&content(vec![
            (MODEL, Value::String("gpt2".into())),
            (TOKENS, strings(&["a"])),
            ("tokenizer.ggml.bos_token_id", Value::U64(1 << 40)),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the GGUF metadata key `tokenizer.ggml.bos_token_id` is 1099511627776, out of range for a token id"
        );

        let err = vocab_from_gguf(&content(vec![
            (MODEL, Value::U32(2)),
            (TOKENS, strings(&["a"])),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the GGUF metadata key `tokenizer.ggml.model` is u32, expected a string"
        );
    }
}
