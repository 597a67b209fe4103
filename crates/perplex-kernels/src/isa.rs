//! [`Isa`]: the instruction sets the kernels may use, as a proof.
//!
//! Invariant: a feature an `Isa` reports was detected on the running CPU.
//! Its fields are private to this module, and the only ways to get one are
//! [`Isa::detect`], [`Isa::PORTABLE`] and downgrades of those, so safe code
//! cannot claim an instruction set the CPU lacks. The instruction-set
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
/// let isa = perplex_kernels::Isa { avx512f: true, avx512_bf16: true };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa {
    /// AVX-512 F (with the AVX2, FMA and F16C it implies): the f32 matmul
    /// and `exp` kernels.
    avx512f: bool,
    /// AVX-512 BF16 (with AVX-512 F and BW, which it implies): the bf16
    /// matmul of the fast mode. Never set without `avx512f`.
    avx512_bf16: bool,
}

impl Isa {
    /// The portable kernels only: valid on every CPU.
    pub const PORTABLE: Isa = Isa {
        avx512f: false,
        avx512_bf16: false,
    };

    /// What this CPU supports (detected once, then cached).
    pub fn detect() -> Isa {
        use std::sync::OnceLock;
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let (avx512f, avx512_bf16) = crate::x86::detect();
                Isa {
                    avx512f,
                    avx512_bf16: avx512f && avx512_bf16,
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                Isa::PORTABLE
            }
        })
    }

    /// The same without any AVX-512 (so without AVX-512 BF16): forces the
    /// portable kernels, e.g. for tests and benchmarks comparing the paths.
    /// Features can only be dropped, never added.
    #[must_use]
    pub const fn without_avx512(self) -> Isa {
        Isa {
            avx512f: false,
            avx512_bf16: false,
        }
    }

    /// Whether the AVX-512 F kernels (f32 matmul, `exp`) may run.
    pub const fn avx512f(self) -> bool {
        self.avx512f
    }

    /// Whether the AVX-512 BF16 kernels (bf16 matmul) may run.
    pub const fn avx512_bf16(self) -> bool {
        self.avx512_bf16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_and_downgraded_report_no_avx512() {
        for isa in [Isa::PORTABLE, Isa::detect().without_avx512()] {
            assert!(!isa.avx512f() && !isa.avx512_bf16(), "{isa:?}");
            assert_eq!(isa, Isa::PORTABLE);
        }
    }

    #[test]
    fn bf16_is_never_reported_without_avx512f() {
        let isa = Isa::detect();
        assert!(isa.avx512f() || !isa.avx512_bf16(), "{isa:?}");
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512f),
        ignore = "this CPU lacks AVX-512F (kernels' AVX-512 path not tested)"
    )]
    fn detects_the_avx512_the_build_host_has() {
        // the build script probed the same CPU: a mismatch means the tests
        // run on another machine, which would skip or fail kernels silently
        assert!(Isa::detect().avx512f());
        assert_eq!(Isa::detect().avx512_bf16(), cfg!(perplex_avx512bf16));
    }
}
