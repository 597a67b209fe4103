//! `compare` against the numbers of `scripts/make_lora_fixtures.py`
//! (`tests/fixtures/lora.json`): per-token KL divergence, top-1 agreement,
//! Δp and ΔNLL from transformers + peft logits, and their aggregates by
//! numpy; then the command line on fixtures and mocks.

mod common;

use common::{fixture, json_of, perplex, render, snapshot, FOUR_DECIMALS, LARGE_NUMBERS};
use perplex::core::compare::{PairStats, PairToken, PositionReduction};
use perplex::core::{CausalLm, WindowRef};
use perplex::model::{load_model, LoadOptions};
use serde_json::Value;

fn lora_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("lora.json")).unwrap()).unwrap()
}

fn spec(goldens: &Value, model: &str) -> String {
    let entry = &goldens["models"][model];
    let mut parts = vec![fixture(entry["base"].as_str().unwrap())];
    parts.extend(
        entry["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| fixture(a.as_str().unwrap())),
    );
    parts
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join("+")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `(tokens, score_from, base NLLs)` of the base's window `name`.
fn window(goldens: &Value, base: &str, name: &str) -> (Vec<u32>, usize, Vec<f64>) {
    let w = goldens["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["model"] == base && w["name"] == name)
        .unwrap();
    let tokens = w["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    (
        tokens,
        w["score_from"].as_u64().unwrap() as usize,
        floats(&w["nll"]),
    )
}

/// Every golden pair, position by position, through the seam's logit tiles
/// and the engine's reduction.
#[test]
#[allow(clippy::print_stderr)] // the margins, for `--nocapture` readers
fn pair_values_match_transformers_per_token() {
    let goldens = lora_json();
    for pair in goldens["pairs"].as_array().unwrap() {
        let (base, other) = (
            pair["base"].as_str().unwrap(),
            pair["other"].as_str().unwrap(),
        );
        let (mut mb, _) = load_model(&spec(&goldens, base), &LoadOptions::default()).unwrap();
        let (mut mo, _) = load_model(&spec(&goldens, other), &LoadOptions::default()).unwrap();
        let vocab = mb.info().vocab_size;
        let mut worst = [0.0f64; 3];
        for w in pair["windows"].as_array().unwrap() {
            let (tokens, score_from, _) = window(&goldens, base, w["name"].as_str().unwrap());
            let refs = [WindowRef {
                tokens: &tokens,
                score_from,
            }];
            let (tb, to) = (mb.logits(&refs).unwrap(), mo.logits(&refs).unwrap());
            let n = tb.positions();
            let mut reductions = vec![PositionReduction::new(2); n];
            let (mut bb, mut bo) = (Vec::new(), Vec::new());
            for first in (0..vocab).step_by(100) {
                let len = 100.min(vocab - first);
                tb.tile(first, len, &mut bb).unwrap();
                to.tile(first, len, &mut bo).unwrap();
                for (p, r) in reductions.iter_mut().enumerate() {
                    let rows = [&bb[p * len..(p + 1) * len], &bo[p * len..(p + 1) * len]];
                    r.update(&rows, first as u32, tokens[score_from + p]);
                }
            }
            let (kl, dp, dnll) = (floats(&w["kl"]), floats(&w["dp"]), floats(&w["dnll"]));
            for (i, r) in reductions.iter().enumerate() {
                let t = r.finish().unwrap().pairs[0];
                let err = [
                    (t.kl - kl[i]).abs(),
                    (t.dp - dp[i]).abs(),
                    (t.dnll - dnll[i]).abs(),
                ];
                for (wst, e) in worst.iter_mut().zip(err) {
                    *wst = wst.max(e);
                }
                assert!(
                    err[0] <= 1e-4 * (1.0 + kl[i]),
                    "{other} kl {} vs {}",
                    t.kl,
                    kl[i]
                );
                assert!(err[1] <= 2e-6, "{other} dp {} vs {}", t.dp, dp[i]);
                assert!(err[2] <= 5e-5, "{other} dnll {} vs {}", t.dnll, dnll[i]);
                assert_eq!(t.agree, w["top1_agree"][i].as_bool().unwrap(), "{other}");
            }
        }
        eprintln!(
            "{base} vs {other}: largest |Δ| kl {:.1e}, dp {:.1e}, dnll {:.1e}",
            worst[0], worst[1], worst[2]
        );
    }
}

/// The aggregation (means, standard errors, numpy percentiles, RMS,
/// correlation) of the golden per-token values equals numpy's to 1e-6.
#[test]
fn aggregates_equal_numpy_on_the_same_values() {
    let goldens = lora_json();
    let close = |a: f64, b: f64, what: &str| {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1e-12),
            "{what}: {a} vs numpy {b}"
        );
    };
    for pair in goldens["pairs"].as_array().unwrap() {
        let base = pair["base"].as_str().unwrap();
        let mut stats = PairStats::new();
        for w in pair["windows"].as_array().unwrap() {
            let (_, _, base_nll) = window(&goldens, base, w["name"].as_str().unwrap());
            stats.begin_window();
            let (kl, dp, dnll) = (floats(&w["kl"]), floats(&w["dp"]), floats(&w["dnll"]));
            for i in 0..kl.len() {
                let t = PairToken {
                    dnll: dnll[i],
                    kl: kl[i],
                    dp: dp[i],
                    agree: w["top1_agree"][i].as_bool().unwrap(),
                };
                stats.push(0, base_nll[i], &t);
            }
        }
        let s = stats.summary(0.95).unwrap();
        let a = &pair["aggregate"];
        let f = |k: &str| a[k].as_f64().unwrap();
        assert_eq!(s.tokens, a["n"].as_u64().unwrap());
        close(s.kl_divergence.mean, f("kl_mean"), "kl mean");
        close(s.kl_divergence.max, f("kl_max"), "kl max");
        close(s.top1_agreement.value, f("top1_agree_frac"), "agreement");
        close(s.delta_p.mean, f("dp_mean"), "dp mean");
        close(s.delta_p.rms, f("dp_rms"), "dp rms");
        close(s.mean_nll_difference.value, f("dnll_mean"), "dnll mean");
        if f("kl_mean") > 0.0 {
            close(s.kl_divergence.stderr.unwrap(), f("kl_se"), "kl se");
            close(
                s.mean_nll_difference.stderr.unwrap(),
                f("dnll_se"),
                "dnll se",
            );
            close(s.nll_correlation.unwrap(), f("nll_pearson"), "correlation");
        }
        for (p, key) in [
            (&s.kl_divergence.percentiles, "kl_percentiles"),
            (&s.delta_p.percentiles, "dp_percentiles"),
        ] {
            for q in p {
                let name = format!("{}", q.percent);
                close(
                    q.value,
                    a[key][&name].as_f64().unwrap(),
                    &format!("{key} {name}"),
                );
            }
        }
    }
}

#[test]
fn an_adapter_compared_on_the_command_line() {
    // relative paths (from the workspace root): the table's widths follow them
    let adapted = "tests/fixtures/tiny-llama+tests/fixtures/lora/tiny-llama-lora";
    let untrained = "tests/fixtures/tiny-llama+tests/fixtures/lora/tiny-llama-lora-untrained";
    let out = perplex()
        .args([
            "compare",
            "tests/fixtures/tiny-llama",
            adapted,
            untrained,
            "--file",
            "tests/fixtures/multilingual/udhr-article1.txt",
            "--split",
            "lines",
            "--max-tokens",
            "2000",
            "--context",
            "64",
            "--batch-size",
            "4",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", render(&out));
    snapshot!(
        "compare_adapters_table",
        render(&out),
        [LARGE_NUMBERS, FOUR_DECIMALS]
    );
}

#[test]
fn models_with_other_tokenizers_are_refused() {
    let out = perplex()
        .args([
            "compare",
            "tests/fixtures/tiny-llama",
            "tests/fixtures/tiny-gpt2",
            "--text",
            "The river freezes in winter.",
            "--context",
            "64",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    snapshot!("compare_other_tokenizer", render(&out));
}

#[test]
fn mock_comparison_json() {
    let tokenizer = fixture("tiny-llama/tokenizer.json").display().to_string();
    let out = perplex()
        .args([
            "compare",
            &format!("mock:hash:{tokenizer}"),
            &format!("mock:uniform:{tokenizer}"),
            "--text",
            "The cat sat on the mat.",
            "--text",
            "Rust is fast and the river freezes in winter.",
            "--context",
            "8",
            "--format",
            "json",
            "--quiet",
        ])
        .output()
        .unwrap();
    let report = json_of(&out);
    assert_eq!(report["schema_version"], 1);
    assert_eq!(
        report["pairs"][0]["stats"]["verdict"]["basis"],
        "document bootstrap"
    );
    snapshot!("compare_mock_json", render(&out));
}

#[test]
fn other_tokenizers_compare_by_bits_per_byte_when_asked() {
    let out = perplex()
        .args([
            "compare",
            "tests/fixtures/tiny-llama",
            "tests/fixtures/tiny-gpt2",
            "--file",
            "tests/fixtures/multilingual/udhr-article1.txt",
            "--split",
            "lines",
            "--context",
            "64",
            "--bits-per-byte",
            "--format",
            "csv",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", render(&out));
    snapshot!("compare_bits_per_byte_csv", render(&out), [FOUR_DECIMALS]);
}
