//! [`Isa`]: the instruction sets the kernels may use, as a proof.
//!
//! Invariant: a feature an `Isa` reports was detected on the running CPU.
//! Its fields are private to this module, and the only ways to get one are
//! [`Isa::detect`], [`Isa::PORTABLE`] and downgrades of those, so safe code
//! cannot claim an instruction set the CPU lacks. [`CPU_CAP_VAR`] can
//! only lower what is detected. The instruction-set
//! modules (`x86`) rely on this invariant: given an `Isa` that reports a
//! feature, they run its instructions; otherwise they decline and the
//! caller takes its portable path.

/// The instruction sets the fast kernels use, detected at run time.
///
/// A feature is reported only when this CPU has it (see the module docs),
/// so an `Isa` cannot be built with more than the CPU has:
///
/// ```compile_fail
/// // private fields: no struct literal outside the crate
/// let isa = perplex_kernels::Isa { avx2_fma: true, avx512f: true, avx512_bf16: true, avx512_vnni: true };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa {
    /// AVX2 and FMA: the f32 matmul and `exp` kernels on 8 lanes.
    avx2_fma: bool,
    /// AVX-512 F (with the AVX2, FMA and F16C it implies): the f32 matmul
    /// and `exp` kernels on 16 lanes. Never set without `avx2_fma`.
    avx512f: bool,
    /// AVX-512 BF16 (with AVX-512 F and BW, which it implies): the bf16
    /// matmul of the fast mode. Never set without `avx512f`.
    avx512_bf16: bool,
    /// AVX-512 VNNI (with AVX-512 F and BW): the int16 matmul's `VPDPWSSD`
    /// kernel. Never set without `avx512f`.
    avx512_vnni: bool,
}

/// Environment variable capping the kernels at an instruction set (for
/// comparing the paths on one machine): `avx2` (no AVX-512) or `portable`
/// (no SIMD). It never adds what the CPU lacks.
pub const CPU_CAP_VAR: &str = "PERPLEX_CPU";

/// A [`CPU_CAP_VAR`] value that names no instruction set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{CPU_CAP_VAR}={0:?} names no instruction set (use avx2 or portable)")]
pub struct CpuCapError(pub String);

/// The cap [`CPU_CAP_VAR`] sets, checked: `None` when unset.
pub fn cpu_cap() -> Result<Option<Isa>, CpuCapError> {
    match std::env::var(CPU_CAP_VAR) {
        Err(_) => Ok(None),
        Ok(v) => match v.as_str() {
            "" => Ok(None),
            "avx2" => Ok(Some(Isa::detected().without_avx512())),
            "portable" => Ok(Some(Isa::PORTABLE)),
            other => Err(CpuCapError(other.to_string())),
        },
    }
}

impl Isa {
    /// The portable kernels only: valid on every CPU.
    pub const PORTABLE: Isa = Isa {
        avx2_fma: false,
        avx512f: false,
        avx512_bf16: false,
        avx512_vnni: false,
    };

    /// What this CPU supports, capped by [`CPU_CAP_VAR`] when it is set
    /// to a valid value (detected once, then cached).
    pub fn detect() -> Isa {
        use std::sync::OnceLock;
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| cpu_cap().ok().flatten().unwrap_or_else(Isa::detected))
    }

    /// What this CPU has, uncapped.
    fn detected() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            let (avx2_fma, avx512f, avx512_bf16, avx512_vnni) = crate::x86::detect();
            Isa {
                avx2_fma,
                avx512f: avx2_fma && avx512f,
                avx512_bf16: avx2_fma && avx512f && avx512_bf16,
                avx512_vnni: avx2_fma && avx512f && avx512_vnni,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Isa::PORTABLE
        }
    }

    /// The same without any AVX-512 (so without AVX-512 BF16 or VNNI), keeping
    /// AVX2: what a CPU without AVX-512 runs, e.g. for tests and benchmarks
    /// comparing the paths. Features can only be dropped, never added.
    #[must_use]
    pub const fn without_avx512(self) -> Isa {
        Isa {
            avx2_fma: self.avx2_fma,
            avx512f: false,
            avx512_bf16: false,
            avx512_vnni: false,
        }
    }

    /// The same without AVX-512 BF16, keeping the rest: what a CPU with
    /// AVX-512 but without BF16 runs (the fast mode's int16 products).
    #[must_use]
    pub const fn without_bf16(self) -> Isa {
        Isa {
            avx512_bf16: false,
            ..self
        }
    }

    /// Whether the AVX2+FMA kernels (f32 matmul, `exp` on 8 lanes) may run;
    /// true wherever [`Isa::avx512f`] is.
    pub const fn avx2_fma(self) -> bool {
        self.avx2_fma
    }

    /// Whether the AVX-512 F kernels (f32 matmul, `exp`) may run.
    pub const fn avx512f(self) -> bool {
        self.avx512f
    }

    /// Whether the AVX-512 BF16 kernels (bf16 matmul) may run.
    pub const fn avx512_bf16(self) -> bool {
        self.avx512_bf16
    }

    /// Whether the AVX-512 VNNI kernel (int16 matmul) may run.
    pub const fn avx512_vnni(self) -> bool {
        self.avx512_vnni
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downgrades_only_drop_features() {
        let isa = Isa::detect();
        let down = isa.without_avx512();
        assert!(
            !down.avx512f() && !down.avx512_bf16() && !down.avx512_vnni(),
            "{down:?}"
        );
        let no_bf16 = isa.without_bf16();
        assert!(!no_bf16.avx512_bf16(), "{no_bf16:?}");
        assert_eq!(no_bf16.avx512_vnni(), isa.avx512_vnni());
        assert_eq!(down.avx2_fma(), isa.avx2_fma());
        assert_eq!(Isa::PORTABLE.without_avx512(), Isa::PORTABLE);
    }

    #[test]
    fn wider_sets_are_never_reported_without_the_narrower() {
        let isa = Isa::detect();
        assert!(isa.avx512f() || !isa.avx512_bf16(), "{isa:?}");
        assert!(isa.avx512f() || !isa.avx512_vnni(), "{isa:?}");
        assert!(isa.avx2_fma() || !isa.avx512f(), "{isa:?}");
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512f),
        ignore = "this CPU lacks AVX-512F (kernels' AVX-512 path not tested)"
    )]
    fn detects_the_avx512_the_build_host_has() {
        // the build script probed the same CPU: a mismatch means the tests
        // run on another machine, which would skip or fail kernels silently
        assert!(Isa::detected().avx512f());
        assert_eq!(Isa::detected().avx512_bf16(), cfg!(perplex_avx512bf16));
        assert_eq!(Isa::detected().avx512_vnni(), cfg!(perplex_avx512vnni));
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx2),
        ignore = "this CPU lacks AVX2 and FMA (kernels' AVX2 path not tested)"
    )]
    fn detects_the_avx2_the_build_host_has() {
        assert!(Isa::detected().avx2_fma());
    }
}
