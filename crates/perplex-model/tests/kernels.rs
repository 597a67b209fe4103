//! The execution paths agree: candle's ops (`PERPLEX_KERNELS=candle`) and
//! the packed kernels (AVX-512 or AVX2) give the same per-token NLLs (2e-5) on every
//! family fixture and a quantized GGUF, and the fast mode (bf16 products
//! where the CPU has AVX-512 BF16, 12-bit weights × 16-bit activations
//! elsewhere, and those forced with `PERPLEX_FAST=int16`) stays near the exact mode (within 1 % (bf16) or 0.2 % (int16) of its
//! perplexity on these few hundred tokens of random tiny models; the 0.1 %
//! on real text is checked in crates/perplex/tests/real_model.rs).
//!
//! Where the CPU lacks AVX2 and FMA these tests report themselves ignored: build.rs probes the build host, and tests are built and run on
//! the same machine (a test enabled there asserts the run-time detection
//! agrees). One test sets the environment variable that selects the path,
//! so the tests of this binary take turns ([`ENV`]).

mod common;

use std::sync::{Mutex, MutexGuard, PoisonError};

use common::{fixtures, score, windows_by_model};
use perplex_core::TokenScore;
use perplex_model::{load_model, Compute, LoadOptions, INT16};

/// Held for a whole test: no test loads or scores while another changes
/// `PERPLEX_KERNELS`.
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(PoisonError::into_inner)
}

fn load_with(spec: &str, compute: Compute) -> perplex_model::Decoder {
    let options = LoadOptions {
        compute,
        ..Default::default()
    };
    load_model(fixtures().join(spec).to_str().unwrap(), &options)
        .unwrap_or_else(|e| panic!("loading {spec}: {e}"))
        .0
}

/// Every family fixture and a quantized GGUF, with their windows.
fn cases() -> Vec<(&'static str, Vec<common::GoldenWindow>)> {
    let families = windows_by_model("families.json");
    let goldens = windows_by_model("goldens.json");
    let mut cases = vec![
        ("tiny-llama", goldens["tiny-llama"].clone()),
        ("tiny-llama-q4_1.gguf", goldens["tiny-llama"].clone()),
    ];
    for family in [
        "tiny-gpt2",
        "tiny-qwen2",
        "tiny-qwen3",
        "tiny-gemma",
        "tiny-gemma2",
        "tiny-gemma3",
        "tiny-phi3",
    ] {
        cases.push((family, families[family].clone()));
    }
    cases
}

/// The exact mode on the packed kernels.
fn packed_exact(name: &str, windows: &[common::GoldenWindow]) -> Vec<Vec<TokenScore>> {
    score(&mut load_with(name, Compute::Exact), windows, 3)
}

#[test]
#[cfg_attr(
    not(perplex_avx2),
    ignore = "this CPU lacks AVX2 and FMA (the packed kernels' path not tested)"
)]
#[allow(clippy::print_stderr)] // the margins, for `--nocapture` readers
fn candle_and_the_packed_kernels_agree() {
    let _env = env_lock();
    assert!(
        perplex_kernels::Isa::detect().avx2_fma(),
        "built on a CPU with AVX2 and FMA, run on one without"
    );
    for (name, windows) in cases() {
        std::env::set_var("PERPLEX_KERNELS", "candle");
        let mut candle = load_with(name, Compute::Exact);
        std::env::remove_var("PERPLEX_KERNELS");
        let (a, b) = (
            score(&mut candle, &windows, 3),
            packed_exact(name, &windows),
        );
        let worst = a
            .iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x.nll - y.nll).abs())
            .fold(0.0, f64::max);
        eprintln!("{name}: candle vs packed kernels, largest |Δnll| {worst:.2e}");
        // the packed path's RMSNorm sums squares in f64 (transformers' f32
        // sum is in partial sums, candle's one after the other): on tiny-llama 7e-6
        // from transformers where candle's path is 1.4e-5, so the two paths
        // differ by up to ~1.2e-5 here; a broken kernel is off by far more
        assert!(worst <= 2e-5, "{name}: {worst}");
    }
}

/// The fast mode against the exact one on every case: within `ppl_bound`
/// of the perplexity, and no token's NLL off by more than `per_token`.
#[allow(clippy::print_stderr)] // the margins, for `--nocapture` readers
fn fast_mode_stays_close_to_the_exact_one(products: &str) {
    // bf16 moves each value by up to 2^-9 of itself: on these random
    // models the perplexity by up to ~0.3 %, the worst token by ~0.3; the
    // int16 products (12-bit weights, 16-bit activations, both per block
    // of 32) about ten times less: ~0.03 % and ~0.04
    let (ppl_bound, per_token) = if products == INT16 {
        (2e-3, 0.1)
    } else {
        (1e-2, 0.5)
    };
    for (name, windows) in cases() {
        let exact = packed_exact(name, &windows);
        let fast = score(&mut load_with(name, Compute::Fast), &windows, 3);
        let (mut worst, mut delta, mut n) = (0.0f64, 0.0, 0usize);
        for (got, exact) in fast.iter().flatten().zip(exact.iter().flatten()) {
            worst = worst.max((got.nll - exact.nll).abs());
            delta += got.nll - exact.nll;
            n += 1;
        }
        // a few hundred tokens of a random tiny model: the 0.1 % criterion
        // holds on real text (crates/perplex/tests/real_model.rs); here
        // the bounds separate rounding from a broken kernel
        let ppl_change = (delta / n as f64).exp() - 1.0;
        eprintln!(
            "{name}: fast ({products}) vs exact, perplexity {:+.4} %, largest |Δnll| {worst:.2e}",
            ppl_change * 100.0
        );
        // a broken kernel is off by far more
        assert!(
            ppl_change.abs() <= ppl_bound && worst <= per_token,
            "{name}: fast mode ({products}) {ppl_change} / {worst}"
        );
    }
}

#[test]
#[cfg_attr(
    not(perplex_avx2),
    ignore = "this CPU lacks AVX2 and FMA (the fast mode not tested)"
)]
fn the_fast_mode_stays_close_to_the_exact_one() {
    let _env = env_lock();
    let isa = perplex_kernels::Isa::detect();
    assert!(
        isa.avx2_fma() && Compute::Fast.supported(),
        "built on a CPU with AVX2 and FMA, run on one without"
    );
    // bf16 where the CPU has AVX-512 BF16 (also under PERPLEX_CPU=avx2:
    // then int16 on AVX2)
    let products = if isa.avx512_bf16() { "bf16" } else { INT16 };
    assert_eq!(Compute::Fast.dtype(), products);
    fast_mode_stays_close_to_the_exact_one(products);
}

#[test]
#[cfg_attr(
    not(perplex_avx2),
    ignore = "this CPU lacks AVX2 and FMA (the fast mode not tested)"
)]
fn the_fast_mode_in_int16_stays_close_to_the_exact_one() {
    let _env = env_lock();
    assert!(
        Compute::Fast.supported(),
        "built on a CPU with AVX2 and FMA, run on one without"
    );
    // int16 on every CPU that runs the fast mode: AVX-512 VNNI where
    // present
    std::env::set_var(perplex_model::FAST_PRODUCTS_VAR, INT16);
    let dtype = Compute::Fast.dtype();
    let result = std::panic::catch_unwind(|| fast_mode_stays_close_to_the_exact_one(INT16));
    std::env::remove_var(perplex_model::FAST_PRODUCTS_VAR);
    assert_eq!(dtype, INT16);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
