//! Mergeable accumulators of per-token negative log-likelihoods.
//!
//! [`NllStats`] keeps the count, the f64 sum, the mean and the sum of squared
//! deviations (Welford), merged with Chan et al.'s pairwise formula, so that
//! documents, batches, threads and resumed runs combine with `+=` and no
//! special case. The standard error of the mean NLL treats scored tokens as
//! independent samples, as llama.cpp's `perplexity` tool does; it understates
//! the uncertainty when neighbouring tokens are correlated.

use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

use crate::units::Nats;

/// 97.5 % quantile of the standard normal: the half-width multiplier of a
/// two-sided 95 % interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Running statistics of scored tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NllStats {
    /// Number of scored tokens.
    pub count: u64,
    /// Sum of the NLLs, in nats.
    pub sum: f64,
    /// Running mean NLL (Welford), in nats.
    mean: f64,
    /// Sum of squared deviations from the mean (Welford's M2).
    m2: f64,
    /// Tokens whose target was the model's most probable token.
    pub correct: u64,
}

impl NllStats {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one scored token.
    pub fn push(&mut self, nll: f64, top1_correct: bool) {
        self.count += 1;
        self.sum += nll;
        let delta = nll - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (nll - self.mean);
        self.correct += u64::from(top1_correct);
    }

    /// True when no token was scored.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Mean NLL per scored token, or `None` when nothing was scored.
    pub fn mean_nll(&self) -> Option<Nats> {
        (self.count > 0).then(|| Nats(self.sum / self.count as f64))
    }

    /// Token-weighted perplexity `exp(ΣNLL / N)`.
    pub fn perplexity(&self) -> Option<f64> {
        self.mean_nll().map(Nats::perplexity)
    }

    /// Fraction of scored tokens whose target was the top-1 prediction.
    pub fn accuracy(&self) -> Option<f64> {
        (self.count > 0).then(|| self.correct as f64 / self.count as f64)
    }

    /// Unbiased sample variance of the per-token NLL.
    pub fn variance(&self) -> Option<f64> {
        (self.count > 1).then(|| self.m2 / (self.count - 1) as f64)
    }

    /// Standard error of the mean NLL (tokens taken as independent).
    pub fn standard_error(&self) -> Option<Nats> {
        self.variance()
            .map(|v| Nats((v / self.count as f64).sqrt()))
    }

    /// 95 % interval for the perplexity: `exp(mean ± 1.96·se)`.
    pub fn perplexity_ci95(&self) -> Option<(f64, f64)> {
        let mean = self.mean_nll()?.0;
        let se = self.standard_error()?.0;
        Some(((mean - Z_95 * se).exp(), (mean + Z_95 * se).exp()))
    }
}

impl AddAssign for NllStats {
    fn add_assign(&mut self, other: Self) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other;
            return;
        }
        let n_a = self.count as f64;
        let n_b = other.count as f64;
        let n = n_a + n_b;
        let delta = other.mean - self.mean;
        self.mean += delta * n_b / n;
        self.m2 += other.m2 + delta * delta * n_a * n_b / n;
        self.count += other.count;
        self.sum += other.sum;
        self.correct += other.correct;
    }
}

impl AddAssign<&NllStats> for NllStats {
    fn add_assign(&mut self, other: &NllStats) {
        *self += *other;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn push_matches_two_pass_formulas() {
        let xs = [2.5, 0.1, 7.25, 3.0, 3.0, 11.5, 0.0];
        let mut s = NllStats::new();
        for (i, &x) in xs.iter().enumerate() {
            s.push(x, i % 2 == 0);
        }
        let (mean, var) = naive(&xs);
        assert!((s.mean_nll().unwrap().0 - mean).abs() < 1e-12);
        assert!((s.variance().unwrap() - var).abs() < 1e-12);
        assert_eq!(s.correct, 4);
        assert_eq!(s.accuracy(), Some(4.0 / 7.0));
    }

    #[test]
    fn merge_equals_sequential_in_any_split() {
        let xs: Vec<f64> = (0..50)
            .map(|i| ((i * 37 % 11) as f64) * 0.7 + 0.01)
            .collect();
        let mut all = NllStats::new();
        xs.iter().for_each(|&x| all.push(x, x > 3.0));
        for split in [0, 1, 17, 49, 50] {
            let (a, b) = xs.split_at(split);
            let mut sa = NllStats::new();
            let mut sb = NllStats::new();
            a.iter().for_each(|&x| sa.push(x, x > 3.0));
            b.iter().for_each(|&x| sb.push(x, x > 3.0));
            sa += sb;
            assert_eq!(sa.count, all.count);
            assert_eq!(sa.correct, all.correct);
            assert!((sa.sum - all.sum).abs() < 1e-9);
            assert!((sa.variance().unwrap() - all.variance().unwrap()).abs() < 1e-9);
        }
    }

    #[test]
    fn empty_and_single_token_have_no_undefined_numbers() {
        let mut s = NllStats::new();
        assert_eq!(s.perplexity(), None);
        assert_eq!(s.standard_error(), None);
        s.push(1.0, false);
        assert_eq!(s.perplexity(), Some(1f64.exp()));
        assert_eq!(s.standard_error(), None);
        assert_eq!(s.perplexity_ci95(), None);
    }

    #[test]
    fn interval_brackets_the_perplexity() {
        let mut s = NllStats::new();
        [1.0, 2.0, 3.0, 4.0].iter().for_each(|&x| s.push(x, false));
        let (lo, hi) = s.perplexity_ci95().unwrap();
        let ppl = s.perplexity().unwrap();
        assert!(lo < ppl && ppl < hi);
        // se = sqrt(var / n) = sqrt((5/3) / 4)
        let se = (5.0f64 / 3.0 / 4.0).sqrt();
        assert!((hi.ln() - 2.5 - Z_95 * se).abs() < 1e-12);
    }
}
