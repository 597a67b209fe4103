//! The element-wise work between the matrix products, on slices and in
//! place where the caller owns the buffer: RMSNorm over rows, the gated
//! MLP's `SiLU(gate) · up`, rotary embeddings, and the residual add.
//!
//! # Contract
//!
//! - [`rms_norm`]: `out = x / √(mean(x²) + eps) · weight` per row. The sum
//!   of squares is taken in f64 (each square exact) in eight lanes, element
//!   `i` in lane `i mod 8`, the lanes then added in one fixed tree; so a
//!   row's result depends on that row alone and is the same bits on the
//!   AVX-512, AVX2 and portable paths. Then `x · r` and `· weight` are two
//!   f32 roundings, transformers' order (`weight * (x * rsqrt(var + eps))`).
//! - [`silu_mul`]: `gate ← SiLU(gate) · up`, with `SiLU(g) = g / (1 + e⁻ᵍ)`
//!   computed as `g / (1 + e)` for `g ≥ 0` and `(g · e) / (1 + e)` below,
//!   `e = exp(-|g|)`, so `exp` never overflows. The AVX-512 and AVX2 paths
//!   use the kernels' vectorised `exp` (within 2 ulp, see [`crate::exp`])
//!   and are the same bits as each other; the portable path uses
//!   `f32::exp` (within 1 ulp), so it differs from them by a few ulp.
//!   NaN stays NaN.
//! - [`rope_heads`]: rotary embeddings fused with the split of a
//!   projection's rows into heads (candle's operations, in its order).
//! - [`add_in_place`]: `x ← x + y`; one f32 addition per element, the same
//!   bits at any vector width, so it has no SIMD twin to choose.
//!
//! Rows are split over the current rayon pool when there are many; each
//! row is computed by one thread, so results do not depend on the batch
//! or the thread count.

use rayon::prelude::*;

use crate::Isa;

/// Elements below which a call stays on the calling thread (a task costs
/// more than the work).
const PARALLEL_ELEMS: usize = 1 << 15;

/// `out = x / √(mean(x²) + eps) · weight` for each row of `x` (rows of
/// `weight.len()` elements). Runs on the current rayon pool.
///
/// # Panics
/// If `weight` is empty while `x` is not, `x.len()` is not a multiple of
/// `weight.len()`, or `out` is not as long as `x`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    rms_norm_with(Isa::detect(), x, weight, eps, out)
}

fn rms_norm_with(isa: Isa, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "rms_norm: input and output lengths");
    if x.is_empty() {
        return;
    }
    let n = weight.len();
    assert!(
        n > 0 && x.len().is_multiple_of(n),
        "rms_norm: {} elements in rows of {n}",
        x.len()
    );
    let row = |(x, out): (&[f32], &mut [f32])| rms_norm_row(isa, x, weight, eps, out);
    if x.len() >= PARALLEL_ELEMS {
        x.par_chunks(n).zip(out.par_chunks_mut(n)).for_each(row);
    } else {
        x.chunks(n).zip(out.chunks_mut(n)).for_each(row);
    }
}

fn rms_norm_row(isa: Isa, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let lanes = sum_squares(isa, x);
    let sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    let r = (1.0 / (sum / x.len() as f64 + f64::from(eps)).sqrt()) as f32;
    #[cfg(target_arch = "x86_64")]
    if crate::x86::scale_mul(isa, x, r, weight, out) {
        return;
    }
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = (v * r) * w;
    }
}

/// `Σ x²` in f64, element `i` in lane `i mod 8`.
fn sum_squares(isa: Isa, x: &[f32]) -> [f64; 8] {
    #[cfg(target_arch = "x86_64")]
    if let Some(lanes) = crate::x86::sum_squares(isa, x) {
        return lanes;
    }
    let _ = isa;
    let mut lanes = [0.0f64; 8];
    for c in x.chunks(8) {
        for (l, &v) in lanes.iter_mut().zip(c) {
            // the square of an f32 is exact in f64: one rounding, at the add
            *l += f64::from(v) * f64::from(v);
        }
    }
    lanes
}

/// `gate ← SiLU(gate) · up`, element by element. Runs on the current rayon
/// pool.
///
/// # Panics
/// If `gate` and `up` differ in length.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    silu_mul_with(Isa::detect(), gate, up)
}

/// Elements per task of the element-wise maps (a multiple of 16 lanes).
const MAP_CHUNK: usize = 1 << 14;

