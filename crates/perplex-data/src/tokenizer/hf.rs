//! Hugging Face model folders: `tokenizer.json` plus the BOS/EOS facts spread
//! over `tokenizer_config.json`, `generation_config.json` and `config.json`.

use std::path::Path;

use serde_json::Value;
use tokenizers::models::ModelWrapper;

use super::{Info, TextStyle, TextTokenizer, TokenizerError};

/// `tokenizer.json` alone.
pub(super) fn from_file(path: &Path) -> Result<TextTokenizer, TokenizerError> {
    let (inner, loaded) = load(path)?;
    let adds_bos = loaded.post_processor_bos.is_some();
    let info = Info {
        source: path.display().to_string(),
        kind: loaded.kind,
        vocab_size: None,
        bos_id: loaded.post_processor_bos,
        eos_id: None,
        adds_bos,
        style: loaded.style,
    };
    TextTokenizer::new(inner, info)
}

/// A model folder.
pub(super) fn from_folder(dir: &Path) -> Result<TextTokenizer, TokenizerError> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Err(TokenizerError::MissingTokenizerJson {
            dir: dir.display().to_string(),
            has_sentencepiece_model: dir.join("tokenizer.model").is_file(),
        });
    }
    let (inner, loaded) = load(&path)?;

    let tokenizer_config = Config::read(&dir.join("tokenizer_config.json"))?;
    let generation_config = Config::read(&dir.join("generation_config.json"))?;
    let model_config = Config::read(&dir.join("config.json"))?;

    let token_id = |config: &Config, key: &str| -> Result<Option<u32>, TokenizerError> {
        let Some(token) = config.token(key)? else {
            return Ok(None);
        };
        match inner.token_to_id(&token) {
            Some(id) => Ok(Some(id)),
            None => Err(config.error(key, format!("`{token}`"), "a token of the vocabulary")),
        }
    };
    let config_id = |key: &str| -> Result<Option<u32>, TokenizerError> {
        match generation_config.id(key)? {
            Some(id) => Ok(Some(id)),
            None => model_config.id(key),
        }
    };

    let bos_id = match loaded.post_processor_bos {
        Some(id) => Some(id),
        None => match token_id(&tokenizer_config, "bos_token")? {
            Some(id) => Some(id),
            None => config_id("bos_token_id")?,
        },
    };
    let eos_id = match token_id(&tokenizer_config, "eos_token")? {
        Some(id) => Some(id),
        None => config_id("eos_token_id")?,
    };
    let adds_bos = tokenizer_config
        .bool("add_bos_token")?
        .unwrap_or(loaded.post_processor_bos.is_some());
    let source = path.display().to_string();
    if adds_bos && bos_id.is_none() {
        return Err(TokenizerError::BosWithoutId { file: source });
    }
    let info = Info {
        source,
        kind: loaded.kind,
        vocab_size: None,
        bos_id,
        eos_id,
        adds_bos,
        style: loaded.style,
    };
    TextTokenizer::new(inner, info)
}

/// What `tokenizer.json` itself says.
struct Loaded {
    kind: String,
    style: TextStyle,
    /// The id of the special token the post-processor puts first, if any.
    post_processor_bos: Option<u32>,
}

