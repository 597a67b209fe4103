//! The output head fused with log-softmax and gather.
//!
//! For `P` scored positions and a vocabulary of `V`, the logits `[P, V]` are
//! never materialised: the head weight is dequantized in tiles of rows, each
//! tile's logits are computed for a bounded chunk of positions, and every
//! position keeps a running `(max, Σexp(l - max), argmax, target logit)`
//! merged across tiles (the streaming log-sum-exp). Sums are kept in `f64`;
//! each `exp` is of an `f32` difference `≤ 0`.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::matmul::Kernels;
use crate::weights::Weight;

/// How the head is tiled: f32 elements of one dequantized weight tile and of
/// one block of logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadTiling {
    pub(crate) weight_elems: usize,
    pub(crate) logit_elems: usize,
}

impl Default for HeadTiling {
    fn default() -> Self {
        HeadTiling {
            weight_elems: 4 << 20,
            logit_elems: 4 << 20,
        }
    }
}

/// The running reduction of one position's logits.
///
/// A logit of `-inf` is a probability of zero and takes no part in the sum;
/// any other non-finite logit (NaN, `+inf`) spoils the position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Running {
    max: f32,
    /// `Σ exp(l - max)` over the vocabulary seen so far.
    sum: f64,
    argmax: u32,
    target: f32,
    /// First NaN or `+inf` logit seen.
    bad: Option<f32>,
}

/// Why a position has no finite NLL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Unscorable {
    /// A NaN or `+inf` logit, every logit `-inf`, or an NLL that overflowed.
    NonFinite(f64),
    /// The target's logit is `-inf`: probability zero.
    ZeroProbability,
}

impl Running {
    fn new() -> Self {
        Running {
            max: f32::NEG_INFINITY,
            sum: 0.0,
            argmax: 0,
            target: f32::NAN,
            bad: None,
        }
    }

    /// Folds in the logits of ids `first..first + row.len()`.
    fn update(&mut self, row: &[f32], first: u32, target: u32) {
        let mut tile_max = f32::NEG_INFINITY;
        let mut tile_arg = 0usize;
        let mut spoilt = false;
        for (i, &l) in row.iter().enumerate() {
            spoilt |= l.is_nan() || l == f32::INFINITY;
            // strictly greater: the lowest id wins ties
            if l > tile_max {
                tile_max = l;
                tile_arg = i;
            }
        }
        if spoilt {
            if let Some(&l) = row.iter().find(|l| l.is_nan() || **l == f32::INFINITY) {
                self.bad.get_or_insert(l);
            }
            return;
        }
        if (first..first + row.len() as u32).contains(&target) {
            self.target = row[(target - first) as usize];
        }
        if tile_max == f32::NEG_INFINITY {
            // every probability in the tile is zero: nothing to add
            return;
        }
        // exp(-inf - max) is 0 on every path (perplex_kernels::exp)
        let tile_sum = perplex_kernels::exp::sum_exp(row, tile_max);
        if tile_max > self.max {
            self.sum = self.sum * f64::from(self.max - tile_max).exp() + tile_sum;
            self.max = tile_max;
            self.argmax = first + tile_arg as u32;
        } else {
            self.sum += tile_sum * f64::from(tile_max - self.max).exp();
        }
    }

    /// `(nll, argmax)`, or why the position has no finite NLL.
    pub(crate) fn finish(&self) -> Result<(f64, u32), Unscorable> {
        if let Some(bad) = self.bad {
            return Err(Unscorable::NonFinite(f64::from(bad)));
        }
        if self.max == f32::NEG_INFINITY {
            return Err(Unscorable::NonFinite(f64::NEG_INFINITY));
        }
        if self.target == f32::NEG_INFINITY {
            return Err(Unscorable::ZeroProbability);
        }
        let nll = f64::from(self.max) + self.sum.ln() - f64::from(self.target);
        if nll.is_finite() {
            Ok((nll, self.argmax))
        } else {
            Err(Unscorable::NonFinite(nll))
        }
    }
}

