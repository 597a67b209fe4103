//! The x86-64 kernels, AVX-512 and AVX2+FMA: every use of these
//! instructions lives here. Each entry point takes an [`Isa`] and runs only
//! what it reports (its invariant: reported means present on this CPU),
//! returning `None` (or `false`) otherwise so the caller takes its portable
//! twin, which has the same contract. The AVX2 f32 micro-kernel and `exp`
//! perform the same operations in the same order as the AVX-512 ones, on 8
//! lanes instead of 16: their results are the same bits. The int16
//! kernels (AVX-512 VNNI and AVX2) compute each block's exact integer dot
//! product and the portable kernel's f32 operations on it: the same bits
//! too.

#![allow(unsafe_code)] // SIMD intrinsics and raw tile pointers; each unsafe block states why it holds

use std::arch::x86_64::*;

use crate::gemm::{Lhs, Tile, TileKernel, MR, NR, QK, Q_SCALES, Q_STEP_LINES};
use crate::peak::Unit;
use crate::{Isa, Precision};

/// `(AVX2 + FMA, AVX-512 F, AVX-512 BF16, AVX-512 VNNI)` on this CPU: for
/// [`Isa::detect`] only.
///
/// Rust's `avx512f` target feature implies AVX2, FMA and F16C, and
/// `avx512bf16` implies AVX-512 BW, so a kernel compiled for them may use
/// those too: each is required, not assumed. (cpu_cfgs.rs, the tests'
/// build-time probe, mirrors these conditions).
pub(crate) fn detect() -> (bool, bool, bool, bool) {
    let avx2_fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    let avx512f =
        avx2_fma && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("f16c");
    let bw = avx512f && is_x86_feature_detected!("avx512bw");
    let bf16 = bw && is_x86_feature_detected!("avx512bf16");
    let vnni = bw && is_x86_feature_detected!("avx512vnni");
    (avx2_fma, avx512f, bf16, vnni)
}

