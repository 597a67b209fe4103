//! AVX-512 kernels. Callers check [`crate::Isa`] first; every function here
//! has a portable twin with the same contract.

#![allow(unsafe_code)] // SIMD intrinsics; each unsafe block states why it holds

use std::arch::x86_64::*;

use crate::gemm::{Lhs, Tile, NR};

/// Calls `$kernel::<R>` for the tile's row count `R` (1..=12).
macro_rules! by_rows {
    ($mr:expr, $kernel:ident, $($arg:expr),*) => {
        match $mr {
            1 => $kernel::<1>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            6 => $kernel::<6>($($arg),*),
            7 => $kernel::<7>($($arg),*),
            8 => $kernel::<8>($($arg),*),
            9 => $kernel::<9>($($arg),*),
            10 => $kernel::<10>($($arg),*),
            11 => $kernel::<11>($($arg),*),
            12 => $kernel::<12>($($arg),*),
            mr => unreachable!("tile of {mr} rows"),
        }
    };
}

/// The f32 micro-kernel for one tile (see [`Tile`]).
///
/// # Safety
/// The CPU has AVX-512 F; `c` as for `gemm::portable_tile`.
pub(crate) unsafe fn tile_f32(t: &Tile<'_>, c: *mut f32, ldc: usize) {
    let Lhs::F32(a) = t.lhs else {
        unreachable!("f32 kernel on bf16 operands")
    };
    let (a, b, mask) = operands(t, a);
    // SAFETY: operands in bounds (checked by `operands`), `c` is the caller's contract.
    unsafe {
        by_rows!(
            t.mr,
            f32_kernel,
            a,
            t.lda,
            b,
            t.steps,
            c,
            ldc,
            mask,
            t.accumulate
        )
    }
}

/// The bf16 micro-kernel for one tile.
///
/// # Safety
/// The CPU has AVX-512 BF16; `c` as for `gemm::portable_tile`.
pub(crate) unsafe fn tile_bf16(t: &Tile<'_>, c: *mut f32, ldc: usize) {
    let Lhs::Bf16(a) = t.lhs else {
        unreachable!("bf16 kernel on f32 operands")
    };
    let (a, b, mask) = operands(t, a);
    // SAFETY: as in `tile_f32`.
    unsafe {
        by_rows!(
            t.mr,
            bf16_kernel,
            a,
            t.lda,
            b,
            t.steps,
            c,
            ldc,
            mask,
            t.accumulate
        )
    }
}

/// The tile's first `A` element, its panel's first step (as `T`) and the
/// column masks, after checking that every step read is in bounds.
fn operands<T>(t: &Tile<'_>, a: &[T]) -> (*const T, *const T, [u16; 2]) {
    assert!((t.row + t.mr - 1) * t.lda + t.a_col + t.steps <= a.len());
    assert!((t.step + t.steps) * 2 <= t.panel.len());
    let a = a[t.row * t.lda + t.a_col..].as_ptr();
    let b = t.panel[t.step * 2..].as_ptr().cast::<T>();
    (a, b, column_mask(t.ncols))
}

/// Store masks for the two 16-column halves of a tile `ncols` wide.
fn column_mask(ncols: usize) -> [u16; 2] {
    debug_assert!(ncols <= NR);
    let bits = |n: usize| if n >= 16 { 0xffff } else { (1u16 << n) - 1 };
    [bits(ncols), bits(ncols.saturating_sub(16))]
}

/// `R` rows × 32 columns: 2R accumulators, two weight loads and R
/// broadcasts per step.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_kernel<const R: usize>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    steps: usize,
    c: *mut f32,
    ldc: usize,
    mask: [u16; 2],
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for s in 0..steps {
        // SAFETY (whole loop): the caller checked `steps` against both operands.
        let (b0, b1) = unsafe {
            (
                _mm512_load_ps(b.add(s * 32)),
                _mm512_load_ps(b.add(s * 32 + 16)),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(unsafe { *a.add(i * lda + s) });
            row[0] = _mm512_fmadd_ps(x, b0, row[0]);
            row[1] = _mm512_fmadd_ps(x, b1, row[1]);
        }
    }
    // SAFETY: the tile's elements of `c` (the caller's contract).
    unsafe { store(&acc, c, ldc, mask, accumulate) }
}

