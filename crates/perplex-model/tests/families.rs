//! Every model family against transformers: the tiny seeded models of
//! `scripts/make_family_fixtures.py` (`tests/fixtures/tiny-<family>`), their
//! GGUF twins, and the goldens in `tests/fixtures/families.json`
//! (transformers' f32 NLLs, computed one window at a time).

mod common;

use common::{assert_same_scores, check_model, check_spec, fixtures, ids, windows_by_model};
use perplex_data::tokenizer::TextTokenizer;
use perplex_model::{load, load_model, Family, LoadOptions};
use serde_json::Value;

const FAMILIES: &[&str] = &[
    "gpt2", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3",
];

fn families_json() -> Value {
    let text = std::fs::read_to_string(fixtures().join("families.json")).expect("families.json");
    serde_json::from_str(&text).expect("valid families.json")
}

#[test]
#[allow(clippy::print_stderr)] // the margins, for `--nocapture` readers
fn every_family_matches_transformers_in_every_batching() {
    let by_model = windows_by_model("families.json");
    for family in FAMILIES {
        let name = format!("tiny-{family}");
        let windows = by_model
            .get(&name)
            .unwrap_or_else(|| panic!("families.json has no windows for {name}"));
        // windows in batches of all, 1 and 3: right-padding inside a batch
        let (worst, ties) = check_model(&name, windows);
        eprintln!("{name}: largest |nll - transformers| {worst:.2e}, near-ties {ties:?}");
        assert!(ties.len() <= 1, "{name}: argmax near-ties {ties:?}");
    }
}

/// A multimodal Gemma 3 checkpoint (`Gemma3ForConditionalGeneration`, made
/// by `scripts/make_gemma3_multimodal_fixture.py` with tiny-gemma3's text
/// weights and a tiny vision tower) is evaluated through its text tower,
/// exactly as tiny-gemma3.
#[test]
fn a_multimodal_gemma3_scores_like_its_text_tower() {
    let by_model = windows_by_model("families.json");
    let windows = &by_model["tiny-gemma3"];
    let spec = fixtures().join("tiny-gemma3-mm");
    let (worst, _) = check_spec("tiny-gemma3-mm", spec.to_str().unwrap(), windows);
    assert!(worst <= 1e-4);
    let loaded = load(spec.to_str().unwrap(), &LoadOptions::default()).unwrap();
    assert_eq!(
        loaded.identity.architecture,
        "Gemma3ForConditionalGeneration"
    );
    assert_eq!(loaded.family, Some(Family::Gemma3));
    // only the text tower is loaded
    let text = load(
        fixtures().join("tiny-gemma3").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(loaded.identity.parameters, text.identity.parameters);
}

#[test]
fn gguf_twins_score_like_their_folders() {
    for family in FAMILIES {
        let hf = format!("tiny-{family}");
        assert_same_scores("families.json", &hf, &format!("{hf}.gguf"), 1e-5);
    }
}

#[test]
fn windows_longer_than_the_sliding_window_are_covered() {
    let by_model = windows_by_model("families.json");
    for (family, window) in [("gemma2", 8), ("gemma3", 8), ("phi3", 24)] {
        let name = format!("tiny-{family}");
        let (model, _) = load_model(
            fixtures().join(&name).to_str().unwrap(),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(model.config().sliding_windows(), vec![window], "{name}");
        let longest = by_model[&name]
            .iter()
            .map(|w| w.tokens.len())
            .max()
            .unwrap();
        assert!(longest > 2 * window, "{name}: longest window {longest}");
    }
}

#[test]
fn families_and_architectures_are_detected() {
    for (family, expected) in [
        ("gpt2", Family::Gpt2),
        ("qwen2", Family::Qwen2),
        ("qwen3", Family::Qwen3),
        ("gemma", Family::Gemma),
        ("gemma2", Family::Gemma2),
        ("gemma3", Family::Gemma3),
        ("phi3", Family::Phi3),
    ] {
        for file in [format!("tiny-{family}"), format!("tiny-{family}.gguf")] {
            let loaded = load(
                fixtures().join(&file).to_str().unwrap(),
                &LoadOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(loaded.family, Some(expected), "{file}");
            assert_eq!(loaded.identity.family.as_deref(), Some(expected.name()));
            assert!(loaded.checks.is_empty(), "{file}: {:?}", loaded.checks);
        }
    }
}

/// The HF folder's tokenizer and the GGUF twin's embedded one give
/// transformers' ids (`add_special_tokens=False`) on every golden text.
#[test]
fn folder_and_gguf_tokenizers_give_the_golden_ids() {
    let goldens = families_json();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for entry in goldens["tokenization"].as_array().unwrap() {
        let model = entry["model"].as_str().unwrap();
        let text = entry["text"].as_str().unwrap();
        let expected = ids(&entry["ids"]);
        let folder = TextTokenizer::from_hf_folder(&fixtures().join(model)).unwrap();
        if folder.encode(text).unwrap() != expected {
            wrong.push(format!("{model} folder: {text:?}"));
        }
        let gguf = load(
            fixtures().join(format!("{model}.gguf")).to_str().unwrap(),
            &LoadOptions::default(),
        )
        .unwrap()
        .tokenizer;
        let got = gguf.encode(text).unwrap();
        if got != expected {
            wrong.push(format!("{model}.gguf: {text:?}: {got:?} vs {expected:?}"));
        }
        checked += 1;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked >= 7 * 10, "{checked} tokenization cases");
}

/// The GGUF tokenizers in llama.cpp's mode (special-token text kept as text)
/// give the ids of the reference the script used (sentencepiece, or the
/// `tokenizers` byte-level BPE).
#[test]
fn gguf_tokenizers_in_llama_cpp_mode_give_the_reference_ids() {
    let goldens = families_json();
    let mut wrong = Vec::new();
    let cases = goldens["gguf_tokenization"].as_array().unwrap();
    assert!(cases.len() >= 7 * 10, "{} cases", cases.len());
    for entry in cases {
        let model = entry["model"].as_str().unwrap();
        let text = entry["text"].as_str().unwrap();
        let parse_special = entry["parse_special"].as_bool().unwrap();
        let expected = ids(&entry["ids"]);
        let tokenizer = load(
            fixtures().join(model).to_str().unwrap(),
            &LoadOptions::default(),
        )
        .unwrap()
        .tokenizer
        .with_parse_special(parse_special);
        let got = tokenizer.encode(text).unwrap();
        if got != expected {
            wrong.push(format!("{model} ({}): {text:?}", entry["reference"]));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