/// The micro-kernel for `precision`, where `isa` has its instructions.
pub(crate) fn tile_kernel(isa: Isa, precision: Precision) -> Option<TileKernel> {
    match precision {
        // SAFETY: `isa` proves AVX-512 F present; `tile_f32` needs nothing else.
        Precision::F32 if isa.avx512f() => Some(unsafe { TileKernel::new(tile_f32) }),
        // SAFETY: `isa` proves AVX2 and FMA present; `tile_f32_avx2` needs
        // nothing else.
        Precision::F32 if isa.avx2_fma() => Some(unsafe { TileKernel::new(tile_f32_avx2) }),
        // SAFETY: `isa` proves AVX-512 BF16 (and F) present; `tile_bf16`
        // needs nothing else.
        Precision::Bf16 if isa.avx512_bf16() => Some(unsafe { TileKernel::new(tile_bf16) }),
        Precision::Int16 if isa.avx512_vnni() => {
            // SAFETY: `isa` proves AVX-512 VNNI (with F and BW) present;
            // `tile_quantized_vnni` needs nothing else.
            Some(unsafe { TileKernel::new(tile_quantized_vnni) })
        }
        // SAFETY: `isa` proves AVX2 and FMA present; `tile_quantized_avx2`
        // needs nothing else.
        Precision::Int16 if isa.avx2_fma() => Some(unsafe { TileKernel::new(tile_quantized_avx2) }),
        _ => None,
    }
}

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
/// The CPU has AVX-512 F, and `c` meets [`TileKernel::run`]'s contract.
unsafe fn tile_f32(t: &Tile<'_>, c: *mut f32, ldc: usize) {
    let Lhs::F32(a) = t.lhs else {
        unreachable!("f32 kernel on f32 operands only")
    };
    let (a, b, mask) = operands(t, a);
    // SAFETY: `a`, `b` cover the tile's rows and steps (checked by
    // `operands`); the CPU and `c` are the caller's contract.
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
/// The CPU has AVX-512 BF16, and `c` meets [`TileKernel::run`]'s contract.
unsafe fn tile_bf16(t: &Tile<'_>, c: *mut f32, ldc: usize) {
    let Lhs::Bf16(a) = t.lhs else {
        unreachable!("bf16 kernel on bf16 operands only")
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

/// The f32 micro-kernel for one tile on AVX2: the tile's rows three at a
/// time (12 accumulators of 8 lanes, the register file's limit).
///
/// # Safety
/// The CPU has AVX2 and FMA, and `c` meets [`TileKernel::run`]'s contract.
unsafe fn tile_f32_avx2(t: &Tile<'_>, c: *mut f32, ldc: usize) {
    let Lhs::F32(a) = t.lhs else {
        unreachable!("f32 kernel on f32 operands only")
    };
    let (a, b, mask) = operands(t, a);
    let masks = quarter_masks(mask);
    for r0 in (0..t.mr).step_by(3) {
        // SAFETY: rows r0.. of the tile: `a` and `c` advanced by whole rows
        // inside the ranges `operands` checked and the caller guarantees.
        unsafe {
            let (a, c) = (a.add(r0 * t.lda), c.add(r0 * ldc));
            let args = (a, t.lda, b, t.steps, c, ldc, &masks, t.accumulate);
            match (t.mr - r0).min(3) {
                1 => f32_kernel_avx2::<1>(args),
                2 => f32_kernel_avx2::<2>(args),
                _ => f32_kernel_avx2::<3>(args),
            }
        }
    }
}

/// Per 8-column quarter of a tile, the lanes to store (all-ones lanes).
fn quarter_masks(mask: [u16; 2]) -> [[i32; 8]; 4] {
    let mut out = [[0i32; 8]; 4];
    for (q, lanes) in out.iter_mut().enumerate() {
        let bits = mask[q / 2] >> ((q % 2) * 8);
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane = if bits & (1 << l) != 0 { -1 } else { 0 };
        }
    }
    out
}

/// `(a, lda, b, steps, c, ldc, masks, accumulate)` of [`f32_kernel_avx2`].
type Avx2Args<'m> = (
    *const f32,
    usize,
    *const f32,
    usize,
    *mut f32,
    usize,
    &'m [[i32; 8]; 4],
    bool,
);

/// `R` rows (at most 3) × 32 columns on 8 lanes: the operations of
/// [`f32_kernel`], column for column, in the same order.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` is valid for reads of `R` rows (stride
/// `lda`) of `steps` values, `b` of `steps` × 32 values and 32-byte
/// aligned; `c + i·ldc + q·8 + lane` is valid for reads and writes for
/// every row `i < R` and lane the masks select, and nothing else accesses
/// those elements meanwhile.
#[target_feature(enable = "avx2,fma")]
unsafe fn f32_kernel_avx2<const R: usize>(
    (a, lda, b, steps, c, ldc, masks, accumulate): Avx2Args<'_>,
) {
    let mut acc = [[_mm256_setzero_ps(); 4]; R];
    for s in 0..steps {
        let mut x = [_mm256_setzero_ps(); R];
        for (i, x) in x.iter_mut().enumerate() {
            // SAFETY: row `i < R`, step `s` of `a`: in bounds (the contract).
            *x = _mm256_set1_ps(unsafe { *a.add(i * lda + s) });
        }
        for q in 0..4 {
            // SAFETY: quarter `q` of step `s` of `b`: in bounds and aligned.
            let w = unsafe { _mm256_load_ps(b.add(s * 32 + q * 8)) };
            for (row, &x) in acc.iter_mut().zip(&x) {
                row[q] = _mm256_fmadd_ps(x, w, row[q]);
            }
        }
    }
    // SAFETY: `c` is the caller's contract.
    unsafe { store_avx2(&acc, c, ldc, masks, accumulate) }
}

/// Writes (or adds) the accumulators to the columns the masks select.
///
/// # Safety
/// The CPU has AVX2; `c + i·ldc + q·8 + lane` is valid for reads and
/// writes for every row `i < R` and lane the masks select, and nothing else
/// accesses those elements meanwhile.
#[target_feature(enable = "avx2")]
unsafe fn store_avx2<const R: usize>(
    acc: &[[__m256; 4]; R],
    c: *mut f32,
    ldc: usize,
    masks: &[[i32; 8]; 4],
    accumulate: bool,
) {
    for (i, row) in acc.iter().enumerate() {
        for (q, &v) in row.iter().enumerate() {
            if masks[q] == [0; 8] {
                continue;
            }
            // SAFETY: only the lanes the mask selects are read or written,
            // and those are valid (the contract); the mask is 8 i32.
            unsafe {
                let m = _mm256_loadu_si256(masks[q].as_ptr().cast());
                let p = c.add(i * ldc + q * 8);
                let v = if accumulate {
                    _mm256_add_ps(_mm256_maskload_ps(p, m), v)
                } else {
                    v
                };
                _mm256_maskstore_ps(p, m, v);
            }
        }
    }
}

/// The tile's first `A` element, its panel's first step (as `T`, 64-byte
/// aligned) and the column masks, after checking that every element the
/// kernels read is in bounds.
fn operands<T>(t: &Tile<'_>, a: &[T]) -> (*const T, *const T, [u16; 2]) {
    assert!(
        (1..=MR).contains(&t.mr) && t.ncols <= NR,
        "tile of {}x{}",
        t.mr,
        t.ncols
    );
    assert!((t.row + t.mr - 1) * t.lda + t.a_col + t.steps <= a.len());
    assert!((t.step + t.steps) * 2 <= t.panel.len());
    let a = a[t.row * t.lda + t.a_col..].as_ptr();
    let b = t.panel[t.step * 2..].as_ptr().cast::<T>();
    (a, b, column_mask(t.ncols))
}

/// Store masks for the two 16-column halves of a tile `ncols` wide.
fn column_mask(ncols: usize) -> [u16; 2] {
    let bits = |n: usize| if n >= 16 { 0xffff } else { (1u16 << n) - 1 };
    [bits(ncols), bits(ncols.saturating_sub(16))]
}

/// `R` rows × 32 columns: 2R accumulators, two weight loads and R
/// broadcasts per step.
///
/// # Safety
/// The CPU has AVX-512 F; `a` is valid for reads of `R` rows (stride `lda`)
/// of `steps` values, `b` of `steps` × 32 values and 64-byte aligned; `c`
/// as for [`store`].
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
        // SAFETY: step `s` of `b`: in bounds and aligned (the contract).
        let (b0, b1) = unsafe {
            (
                _mm512_load_ps(b.add(s * 32)),
                _mm512_load_ps(b.add(s * 32 + 16)),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: row `i < R`, step `s` of `a`: in bounds (the contract).
            let x = _mm512_set1_ps(unsafe { *a.add(i * lda + s) });
            row[0] = _mm512_fmadd_ps(x, b0, row[0]);
            row[1] = _mm512_fmadd_ps(x, b1, row[1]);
        }
    }
    // SAFETY: `c` is the caller's contract.
    unsafe { store(&acc, c, ldc, mask, accumulate) }
}

