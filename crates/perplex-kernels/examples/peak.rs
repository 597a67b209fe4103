//! Measures this machine's arithmetic peak for the roofline: f32 FMA and
//! (where present) AVX-512 BF16 dot products, on 1..=N threads, each thread
//! running independent chains long enough to hide latency.
//!
//! `cargo run --release -p perplex-kernels --example peak -- [THREADS]`
//! prints one JSON object: `{"threads": N, "f32_gflops": …, "bf16_gflops": …}`.

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let isa = perplex_kernels::Isa::detect();
    let f32_gflops = perplex_kernels::peak::measure(threads, perplex_kernels::peak::Unit::F32Fma);
    let bf16 = isa
        .avx512_bf16()
        .then(|| perplex_kernels::peak::measure(threads, perplex_kernels::peak::Unit::Bf16Dot));
    let bf16 = bf16.map_or("null".to_string(), |g| format!("{g:.1}"));
    let out = format!(
        "{{\"threads\": {threads}, \"f32_gflops\": {f32_gflops:.1}, \"bf16_gflops\": {bf16}, \"avx512\": {}}}",
        isa.avx512f()
    );
    std::io::Write::write_all(&mut std::io::stdout(), (out + "\n").as_bytes()).expect("stdout");
}
