//! Execution paths must not change results: batch size (with mixed lengths
//! and so padding) and the sliding/chunks identity, on a real forward pass
//! (the tiny Llama fixture), end to end.

mod common;

use perplex::core::{BosPolicy, Protocol};
use perplex::eval::{CollectSink, TokenEvent};
use perplex::{Corpus, EvalOptions, Evaluator};

fn corpus() -> Corpus {
    // Mixed lengths: a document shorter than a window, one spanning several,
    // one of a single token (too short), so batches are padded.
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture("goldens.json")).unwrap())
            .unwrap();
    let long = golden["protocols"][0]["texts"][0]
        .as_str()
        .unwrap()
        .to_string();
    Corpus::from_texts([
        long.clone(),
        "Short text.".to_string(),
        long[..200].to_string(),
        "x".to_string(),
        long[100..450].to_string(),
        "A medium sized document with a few more words in it than the short one.".to_string(),
    ])
}

fn run(
    evaluator: &mut Evaluator,
    protocol: Protocol,
    bos: BosPolicy,
    batch_size: usize,
) -> Vec<TokenEvent> {
    let options = EvalOptions::builder(protocol)
        .bos(bos)
        .batch_size(batch_size)
        .build()
        .unwrap();
    let mut sink = CollectSink::default();
    evaluator
        .evaluate_into(&corpus(), &options, &mut sink)
        .unwrap();
    sink.events
}

fn assert_close(a: &[TokenEvent], b: &[TokenEvent], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: scored tokens");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (x.doc, x.position, x.token),
            (y.doc, y.position, y.token),
            "{what}"
        );
        assert!(
            (x.score.nll - y.score.nll).abs() <= 1e-5,
            "{what}: {x:?} vs {y:?}"
        );
    }
}

#[test]
fn batch_size_never_changes_a_score() {
    for model in ["tiny-llama", "tiny-llama-q4_1.gguf"] {
        let mut evaluator = Evaluator::load(common::fixture(model).to_str().unwrap()).unwrap();
        for protocol in [
            Protocol::Chunks { context: 48 },
            Protocol::Sliding {
                context: 64,
                stride: 20,
            },
            Protocol::Truncate { max_length: 40 },
        ] {
            let one = run(&mut evaluator, protocol, BosPolicy::Auto, 1);
            assert!(one.len() > 100, "{protocol}: {} scored", one.len());
            for batch in [3, 8] {
                let other = run(&mut evaluator, protocol, BosPolicy::Auto, batch);
                assert_close(&one, &other, &format!("{model} {protocol} batch {batch}"));
            }
        }
    }
}

#[test]
fn sliding_with_stride_equal_to_context_is_chunks() {
    let mut evaluator = Evaluator::load(common::fixture("tiny-llama").to_str().unwrap()).unwrap();
    for bos in [BosPolicy::None, BosPolicy::Document, BosPolicy::Window] {
        let chunks = run(&mut evaluator, Protocol::Chunks { context: 32 }, bos, 4);
        let sliding = run(
            &mut evaluator,
            Protocol::Sliding {
                context: 32,
                stride: 32,
            },
            bos,
            4,
        );
        assert_close(&chunks, &sliding, &format!("bos {bos:?}"));
    }
}

#[test]
fn thread_count_never_changes_a_score() {
    let load = |threads| {
        let options = perplex::model::LoadOptions {
            threads: Some(threads),
            ..Default::default()
        };
        Evaluator::load_with(common::fixture("tiny-llama").to_str().unwrap(), &options).unwrap()
    };
    let protocol = Protocol::Sliding {
        context: 64,
        stride: 16,
    };
    let one = run(&mut load(1), protocol, BosPolicy::Auto, 3);
    let two = run(&mut load(2), protocol, BosPolicy::Auto, 3);
    assert_close(&one, &two, "1 vs 2 threads");
}

/// The per-token NLLs of `perplex eval` on the tiny Llama with `env` set.
fn per_token_nlls(env: &[(&str, &str)]) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.jsonl");
    let mut cmd = common::perplex();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args([
            "eval",
            "-m",
            common::fixture("tiny-llama").to_str().unwrap(),
        ])
        .args(["--protocol", "sliding", "--context", "64", "--stride", "16"])
        .arg("--per-token")
        .arg(&tokens)
        .arg("--quiet")
        .args(corpus().documents.iter().map(|d| d.text.as_str()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{env:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&tokens)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["nll"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn every_kernel_path_gives_the_same_scores() {
    // AVX-512, AVX2 (the same products and exp bit for bit; softmax sums in
    // 8 lanes instead of 16), portable, and candle's ops: where the CPU
    // lacks a path, its cap runs the best one it has, which must agree too
    let best = per_token_nlls(&[]);
    assert!(best.len() > 100);
    for env in [
        &[("PERPLEX_CPU", "avx2")][..],
        &[("PERPLEX_CPU", "portable")],
        &[("PERPLEX_KERNELS", "candle")],
    ] {
        let other = per_token_nlls(env);
        assert_eq!(other.len(), best.len(), "{env:?}");
        let worst = best
            .iter()
            .zip(&other)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{env:?}: largest |Δnll| {worst:e}");
    }
}