/// `R` rows × 32 columns of bf16 pair dot products.
///
/// # Safety
/// The CPU has AVX-512 BF16; `a`, `b`, `c` as for [`f32_kernel`], in pairs.
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
        // SAFETY: step `s` of `b`: in bounds and aligned (the contract).
        let (b0, b1) = unsafe {
            (
                _mm512_load_si512(b.add(s * 32).cast()),
                _mm512_load_si512(b.add(s * 32 + 16).cast()),
            )
        };
        let (b0, b1) = (as_bf16_pairs(b0), as_bf16_pairs(b1));
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: row `i < R`, step `s` of `a`: in bounds (the contract).
            let x = as_bf16_pairs(_mm512_set1_epi32(unsafe { *a.add(i * lda + s) } as i32));
            row[0] = _mm512_dpbf16_ps(row[0], x, b0);
            row[1] = _mm512_dpbf16_ps(row[1], x, b1);
        }
    }
    // SAFETY: `c` is the caller's contract.
    unsafe { store(&acc, c, ldc, mask, accumulate) }
}

/// `(q, scales, panel)` of an int16 tile's rows `r0..`, after
/// checking that every element the kernels read is in bounds: `q` and
/// `scales` at row `r0`'s first block (`lda` blocks a row), the panel at
/// the tile's first step (64-byte aligned lines).
fn quantized_operands(t: &Tile<'_>, r0: usize) -> (*const u32, *const f32, *const u32) {
    let Lhs::Int16 { q, scales } = t.lhs else {
        unreachable!("int16 kernel on int16 activations only")
    };
    assert!(
        (1..=MR).contains(&t.mr) && t.ncols <= NR && r0 < t.mr,
        "tile of {}x{}",
        t.mr,
        t.ncols
    );
    let end = (t.row + t.mr - 1) * t.lda + t.a_col + t.steps;
    assert!(end <= scales.len() && end * (QK / 2) <= q.len());
    assert!((t.step + t.steps) * Q_STEP_LINES <= t.panel.len());
    let first = (t.row + r0) * t.lda + t.a_col;
    (
        q[first * (QK / 2)..].as_ptr(),
        scales[first..].as_ptr(),
        t.panel[t.step * Q_STEP_LINES..].as_ptr().cast::<u32>(),
    )
}

/// `(q, scales, lda, panel, blocks, c, ldc)` of the int16 row
/// kernels.
type QuantizedArgs = (
    *const u32,
    *const f32,
    usize,
    *const u32,
    usize,
    *mut f32,
    usize,
);

/// The int16 micro-kernel for one tile on AVX-512 VNNI: rows four
/// at a time (8 i32 and 8 f32 accumulators of 16 lanes; six rows ran 20 %
/// slower, spilling).
///
/// # Safety
/// The CPU has AVX-512 VNNI (and F, BW), and `c` meets
/// [`TileKernel::run`]'s contract.
unsafe fn tile_quantized_vnni(t: &Tile<'_>, c: *mut f32, ldc: usize) {
    let mask = column_mask(t.ncols);
    for r0 in (0..t.mr).step_by(4) {
        let (q, scales, w) = quantized_operands(t, r0);
        // SAFETY: rows r0.. of the tile, inside the ranges
        // `quantized_operands` checked and the caller guarantees.
        unsafe {
            let args = (q, scales, t.lda, w, t.steps, c.add(r0 * ldc), ldc);
            match t.mr - r0 {
                1 => quantized_vnni_kernel::<1>(args, mask, t.accumulate),
                2 => quantized_vnni_kernel::<2>(args, mask, t.accumulate),
                3 => quantized_vnni_kernel::<3>(args, mask, t.accumulate),
                _ => quantized_vnni_kernel::<4>(args, mask, t.accumulate),
            }
        }
    }
}

/// `R` rows × 32 columns of int16 blocks: per block, sixteen
/// `VPDPWSSD` (two `k` a lane) into i32 accumulators started at 0, then
/// `acc = fma(sa · sw, dot, acc)` in f32.
///
/// Exact: `|qa| ≤ 32767` and `|qw| ≤ 2047` (`gemm::quantize_block`), so a
/// lane's block sum is at most 16 pairs × 2 × 32767 × 2047 = 2,146,369,568
/// < 2³¹ - 1 in magnitude (no partial sum exceeds it either), and the i32
/// sums are the portable kernel's dots.
///
/// # Safety
/// The CPU has AVX-512 VNNI; `q` and `scales` are valid for reads of `R`
/// rows (`lda` blocks apart) of `blocks` blocks, the panel of `blocks`
/// int16 steps and 64-byte aligned; `c` as for [`store`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn quantized_vnni_kernel<const R: usize>(
    (q, scales, lda, w, blocks, c, ldc): QuantizedArgs,
    mask: [u16; 2],
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for b in 0..blocks {
        // SAFETY: block `b` of the panel and of each row: in bounds, lines
        // aligned (the contract).
        unsafe {
            let blk = w.add(b * Q_STEP_LINES * 16);
            let mut dot = [[_mm512_setzero_si512(); 2]; R];
            for s in 0..QK / 2 {
                let w0 = _mm512_load_si512(blk.add(s * 32).cast());
                let w1 = _mm512_load_si512(blk.add(s * 32 + 16).cast());
                for (i, d) in dot.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(*q.add((i * lda + b) * (QK / 2) + s) as i32);
                    d[0] = _mm512_dpwssd_epi32(d[0], x, w0);
                    d[1] = _mm512_dpwssd_epi32(d[1], x, w1);
                }
            }
            let sw0 = _mm512_load_ps(blk.add(Q_SCALES * 16).cast());
            let sw1 = _mm512_load_ps(blk.add(Q_SCALES * 16 + 16).cast());
            for (i, (row, d)) in acc.iter_mut().zip(&dot).enumerate() {
                let sa = _mm512_set1_ps(*scales.add(i * lda + b));
                row[0] = _mm512_fmadd_ps(_mm512_mul_ps(sa, sw0), _mm512_cvtepi32_ps(d[0]), row[0]);
                row[1] = _mm512_fmadd_ps(_mm512_mul_ps(sa, sw1), _mm512_cvtepi32_ps(d[1]), row[1]);
            }
        }
    }
    // SAFETY: `c` is the caller's contract.
    unsafe { store(&acc, c, ldc, mask, accumulate) }
}

