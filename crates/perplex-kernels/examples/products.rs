//! Times one packed product `C = A · Wᵀ` on every kernel this CPU has: f32
//! on AVX-512 and AVX2, bf16 (AVX-512 BF16), 12-bit weights × 16-bit
//! activations on AVX-512 VNNI and AVX2, and the portable paths when asked, in GFLOP/s-equivalent
//! (`2·m·n·k` per product, whatever the arithmetic).
//!
//! `cargo run --release -p perplex-kernels --example products -- [THREADS] [MxNxK] [--portable]`
//! (default: 1 thread, 512x576x1536, SmolLM2-135M's MLP up-projection on a
//! 512-token window) prints one JSON object per kernel, the best of
//! several runs of about 0.3 s.

use std::time::Instant;

use perplex_kernels::{matmul_with, Isa, PackedMatrix, Precision};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1);
    let shape = args
        .iter()
        .find(|a| a.contains('x'))
        .map_or("512x576x1536", String::as_str);
    let dims: Vec<usize> = shape.split('x').filter_map(|d| d.parse().ok()).collect();
    let [m, n, k] = dims[..] else {
        panic!("shape {shape:?}: expected MxNxK");
    };
    let portable = args.iter().any(|a| a == "--portable");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let full = Isa::detect();
    let avx2 = full.without_avx512();
    let mut paths = vec![
        ("f32", "avx512", Precision::F32, full, full.avx512f()),
        ("f32", "avx2", Precision::F32, avx2, avx2.avx2_fma()),
        (
            "bf16",
            "avx512_bf16",
            Precision::Bf16,
            full,
            full.avx512_bf16(),
        ),
        (
            "int16",
            "avx512_vnni",
            Precision::Int16,
            full,
            full.avx512_vnni(),
        ),
        ("int16", "avx2", Precision::Int16, avx2, avx2.avx2_fma()),
    ];
    if portable {
        paths.push(("f32", "portable", Precision::F32, Isa::PORTABLE, true));
        paths.push(("int16", "portable", Precision::Int16, Isa::PORTABLE, true));
    }
    let a = perplex_kernels::testing::random(m * k, 1);
    let w = perplex_kernels::testing::random(n * k, 2);
    let mut c = vec![0.0; m * n];
    let flops = (2 * m * n * k) as f64;
    let mut out = String::new();
    for (precision_name, isa_name, precision, isa, present) in paths {
        if !present {
            continue;
        }
        let packed = PackedMatrix::pack(&w, n, k, precision);
        let best = pool.install(|| {
            matmul_with(isa, &a, m, &packed, &mut c);
            (0..5)
                .map(|_| {
                    let start = Instant::now();
                    let mut reps = 0;
                    while start.elapsed().as_secs_f64() < 0.3 {
                        matmul_with(isa, &a, m, &packed, &mut c);
                        reps += 1;
                    }
                    flops * f64::from(reps) / start.elapsed().as_secs_f64() / 1e9
                })
                .fold(0.0, f64::max)
        });
        out += &format!(
            "{{\"product\": \"{m}x{n}x{k}\", \"threads\": {threads}, \"precision\": \"{precision_name}\", \"isa\": \"{isa_name}\", \"gflops\": {best:.1}}}\n"
        );
    }
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
