//! Tokenizers built from the fixtures (`tests/fixtures/`, made by
//! `scripts/make_fixtures.py`) give the ids in `goldens.json`:
//!
//! - `tokenizer.json` entries are Hugging Face `tokenizers` with special-token
//!   text matched; each is checked loaded alone and as a model folder;
//! - `.gguf` entries are what llama.cpp gives (special-token text kept as
//!   text): the byte-level one equals the `tokenizer.json`, the SentencePiece
//!   one equals `sentencepiece` itself, which the HF-style `Prepend("▁")`
//!   normalizer reproduces (it always prepends `▁`, unlike the `Metaspace`
//!   of the fixture's own `tokenizer.json`).

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use perplex_data::tokenizer::TextTokenizer;
use perplex_model::gguf_vocab::vocab_from_gguf;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn goldens() -> Value {
    let path = fixtures().join("goldens.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; regenerate with scripts/make-fixtures.sh",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn gguf_tokenizer(name: &str) -> TextTokenizer {
    let path = fixtures().join(name);
    let mut file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let content = gguf_file::Content::read(&mut file).unwrap();
    let vocab = vocab_from_gguf(&content).unwrap();
    TextTokenizer::from_gguf_vocab(&vocab, name).unwrap()
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|id| u32::try_from(id.as_u64().unwrap()).unwrap())
        .collect()
}

#[test]
fn every_tokenizer_gives_the_golden_ids() {
    let goldens = goldens();
    let mut checked = 0;
    for entry in goldens["tokenization"].as_array().unwrap() {
        let name = entry["tokenizer"].as_str().unwrap();
        let text = entry["text"].as_str().unwrap();
        let parse_special = entry["parse_special"].as_bool().unwrap();
        let expected = ids(&entry["ids"]);
        let tokenizers: Vec<(String, TextTokenizer)> = if name.ends_with(".gguf") {
            vec![(
                name.to_owned(),
                gguf_tokenizer(name).with_parse_special(parse_special),
            )]
        } else if let Some(dir) = name.strip_suffix("/tokenizer.json") {
            assert!(
                parse_special,
                "{name}: tokenizer.json goldens parse special tokens"
            );
            vec![
                (
                    name.to_owned(),
                    TextTokenizer::from_tokenizer_json(&fixtures().join(name)).unwrap(),
                ),
                (
                    format!("{dir}/"),
                    TextTokenizer::from_hf_folder(&fixtures().join(dir)).unwrap(),
                ),
            ]
        } else {
            // sentencepiece's own ids (`tokenizer.model`): the SPM GGUF entries
            // carry the same texts and ids.
            continue;
        };
        for (label, tokenizer) in tokenizers {
            assert_eq!(
                tokenizer.encode(text).unwrap(),
                expected,
                "{label}: {text:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 48, "only {checked} golden tokenizations checked");
}

#[test]
fn special_tokens_match_the_goldens() {
    let goldens = goldens();
    let special = &goldens["special_tokens"];
    let bos = |family: &str| special[family]["bos"].as_u64().map(|id| id as u32);
    let eos = |family: &str| special[family]["eos"].as_u64().map(|id| id as u32);

    let folder = TextTokenizer::from_hf_folder(&fixtures().join("tiny-llama")).unwrap();
    assert_eq!((folder.bos_id(), folder.eos_id()), (bos("bpe"), eos("bpe")));
    assert!(folder.adds_bos());
    assert_eq!(folder.vocab_size(), 384);
    assert_eq!(folder.identity().kind, "bpe (byte-level)");
    assert!(folder
        .identity()
        .source
        .ends_with("tiny-llama/tokenizer.json"));

    let gguf = gguf_tokenizer("tiny-llama-f32.gguf");
    assert_eq!((gguf.bos_id(), gguf.eos_id()), (bos("bpe"), eos("bpe")));
    assert!(gguf.adds_bos());
    assert_eq!(gguf.vocab_size(), 384);
    assert_eq!(gguf.identity().kind, "gguf gpt2 (pre: smollm)");
    assert_eq!(gguf.identity().source, "gguf:tiny-llama-f32.gguf");

    let spm_folder = TextTokenizer::from_hf_folder(&fixtures().join("tiny-llama-spm-hf")).unwrap();
    assert_eq!(
        (spm_folder.bos_id(), spm_folder.eos_id()),
        (bos("spm"), eos("spm"))
    );
    assert!(spm_folder.adds_bos());
    assert_eq!(spm_folder.identity().kind, "bpe (byte fallback)");

    let spm = gguf_tokenizer("tiny-llama-spm.gguf");
    assert_eq!((spm.bos_id(), spm.eos_id()), (bos("spm"), eos("spm")));
    assert!(spm.adds_bos());
    assert_eq!(spm.vocab_size(), 400);
    assert_eq!(spm.identity().kind, "gguf llama (sentencepiece)");
}

/// The merges derived from the SentencePiece scores are the ones Hugging
/// Face's converter wrote into the fixture's tokenizer.json, in order.
#[test]
fn sentencepiece_merges_match_the_hf_conversion() {
    let ours: Value = serde_json::from_str(
        &gguf_tokenizer("tiny-llama-spm.gguf")
            .to_tokenizer_json(false)
            .unwrap(),
    )
    .unwrap();
    let path = fixtures().join("tiny-llama-spm-hf/tokenizer.json");
    let theirs: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(ours["model"]["merges"], theirs["model"]["merges"]);
    assert_eq!(ours["model"]["vocab"], theirs["model"]["vocab"]);
}

/// Decoding the pieces of a tokenization gives the text back.
#[test]
fn token_texts_rebuild_the_text() {
    let text = "Hello world: 12 apples,\tcake\n";
    for tokenizer in [
        gguf_tokenizer("tiny-llama-f32.gguf"),
        TextTokenizer::from_hf_folder(&fixtures().join("tiny-llama")).unwrap(),
    ] {
        let pieces: String = tokenizer
            .encode(text)
            .unwrap()
            .into_iter()
            .map(|id| tokenizer.token_text(id))
            .collect();
        assert_eq!(pieces, text);
    }
    let spm = gguf_tokenizer("tiny-llama-spm.gguf");
    let pieces: String = spm
        .encode("Hello world")
        .unwrap()
        .into_iter()
        .map(|id| spm.token_text(id))
        .collect();
    assert_eq!(pieces, " Hello world");
}
