//! CPU compute kernels for perplex's forward pass, on plain slices.
//!
//! - [`PackedMatrix`] + [`matmul`]: `C = A · Wᵀ` for an activation matrix
//!   `A` (`[m, k]`, row-major f32) against a weight `W` (`[n, k]`, the
//!   layout of a linear layer) packed once into 32-column panels, in f32
//!   (exact mode) or bf16 (the opt-in fast mode, AVX-512 BF16 dot products
//!   with f32 accumulation).
//! - [`attention`]: fused causal self-attention (scores, mask, softmax,
//!   values) per block of queries, in f32.
//! - [`exp`]: a vectorised `exp` and the softmax/log-sum-exp reductions
//!   built on it.
//!
//! The fast paths need AVX-512 (f32) and AVX-512 BF16 (bf16); [`Isa`] says
//! what this CPU has. Every kernel also has a portable implementation with
//! the same contract, used where the instructions are missing and by the
//! tests as the reference the fast ones must match. Results do not depend on
//! the thread count: each output element is computed by one thread, in the
//! same order, whatever the split.
//!
//! Threads come from the current rayon pool (run inside `pool.install` to
//! choose them).

pub mod attention;
mod gemm;
#[cfg(target_arch = "x86_64")]
mod x86;

pub mod exp;
pub mod peak;

pub use gemm::{matmul, matmul_block, PackedMatrix, Precision};

/// The instruction sets the fast kernels use, detected at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa {
    /// AVX-512 F: the f32 matmul and `exp` kernels.
    pub avx512: bool,
    /// AVX-512 BF16: the bf16 matmul (fast mode).
    pub avx512_bf16: bool,
}

impl Isa {
    /// What this CPU supports (cached after the first call).
    pub fn detect() -> Isa {
        use std::sync::OnceLock;
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let avx512 = std::arch::is_x86_feature_detected!("avx512f");
                Isa {
                    avx512,
                    avx512_bf16: avx512 && std::arch::is_x86_feature_detected!("avx512bf16"),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                Isa {
                    avx512: false,
                    avx512_bf16: false,
                }
            }
        })
    }

    /// The portable kernels only (for tests comparing the two).
    pub const PORTABLE: Isa = Isa {
        avx512: false,
        avx512_bf16: false,
    };
}

/// Deterministic inputs for tests and benchmarks (not part of the API).
#[doc(hidden)]
pub mod testing {
    /// `n` values in `[-1, 1)` from a seeded LCG.
    pub fn random(n: usize, seed: u64) -> Vec<f32> {
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
}

/// `f32` to bf16 bits, rounding to nearest even (NaN stays NaN).
#[inline]
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// One or two values as a bf16 pair (`VDPBF16PS`'s operand: the first in
/// the low half; a missing second is zero).
#[inline]
pub(crate) fn bf16_pair(pair: &[f32]) -> u32 {
    let lo = u32::from(bf16_bits(pair[0]));
    let hi = pair.get(1).map_or(0, |&v| u32::from(bf16_bits(v)));
    lo | (hi << 16)
}

/// bf16 bits back to `f32` (exact).
#[inline]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}