/// Reduces `hidden · headᵀ` (`hidden`: `[P, h]`, already normalised) to one
/// [`Running`] per position, for the `targets` (one per position). With
/// `softcap`, each logit `l` is first replaced by `tanh(l / cap) · cap` (in
/// f32, as transformers computes it).
pub(crate) fn fused_head(
    hidden: &Tensor,
    head: &Weight,
    targets: &[u32],
    softcap: Option<f32>,
    tiling: HeadTiling,
    kernels: Kernels,
) -> candle_core::Result<Vec<Running>> {
    let (positions, h) = hidden.dims2()?;
    let (vocab, cols) = head.dims();
    if cols != h || targets.len() != positions {
        candle_core::bail!(
            "head of shape ({vocab}, {cols}) for hidden states {:?} and {} targets",
            hidden.dims(),
            targets.len()
        )
    }
    let mut states = vec![Running::new(); positions];
    let tile_rows = (tiling.weight_elems / h.max(1)).clamp(1, vocab.max(1));
    let chunk_positions = (tiling.logit_elems / tile_rows).max(1);
    for first in (0..vocab).step_by(tile_rows) {
        let rows = tile_rows.min(vocab - first);
        let tile = kernels.ready(head, first, rows, positions.div_ceil(chunk_positions))?;
        for p0 in (0..positions).step_by(chunk_positions) {
            let n = chunk_positions.min(positions - p0);
            let logits = tile.multiply(&hidden.narrow(0, p0, n)?)?;
            let mut logits = logits.flatten_all()?.to_vec1::<f32>()?;
            if let Some(cap) = softcap {
                logits
                    .par_iter_mut()
                    .for_each(|l| *l = (*l / cap).tanh() * cap);
            }
            states[p0..p0 + n]
                .par_iter_mut()
                .zip(logits.par_chunks_exact(rows))
                .zip(&targets[p0..p0 + n])
                .for_each(|((state, row), &target)| state.update(row, first as u32, target));
        }
    }
    Ok(states)
}