fn load(path: &Path) -> Result<(tokenizers::Tokenizer, Loaded), TokenizerError> {
    let name = path.display().to_string();
    let bytes = fs_err::read(path).map_err(|source| TokenizerError::Read {
        path: name.clone(),
        source,
    })?;
    // The `tokenizers` library panics on some syntax errors (its decoder's
    // deserializer expects valid JSON) and on a few values: all are checked
    // first, as errors of the kind it gives.
    let load_error = |source: tokenizers::Error| TokenizerError::Load {
        path: name.clone(),
        source,
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| load_error(e.into()))?;
    check_for_library_panics(&value).map_err(|e| load_error(e.into()))?;
    drop(value);
    let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(load_error)?;

    // The components in their tokenizer.json form, to inspect without
    // depending on the library's internal fields.
    let as_json = |value: Result<Value, serde_json::Error>| value.unwrap_or(Value::Null);
    let pre_tokenizer = as_json(serde_json::to_value(inner.get_pre_tokenizer()));
    let decoder = as_json(serde_json::to_value(inner.get_decoder()));
    let post_processor = as_json(serde_json::to_value(inner.get_post_processor()));

    let byte_level = has_type(&pre_tokenizer, "ByteLevel") || has_type(&decoder, "ByteLevel");
    let sentencepiece_like = has_type(&decoder, "ByteFallback")
        || has_type(&decoder, "Metaspace")
        || has_type(&pre_tokenizer, "Metaspace");
    let (kind, style) = match inner.get_model() {
        ModelWrapper::BPE(bpe) if byte_level => ("bpe (byte-level)", TextStyle::ByteLevel),
        ModelWrapper::BPE(bpe) if bpe.byte_fallback => {
            ("bpe (byte fallback)", TextStyle::SentencePiece)
        }
        ModelWrapper::BPE(_) if sentencepiece_like => ("bpe", TextStyle::SentencePiece),
        ModelWrapper::BPE(_) => ("bpe", TextStyle::Raw),
        ModelWrapper::Unigram(_) => ("unigram", TextStyle::SentencePiece),
        ModelWrapper::WordPiece(_) => ("wordpiece", TextStyle::Raw),
        ModelWrapper::WordLevel(_) => ("wordlevel", TextStyle::Raw),
    };
    let loaded = Loaded {
        kind: kind.to_owned(),
        style,
        post_processor_bos: leading_special_token(&post_processor),
    };
    Ok((inner, loaded))
}

/// What the `tokenizers` library panics on instead of returning an error:
/// an unreadable `Precompiled` normalizer anywhere in `value`, and a BPE
/// merge whose result is not in the vocabulary (the library copies it into
/// a buffer as long as the longest token before it looks it up, and cuts
/// `continuing_subword_prefix` off the right token unchecked).
fn check_for_library_panics(value: &Value) -> Result<(), serde_json::Error> {
    check_precompiled(value)?;
    let model = &value["model"];
    let (Some(vocab), Some(merges)) = (model["vocab"].as_object(), model["merges"].as_array())
    else {
        return Ok(());
    };
    let prefix = model["continuing_subword_prefix"].as_str().unwrap_or("");
    for merge in merges {
        // `"left right"` or `["left", "right"]`
        let (left, right) = match merge {
            Value::String(s) => match s.split_once(' ') {
                Some(pair) => pair,
                None => continue,
            },
            _ => match (merge[0].as_str(), merge[1].as_str()) {
                (Some(left), Some(right)) => (left, right),
                _ => continue,
            },
        };
        let merged = right
            .get(prefix.len()..)
            .map(|rest| format!("{left}{rest}"))
            .filter(|merged| vocab.contains_key(merged));
        if merged.is_none() {
            return Err(serde::de::Error::custom(format!(
                "the merge of `{left}` and `{right}` is not in the vocabulary"
            )));
        }
    }
    Ok(())
}

/// Every object of `value` whose `type` is `Precompiled` reads as the
/// library's precompiled normalizer.
fn check_precompiled(value: &Value) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("Precompiled") {
                serde_json::from_value::<tokenizers::normalizers::Precompiled>(value.clone())?;
            }
            map.values().try_for_each(check_precompiled)
        }
        Value::Array(items) => items.iter().try_for_each(check_precompiled),
        _ => Ok(()),
    }
}

/// Whether a component (in tokenizer.json form) is, or contains, one of `type`.
fn has_type(value: &Value, kind: &str) -> bool {
    match value {
        Value::Object(map) => {
            map.get("type").and_then(Value::as_str) == Some(kind)
                || map.values().any(|v| has_type(v, kind))
        }
        Value::Array(items) => items.iter().any(|v| has_type(v, kind)),
        _ => false,
    }
}

/// The id of the special token a post-processor puts before a single
/// sequence: `TemplateProcessing` whose `single` starts with a special token,
/// `BertProcessing`/`RobertaProcessing` (their `cls`), or the first of a
/// `Sequence` that adds one.
fn leading_special_token(processor: &Value) -> Option<u32> {
    let id_of = |v: &Value| v.as_u64().and_then(|id| u32::try_from(id).ok());
    match processor.get("type")?.as_str()? {
        "TemplateProcessing" => {
            let first = processor.get("single")?.as_array()?.first()?;
            let name = first.get("SpecialToken")?.get("id")?.as_str()?;
            let ids = processor
                .get("special_tokens")?
                .get(name)?
                .get("ids")?
                .as_array()?;
            id_of(ids.first()?)
        }
        "BertProcessing" | "RobertaProcessing" => id_of(processor.get("cls")?.get(1)?),
        "Sequence" => processor
            .get("processors")?
            .as_array()?
            .iter()
            .find_map(leading_special_token),
        _ => None,
    }
}