/// Rows of the AVX2 int16 kernel per call: 2 rows × 4 quarters = 8
/// i32 accumulators, with the broadcasts, a weight and a product in 12 of
/// the 16 registers (3 rows spill an accumulator, 15 % slower).
const QUANTIZED_AVX2_ROWS: usize = 2;

/// The int16 micro-kernel for one tile on AVX2: rows
/// [`QUANTIZED_AVX2_ROWS`] at a time.
///
/// # Safety
/// The CPU has AVX2 and FMA, and `c` meets [`TileKernel::run`]'s contract.
unsafe fn tile_quantized_avx2(t: &Tile<'_>, c: *mut f32, ldc: usize) {
    let masks = quarter_masks(column_mask(t.ncols));
    for r0 in (0..t.mr).step_by(QUANTIZED_AVX2_ROWS) {
        let (q, scales, w) = quantized_operands(t, r0);
        // SAFETY: as in `tile_quantized_vnni`.
        unsafe {
            let args = (q, scales, t.lda, w, t.steps, c.add(r0 * ldc), ldc);
            match t.mr - r0 {
                1 => quantized_avx2_kernel::<1>(args, &masks, t.accumulate),
                _ => quantized_avx2_kernel::<QUANTIZED_AVX2_ROWS>(args, &masks, t.accumulate),
            }
        }
    }
}

/// `R` rows × 32 columns of int16 blocks on 8 lanes: per pair of
/// `k`, `VPMADDWD(qa pair, qw pair)` then `VPADDD` into i32 per block; then
/// the f32 steps of the portable kernel.
///
/// Exact: `VPMADDWD` multiplies i16 by i16 into an i32 pair sum (it only
/// wraps for two `-32768 · -32768`, which never occur), and a lane's block
/// sum, and every partial sum, is at most 16 pairs × 2 × 32767 × 2047 =
/// 2,146,369,568 < 2³¹ - 1 in magnitude (`|qa| ≤ 32767`, `|qw| ≤ 2047`,
/// `gemm::quantize_block`).
///
/// # Safety
/// The CPU has AVX2 and FMA; `q`, `scales` and the panel as for
/// [`quantized_vnni_kernel`] (lines 32-byte aligned); `c` as for
/// [`store_avx2`].
#[target_feature(enable = "avx2,fma")]
unsafe fn quantized_avx2_kernel<const R: usize>(
    (q, scales, lda, w, blocks, c, ldc): QuantizedArgs,
    masks: &[[i32; 8]; 4],
    accumulate: bool,
) {
    let mut acc = [[_mm256_setzero_ps(); 4]; R];
    for b in 0..blocks {
        // SAFETY: block `b` of the panel and of each row: in bounds, lines
        // aligned (the contract).
        unsafe {
            let blk = w.add(b * Q_STEP_LINES * 16);
            let mut dot = [[_mm256_setzero_si256(); 4]; R];
            for s in 0..QK / 2 {
                let mut x = [_mm256_setzero_si256(); R];
                for (i, x) in x.iter_mut().enumerate() {
                    *x = _mm256_set1_epi32(*q.add((i * lda + b) * (QK / 2) + s) as i32);
                }
                for k in 0..4 {
                    let wv = _mm256_load_si256(blk.add(s * 32 + k * 8).cast());
                    for (d, &x) in dot.iter_mut().zip(&x) {
                        d[k] = _mm256_add_epi32(d[k], _mm256_madd_epi16(x, wv));
                    }
                }
            }
            for k in 0..4 {
                let sw = _mm256_load_ps(blk.add(Q_SCALES * 16 + k * 8).cast());
                for (i, (row, d)) in acc.iter_mut().zip(&dot).enumerate() {
                    let sa = _mm256_set1_ps(*scales.add(i * lda + b));
                    row[k] =
                        _mm256_fmadd_ps(_mm256_mul_ps(sa, sw), _mm256_cvtepi32_ps(d[k]), row[k]);
                }
            }
        }
    }
    // SAFETY: `c` is the caller's contract.
    unsafe { store_avx2(&acc, c, ldc, masks, accumulate) }
}

/// The same 512 bits as 32 bf16 (16 pairs, the layout `VDPBF16PS` reads).
#[inline(always)]
fn as_bf16_pairs(x: __m512i) -> __m512bh {
    // SAFETY: both are 512 bits of plain data, every bit pattern valid.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(x) }
}

/// Writes (or adds) the accumulators to the columns the masks select.
///
/// # Safety
/// The CPU has AVX-512 F; for each row `i < R`, `c + i·ldc + h·16 + lane`
/// is valid for reads and writes for every lane set in `mask[h]`, and
/// nothing else accesses those elements meanwhile.
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
            // SAFETY: only the lanes the mask selects are read or written,
            // and those are valid (the contract).
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