fn silu_mul_with(isa: Isa, gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "silu_mul: gate and up lengths");
    if gate.len() >= PARALLEL_ELEMS {
        gate.par_chunks_mut(MAP_CHUNK)
            .zip(up.par_chunks(MAP_CHUNK))
            .for_each(|(g, u)| silu_mul_chunk(isa, g, u));
    } else {
        silu_mul_chunk(isa, gate, up);
    }
}

fn silu_mul_chunk(isa: Isa, gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::x86::silu_mul(isa, gate, up) {
        return;
    }
    let _ = isa;
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

/// SiLU as [`silu_mul`] computes it, with `f32::exp`.
#[inline]
pub(crate) fn silu(g: f32) -> f32 {
    let e = (-g.abs()).exp();
    let num = if g >= 0.0 { g } else { g * e };
    num / (1.0 + e)
}

/// `x ← x + y`, element by element. Runs on the current rayon pool.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn add_in_place(x: &mut [f32], y: &[f32]) {
    assert_eq!(x.len(), y.len(), "add_in_place: lengths");
    let add = |(x, y): (&mut [f32], &[f32])| x.iter_mut().zip(y).for_each(|(a, &b)| *a += b);
    if x.len() >= PARALLEL_ELEMS {
        x.par_chunks_mut(MAP_CHUNK)
            .zip(y.par_chunks(MAP_CHUNK))
            .for_each(add);
    } else {
        add((x, y));
    }
}

/// The shape of a [`rope_heads`] call: `batch` windows of `len` positions,
/// `heads` heads of `head_dim` (even) values each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadsShape {
    /// Windows.
    pub batch: usize,
    /// Positions per window.
    pub len: usize,
    /// Heads.
    pub heads: usize,
    /// Values per head (even).
    pub head_dim: usize,
}

