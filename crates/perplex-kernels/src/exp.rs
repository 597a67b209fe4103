//! A vectorised `exp` and the reductions built on it: the streaming
//! log-sum-exp of the output head and the softmax of attention.
//!
//! The AVX-512 and AVX2 `exp` (the same bits) are within 2 ulp of the true
//! value (`f32::exp`, the portable path, is within 1); `-inf` gives 0 and
//! NaN stays NaN, so a NaN logit still surfaces in the sum.

use crate::Isa;

/// `Σ exp(x - shift)` in f64, each `exp` of an f32 difference.
pub fn sum_exp(x: &[f32], shift: f32) -> f64 {
    sum_exp_with(Isa::detect(), x, shift)
}

fn sum_exp_with(isa: Isa, x: &[f32], shift: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if let Some(sum) = crate::x86::sum_exp(isa, x, shift) {
        return sum;
    }
    let _ = isa;
    x.iter().map(|&v| f64::from((v - shift).exp())).sum()
}

/// Softmax of `x` in place (f32 throughout, like transformers' eager
/// attention). A NaN anywhere makes the whole row NaN.
pub fn softmax_in_place(x: &mut [f32]) {
    softmax_with(Isa::detect(), x)
}

fn softmax_with(isa: Isa, x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum = exp_shifted(isa, x, max);
    let inv = 1.0 / sum;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// `x ← exp(x - shift)`; returns the f32 sum.
fn exp_shifted(isa: Isa, x: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(sum) = crate::x86::exp_shifted(isa, x, shift) {
        return sum;
    }
    let _ = isa;
    x.iter_mut().fold(0.0, |s, v| {
        *v = (*v - shift).exp();
        s + *v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp_is_within_two_ulp_and_handles_the_edges(isa: Isa) {
        let mut xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.0443).collect();
        xs.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            88.0,
            -87.0,
            -103.0,
            -200.0,
            f32::NEG_INFINITY,
        ]);
        let mut got = xs.clone();
        exp_shifted(isa, &mut got, 0.0);
        for (&x, &e) in xs.iter().zip(&got) {
            let want = f64::from(x).exp();
            if want < f64::from(f32::MIN_POSITIVE) {
                assert!(e < 2e-38, "exp({x}) = {e}");
                continue;
            }
            let ulp = f64::from(f32::EPSILON) * want;
            assert!(
                (f64::from(e) - want).abs() <= 2.0 * ulp,
                "exp({x}) = {e}, want {want}"
            );
        }
        let mut nan = vec![1.0, f32::NAN, 2.0];
        softmax_with(isa, &mut nan);
        assert!(nan.iter().all(|v| v.is_nan()));
    }

    fn sums_and_softmax_match_f64(isa: Isa) {
        // lengths around the 16-lane vectors
        for len in [1usize, 15, 16, 17, 49_152] {
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0)
                .collect();
            let shift = 3.0;
            let want: f64 = x.iter().map(|&v| f64::from(v - shift).exp()).sum();
            let got = sum_exp_with(isa, &x, shift);
            assert!((got - want).abs() <= 1e-6 * want, "{len}: {got} vs {want}");
            let mut s = x.clone();
            softmax_with(isa, &mut s);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z: f64 = x.iter().map(|&v| f64::from(v - max).exp()).sum();
            // an f32 sum of up to 49k terms: in 16 lanes (AVX-512), or one
            // after the other (portable: 4e-5 here)
            let tol = if isa.avx2_fma() { 1e-5 } else { 1e-4 };
            for (&v, &p) in x.iter().zip(&s) {
                let want = f64::from(v - max).exp() / z;
                assert!((f64::from(p) - want).abs() <= tol * want + 1e-12, "{len}");
            }
        }
    }

    #[test]
    fn portable_exp_sums_and_softmax_are_accurate() {
        exp_is_within_two_ulp_and_handles_the_edges(Isa::PORTABLE);
        sums_and_softmax_match_f64(Isa::PORTABLE);
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512f),
        ignore = "this CPU lacks AVX-512F (kernels' AVX-512 path not tested)"
    )]
    fn avx512_exp_sums_and_softmax_are_accurate() {
        let isa = Isa::detect();
        assert!(
            isa.avx512f(),
            "built on a CPU with AVX-512F, run on one without"
        );
        exp_is_within_two_ulp_and_handles_the_edges(isa);
        sums_and_softmax_match_f64(isa);
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx2),
        ignore = "this CPU lacks AVX2 and FMA (kernels' AVX2 path not tested)"
    )]
    fn avx2_exp_sums_and_softmax_are_accurate() {
        let isa = Isa::detect().without_avx512();
        assert!(
            isa.avx2_fma(),
            "built on a CPU with AVX2 and FMA, run on one without"
        );
        exp_is_within_two_ulp_and_handles_the_edges(isa);
        sums_and_softmax_match_f64(isa);
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512f),
        ignore = "this CPU lacks AVX-512F (AVX2 and AVX-512 exp not compared)"
    )]
    fn avx2_and_avx512_exp_are_the_same_bits() {
        let wide = Isa::detect();
        let narrow = wide.without_avx512();
        assert!(wide.avx512f() && narrow.avx2_fma());
        // the whole range, the subnormal results, the clamps and the edges
        let mut xs: Vec<f32> = (-25_000..=25_000).map(|i| i as f32 * 0.0043).collect();
        xs.extend([-87.3, -88.0, -100.0, -103.9, -104.5, 88.7, 88.72284, 95.0]);
        xs.extend([0.0, -0.0, f32::NEG_INFINITY, f32::INFINITY, f32::NAN]);
        let (mut a, mut b) = (xs.clone(), xs.clone());
        exp_shifted(wide, &mut a, 0.0);
        exp_shifted(narrow, &mut b, 0.0);
        for ((x, a), b) in xs.iter().zip(&a).zip(&b) {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "exp({x}): {a} vs {b}"
            );
        }
    }
}
