// The CPU probe of the build scripts (included by this crate's build.rs and
// crates/perplex-model/build.rs; no inner attributes, so `include!` works).

/// Emits `cfg(perplex_avx512f)` and `cfg(perplex_avx512bf16)` where the
/// build host has what perplex-kernels' `Isa::detect` requires (x86.rs):
/// tests of the AVX-512 kernels are `#[cfg_attr(not(...), ignore = "...")]`
/// so that a CPU without them reports them ignored instead of passing on the
/// portable path.
///
/// Tests are built and run on the same machine; those the cfgs enable
/// assert that run-time detection agrees, so running them on another CPU
/// fails rather than passing silently. `PERPLEX_TEST_PORTABLE_CPU=1`
/// pretends the host has no AVX-512 (to check that those tests report
/// themselves ignored); it changes only which tests run, never the kernels.
fn emit_cpu_cfgs() {
    println!("cargo:rustc-check-cfg=cfg(perplex_avx512f, perplex_avx512bf16)");
    println!("cargo:rerun-if-env-changed=PERPLEX_TEST_PORTABLE_CPU");
    let pretend_portable = std::env::var_os("PERPLEX_TEST_PORTABLE_CPU").is_some_and(|v| v == "1");
    // the script runs on the host: its CPU says nothing about another target
    let native = std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    if pretend_portable || !native {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx512f = has!("avx512f") && has!("avx2") && has!("fma") && has!("f16c");
        if avx512f {
            println!("cargo:rustc-cfg=perplex_avx512f");
            if has!("avx512bw") && has!("avx512bf16") {
                println!("cargo:rustc-cfg=perplex_avx512bf16");
            }
        }
    }
}