/// `R` rows × 32 columns of bf16 pair dot products.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn bf16_kernel<const R: usize>(
    a: *const u32,
    lda: usize,
    b: *const u32,
    steps: usize,
    c: *mut f32,
    ldc: usize,
    mask: [u16; 2],
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for s in 0..steps {
        // SAFETY (whole loop): the caller checked `steps` against both operands.
        let (b0, b1): (__m512bh, __m512bh) = unsafe {
            (
                std::mem::transmute::<__m512i, __m512bh>(_mm512_load_si512(b.add(s * 32).cast())),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_load_si512(
                    b.add(s * 32 + 16).cast(),
                )),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_epi32(unsafe { *a.add(i * lda + s) } as i32);
            // SAFETY: same bits, the pair layout VDPBF16PS reads.
            let x = unsafe { std::mem::transmute::<__m512i, __m512bh>(x) };
            row[0] = _mm512_dpbf16_ps(row[0], x, b0);
            row[1] = _mm512_dpbf16_ps(row[1], x, b1);
        }
    }
    // SAFETY: the tile's elements of `c` (the caller's contract).
    unsafe { store(&acc, c, ldc, mask, accumulate) }
}

/// Writes (or adds) the accumulators to the first `popcount(mask)` columns.
#[target_feature(enable = "avx512f")]
unsafe fn store<const R: usize>(
    acc: &[[__m512; 2]; R],
    c: *mut f32,
    ldc: usize,
    mask: [u16; 2],
    accumulate: bool,
) {
    for (i, row) in acc.iter().enumerate() {
        for (h, &v) in row.iter().enumerate() {
            if mask[h] == 0 {
                continue;
            }
            // SAFETY: masked lanes are neither read nor written; the others
            // are the tile's (the caller's contract).
            unsafe {
                let p = c.add(i * ldc + h * 16);
                let v = if accumulate {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(mask[h], p), v)
                } else {
                    v
                };
                _mm512_mask_storeu_ps(p, mask[h], v);
            }
        }
    }
}

