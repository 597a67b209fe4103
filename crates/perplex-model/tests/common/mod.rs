//! Shared by the golden tests: scoring fixture models against the windows
//! of a goldens file (`goldens.json`, `families.json`) made by the fixture
//! scripts with transformers in f32.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeMap;
use std::path::PathBuf;

use perplex_core::{CausalLm, TokenScore, WindowRef};
use perplex_model::{load_model, Decoder, LoadOptions};
use serde::Deserialize;

pub const TOLERANCE: f64 = 1e-4;
/// Argmax may differ from transformers only where the top two logits are this close.
pub const ARGMAX_TIE: f64 = 1e-5;

#[derive(Debug, Deserialize)]
struct Goldens {
    windows: Vec<GoldenWindow>,
}

/// One window and transformers' scores of it.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenWindow {
    pub model: String,
    pub name: String,
    pub tokens: Vec<u32>,
    pub score_from: usize,
    pub nll: Vec<f64>,
    pub argmax: Vec<u32>,
}

/// The committed fixtures (`perplex_testkit` owns where things are).
pub fn fixtures() -> PathBuf {
    perplex_testkit::fixtures()
}

/// A JSON array of token ids.
pub fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an array of ids")
        .iter()
        .map(|v| u32::try_from(v.as_u64().expect("an id")).expect("a u32 id"))
        .collect()
}

/// The windows of the goldens file `file`, by model.
pub fn windows_by_model(file: &str) -> BTreeMap<String, Vec<GoldenWindow>> {
    let path = fixtures().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; regenerate it with the fixture scripts",
            path.display()
        )
    });
    let goldens: Goldens =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut by_model: BTreeMap<String, Vec<GoldenWindow>> = BTreeMap::new();
    for w in goldens.windows {
        by_model.entry(w.model.clone()).or_default().push(w);
    }
    by_model
}

pub fn load(model: &str) -> Decoder {
    load_spec(fixtures().join(model).to_str().unwrap())
}

/// Loads any model spec (`BASE+ADAPTER` included).
pub fn load_spec(spec: &str) -> Decoder {
    load_model(spec, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {spec}: {e}"))
        .0
}

pub fn score(model: &mut Decoder, windows: &[GoldenWindow], batch: usize) -> Vec<Vec<TokenScore>> {
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
pub fn check_model(name: &str, windows: &[GoldenWindow]) -> (f64, Vec<String>) {
    check_spec(name, fixtures().join(name).to_str().unwrap(), windows)
}

/// [`check_model`] for the model `spec` loads, reported as `name`.
pub fn check_spec(name: &str, spec: &str, windows: &[GoldenWindow]) -> (f64, Vec<String>) {
    let mut model = load_spec(spec);
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

/// Scores `a`'s windows with models `a` and `b` and requires equal argmaxes
/// and NLLs within `tolerance` (a GGUF twin against its HF folder).
pub fn assert_same_scores(file: &str, a: &str, b: &str, tolerance: f64) {
    let by_model = windows_by_model(file);
    let windows = by_model
        .get(a)
        .unwrap_or_else(|| panic!("{file} has no windows for {a}"));
    let sa = score(&mut load(a), windows, windows.len());
    let sb = score(&mut load(b), windows, windows.len());
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
            assert_eq!(
                x.argmax,
                y.argmax,
                "{}: {a} vs {b} at {}",
                w.name,
                w.score_from + i
            );
        }
    }
}
