//! Micro-benchmarks of the compute kernels against the candle path each
//! replaced (`linear`: the packed matmul, f32 and bf16; `sum_exp`: the
//! head's log-sum-exp; `attention`: the fused causal attention),
//! on the shapes of SmolLM2-135M (hidden 576, MLP 1536, vocab 49,152) and
//! a 512-token window.
//!
//! `cargo bench -p perplex-model --bench kernels` (threads: RAYON_NUM_THREADS,
//! default all cores). Throughput is reported in elements: FLOPs for the
//! matmuls (2·m·n·k), values for exp.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use perplex_kernels::testing::random;
use perplex_kernels::{exp, matmul, PackedMatrix, Precision};

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
            ("packed_int16", Precision::Int16),
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

/// One layer's causal attention over a 512-token window (9 query heads, 3
/// key/value heads, head_dim 64): candle's ops as the decoder chained them
/// (scores, additive mask, softmax, values) against the fused kernel.
fn attention(c: &mut Criterion) {
    use perplex_kernels::attention::{causal_attention, AttentionParams, AttentionShape};
    let (len, heads, kv, d) = (512, 9, 3, 64);
    let q = random(heads * len * d, 4);
    let k = random(kv * len * d, 5);
    let v = random(kv * len * d, 6);
    let mut g = c.benchmark_group("attention");
    g.sample_size(20);
    let tq = Tensor::from_vec(q.clone(), (1, kv, heads / kv * len, d), &Device::Cpu).unwrap();
    let tk = Tensor::from_vec(k.clone(), (1, kv, len, d), &Device::Cpu).unwrap();
    let tv = Tensor::from_vec(v.clone(), (1, kv, len, d), &Device::Cpu).unwrap();
    let mask: Vec<f32> = (0..len * len)
        .map(|i| {
            if i % len <= i / len {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (len, len), &Device::Cpu).unwrap();
    g.bench_function("candle_ops", |b| {
        b.iter(|| {
            let scores = (tq.matmul(&tk.t().unwrap()).unwrap() * 0.125).unwrap();
            let scores = scores
                .reshape((1, kv, heads / kv, len, len))
                .unwrap()
                .broadcast_add(&mask)
                .unwrap();
            let p = candle_nn::ops::softmax_last_dim(&scores).unwrap();
            p.reshape((1, kv, heads / kv * len, len))
                .unwrap()
                .matmul(&tv)
                .unwrap()
        })
    });
    let shape = AttentionShape {
        batch: 1,
        len,
        heads,
        kv_heads: kv,
        head_dim: d,
    };
    let params = AttentionParams {
        scale: 0.125,
        softcap: None,
        window: None,
    };
    let mut out = vec![0.0; heads * len * d];
    g.bench_function("fused_kernel", |b| {
        b.iter(|| causal_attention(&q, &k, &v, shape, params, &mut out))
    });
    g.finish();
}

// the macro's generated `benches` function has no doc comment to carry
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, linear, head_sum_exp, attention);
}
use group::benches;
criterion_main!(benches);