/// One row of f32 as bf16 pairs (nearest even); an odd row's last pair has
/// a zero high half.
pub(crate) fn to_bf16_pairs(src: &[f32], dst: &mut [u32]) {
    assert_eq!(dst.len(), src.len().div_ceil(2));
    // SAFETY: the caller checked Isa::avx512_bf16; lengths asserted.
    unsafe { to_bf16_pairs_avx512(src, dst) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn to_bf16_pairs_avx512(src: &[f32], dst: &mut [u32]) {
    let mut chunks = src.chunks_exact(32);
    let mut out = dst.chunks_exact_mut(16);
    for (s, d) in (&mut chunks).zip(&mut out) {
        // SAFETY: 32 f32 in, 16 u32 out.
        unsafe {
            let v = _mm512_cvtne2ps_pbh(
                _mm512_loadu_ps(s.as_ptr().add(16)),
                _mm512_loadu_ps(s.as_ptr()),
            );
            _mm512_storeu_si512(
                d.as_mut_ptr().cast(),
                std::mem::transmute::<__m512bh, __m512i>(v),
            );
        }
    }
    let done = src.len() / 32 * 16;
    for (d, pair) in dst[done..].iter_mut().zip(chunks.remainder().chunks(2)) {
        *d = crate::bf16_pair(pair);
    }
}

/// `exp` of 16 lanes: range reduction by ln 2 and a degree-7 polynomial,
/// within 2 ulp of the true value over the f32 range; `-inf` and anything
/// below -104 give 0, NaN stays NaN.
#[target_feature(enable = "avx512f")]
pub(crate) fn exp16(x: __m512) -> __m512 {
    // max/min return their second operand when either is NaN: x goes second
    let x = _mm512_min_ps(
        _mm512_set1_ps(88.72284),
        _mm512_max_ps(_mm512_set1_ps(-104.0), x),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
    let mut p = _mm512_set1_ps(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

/// `Σ exp(x - shift)` over `x`, in f64 (each exp in f32).
pub(crate) fn sum_exp(x: &[f32], shift: f32) -> f64 {
    // SAFETY: the caller checked Isa::avx512.
    unsafe { sum_exp_avx512(x, shift) }
}

#[target_feature(enable = "avx512f")]
unsafe fn sum_exp_avx512(x: &[f32], shift: f32) -> f64 {
    let s = _mm512_set1_ps(shift);
    let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    let mut chunks = x.chunks_exact(16);
    let add = |lo: &mut __m512d, hi: &mut __m512d, e: __m512| {
        *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        *hi = _mm512_add_pd(
            *hi,
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(e),
            ))),
        );
    };
    for c in &mut chunks {
        // SAFETY: 16 floats.
        let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
        add(&mut lo, &mut hi, exp16(_mm512_sub_ps(v, s)));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let m = (1u16 << rest.len()) - 1;
        // SAFETY: masked lanes are not read.
        let v = unsafe { _mm512_maskz_loadu_ps(m, rest.as_ptr()) };
        let e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(v, s)));
        add(&mut lo, &mut hi, e);
    }
    _mm512_reduce_add_pd(_mm512_add_pd(lo, hi))
}

/// `x ← exp(x - shift)` in place; returns the f32 sum of the results.
pub(crate) fn exp_shifted(x: &mut [f32], shift: f32) -> f32 {
    // SAFETY: the caller checked Isa::avx512.
    unsafe { exp_shifted_avx512(x, shift) }
}

#[target_feature(enable = "avx512f")]
unsafe fn exp_shifted_avx512(x: &mut [f32], shift: f32) -> f32 {
    let s = _mm512_set1_ps(shift);
    let mut sum = _mm512_setzero_ps();
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: 16 floats.
        unsafe {
            let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(c.as_ptr()), s));
            sum = _mm512_add_ps(sum, e);
            _mm512_storeu_ps(c.as_mut_ptr(), e);
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let m = (1u16 << rest.len()) - 1;
        // SAFETY: masked lanes are neither read nor written.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, rest.as_ptr());
            let e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(v, s)));
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(rest.as_mut_ptr(), m, e);
        }
    }
    _mm512_reduce_add_ps(sum)
}

/// `iters` rounds of 12 independent 16-lane FMAs; returns the FLOPs.
pub(crate) fn peak_f32(iters: usize) -> f64 {
    // SAFETY: the caller checked Isa::avx512.
    unsafe { peak_f32_avx512(iters) }
}

#[target_feature(enable = "avx512f")]
unsafe fn peak_f32_avx512(iters: usize) -> f64 {
    let mut acc = [_mm512_set1_ps(0.5); 12];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_fmadd_ps(*r, a, b);
        }
    }
    std::hint::black_box(acc);
    (iters * 12 * 16 * 2) as f64
}

/// `iters` rounds of 12 independent bf16 pair dot products; returns the FLOPs.
pub(crate) fn peak_bf16(iters: usize) -> f64 {
    // SAFETY: the caller checked Isa::avx512_bf16.
    unsafe { peak_bf16_avx512(iters) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn peak_bf16_avx512(iters: usize) -> f64 {
    let mut acc = [_mm512_setzero_ps(); 12];
    // SAFETY: same bits, bf16 pairs of small values
    let x = unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(0x3c00_3c00)) };
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_dpbf16_ps(*r, x, x);
        }
    }
    std::hint::black_box(acc);
    (iters * 12 * 16 * 4) as f64
}
