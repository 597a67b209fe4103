//! The machine's arithmetic peak, measured: the roofline the benchmark
//! compares achieved GFLOP/s against.

use std::time::Instant;

/// Which instruction stream to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// 16-lane f32 fused multiply-adds (2 FLOP per lane), or the portable
    /// loop's where AVX-512 is missing.
    F32Fma,
    /// AVX-512 BF16 pair dot products (4 FLOP per lane), or the portable
    /// f32 loop's where AVX-512 BF16 is missing.
    Bf16Dot,
}

/// GFLOP/s of `threads` threads each running about 0.1 s of independent `unit`
/// chains (the best of three runs).
pub fn measure(threads: usize, unit: Unit) -> f64 {
    (0..3)
        .map(|_| {
            let iters = 20_000_000usize;
            let start = Instant::now();
            let handles: Vec<_> = (0..threads.max(1))
                .map(|_| std::thread::spawn(move || run(unit, iters)))
                .collect();
            let flops: f64 = handles
                .into_iter()
                .map(|h| h.join().expect("peak thread"))
                .sum();
            flops / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// Runs `iters` rounds; returns the FLOPs done.
fn run(unit: Unit, iters: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if let Some(flops) = crate::x86::peak(crate::Isa::detect(), unit, iters) {
        return flops;
    }
    let _ = unit;
    // portable: 8 independent scalar chains
    let mut acc = [0.5f32; 8];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (iters * 8 * 2) as f64
}
