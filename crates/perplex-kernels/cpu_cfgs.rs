// The CPU probe of the build scripts (included by this crate's build.rs and
// crates/perplex-model/build.rs; no inner attributes, so `include!` works).

/// Emits `cfg(perplex_avx2)`, `cfg(perplex_avx512f)`,
/// `cfg(perplex_avx512bf16)` and `cfg(perplex_avx512vnni)` where the build host has what perplex-kernels'
/// `Isa::detect` requires (x86.rs): tests of the SIMD kernels are
/// `#[cfg_attr(not(...), ignore = "...")]` so that a CPU without them
/// reports them ignored instead of passing on the portable path.
///
/// Tests are built and run on the same machine; those the cfgs enable
/// assert that run-time detection agrees, so running them on another CPU
/// fails rather than passing silently. `PERPLEX_CPU=avx2` or
/// `PERPLEX_CPU=portable` (which caps the kernels at run time, see
/// perplex-kernels' `CPU_CAP_VAR`) caps these cfgs the same way, so that
/// `PERPLEX_CPU=avx2 cargo test` runs the suite as a CPU without AVX-512
/// would, through the AVX2 kernels.
fn emit_cpu_cfgs() {
    println!("cargo:rustc-check-cfg=cfg(perplex_avx2, perplex_avx512f, perplex_avx512bf16, perplex_avx512vnni)");
    println!("cargo:rerun-if-env-changed=PERPLEX_CPU");
    let cap = std::env::var("PERPLEX_CPU").unwrap_or_default();
    let pretend_portable = cap == "portable";
    let no_avx512 = cap == "avx2" || pretend_portable;
    // the script runs on the host: its CPU says nothing about another target
    let native = std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    if pretend_portable || !native {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        if avx2 {
            println!("cargo:rustc-cfg=perplex_avx2");
        }
        let avx512f = avx2 && !no_avx512 && has!("avx512f") && has!("f16c");
        if avx512f {
            println!("cargo:rustc-cfg=perplex_avx512f");
            if has!("avx512bw") && has!("avx512bf16") {
                println!("cargo:rustc-cfg=perplex_avx512bf16");
            }
            if has!("avx512bw") && has!("avx512vnni") {
                println!("cargo:rustc-cfg=perplex_avx512vnni");
            }
        }
    }
}