/// One row of f32 as bf16 pairs (nearest even; an odd row's last pair has
/// a zero high half), where `isa` has AVX-512 BF16; `false` otherwise.
///
/// # Panics
/// If `dst` does not hold `⌈src.len() / 2⌉` pairs.
pub(crate) fn to_bf16_pairs(isa: Isa, src: &[f32], dst: &mut [u32]) -> bool {
    assert_eq!(dst.len(), src.len().div_ceil(2));
    if !isa.avx512_bf16() {
        return false;
    }
    // SAFETY: `isa` proves AVX-512 BF16 (and F) present.
    unsafe { to_bf16_pairs_avx512(src, dst) };
    true
}

#[target_feature(enable = "avx512f,avx512bf16")]
fn to_bf16_pairs_avx512(src: &[f32], dst: &mut [u32]) {
    let mut chunks = src.chunks_exact(32);
    let mut out = dst.chunks_exact_mut(16);
    for (s, d) in (&mut chunks).zip(&mut out) {
        // SAFETY: `s` holds 32 f32 (two unaligned loads), `d` 16 u32 (one
        // store); the transmute only relabels 512 bits of plain data.
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

/// One row of activations quantized to int16 for the int16 kernels
/// (see `gemm::quantize_row`), compiled for AVX2 where `isa` has it;
/// `false` otherwise. The same operations as the portable quantizer, so
/// the same values and scales.
pub(crate) fn quantize_row(isa: Isa, row: &[f32], q: &mut [u32], scales: &mut [f32]) -> bool {
    if !isa.avx2_fma() {
        return false;
    }
    // SAFETY: `isa` proves AVX2 present.
    unsafe { quantize_row_avx2(row, q, scales) };
    true
}

#[target_feature(enable = "avx2")]
fn quantize_row_avx2(row: &[f32], q: &mut [u32], scales: &mut [f32]) {
    crate::gemm::quantize_row(row, q, scales);
}

/// `exp` of 16 lanes: range reduction by ln 2 and a degree-7 polynomial,
/// within 2 ulp of the true value over the f32 range; `-inf` and anything
/// below -104 give 0, NaN stays NaN.
#[target_feature(enable = "avx512f")]
fn exp16(x: __m512) -> __m512 {
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

/// [`exp16`] on 8 lanes, the same operations in the same order; AVX2 has no
/// `scalef`, so `p · 2ⁿ` is two exact power-of-two scalings, the second
/// rounding once into the subnormals just as `scalef` does.
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_set1_ps(88.72284),
        _mm256_max_ps(_mm256_set1_ps(-104.0), x),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_145_75), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428_606_8e-6), r);
    let mut p = _mm256_set1_ps(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    // n ∈ [-150, 128] and p ∈ [0.7, 1.42]: with n1 ∈ [-125, 127], p · 2^n1
    // is a normal f32, so exact; then 2^(n - n1), n - n1 ∈ [-25, 1]
    let n1 = _mm256_min_ps(
        _mm256_set1_ps(127.0),
        _mm256_max_ps(_mm256_set1_ps(-125.0), n),
    );
    let pow2 = |e: __m256| {
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(e),
            _mm256_set1_epi32(127),
        ));
        _mm256_castsi256_ps(bits)
    };
    _mm256_mul_ps(_mm256_mul_ps(p, pow2(n1)), pow2(_mm256_sub_ps(n, n1)))
}

/// `Σ exp(x - shift)` over `x`, in f64 (each exp in f32), where `isa` has
/// AVX-512 F.
pub(crate) fn sum_exp(isa: Isa, x: &[f32], shift: f32) -> Option<f64> {
    if isa.avx512f() {
        // SAFETY: `isa` proves AVX-512 F present.
        Some(unsafe { sum_exp_avx512(x, shift) })
    } else if isa.avx2_fma() {
        // SAFETY: `isa` proves AVX2 and FMA present.
        Some(unsafe { sum_exp_avx2(x, shift) })
    } else {
        None
    }
}

#[target_feature(enable = "avx2,fma")]
fn sum_exp_avx2(x: &[f32], shift: f32) -> f64 {
    let s = _mm256_set1_ps(shift);
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut add = |e: __m256| {
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
    };
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        // SAFETY: `c` holds 8 floats.
        let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        add(exp8(_mm256_sub_ps(v, s)));
    }
    let mut rest = [f32::NEG_INFINITY; 8];
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // the missing lanes are exp(-inf) = 0
        rest[..tail.len()].copy_from_slice(tail);
        // SAFETY: `rest` holds 8 floats.
        let v = unsafe { _mm256_loadu_ps(rest.as_ptr()) };
        add(exp8(_mm256_sub_ps(v, s)));
    }
    let mut lanes = [0.0f64; 4];
    // SAFETY: `lanes` holds 4 doubles.
    unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_add_pd(lo, hi)) };
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
}

#[target_feature(enable = "avx512f")]
fn sum_exp_avx512(x: &[f32], shift: f32) -> f64 {
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
        // SAFETY: `c` holds 16 floats.
        let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
        add(&mut lo, &mut hi, exp16(_mm512_sub_ps(v, s)));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let m = (1u16 << rest.len()) - 1;
        // SAFETY: only the `rest.len()` lanes the mask selects are read.
        let v = unsafe { _mm512_maskz_loadu_ps(m, rest.as_ptr()) };
        let e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(v, s)));
        add(&mut lo, &mut hi, e);
    }
    _mm512_reduce_add_pd(_mm512_add_pd(lo, hi))
}

