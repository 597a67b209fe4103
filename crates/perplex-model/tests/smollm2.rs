//! The demo model, SmolLM2-135M-Instruct Q4_1 (`scripts/fetch-demo-model.sh`),
//! loads with the expected hyperparameters and scores a 512-token chunk of
//! WikiText-2 like transformers does on the same weights.
//!
//! Oracle: `../shared/reference/smollm2-transformers-per-token.npz`, array
//! `chunked`: transformers' f32 per-token NLLs for 80 chunks of 512 ids of
//! `wiki.test.smollm2-ids.npy`, every token after a chunk's first scored.
//!
//! A slow test (`perplex_testkit`): ignored, with the reason, in the quick
//! tier or without the demo model or the reference data, unless the run
//! requires them (CI, or `scripts/test` after fetching).

use std::time::Instant;

use perplex_core::{CausalLm, WindowRef};
use perplex_model::{load, LoadOptions};
use perplex_testkit::{npy, run_tests, Resource, SlowTest};

const IDS: &str = "wiki.test.smollm2-ids.npy";
const PER_TOKEN: &str = "smollm2-transformers-per-token.npz";

#[allow(clippy::print_stderr)] // the timing and margin, for people reading the log
fn smollm2_q4_1_scores_a_chunk_like_transformers() {
    let demo = Resource::demo_model();
    let path = demo.path();
    let loaded = load(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let id = &loaded.identity;
    assert_eq!(id.format, "gguf");
    assert_eq!(id.architecture, "llama");
    assert_eq!(id.weights, "q4_1: 210, f32: 61, q8_0: 1");
    assert_eq!(id.parameters, 134_515_008);
    assert_eq!(loaded.tokenizer.vocab_size(), 49_152);

    let (mut model, _) =
        perplex_model::load_model(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let c = model.config();
    assert_eq!(
        (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads),
        (30, 576, 9, 3)
    );
    assert_eq!(
        (c.vocab_size, c.intermediate_size, c.head_dim),
        (49_152, 1536, 64)
    );
    assert_eq!(c.rope_theta, 100_000.0);
    assert!(c.tie_word_embeddings);
    assert_eq!(model.info().max_context, Some(8192));

    let ids = npy::read_npy_ids(Resource::reference(IDS).path());
    let window = WindowRef {
        tokens: &ids[..512],
        score_from: 1,
    };
    let start = Instant::now();
    let scores = model.score_batch(&[window]).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    eprintln!("smollm2 q4_1: one 512-token window in {seconds:.2} s");

    let scores = &scores[0];
    assert_eq!(scores.len(), 511);
    let mean = scores.iter().map(|s| s.nll).sum::<f64>() / scores.len() as f64;
    assert!((2.0..4.5).contains(&mean), "mean NLL {mean}");
    let oracle = npy::read_npz(Resource::reference(PER_TOKEN).path(), "chunked");
    let worst = scores
        .iter()
        .zip(&oracle[..511])
        .map(|(s, &t)| (s.nll - t).abs())
        .fold(0.0f64, f64::max);
    eprintln!("smollm2 q4_1: mean NLL {mean:.5}, largest difference from transformers {worst:.2e}");
    assert!(worst <= 1e-4, "largest per-token difference {worst}");
}

fn main() {
    run_tests(vec![SlowTest::new(
        "smollm2_q4_1_scores_a_chunk_like_transformers",
        smollm2_q4_1_scores_a_chunk_like_transformers,
    )
    .needs([
        Resource::demo_model(),
        Resource::reference(IDS),
        Resource::reference(PER_TOKEN),
    ])]);
}