/// An optional JSON config file of a model folder.
struct Config {
    path: String,
    value: Value,
}

impl Config {
    /// Reads `path`, or an empty config when the file does not exist.
    fn read(path: &Path) -> Result<Self, TokenizerError> {
        let name = path.display().to_string();
        let value = match fs_err::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| TokenizerError::Json {
                path: name.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
            Err(source) => return Err(TokenizerError::Read { path: name, source }),
        };
        Ok(Config { path: name, value })
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    fn error(&self, key: &str, found: String, expected: &'static str) -> TokenizerError {
        TokenizerError::Config {
            path: self.path.clone(),
            key: key.to_owned(),
            found,
            expected,
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, TokenizerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.error(key, other.to_string(), "a boolean")),
        }
    }

    /// A token given as `"<s>"` or `{"content": "<s>", …}`.
    fn token(&self, key: &str) -> Result<Option<String>, TokenizerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Object(map)) => match map.get("content") {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                _ => Err(self.error(key, Value::Object(map.clone()).to_string(), "a token")),
            },
            Some(other) => Err(self.error(key, other.to_string(), "a token")),
        }
    }

    /// A token id given as `2` or `[2, 32000]` (the first is taken).
    fn id(&self, key: &str) -> Result<Option<u32>, TokenizerError> {
        let value = match self.get(key) {
            None => return Ok(None),
            Some(Value::Array(items)) => match items.first() {
                None => return Ok(None),
                Some(first) => first,
            },
            Some(value) => value,
        };
        value
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .map(Some)
            .ok_or_else(|| self.error(key, value.to_string(), "a token id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by fuzzing (fuzz/regressions/tokenizer_json/): a syntax error
    /// inside `decoder`, and a merge longer than every token, made the
    /// `tokenizers` library panic; so do a merge token shorter than the
    /// BPE's `continuing_subword_prefix` and an unreadable `Precompiled`
    /// normalizer (found reading its code).
    #[test]
    fn a_syntax_error_in_a_component_is_a_load_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("tokenizer.json");
        for text in [
            r#"{"version": "1.0", "decoder": {"type": "ByteLevel", "x" 1}}"#,
            r#"{"version": "1.0", "normalizer": {"type": "Precompiled", "precompiled_charsmap": 5}}"#,
            r#"{"model": {"type": "BPE", "continuing_subword_prefix": "@@", "vocab": {"a": 0, "b": 1},
                "merges": ["a b"]}}"#,
            // the cut would split `é`: invalid UTF-8 the library takes as text
            r#"{"model": {"type": "BPE", "continuing_subword_prefix": "@", "vocab": {"a": 0, "é": 1},
                "merges": [["a", "é"]]}}"#,
            r#"{"model": {"type": "BPE", "vocab": {"a": 0, "bc": 1}, "merges": ["a bc"]}}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            let err = from_file(&path).err().unwrap();
            assert!(matches!(err, TokenizerError::Load { .. }), "{err:?}");
        }
    }

    #[test]
    fn post_processor_bos_is_found() {
        let template = json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        });
        assert_eq!(leading_special_token(&template), Some(1));
        let plain = json!({
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [],
            "special_tokens": {}
        });
        assert_eq!(leading_special_token(&plain), None);
        let bert = json!({"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]});
        assert_eq!(leading_special_token(&bert), Some(101));
        let sequence = json!({"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
            template
        ]});
        assert_eq!(leading_special_token(&sequence), Some(1));
        assert_eq!(leading_special_token(&Value::Null), None);
    }

    /// A folder with a word-level `tokenizer.json` and the given config files.
    fn folder(post_processor: Value, files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let tokenizer = json!({
            "version": "1.0",
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": post_processor,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"<s>": 0, "</s>": 1, "a": 2, "<unk>": 3}, "unk_token": "<unk>"}
        });
        std::fs::write(dir.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn folder_configs_give_bos_and_eos() {
        let dir = folder(
            Value::Null,
            &[(
                "tokenizer_config.json",
                r#"{"add_bos_token": true, "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"}"#,
            )],
        );
        let tok = TextTokenizer::from_hf_folder(dir.path()).unwrap();
        assert_eq!(
            (tok.bos_id(), tok.eos_id(), tok.adds_bos()),
            (Some(0), Some(1), true)
        );
        assert_eq!(tok.kind(), "wordlevel");
        assert_eq!(tok.vocab_size(), 4);
        assert_eq!(tok.encode("a a").unwrap(), [2, 2]);

        let dir = folder(
            Value::Null,
            &[
                (
                    "generation_config.json",
                    r#"{"bos_token_id": 0, "eos_token_id": [1, 3]}"#,
                ),
                ("config.json", r#"{"bos_token_id": 3, "eos_token_id": 3}"#),
            ],
        );
        let tok = TextTokenizer::from_hf_folder(dir.path()).unwrap();
        assert_eq!(
            (tok.bos_id(), tok.eos_id(), tok.adds_bos()),
            (Some(0), Some(1), false)
        );

        let dir = folder(
            Value::Null,
            &[(
                "config.json",
                r#"{"bos_token_id": 0, "eos_token_id": null}"#,
            )],
        );
        let tok = TextTokenizer::from_hf_folder(dir.path()).unwrap();
        assert_eq!((tok.bos_id(), tok.eos_id()), (Some(0), None));
    }

    #[test]
    fn post_processor_decides_add_bos_unless_the_config_says() {
        let template = json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}
        });
        let dir = folder(template.clone(), &[]);
        let tok = TextTokenizer::from_hf_folder(dir.path()).unwrap();
        assert_eq!((tok.bos_id(), tok.adds_bos()), (Some(0), true));
        // encode never adds it.
        assert_eq!(tok.encode("a").unwrap(), [2]);
        let alone = TextTokenizer::from_tokenizer_json(&dir.path().join("tokenizer.json")).unwrap();
        assert_eq!(
            (alone.bos_id(), alone.adds_bos(), alone.eos_id()),
            (Some(0), true, None)
        );

        let dir = folder(
            template,
            &[("tokenizer_config.json", r#"{"add_bos_token": false}"#)],
        );
        let tok = TextTokenizer::from_hf_folder(dir.path()).unwrap();
        assert_eq!((tok.bos_id(), tok.adds_bos()), (Some(0), false));
    }

    #[test]
    fn truncation_and_padding_in_the_file_are_ignored() {
        let dir = folder(Value::Null, &[]);
        let path = dir.path().join("tokenizer.json");
        let mut tokenizer: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        tokenizer["truncation"] =
            json!({"direction": "Right", "max_length": 1, "strategy": "LongestFirst", "stride": 0});
        tokenizer["padding"] = json!({"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": null, "pad_id": 3, "pad_type_id": 0, "pad_token": "<unk>"});
        std::fs::write(&path, tokenizer.to_string()).unwrap();
        let tok = TextTokenizer::from_tokenizer_json(&path).unwrap();
        assert_eq!(tok.encode("a a a").unwrap(), [2, 2, 2]);
    }

    #[test]
    fn folder_errors_name_the_file() {
        let dir = folder(
            Value::Null,
            &[("tokenizer_config.json", r#"{"add_bos_token": true}"#)],
        );
        let err = TextTokenizer::from_hf_folder(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::BosWithoutId { .. }), "{err}");

        let dir = folder(
            Value::Null,
            &[("tokenizer_config.json", r#"{"bos_token": "<bos>"}"#)],
        );
        let err = TextTokenizer::from_hf_folder(dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(message.ends_with("tokenizer_config.json`: `bos_token` is `<bos>`, expected a token of the vocabulary"), "{message}");

        let dir = folder(Value::Null, &[("generation_config.json", "{not json")]);
        let err = TextTokenizer::from_hf_folder(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::Json { .. }), "{err}");
        assert!(err.to_string().contains("generation_config.json"));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer.model"), b"").unwrap();
        let err = TextTokenizer::from_hf_folder(dir.path()).unwrap_err();
        assert!(err.to_string().starts_with("no `tokenizer.json` in `"));
        assert!(err.hint().unwrap().contains("save_pretrained"));

        std::fs::write(dir.path().join("tokenizer.json"), b"{\"model\": 3}").unwrap();
        let err = TextTokenizer::from_hf_folder(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::Load { .. }), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