/// `x ← exp(x - shift)` in place, where `isa` has AVX-512 F; returns the
/// f32 sum of the results.
pub(crate) fn exp_shifted(isa: Isa, x: &mut [f32], shift: f32) -> Option<f32> {
    if isa.avx512f() {
        // SAFETY: `isa` proves AVX-512 F present.
        Some(unsafe { exp_shifted_avx512(x, shift) })
    } else if isa.avx2_fma() {
        // SAFETY: `isa` proves AVX2 and FMA present.
        Some(unsafe { exp_shifted_avx2(x, shift) })
    } else {
        None
    }
}

#[target_feature(enable = "avx2,fma")]
fn exp_shifted_avx2(x: &mut [f32], shift: f32) -> f32 {
    let s = _mm256_set1_ps(shift);
    let mut sum = _mm256_setzero_ps();
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: `c` holds 8 floats, read and written.
        unsafe {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), s));
            sum = _mm256_add_ps(sum, e);
            _mm256_storeu_ps(c.as_mut_ptr(), e);
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut rest = [f32::NEG_INFINITY; 8];
        rest[..tail.len()].copy_from_slice(tail);
        // SAFETY: `rest` holds 8 floats, read and written.
        unsafe {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(rest.as_ptr()), s));
            sum = _mm256_add_ps(sum, e);
            _mm256_storeu_ps(rest.as_mut_ptr(), e);
        }
        tail.copy_from_slice(&rest[..tail.len()]);
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

#[target_feature(enable = "avx512f")]
fn exp_shifted_avx512(x: &mut [f32], shift: f32) -> f32 {
    let s = _mm512_set1_ps(shift);
    let mut sum = _mm512_setzero_ps();
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: `c` holds 16 floats, read and written.
        unsafe {
            let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(c.as_ptr()), s));
            sum = _mm512_add_ps(sum, e);
            _mm512_storeu_ps(c.as_mut_ptr(), e);
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let m = (1u16 << rest.len()) - 1;
        // SAFETY: only the `rest.len()` lanes the mask selects are read or written.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, rest.as_ptr());
            let e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(v, s)));
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(rest.as_mut_ptr(), m, e);
        }
    }
    _mm512_reduce_add_ps(sum)
}

/// `Σ x²` in f64, element `i` in lane `i mod 8` (see `elementwise`), where
/// `isa` has AVX2 and FMA. Each square is exact in f64, so a fused
/// multiply-add rounds once, as the portable `+= v · v` does: the same bits.
pub(crate) fn sum_squares(isa: Isa, x: &[f32]) -> Option<[f64; 8]> {
    if isa.avx512f() {
        // SAFETY: `isa` proves AVX-512 F present.
        Some(unsafe { sum_squares_avx512(x) })
    } else if isa.avx2_fma() {
        // SAFETY: `isa` proves AVX2 and FMA present.
        Some(unsafe { sum_squares_avx2(x) })
    } else {
        None
    }
}

/// `x`'s last `x.len() % 8` elements, zero-padded to 8 (zeros add nothing
/// to a sum of squares).
fn padded_tail(x: &[f32]) -> Option<[f32; 8]> {
    let tail = x.chunks_exact(8).remainder();
    (!tail.is_empty()).then(|| {
        let mut rest = [0.0f32; 8];
        rest[..tail.len()].copy_from_slice(tail);
        rest
    })
}

#[target_feature(enable = "avx512f")]
fn sum_squares_avx512(x: &[f32]) -> [f64; 8] {
    let mut acc = _mm512_setzero_pd();
    let tail = padded_tail(x);
    for c in x.chunks_exact(8).chain(tail.as_ref().map(|t| &t[..])) {
        // SAFETY: `c` holds 8 floats.
        let v = _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(c.as_ptr()) });
        acc = _mm512_fmadd_pd(v, v, acc);
    }
    let mut lanes = [0.0f64; 8];
    // SAFETY: `lanes` holds 8 doubles.
    unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), acc) };
    lanes
}

#[target_feature(enable = "avx2,fma")]
fn sum_squares_avx2(x: &[f32]) -> [f64; 8] {
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let tail = padded_tail(x);
    for c in x.chunks_exact(8).chain(tail.as_ref().map(|t| &t[..])) {
        // SAFETY: `c` holds 8 floats.
        let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        let (a, b) = (
            _mm256_cvtps_pd(_mm256_castps256_ps128(v)),
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v)),
        );
        lo = _mm256_fmadd_pd(a, a, lo);
        hi = _mm256_fmadd_pd(b, b, hi);
    }
    let mut lanes = [0.0f64; 8];
    // SAFETY: `lanes` holds 8 doubles, two stores of 4.
    unsafe {
        _mm256_storeu_pd(lanes.as_mut_ptr(), lo);
        _mm256_storeu_pd(lanes.as_mut_ptr().add(4), hi);
    }
    lanes
}

/// `out = (x · r) · w`, two f32 roundings per element like the portable
/// loop, where `isa` has AVX2 and FMA; `false` otherwise.
///
/// # Panics
/// If `w` or `out` is shorter than `x`.
pub(crate) fn scale_mul(isa: Isa, x: &[f32], r: f32, w: &[f32], out: &mut [f32]) -> bool {
    assert!(w.len() >= x.len() && out.len() >= x.len());
    if isa.avx512f() {
        // SAFETY: `isa` proves AVX-512 F present.
        unsafe { scale_mul_avx512(x, r, w, out) };
    } else if isa.avx2_fma() {
        // SAFETY: `isa` proves AVX2 and FMA present.
        unsafe { scale_mul_avx2(x, r, w, out) };
    } else {
        return false;
    }
    true
}

