//! How matrices are multiplied: `perplex-kernels`' packed panels (f32, or
//! in the fast mode bf16 where the CPU has AVX-512 BF16, else 12-bit weights
//! × 16-bit activations) where
//! the CPU has AVX2 and FMA, candle's f32 matmul elsewhere. Both compute `x · Wᵀ` for a weight `W` `[n, k]` in PyTorch
//! orientation; the choice is made once per model ([`Kernels::select`]).

use std::borrow::Cow;

use candle_core::{Device, Tensor};
use perplex_kernels::{PackedMatrix, Precision};

use crate::error::ModelError;
use crate::weights::{FirstFailure, Weight};
use crate::Compute;

/// How the linear layers and the head multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    /// candle's matmul in f32 (CPUs without AVX2 and FMA, or
    /// `PERPLEX_KERNELS=candle`).
    Candle,
    /// `perplex-kernels`' packed matmul in this precision.
    Packed(Precision),
}

impl Kernels {
    /// The report's name for these kernels on this CPU.
    pub(crate) fn name(self) -> &'static str {
        let isa = perplex_kernels::Isa::detect();
        match self {
            Kernels::Candle => "candle",
            Kernels::Packed(_) if isa.avx512f() => "avx512",
            Kernels::Packed(_) if isa.avx2_fma() => "avx2",
            Kernels::Packed(_) => "portable",
        }
    }

    /// The kernels for `compute` on this CPU.
    pub(crate) fn select(compute: Compute) -> Result<Kernels, ModelError> {
        perplex_kernels::cpu_cap()?;
        let isa = perplex_kernels::Isa::detect();
        let forced_candle = std::env::var_os("PERPLEX_KERNELS").is_some_and(|v| v == "candle");
        match compute {
            // AVX2 or AVX-512: the same products, bit for bit
            Compute::Exact if isa.avx2_fma() && !forced_candle => {
                Ok(Kernels::Packed(Precision::F32))
            }
            Compute::Exact => Ok(Kernels::Candle),
            Compute::Fast => fast_precision()
                .map(Kernels::Packed)
                .ok_or(ModelError::FastModeUnsupported),
        }
    }
}

/// Environment variable choosing the fast mode's products where the CPU
/// has both: `int16` takes int16 products even with AVX-512
/// BF16 (to compare the two on one machine); it never enables what the
/// CPU lacks.
pub const FAST_PRODUCTS_VAR: &str = "PERPLEX_FAST";

/// The [`FAST_PRODUCTS_VAR`] value (and the report's `compute_dtype`) of
/// the 12-bit-weight × 16-bit-activation products.
pub const INT16: &str = "int16";

/// The fast mode's products on this CPU: bf16 where it has AVX-512 BF16
/// (unless [`FAST_PRODUCTS_VAR`] is [`INT16`]), 12-bit weights × 16-bit
/// activations where it has AVX-512 VNNI or AVX2 and FMA, else none.
///
/// Bf16 stays the default where both exist: on the AMD EPYC these were
/// measured on it was faster end to end than int16 on AVX-512 VNNI
/// (docs/performance.md, "Exact and fast modes").
pub(crate) fn fast_precision() -> Option<Precision> {
    let isa = perplex_kernels::Isa::detect();
    let forced = std::env::var_os(FAST_PRODUCTS_VAR).is_some_and(|v| v == INT16);
    if isa.avx512_bf16() && !forced {
        Some(Precision::Bf16)
    } else if isa.avx512_vnni() || isa.avx2_fma() {
        Some(Precision::Int16)
    } else {
        None
    }
}

/// `x · Wᵀ` for a contiguous `x` `[m, k]` against a packed `W` `[n, k]`.
pub(crate) fn packed_matmul(x: &Tensor, w: &PackedMatrix) -> candle_core::Result<Tensor> {
    let (m, k) = x.dims2()?;
    if k != w.cols() {
        candle_core::bail!(
            "matmul of [{m}, {k}] by a packed [{}, {}]ᵀ",
            w.rows(),
            w.cols()
        )
    }
    let mut out = vec![0f32; m * w.rows()];
    with_slice(x, |data| perplex_kernels::matmul(data, m, w, &mut out))?;
    Tensor::from_vec(out, (m, w.rows()), &Device::Cpu)
}

/// Runs `f` on the f32 elements of `t` in row-major order (without a copy
/// when `t` is contiguous).
pub(crate) fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("the kernels read tensors on the CPU only")
    };
    let start = layout.start_offset();
    Ok(f(&cpu.as_slice::<f32>()?[start..start + t.elem_count()]))
}

/// Rows of a weight made ready for one or more products: packed panels
/// (borrowed when packed at load, else packed now), rows to pack panel by
/// panel during the one product they serve, or an f32 tensor for candle.
pub(crate) enum Ready<'a> {
    Packed(Cow<'a, PackedMatrix>),
    Packing {
        weight: &'a Weight,
        first: usize,
        len: usize,
        precision: Precision,
    },
    Tensor(Tensor),
}

impl Kernels {
    /// Rows `first..first + len` of `w`, ready for `products` products.
    ///
    /// On the packed path a weight not packed at load is packed during the
    /// product when it serves one (its working set: a few panels per
    /// thread), and packed whole now when it serves more (widened once).
    pub(crate) fn ready<'a>(
        self,
        w: &'a Weight,
        first: usize,
        len: usize,
        products: usize,
    ) -> candle_core::Result<Ready<'a>> {
        Ok(match self {
            Kernels::Packed(precision) => match w {
                Weight::Dense(_) | Weight::Quant(_) | Weight::Mapped(_) if products <= 1 => {
                    Ready::Packing {
                        weight: w,
                        first,
                        len,
                        precision,
                    }
                }
                _ => Ready::Packed(w.packed_rows(first, len, precision)?),
            },
            Kernels::Candle if (first, len) == (0, w.dims().0) => Ready::Tensor(w.to_f32()?),
            Kernels::Candle => Ready::Tensor(w.rows_f32(first, len)?),
        })
    }
}

impl Ready<'_> {
    /// `x · Wᵀ` for `x` `[m, k]`.
    pub(crate) fn multiply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Ready::Packed(p) => packed_matmul(x, p),
            Ready::Packing {
                weight,
                first,
                len,
                precision,
            } => packing_matmul(x, weight, *first, *len, *precision),
            Ready::Tensor(t) => x.matmul(&t.t()?),
        }
    }
}

/// `x · Wᵀ` for rows `start..start + len` of `w`, packed during the product.
fn packing_matmul(
    x: &Tensor,
    w: &Weight,
    start: usize,
    len: usize,
    precision: Precision,
) -> candle_core::Result<Tensor> {
    let (m, k) = x.dims2()?;
    let (rows, cols) = w.dims();
    if k != cols || start + len > rows {
        candle_core::bail!(
            "matmul of [{m}, {k}] by rows {start}..{} of a [{rows}, {cols}]ᵀ",
            start + len
        )
    }
    let mut out = vec![0f32; m * len];
    let failure = FirstFailure::default();
    with_slice(x, |data| {
        perplex_kernels::matmul_packing(
            data,
            m,
            (len, k),
            precision,
            |first, n, rows| failure.keep(w.rows_into(start + first, n, rows)),
            &mut out,
        )
    })?;
    failure.into_result()?;
    Tensor::from_vec(out, (m, len), &Device::Cpu)
}