/// The naive reference: full logits, `log_softmax`, gather. For tests.
#[cfg(test)]
pub(crate) fn naive_head(
    hidden: &Tensor,
    head: &Tensor,
    targets: &[u32],
) -> candle_core::Result<Vec<(f64, u32)>> {
    use candle_core::D;
    let logits = hidden
        .matmul(&head.t()?)?
        .to_dtype(candle_core::DType::F64)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?.to_vec2::<f64>()?;
    let argmax = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    Ok(logp
        .iter()
        .zip(targets)
        .zip(argmax)
        .map(|((row, &t), a)| (-row[t as usize], a))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::Device;
    use std::sync::Arc;

    /// candle's matmul and the packed f32 kernels: their AVX-512 code where
    /// this CPU has it, else their portable code (the same contract), so
    /// the packed head is tested on every CPU.
    fn all_kernels() -> Vec<Kernels> {
        vec![
            Kernels::Candle,
            Kernels::Packed(perplex_kernels::Precision::F32),
        ]
    }

    fn random(shape: (usize, usize), seed: u64) -> Tensor {
        // a small LCG: deterministic and dependency-free
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let data: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn fused_head_equals_naive_log_softmax() {
        // vocab not a multiple of the tile, several tiles and position chunks
        let (p, h, v) = (37, 32, 300_001 / 100);
        let hidden = random((p, h), 1);
        let head = random((v, h), 2);
        let targets: Vec<u32> = (0..p as u32).map(|i| (i * 97) % v as u32).collect();
        let naive = naive_head(&hidden, &head, &targets).unwrap();
        // 7 weight tiles of 500 rows (the last shorter), position chunks of 4
        let tiling = HeadTiling {
            weight_elems: 500 * h,
            logit_elems: 2000,
        };
        for kernels in all_kernels() {
            let fused = fused_head(
                &hidden,
                &Weight::Dense(head.clone()),
                &targets,
                None,
                tiling,
                kernels,
            )
            .unwrap();
            let whole = HeadTiling {
                weight_elems: v * h,
                logit_elems: v * p,
            };
            let single = fused_head(
                &hidden,
                &Weight::Dense(head.clone()),
                &targets,
                None,
                whole,
                kernels,
            )
            .unwrap();
            for (a, b) in fused.iter().zip(&single) {
                let (a, b) = (a.finish().unwrap(), b.finish().unwrap());
                assert!((a.0 - b.0).abs() < 1e-5 && a.1 == b.1);
            }
            for ((f, (nll, arg)), i) in fused.iter().zip(&naive).zip(0..) {
                let (fnll, farg) = f.finish().unwrap();
                assert!(
                    (fnll - nll).abs() < 1e-5,
                    "{kernels:?} {i}: {fnll} vs {nll}"
                );
                assert_eq!(farg, *arg, "{i}");
            }
        }
    }

    #[test]
    fn fused_head_tiles_quantized_weights() {
        let (p, h, v) = (9, 64, 1000);
        let hidden = random((p, h), 3);
        let head = QTensor::quantize(&random((v, h), 4), GgmlDType::Q8_0).unwrap();
        let dense = head.dequantize(&Device::Cpu).unwrap();
        let targets: Vec<u32> = (0..p as u32).collect();
        let naive = naive_head(&hidden, &dense, &targets).unwrap();
        let tiling = HeadTiling {
            weight_elems: 96 * h,
            logit_elems: 1000,
        };
        let head = Weight::Quant(Arc::new(head));
        for kernels in all_kernels() {
            let fused = fused_head(&hidden, &head, &targets, None, tiling, kernels).unwrap();
            for (f, (nll, arg)) in fused.iter().zip(&naive) {
                let (fnll, farg) = f.finish().unwrap();
                assert!((fnll - nll).abs() < 1e-5, "{kernels:?}");
                assert_eq!(farg, *arg);
            }
        }
    }

    #[test]
    fn softcapping_applies_before_the_log_softmax() {
        let (p, h, v) = (5, 16, 40);
        let hidden = (random((p, h), 5) * 3.0).unwrap();
        let head = random((v, h), 6);
        let targets: Vec<u32> = (0..p as u32).map(|i| i * 7).collect();
        let capped_logits = ((hidden.matmul(&head.t().unwrap()).unwrap() / 2.0)
            .unwrap()
            .tanh()
            .unwrap()
            * 2.0)
            .unwrap();
        // the naive head of an identity "hidden" over the capped logits
        let eye = Tensor::eye(v, candle_core::DType::F32, &Device::Cpu).unwrap();
        let naive = naive_head(&capped_logits, &eye, &targets).unwrap();
        let tiling = HeadTiling {
            weight_elems: 7 * h,
            logit_elems: 14,
        };
        let head = Weight::Dense(head);
        for kernels in all_kernels() {
            let fused = fused_head(&hidden, &head, &targets, Some(2.0), tiling, kernels).unwrap();
            for (f, (nll, arg)) in fused.iter().zip(&naive) {
                let (fnll, farg) = f.finish().unwrap();
                assert!((fnll - nll).abs() < 1e-5, "{kernels:?}: {fnll} vs {nll}");
                assert_eq!(farg, *arg);
            }
        }
    }

    #[test]
    fn ties_go_to_the_lowest_id_across_tiles() {
        let mut s = Running::new();
        s.update(&[0.0, 3.0, 1.0], 0, 4);
        s.update(&[3.0, 3.0], 3, 4);
        let (nll, arg) = s.finish().unwrap();
        assert_eq!(arg, 1);
        let lse = (1f64 + 3f64.exp() * 3.0 + 1f64.exp()).ln();
        // exp is taken in f32: about 1e-7 relative per term
        assert!((nll - (lse - 3.0)).abs() < 1e-6);
    }

    #[test]
    fn non_finite_logits_are_reported() {
        let mut s = Running::new();
        s.update(&[0.0, f32::NAN], 0, 0);
        assert!(matches!(s.finish(), Err(Unscorable::NonFinite(v)) if v.is_nan()));
        let mut s = Running::new();
        s.update(&[0.0, f32::INFINITY], 0, 0);
        assert_eq!(s.finish(), Err(Unscorable::NonFinite(f64::INFINITY)));
        let mut s = Running::new();
        s.update(&[f32::NEG_INFINITY; 3], 0, 1);
        s.update(&[f32::NEG_INFINITY; 2], 3, 1);
        assert_eq!(s.finish(), Err(Unscorable::NonFinite(f64::NEG_INFINITY)));
    }

    #[test]
    fn minus_infinity_is_probability_zero() {
        // other tokens of probability zero change nothing, wherever their tile
        let mut with_zeros = Running::new();
        with_zeros.update(&[f32::NEG_INFINITY, 1.0, 2.0], 0, 2);
        with_zeros.update(&[f32::NEG_INFINITY, f32::NEG_INFINITY], 3, 2);
        with_zeros.update(&[0.5], 5, 2);
        let mut without = Running::new();
        without.update(&[1.0, 2.0], 1, 2);
        without.update(&[0.5], 5, 2);
        let (a, b) = (with_zeros.finish().unwrap(), without.finish().unwrap());
        assert!((a.0 - b.0).abs() < 1e-12, "{a:?} vs {b:?}");
        assert_eq!((a.1, b.1), (2, 2));
        // the target's probability zero is said as such, in any tile
        for (first_tile, target) in [([1.0, f32::NEG_INFINITY], 1), ([1.0, 2.0], 2)] {
            let mut s = Running::new();
            s.update(&first_tile, 0, target);
            s.update(&[f32::NEG_INFINITY, 0.0], 2, target);
            assert_eq!(s.finish(), Err(Unscorable::ZeroProbability));
        }
    }
}