#[target_feature(enable = "avx512f")]
fn scale_mul_avx512(x: &[f32], r: f32, w: &[f32], out: &mut [f32]) {
    let rv = _mm512_set1_ps(r);
    let mut i = 0;
    while i < x.len() {
        let m: u16 = if x.len() - i >= 16 {
            u16::MAX
        } else {
            (1u16 << (x.len() - i)) - 1
        };
        // SAFETY: lanes `i..i + 16` the mask selects lie inside `x`, and so
        // inside `w` and `out` (checked by `scale_mul`).
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
            let wv = _mm512_maskz_loadu_ps(m, w.as_ptr().add(i));
            let y = _mm512_mul_ps(_mm512_mul_ps(v, rv), wv);
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), m, y);
        }
        i += 16;
    }
}

#[target_feature(enable = "avx2,fma")]
fn scale_mul_avx2(x: &[f32], r: f32, w: &[f32], out: &mut [f32]) {
    let rv = _mm256_set1_ps(r);
    let whole = x.len() / 8 * 8;
    for i in (0..whole).step_by(8) {
        // SAFETY: `i + 8 <= x.len()`, and `w`, `out` are at least as long
        // (checked by `scale_mul`).
        unsafe {
            let v = _mm256_loadu_ps(x.as_ptr().add(i));
            let wv = _mm256_loadu_ps(w.as_ptr().add(i));
            let y = _mm256_mul_ps(_mm256_mul_ps(v, rv), wv);
            _mm256_storeu_ps(out.as_mut_ptr().add(i), y);
        }
    }
    for i in whole..x.len() {
        out[i] = (x[i] * r) * w[i];
    }
}

/// `gate ← SiLU(gate) · up` (see `elementwise` for the formula) with
/// [`exp16`] / [`exp8`], where `isa` has AVX2 and FMA; `false` otherwise.
///
/// # Panics
/// If `up` is shorter than `gate`.
pub(crate) fn silu_mul(isa: Isa, gate: &mut [f32], up: &[f32]) -> bool {
    assert!(up.len() >= gate.len());
    if isa.avx512f() {
        // SAFETY: `isa` proves AVX-512 F present.
        unsafe { silu_mul_avx512(gate, up) };
    } else if isa.avx2_fma() {
        // SAFETY: `isa` proves AVX2 and FMA present.
        unsafe { silu_mul_avx2(gate, up) };
    } else {
        return false;
    }
    true
}

#[target_feature(enable = "avx512f")]
fn silu16(g: __m512, u: __m512) -> __m512 {
    let zero = _mm512_setzero_ps();
    // exp(-|g|) ≤ 1: never overflows; `0 - a` is `-a` (a zero's sign aside,
    // which exp does not see)
    let e = exp16(_mm512_sub_ps(zero, _mm512_abs_ps(g)));
    let nonneg = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(g, zero);
    let num = _mm512_mask_blend_ps(nonneg, _mm512_mul_ps(g, e), g);
    let s = _mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0), e));
    _mm512_mul_ps(s, u)
}

#[target_feature(enable = "avx512f")]
fn silu_mul_avx512(gate: &mut [f32], up: &[f32]) {
    let n = gate.len();
    let mut i = 0;
    while i < n {
        let m: u16 = if n - i >= 16 {
            u16::MAX
        } else {
            (1u16 << (n - i)) - 1
        };
        // SAFETY: the lanes the mask selects lie inside `gate`, and so
        // inside `up` (checked by `silu_mul`).
        unsafe {
            let g = _mm512_maskz_loadu_ps(m, gate.as_ptr().add(i));
            let u = _mm512_maskz_loadu_ps(m, up.as_ptr().add(i));
            _mm512_mask_storeu_ps(gate.as_mut_ptr().add(i), m, silu16(g, u));
        }
        i += 16;
    }
}

/// [`silu16`] on 8 lanes, the same operations in the same order.
#[target_feature(enable = "avx2,fma")]
fn silu8(g: __m256, u: __m256) -> __m256 {
    let zero = _mm256_setzero_ps();
    let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), g);
    let e = exp8(_mm256_sub_ps(zero, abs));
    let nonneg = _mm256_cmp_ps::<_CMP_GE_OQ>(g, zero);
    let num = _mm256_blendv_ps(_mm256_mul_ps(g, e), g, nonneg);
    let s = _mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0), e));
    _mm256_mul_ps(s, u)
}

#[target_feature(enable = "avx2,fma")]
fn silu_mul_avx2(gate: &mut [f32], up: &[f32]) {
    let n = gate.len();
    let whole = n / 8 * 8;
    for i in (0..whole).step_by(8) {
        // SAFETY: `i + 8 <= gate.len() <= up.len()`.
        unsafe {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            _mm256_storeu_ps(gate.as_mut_ptr().add(i), silu8(g, u));
        }
    }
    if whole < n {
        let (mut g, mut u) = ([0.0f32; 8], [0.0f32; 8]);
        g[..n - whole].copy_from_slice(&gate[whole..]);
        u[..n - whole].copy_from_slice(&up[whole..n]);
        // SAFETY: `g` and `u` hold 8 floats each.
        unsafe {
            let y = silu8(_mm256_loadu_ps(g.as_ptr()), _mm256_loadu_ps(u.as_ptr()));
            _mm256_storeu_ps(g.as_mut_ptr(), y);
        }
        gate[whole..].copy_from_slice(&g[..n - whole]);
    }
}

