//! Micro-benchmarks of the compute kernels against the path each replaced,
//! on the shapes of SmolLM2-135M (hidden 576, MLP 1536, vocab 49,152) and
//! a 512-token window.
//!
//! `cargo bench -p perplex-model --bench kernels` (threads: RAYON_NUM_THREADS,
//! default all cores). Throughput is reported in elements: FLOPs for the
//! matmuls (2·m·n·k), values for exp.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use perplex_kernels::{exp, matmul, PackedMatrix, Precision};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6364136223846793005) | 1;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `x · Wᵀ` for the layers of one window: q/o (576→576), gate/up
/// (576→1536), down (1536→576), and a tile of the head (576→8192).
fn linear(c: &mut Criterion) {
    let m = 512;
    let mut g = c.benchmark_group("linear");
    g.sample_size(20);
    for (name, n, k) in [
        ("q_576x576", 576, 576),
        ("up_576x1536", 1536, 576),
        ("down_1536x576", 576, 1536),
        ("head_tile_576x8192", 8192, 576),
    ] {
        let a = random(m * k, 1);
        let w = random(n * k, 2);
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let (ta, tw) = (
            Tensor::from_vec(a.clone(), (m, k), &Device::Cpu).unwrap(),
            Tensor::from_vec(w.clone(), (n, k), &Device::Cpu).unwrap(),
        );
        g.bench_function(BenchmarkId::new("candle_matmul", name), |b| {
            b.iter(|| ta.matmul(&tw.t().unwrap()).unwrap())
        });
        for (label, precision) in [
            ("packed_f32", Precision::F32),
            ("packed_bf16", Precision::Bf16),
        ] {
            let p = PackedMatrix::pack(&w, n, k, precision);
            let mut out = vec![0.0; m * n];
            g.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| matmul(&a, m, &p, &mut out))
            });
        }
    }
    g.finish();
}

/// The head's `Σ exp(l - max)` over one position's vocabulary.
fn head_sum_exp(c: &mut Criterion) {
    let v = 49_152;
    let row = random(v, 3);
    let mut g = c.benchmark_group("sum_exp");
    g.throughput(Throughput::Elements(v as u64));
    g.bench_function("scalar_expf_f64", |b| {
        b.iter(|| row.iter().map(|&l| f64::from((l - 1.0).exp())).sum::<f64>())
    });
    g.bench_function("kernels_sum_exp", |b| b.iter(|| exp::sum_exp(&row, 1.0)));
    g.finish();
}

criterion_group!(benches, linear, head_sum_exp);
criterion_main!(benches);