/// Rotary embeddings fused with the split into heads: `x` is
/// `[batch, len, heads·head_dim]` (a projection's output), `out`
/// `[batch, heads, len, head_dim]`, each head's halves `(a, b)` rotated by
/// the position's angles, `(a·cos − b·sin, a·sin + b·cos)` (transformers'
/// `rotate_half` form). `cos` and `sin` are `[len, head_dim / 2]`, one
/// table for every window, or `[batch, len, head_dim / 2]`, one per window. Each value is these f32 operations
/// in this order at any vector width, so there is no SIMD twin to choose.
/// Runs on the current rayon pool, one (window, head) per task.
///
/// # Panics
/// If the slices do not match `shape`, or `head_dim` is odd.
pub fn rope_heads(x: &[f32], shape: HeadsShape, cos: &[f32], sin: &[f32], out: &mut [f32]) {
    let HeadsShape {
        batch,
        len,
        heads,
        head_dim: d,
    } = shape;
    assert!(d % 2 == 0, "rope_heads: odd head_dim {d}");
    assert_eq!(x.len(), batch * len * heads * d, "rope_heads: input length");
    assert_eq!(out.len(), x.len(), "rope_heads: output length");
    assert_eq!(cos.len(), sin.len(), "rope_heads: cos and sin lengths");
    if x.is_empty() {
        return;
    }
    let half = d / 2;
    let per_window = cos.len() == batch * len * half && batch > 1;
    assert!(
        per_window || cos.len() == len * half,
        "rope_heads: tables of {} values for {batch} × {len} positions of {d}",
        cos.len()
    );
    let table_len = len;
    out.par_chunks_mut(len * d)
        .enumerate()
        .for_each(|(task, out)| {
            let (w, h) = (task / heads, task % heads);
            let table = if per_window { w * table_len * half } else { 0 };
            for (t, o) in out.chunks_exact_mut(d).enumerate() {
                let src = &x[((w * len + t) * heads + h) * d..][..d];
                let (c, s) = (
                    &cos[table + t * half..][..half],
                    &sin[table + t * half..][..half],
                );
                let (a, b) = src.split_at(half);
                let (o1, o2) = o.split_at_mut(half);
                // zipped so that the loop vectorises without bounds checks
                let ab = a.iter().zip(b);
                let cs = c.iter().zip(s);
                for (((o1, o2), (&a, &b)), (&c, &s)) in o1.iter_mut().zip(o2).zip(ab).zip(cs) {
                    *o1 = a * c - b * s;
                    *o2 = a * s + b * c;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random;

    fn ulps(got: f32, want: f64) -> f64 {
        (f64::from(got) - want).abs() / (f64::from(f32::EPSILON) * want.abs().max(1e-30))
    }

    /// Widths around the 8- and 16-lane vectors, and SmolLM2's hidden size.
    const WIDTHS: [usize; 7] = [1, 7, 8, 15, 17, 64, 576];

    fn rms_norm_f64(x: &[f32], w: &[f32], eps: f32) -> Vec<f64> {
        x.chunks(w.len())
            .flat_map(|row| {
                let ms = row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / row.len() as f64;
                let r = 1.0 / (ms + f64::from(eps)).sqrt();
                row.iter()
                    .zip(w)
                    .map(move |(&v, &w)| f64::from(v) * r * f64::from(w))
            })
            .collect()
    }

    #[test]
    fn portable_rms_norm_matches_f64() {
        for n in WIDTHS {
            let x: Vec<f32> = random(3 * n, n as u64).iter().map(|v| v * 4.0).collect();
            let w: Vec<f32> = random(n, 7).iter().map(|v| 1.0 + v).collect();
            let mut out = vec![0.0; x.len()];
            rms_norm_with(Isa::PORTABLE, &x, &w, 1e-5, &mut out);
            for (i, (&g, want)) in out.iter().zip(rms_norm_f64(&x, &w, 1e-5)).enumerate() {
                // r to f32 (½ ulp) and two products (½ ulp each)
                assert!(ulps(g, want) <= 2.0, "{n}: [{i}] {g} vs {want}");
            }
        }
        // eps keeps a zero row finite
        let mut out = [1.0f32; 4];
        rms_norm_with(Isa::PORTABLE, &[0.0; 4], &[1.0; 4], 1e-6, &mut out);
        assert_eq!(out, [0.0; 4]);
    }

    #[test]
    fn rows_are_independent_of_each_other_and_of_threads() {
        let n = 576;
        let x = random(100 * n, 3); // past the parallel threshold
        let w = random(n, 4);
        let mut all = vec![0.0; x.len()];
        rms_norm(&x, &w, 1e-5, &mut all);
        let mut one = vec![0.0; n];
        rms_norm(&x[42 * n..43 * n], &w, 1e-5, &mut one);
        assert_eq!(&all[42 * n..43 * n], &one[..]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut threaded = vec![0.0; x.len()];
        pool.install(|| rms_norm(&x, &w, 1e-5, &mut threaded));
        assert_eq!(all, threaded);
    }

    fn silu_mul_f64(g: f32, u: f32) -> f64 {
        let g = f64::from(g);
        g / (1.0 + (-g).exp()) * f64::from(u)
    }

    fn gates() -> Vec<f32> {
        let mut g: Vec<f32> = (-3000..=3000).map(|i| i as f32 * 0.01).collect();
        g.extend([0.0, -0.0, 1e-30, -1e-30, 50.0, -50.0, 88.0, -87.0]);
        g
    }

    #[test]
    fn portable_silu_mul_matches_f64() {
        let g = gates();
        let u: Vec<f32> = random(g.len(), 5).iter().map(|v| v + 1.5).collect();
        let mut got = g.clone();
        silu_mul_with(Isa::PORTABLE, &mut got, &u);
        for ((&x, &u), &y) in g.iter().zip(&u).zip(&got) {
            // exp (1 ulp) then product, division and product (½ ulp each)
            let want = silu_mul_f64(x, u);
            assert!(ulps(y, want) <= 3.0, "silu({x}) · {u} = {y}, want {want}");
        }
        let mut edges = [f32::NAN, f32::INFINITY, -200.0];
        silu_mul_with(Isa::PORTABLE, &mut edges, &[1.0; 3]);
        assert!(edges[0].is_nan());
        assert_eq!(edges[1], f32::INFINITY);
        assert!(edges[2] <= 0.0 && edges[2] > -1e-40, "{}", edges[2]);
    }

    #[test]
    fn add_in_place_adds() {
        let mut x = random(40_000, 1);
        let y = random(40_000, 2);
        let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        add_in_place(&mut x, &y);
        assert_eq!(x, want);
    }

    #[test]
    fn rope_heads_rotates_and_splits_heads() {
        let shape = HeadsShape {
            batch: 2,
            len: 5,
            heads: 3,
            head_dim: 4,
        };
        let x = random(2 * 5 * 3 * 4, 21);
        // per-window tables
        let angles: Vec<f64> = (0..2 * 5 * 2).map(|i| i as f64 * 0.37).collect();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos() as f32).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin() as f32).collect();
        let mut out = vec![0.0; x.len()];
        rope_heads(&x, shape, &cos, &sin, &mut out);
        for (w, t, h, i) in (0..2).flat_map(|w| {
            (0..5).flat_map(move |t| (0..3).flat_map(move |h| (0..2).map(move |i| (w, t, h, i))))
        }) {
            let src = ((w * 5 + t) * 3 + h) * 4;
            let (a, b) = (f64::from(x[src + i]), f64::from(x[src + i + 2]));
            let k = (w * 5 + t) * 2 + i;
            let (c, s) = (f64::from(cos[k]), f64::from(sin[k]));
            let dst = ((w * 3 + h) * 5 + t) * 4;
            // two products and a sum, each rounded once
            let tol = 2.0 * f64::from(f32::EPSILON) * (a.abs() + b.abs());
            assert!((f64::from(out[dst + i]) - (a * c - b * s)).abs() <= tol);
            assert!((f64::from(out[dst + i + 2]) - (a * s + b * c)).abs() <= tol);
        }
        // one shared table: window 1 sees the same angles as window 0
        let mut shared = vec![0.0; x.len()];
        rope_heads(&x, shape, &cos[..10], &sin[..10], &mut shared);
        assert_eq!(shared[..60], out[..60]);
        let mut one = vec![0.0; 60];
        let first = HeadsShape { batch: 1, ..shape };
        rope_heads(&x[60..], first, &cos[..10], &sin[..10], &mut one);
        assert_eq!(shared[60..], one[..], "window 1 on the shared table");
    }

    /// `isa`'s kernels against the portable ones: RMSNorm the same bits,
    /// SiLU·up within 4 ulp (the `exp`s differ by up to 3 ulp between the
    /// two; the rest are the same operations).
    fn simd_matches_portable(isa: Isa) {
        for n in WIDTHS {
            let x: Vec<f32> = random(5 * n, n as u64 + 11)
                .iter()
                .map(|v| v * 3.0)
                .collect();
            let w = random(n, 12);
            let (mut fast, mut slow) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            rms_norm_with(isa, &x, &w, 1e-6, &mut fast);
            rms_norm_with(Isa::PORTABLE, &x, &w, 1e-6, &mut slow);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "rms_norm width {n}");
        }
        // lengths around the vectors and a chunked, parallel one
        for len in [1usize, 7, 8, 9, 15, 16, 17, 40_001] {
            let mut g = gates();
            g.truncate(len.min(g.len()));
            g.extend(
                random(len.saturating_sub(g.len()), 13)
                    .iter()
                    .map(|v| v * 20.0),
            );
            let u = random(len, 14);
            let (mut fast, mut slow) = (g.clone(), g.clone());
            silu_mul_with(isa, &mut fast, &u);
            silu_mul_with(Isa::PORTABLE, &mut slow, &u);
            for (i, (&f, &s)) in fast.iter().zip(&slow).enumerate() {
                let tol = 4.0 * f32::EPSILON * s.abs() + 1e-37;
                assert!((f - s).abs() <= tol, "{len}: [{i}] g={} {f} vs {s}", g[i]);
            }
        }
        let mut edges = [f32::NAN, f32::INFINITY, -200.0, -0.0];
        silu_mul_with(isa, &mut edges, &[1.0; 4]);
        assert!(edges[0].is_nan());
        assert_eq!(edges[1], f32::INFINITY);
        assert!(edges[2] <= 0.0 && edges[2] > -1e-40, "{}", edges[2]);
        assert_eq!(edges[3], 0.0);
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512f),
        ignore = "this CPU lacks AVX-512F (element-wise AVX-512 path not tested)"
    )]
    fn avx512_elementwise_matches_portable() {
        let isa = Isa::detect();
        assert!(
            isa.avx512f(),
            "built on a CPU with AVX-512F, run on one without (or capped by PERPLEX_CPU)"
        );
        simd_matches_portable(isa);
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx2),
        ignore = "this CPU lacks AVX2 and FMA (element-wise AVX2 path not tested)"
    )]
    fn avx2_elementwise_matches_portable() {
        let isa = Isa::detect().without_avx512();
        assert!(
            isa.avx2_fma(),
            "built on a CPU with AVX2 and FMA, run on one without (or capped by PERPLEX_CPU)"
        );
        simd_matches_portable(isa);
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512f),
        ignore = "this CPU lacks AVX-512F (AVX2 and AVX-512 element-wise not compared)"
    )]
    fn avx2_and_avx512_silu_mul_are_the_same_bits() {
        let wide = Isa::detect();
        let narrow = wide.without_avx512();
        assert!(wide.avx512f() && narrow.avx2_fma());
        let g = gates();
        let u = random(g.len(), 15);
        let (mut a, mut b) = (g.clone(), g);
        silu_mul_with(wide, &mut a, &u);
        silu_mul_with(narrow, &mut b, &u);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
    }
}
