//! Scores the fixture windows of `tests/fixtures/goldens.json` (transformers'
//! f32 NLLs, see `scripts/make_fixtures.py`) with every fixture model, in
//! every batching, and checks them to 1e-4 nats per token.

use std::collections::BTreeMap;
use std::path::PathBuf;

use perplex_core::{CausalLm, TokenScore, WindowRef};
use perplex_model::{load_model, Decoder, LoadOptions};
use serde::Deserialize;

const TOLERANCE: f64 = 1e-4;
/// Argmax may differ from transformers only where the top two logits are this close.
const ARGMAX_TIE: f64 = 1e-5;

#[derive(Debug, Deserialize)]
struct Goldens {
    windows: Vec<GoldenWindow>,
}

#[derive(Debug, Clone, Deserialize)]
struct GoldenWindow {
    model: String,
    name: String,
    tokens: Vec<u32>,
    score_from: usize,
    nll: Vec<f64>,
    argmax: Vec<u32>,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn goldens() -> BTreeMap<String, Vec<GoldenWindow>> {
    let text = std::fs::read_to_string(fixtures().join("goldens.json")).expect("goldens.json");
    let goldens: Goldens = serde_json::from_str(&text).expect("valid goldens.json");
    let mut by_model: BTreeMap<String, Vec<GoldenWindow>> = BTreeMap::new();
    for w in goldens.windows {
        by_model.entry(w.model.clone()).or_default().push(w);
    }
    by_model
}

fn load(model: &str) -> Decoder {
    let path = fixtures().join(model);
    load_model(path.to_str().unwrap(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {model}: {e}"))
        .0
}

fn score(model: &mut Decoder, windows: &[GoldenWindow], batch: usize) -> Vec<Vec<TokenScore>> {
    windows
        .chunks(batch)
        .flat_map(|chunk| {
            let refs: Vec<WindowRef<'_>> = chunk
                .iter()
                .map(|w| WindowRef {
                    tokens: &w.tokens,
                    score_from: w.score_from,
                })
                .collect();
            model.score_batch(&refs).expect("scoring")
        })
        .collect()
}

/// `-log p(candidate | tokens[..position])`.
fn nll_of(model: &mut Decoder, tokens: &[u32], position: usize, candidate: u32) -> f64 {
    let mut t = tokens[..position].to_vec();
    t.push(candidate);
    let s = model
        .score_batch(&[WindowRef {
            tokens: &t,
            score_from: position,
        }])
        .unwrap();
    s[0][0].nll
}

/// Checks one model against its goldens; returns the largest NLL difference
/// and the argmax near-ties tolerated.
fn check_model(name: &str, windows: &[GoldenWindow]) -> (f64, Vec<String>) {
    let mut model = load(name);
    let mut near_ties = Vec::new();
    let mut worst = 0.0f64;
    let all = windows.len();
    for batch in [all, 1, 3] {
        let scores = score(&mut model, windows, batch);
        for (w, s) in windows.iter().zip(&scores) {
            assert_eq!(s.len(), w.nll.len(), "{name}/{}", w.name);
            for (i, (got, (&nll, &arg))) in s.iter().zip(w.nll.iter().zip(&w.argmax)).enumerate() {
                let pos = w.score_from + i;
                worst = worst.max((got.nll - nll).abs());
                assert!(
                    (got.nll - nll).abs() <= TOLERANCE,
                    "{name}/{} position {pos} (batch {batch}): nll {} vs transformers {nll}",
                    w.name,
                    got.nll
                );
                if got.argmax != arg {
                    // logit difference = difference of the two NLLs
                    let gap = (nll_of(&mut model, &w.tokens, pos, arg)
                        - nll_of(&mut model, &w.tokens, pos, got.argmax))
                    .abs();
                    assert!(
                        gap <= ARGMAX_TIE,
                        "{name}/{} position {pos}: argmax {} vs transformers {arg} (logit gap {gap})",
                        w.name,
                        got.argmax
                    );
                    near_ties.push(format!("{name}/{} position {pos} (gap {gap:e})", w.name));
                }
            }
        }
    }
    (worst, near_ties)
}

#[test]
#[allow(clippy::print_stderr)] // the margins, for `--nocapture` readers
fn every_fixture_model_matches_transformers() {
    let by_model = goldens();
    assert!(
        by_model.len() >= 13,
        "models in goldens.json: {:?}",
        by_model.keys()
    );
    let mut near_ties = Vec::new();
    for (name, windows) in &by_model {
        let (worst, ties) = check_model(name, windows);
        eprintln!("{name}: largest |nll - transformers| {worst:.2e}");
        near_ties.extend(ties);
    }
    // None so far; a tolerated near-tie is reported so that it stays visible.
    eprintln!("argmax near-ties tolerated: {near_ties:?}");
    assert!(near_ties.len() <= 2, "argmax near-ties: {near_ties:?}");
}

fn assert_same_scores(a: &str, b: &str, tolerance: f64) {
    let by_model = goldens();
    let windows = &by_model[a];
    let other: Vec<&str> = by_model[b].iter().map(|w| w.name.as_str()).collect();
    assert_eq!(
        windows.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        other
    );
    let sa = score(&mut load(a), windows, windows.len());
    let sb = score(&mut load(b), &by_model[b], windows.len());
    for ((w, x), y) in windows.iter().zip(&sa).zip(&sb) {
        for (i, (x, y)) in x.iter().zip(y).enumerate() {
            assert!(
                (x.nll - y.nll).abs() <= tolerance,
                "{}: {a} {} vs {b} {} at {}",
                w.name,
                x.nll,
                y.nll,
                w.score_from + i
            );
            assert_eq!(x.argmax, y.argmax);
        }
    }
}

#[test]
fn f32_gguf_equals_the_hf_folder() {
    assert_same_scores("tiny-llama", "tiny-llama-f32.gguf", 1e-5);
    assert_same_scores("tiny-llama-tied", "tiny-llama-tied-f32.gguf", 1e-5);
    assert_same_scores("tiny-llama", "tiny-llama-sharded", 0.0);
}

#[test]
fn identities_describe_the_weights() {
    let (_, id) = load_model(
        fixtures().join("tiny-llama-q4_1.gguf").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(id.format, "gguf");
    assert_eq!(id.architecture, "llama");
    assert_eq!(id.compute_dtype, "f32");
    assert_eq!(id.hash.algorithm, "blake3");
    assert_eq!(id.hash.value.len(), 64);
    assert!(id.weights.starts_with("q4_1: "), "{}", id.weights);
    let (_, hf) = load_model(
        fixtures().join("tiny-llama").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(hf.format, "hf-folder");
    assert_eq!(hf.architecture, "LlamaForCausalLM");
    assert_eq!(hf.parameters, id.parameters);
    let (_, bf16) = load_model(
        fixtures().join("tiny-llama-bf16").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(bf16.weights.starts_with("bf16: "), "{}", bf16.weights);
    assert_ne!(bf16.hash, hf.hash);
}

#[test]
fn load_brings_the_tokenizer() {
    for model in ["tiny-llama", "tiny-llama-q8_0.gguf", "tiny-llama-spm.gguf"] {
        let spec = fixtures().join(model);
        let loaded = perplex_model::load(spec.to_str().unwrap(), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        let vocab = loaded.model.info().vocab_size;
        assert!(loaded.tokenizer.vocab_size() <= vocab, "{model}");
        assert!(!loaded.tokenizer.encode("Hello world").unwrap().is_empty());
    }
}
