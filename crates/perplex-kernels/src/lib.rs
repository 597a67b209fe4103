//! CPU compute kernels for perplex's forward pass, on plain slices.
//!
//! - [`PackedMatrix`] + [`matmul`]: `C = A · Wᵀ` for an activation matrix
//!   `A` (`[m, k]`, row-major f32) against a weight `W` (`[n, k]`, the
//!   layout of a linear layer) packed once into 32-column panels, in f32
//!   (exact mode) or bf16 (the opt-in fast mode, bf16 products with f32
//!   accumulation).
//! - [`attention`]: fused causal self-attention (scores, mask, softmax,
//!   values) per block of queries, in f32.
//! - [`exp`]: a vectorised `exp` and the softmax/log-sum-exp reductions
//!   built on it.
//! - [`elementwise`]: the work between the products, in place where it
//!   can be: RMSNorm over rows, the gated MLP's `SiLU(gate) · up`, the
//!   residual add.
//! - [`peak`]: the machine's measured arithmetic peak (the roofline).
//!
//! # Determinism
//!
//! Results do not depend on the batch, the padding or the thread count:
//! each output element is summed by one thread, in a fixed order (fixed
//! blocks along `k`), whatever the other rows it is batched with or how the
//! work is split. On one CPU the same inputs give the same bits.
//!
//! # Instruction sets
//!
//! Three paths exist: AVX-512 (F for the f32 matmul and `exp`, BF16 for the
//! bf16 matmul; x86-64), AVX2+FMA (the f32 matmul and `exp` on 8 lanes: the
//! same operations in the same order as AVX-512, so the same bits), and a
//! portable one with the same contract, used where those instructions are
//! missing and by the tests as the reference the fast paths must match (the
//! f32 matmul bit for bit, the rest within the stated error). The choice is
//! made at run time: [`Isa::detect`] reports what this CPU has (capped by
//! [`CPU_CAP_VAR`] when set), and the entry points use it; [`matmul_with`]
//! takes an [`Isa`] to force a path, and an `Isa` can only be detected,
//! [`Isa::PORTABLE`], or a downgrade of those, never more than the CPU has.
//! Threads come from the current rayon pool (run inside `pool.install` to
//! choose them).
//!
//! # Where the unsafe lives
//!
//! The public API is safe. All SIMD code is in one module per architecture
//! (`x86.rs`: AVX-512 and AVX2), whose entry points take an [`Isa`] and
//! decline what it does not report; another (NEON on aarch64) is one more
//! such module and one more arm where `gemm`, `exp`, `elementwise` and `peak` pick a
//! kernel. The rest is the micro-kernels' output pointer (`gemm.rs`: tasks
//! writing disjoint tiles of one product); every `unsafe fn` states its
//! contract and every `unsafe` block why it holds.
//!
//! # Tests
//!
//! The portable paths are tested everywhere. Tests of an AVX-512 or AVX2
//! path are reported ignored, with the reason, where the build host lacks it (the
//! build script's probe, cpu_cfgs.rs; tests are built and run on the same
//! machine).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod attention;
mod gemm;
mod isa;
#[cfg(target_arch = "x86_64")]
mod x86;

pub mod elementwise;
pub mod exp;
pub mod peak;

pub use gemm::{
    matmul, matmul_block, matmul_packing, matmul_packing_with, matmul_with, PackedMatrix, Precision,
};
pub use isa::{cpu_cap, CpuCapError, Isa, CPU_CAP_VAR};

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