/// `iters` rounds of 12 independent `unit` instructions on 16 lanes, where
/// `isa` has them; returns the FLOPs.
pub(crate) fn peak(isa: Isa, unit: Unit, iters: usize) -> Option<f64> {
    match unit {
        // SAFETY: `isa` proves AVX-512 F present.
        Unit::F32Fma if isa.avx512f() => Some(unsafe { peak_f32(iters) }),
        // SAFETY: `isa` proves AVX2 and FMA present.
        Unit::F32Fma if isa.avx2_fma() => Some(unsafe { peak_f32_avx2(iters) }),
        // SAFETY: `isa` proves AVX-512 BF16 (and F) present.
        Unit::Bf16Dot if isa.avx512_bf16() => Some(unsafe { peak_bf16(iters) }),
        _ => None,
    }
}

#[target_feature(enable = "avx512f")]
fn peak_f32(iters: usize) -> f64 {
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

#[target_feature(enable = "avx2,fma")]
fn peak_f32_avx2(iters: usize) -> f64 {
    let mut acc = [_mm256_set1_ps(0.5); 12];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm256_fmadd_ps(*r, a, b);
        }
    }
    std::hint::black_box(acc);
    (iters * 12 * 8 * 2) as f64
}

#[target_feature(enable = "avx512f,avx512bf16")]
fn peak_bf16(iters: usize) -> f64 {
    let mut acc = [_mm512_setzero_ps(); 12];
    // bf16 pairs of small values
    let x = as_bf16_pairs(_mm512_set1_epi32(0x3c00_3c00));
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_dpbf16_ps(*r, x, x);
        }
    }
    std::hint::black_box(acc);
    (iters * 12 * 16 * 4) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_declines_the_portable_isa() {
        let isa = Isa::PORTABLE;
        assert!(tile_kernel(isa, Precision::F32).is_none());
        assert!(tile_kernel(isa, Precision::Bf16).is_none());
        assert!(tile_kernel(isa, Precision::Int16).is_none());
        let mut scales = [0.0f32; 1];
        assert!(!quantize_row(isa, &[1.0; 3], &mut [0u32; 16], &mut scales));
        assert_eq!(scales, [0.0], "nothing written");
        let mut pairs = [0u32; 2];
        assert!(!to_bf16_pairs(isa, &[1.0, 2.0, 3.0], &mut pairs));
        assert_eq!(pairs, [0, 0], "nothing written");
        assert!(sum_exp(isa, &[1.0; 20], 0.0).is_none());
        let mut x = [1.0f32; 20];
        assert!(exp_shifted(isa, &mut x, 0.0).is_none());
        assert_eq!(x, [1.0; 20], "nothing written");
        assert!(sum_squares(isa, &[1.0; 20]).is_none());
        let mut out = [0.0f32; 20];
        assert!(!scale_mul(isa, &[1.0; 20], 2.0, &[1.0; 20], &mut out));
        assert_eq!(out, [0.0; 20], "nothing written");
        assert!(!silu_mul(isa, &mut x, &[1.0; 20]));
        assert_eq!(x, [1.0; 20], "nothing written");
        assert!(peak(isa, Unit::F32Fma, 1).is_none());
        assert!(peak(isa, Unit::Bf16Dot, 1).is_none());
    }

    #[test]
    fn without_avx512_the_bf16_entry_points_decline() {
        let isa = Isa::detect().without_avx512();
        assert!(tile_kernel(isa, Precision::Bf16).is_none());
        let mut pairs = [0u32; 2];
        assert!(!to_bf16_pairs(isa, &[1.0, 2.0, 3.0], &mut pairs));
        assert!(peak(isa, Unit::Bf16Dot, 1).is_none());
        assert_eq!(tile_kernel(isa, Precision::F32).is_some(), isa.avx2_fma());
        // int16 on AVX2 too
        assert_eq!(tile_kernel(isa, Precision::Int16).is_some(), isa.avx2_fma());
    }

    #[test]
    fn quarter_masks_select_the_tile_columns() {
        let masks = quarter_masks(column_mask(19));
        let lanes: Vec<bool> = masks.iter().flatten().map(|&l| l == -1).collect();
        assert_eq!(lanes.iter().filter(|&&l| l).count(), 19);
        assert!(lanes[..19].iter().all(|&l| l) && !lanes[19]);
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512bf16),
        ignore = "this CPU lacks AVX-512 BF16 (kernels' bf16 path not tested)"
    )]
    fn bf16_conversion_rounds_like_the_portable_one() {
        let isa = Isa::detect();
        assert!(
            isa.avx512_bf16(),
            "built on a CPU with AVX-512 BF16, run on one without"
        );
        // a full vector, a remainder and an odd tail; ties and NaN included
        let mut src = crate::testing::random(75, 9);
        src[3] = f32::from_bits(0x3f80_8000); // a tie: rounds to even
        src[40] = f32::NAN;
        let mut fast = vec![0u32; 38];
        assert!(to_bf16_pairs(isa, &src, &mut fast));
        let portable: Vec<u32> = src.chunks(2).map(crate::bf16_pair).collect();
        let nan = |p: u32| crate::bf16_to_f32(p as u16).is_nan();
        for (i, (&f, &p)) in fast.iter().zip(&portable).enumerate() {
            if i == 20 {
                assert!(nan(f) && nan(p), "NaN stays NaN");
                assert_eq!(f >> 16, p >> 16, "pair {i}, high half");
            } else {
                assert_eq!(f, p, "pair {i}");
            }
        }
    }
}
