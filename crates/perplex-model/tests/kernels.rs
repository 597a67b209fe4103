//! The execution paths agree: candle's ops (`PERPLEX_KERNELS=candle`) and
//! the packed AVX-512 kernels give the same per-token NLLs (1e-5) on every
//! family fixture and a quantized GGUF, and the fast mode (bf16 products)
//! stays near the exact mode (within 1 % of its perplexity on these few
//! hundred tokens; the 0.1 % on real text is checked in
//! crates/perplex/tests/real_model.rs).
//!
//! One test in this binary: it sets the environment variable that selects
//! the path, which no other test may see.

mod common;

use common::{fixtures, score, windows_by_model};
use perplex_model::{load_model, Compute, LoadOptions};

fn load_with(spec: &str, compute: Compute) -> perplex_model::Decoder {
    let options = LoadOptions {
        compute,
        ..Default::default()
    };
    load_model(fixtures().join(spec).to_str().unwrap(), &options)
        .unwrap_or_else(|e| panic!("loading {spec}: {e}"))
        .0
}

#[test]
#[allow(clippy::print_stderr)] // the margins, for `--nocapture` readers
fn kernel_paths_agree_and_the_fast_mode_stays_close() {
    let isa = perplex_kernels::Isa::detect();
    if !isa.avx512 {
        eprintln!("skipped: this CPU has no AVX-512, so only candle's path runs");
        return;
    }
    let families = windows_by_model("families.json");
    let goldens = windows_by_model("goldens.json");
    let cases = [
        ("tiny-llama", &goldens["tiny-llama"]),
        ("tiny-llama-q4_1.gguf", &goldens["tiny-llama"]),
        ("tiny-gpt2", &families["tiny-gpt2"]),
        ("tiny-qwen2", &families["tiny-qwen2"]),
        ("tiny-qwen3", &families["tiny-qwen3"]),
        ("tiny-gemma", &families["tiny-gemma"]),
        ("tiny-gemma2", &families["tiny-gemma2"]),
        ("tiny-gemma3", &families["tiny-gemma3"]),
        ("tiny-phi3", &families["tiny-phi3"]),
    ];
    for (name, windows) in cases {
        std::env::set_var("PERPLEX_KERNELS", "candle");
        let mut candle = load_with(name, Compute::Exact);
        std::env::remove_var("PERPLEX_KERNELS");
        let mut packed = load_with(name, Compute::Exact);
        let (a, b) = (
            score(&mut candle, windows, 3),
            score(&mut packed, windows, 3),
        );
        let worst = a
            .iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x.nll - y.nll).abs())
            .fold(0.0, f64::max);
        eprintln!("{name}: candle vs packed kernels, largest |Δnll| {worst:.2e}");
        assert!(worst <= 1e-5, "{name}: {worst}");

        if isa.avx512_bf16 {
            let mut fast = load_with(name, Compute::Fast);
            let f = score(&mut fast, windows, 3);
            let (mut worst, mut delta, mut n) = (0.0f64, 0.0, 0usize);
            for (got, exact) in f.iter().flatten().zip(b.iter().flatten()) {
                worst = worst.max((got.nll - exact.nll).abs());
                delta += got.nll - exact.nll;
                n += 1;
            }
            // a few hundred tokens of a random tiny model: the 0.1 % criterion
            // holds on real text (crates/perplex/tests/real_model.rs); here
            // 1 % separates bf16 rounding from a broken kernel
            let ppl_change = (delta / n as f64).exp() - 1.0;
            eprintln!(
                "{name}: fast vs exact, perplexity {:+.4} %, largest |Δnll| {worst:.2e}",
                ppl_change * 100.0
            );
            // per token, bf16 inputs move a logit by ~2^-9 of its size: a
            // broken kernel is off by far more
            assert!(
                ppl_change.abs() <= 1e-2 && worst <= 0.5,
                "{name}: fast mode {ppl_change} / {worst}"
            );
        }
    }
}
