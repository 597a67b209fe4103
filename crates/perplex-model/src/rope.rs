//! Rotary position embeddings: inverse frequencies for every scaling variant
//! and the cos/sin tables of a batch.
//!
//! The arithmetic follows transformers' `modeling_rope_utils.py` step by step
//! in `f32` (transformers computes these tables in float32), so that angles at
//! long positions round the same way: an ulp of difference in an inverse
//! frequency becomes `position × ulp` radians of difference at the end of a
//! long window.

use candle_core::{Device, Tensor};

use crate::config::RopeScaling;

/// `base^(2i/dim)` in f32, as `torch.pow` computes it (`f64` pow rounded once).
fn pow_f32(base: f32, exponent: f32) -> f32 {
    (f64::from(base)).powf(f64::from(exponent)) as f32
}

/// transformers' default inverse frequencies:
/// `1 / base^(arange(0, dim, 2) / dim)`, all in f32.
pub fn default_inv_freq(head_dim: usize, base: f32) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / head_dim as f32;
            1.0f32 / pow_f32(base, exponent)
        })
        .collect()
}

/// Llama 3.1 scaling (transformers' `_compute_llama3_parameters`): low
/// frequencies divided by `factor`, high ones kept, a smooth blend between.
pub fn llama3_inv_freq(
    inv_freq: &[f32],
    factor: f32,
    low_freq_factor: f32,
    high_freq_factor: f32,
    old_context_len: f32,
) -> Vec<f32> {
    let low_freq_wavelen = old_context_len / low_freq_factor;
    let high_freq_wavelen = old_context_len / high_freq_factor;
    inv_freq
        .iter()
        .map(|&f| {
            let wavelen = (2.0 * std::f64::consts::PI) as f32 / f;
            let scaled = if wavelen > low_freq_wavelen {
                f / factor
            } else {
                f
            };
            // transformers: `~(wavelen < high) & ~(wavelen > low)`; no NaNs here
            let is_medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
            if is_medium {
                let smooth = (old_context_len / wavelen - low_freq_factor)
                    / (high_freq_factor - low_freq_factor);
                (1.0 - smooth) * scaled / factor + smooth * scaled
            } else {
                scaled
            }
        })
        .collect()
}

/// Dynamic NTK (transformers' `_compute_dynamic_ntk_parameters`) for a window
/// of `seq_len` positions: the base grows once `seq_len > max_position_embeddings`.
pub fn dynamic_inv_freq(
    head_dim: usize,
    base: f32,
    factor: f32,
    max_position_embeddings: usize,
    seq_len: usize,
) -> Vec<f32> {
    let seq_len = seq_len.max(max_position_embeddings) as f32;
    let dim = head_dim as f32;
    let grown = factor * seq_len / max_position_embeddings as f32 - (factor - 1.0);
    let base = base * pow_f32(grown, dim / (dim - 2.0));
    default_inv_freq(head_dim, base)
}

/// LongRoPE (Phi-3): `1 / (factor_i · base^(2i/d))` in f32, as transformers'
/// `_compute_longrope_parameters` orders the operations.
pub fn longrope_inv_freq(head_dim: usize, base: f32, factors: &[f32]) -> Vec<f32> {
    (0..head_dim / 2)
        .zip(factors)
        .map(|(i, &f)| {
            let exponent = (2 * i) as f32 / head_dim as f32;
            1.0f32 / (f * pow_f32(base, exponent))
        })
        .collect()
}

/// The RoPE of one model: how to get the inverse frequencies of a window.
#[derive(Debug, Clone)]
pub struct Rope {
    head_dim: usize,
    base: f32,
    /// Inverse frequencies shared by every window (all scalings but dynamic
    /// and LongRoPE's long windows).
    fixed: Vec<f32>,
    /// `(factor, max_position_embeddings)` for dynamic NTK.
    dynamic: Option<(f32, usize)>,
    /// `(inverse frequencies, original context)` for LongRoPE's long windows.
    long: Option<(Vec<f32>, usize)>,
    /// Multiplier of the cos and sin tables (LongRoPE's attention factor).
    scale: f32,
}

impl Rope {
    /// The RoPE of a model with these hyperparameters.
    pub fn new(
        head_dim: usize,
        theta: f64,
        scaling: &RopeScaling,
        max_position_embeddings: usize,
    ) -> Self {
        let base = theta as f32;
        let plain = default_inv_freq(head_dim, base);
        let (mut dynamic, mut long, mut scale) = (None, None, 1.0f32);
        let fixed = match scaling {
            RopeScaling::None => plain,
            RopeScaling::Linear { factor } => plain.iter().map(|f| f / *factor as f32).collect(),
            RopeScaling::Dynamic { factor } => {
                dynamic = Some((*factor as f32, max_position_embeddings));
                plain
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => llama3_inv_freq(
                &plain,
                *factor as f32,
                *low_freq_factor as f32,
                *high_freq_factor as f32,
                *original_max_position_embeddings as f32,
            ),
            RopeScaling::Factors(factors) => {
                plain.iter().zip(factors).map(|(f, d)| f / d).collect()
            }
            RopeScaling::LongRope {
                short,
                long: long_factors,
                original_max_position_embeddings,
                attention_factor,
            } => {
                long = Some((
                    longrope_inv_freq(head_dim, base, long_factors),
                    *original_max_position_embeddings,
                ));
                scale = *attention_factor as f32;
                longrope_inv_freq(head_dim, base, short)
            }
        };
        Rope {
            head_dim,
            base,
            fixed,
            dynamic,
            long,
            scale,
        }
    }

    /// Inverse frequencies for a window of `len` positions.
    pub fn inv_freq(&self, len: usize) -> std::borrow::Cow<'_, [f32]> {
        if let Some((long, original)) = &self.long {
            if len > *original {
                return (&long[..]).into();
            }
        }
        match self.dynamic {
            Some((factor, max_pos)) if len > max_pos => {
                dynamic_inv_freq(self.head_dim, self.base, factor, max_pos, len).into()
            }
            _ => (&self.fixed[..]).into(),
        }
    }

    /// The cos and sin tables for a batch padded to `padded_len` whose windows
    /// have lengths `lens`: `[padded_len, head_dim / 2]` when every window
    /// shares its frequencies, `[batch, padded_len, head_dim / 2]` otherwise
    /// (dynamic NTK past the trained context, LongRoPE's short and long
    /// windows in one batch). Angles are `f32(position ×
    /// inv_freq)`, as transformers computes them; cos and sin of the rounded
    /// angle are then correctly rounded.
    pub fn tables(
        &self,
        lens: &[usize],
        padded_len: usize,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let per_window: Vec<std::borrow::Cow<'_, [f32]>> =
            lens.iter().map(|&l| self.inv_freq(l)).collect();
        let shared = per_window.windows(2).all(|w| w[0] == w[1]);
        let freqs = if shared {
            vec![per_window
                .into_iter()
                .next()
                .unwrap_or_else(|| self.inv_freq(0))]
        } else {
            per_window
        };
        let half = self.head_dim / 2;
        let n = freqs.len() * padded_len * half;
        let (mut cos, mut sin) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for inv in &freqs {
            for pos in 0..padded_len {
                for &f in inv.iter() {
                    let angle = f64::from(pos as f32 * f);
                    // transformers: `emb.cos() * attention_scaling`, in f32
                    cos.push(angle.cos() as f32 * self.scale);
                    sin.push(angle.sin() as f32 * self.scale);
                }
            }
        }
        if shared {
            Ok((
                Tensor::from_vec(cos, (padded_len, half), device)?,
                Tensor::from_vec(sin, (padded_len, half), device)?,
            ))
        } else {
            let shape = (freqs.len(), padded_len, half);
            Ok((
                Tensor::from_vec(cos, shape, device)?,
                Tensor::from_vec(sin, shape, device)?,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64, rel: f64) -> bool {
        (f64::from(a) - b).abs() <= rel * b.abs()
    }

    #[test]
    fn default_frequencies_follow_the_formula() {
        let inv = default_inv_freq(64, 10_000.0);
        assert_eq!(inv.len(), 32);
        assert_eq!(inv[0], 1.0);
        for (i, &f) in inv.iter().enumerate() {
            let exact = 1.0 / 10_000f64.powf(2.0 * i as f64 / 64.0);
            assert!(close(f, exact, 2e-7), "{i}: {f} vs {exact}");
        }
    }

    #[test]
    fn linear_scaling_divides_every_frequency() {
        let plain = default_inv_freq(16, 10_000.0);
        let rope = Rope::new(16, 10_000.0, &RopeScaling::Linear { factor: 4.0 }, 2048);
        for (a, b) in rope.inv_freq(10).iter().zip(&plain) {
            assert_eq!(*a, b / 4.0);
        }
    }

    #[test]
    fn llama3_scaling_follows_the_formula() {
        // Llama 3.1 values: factor 8, low 1, high 4, original context 8192, theta 500000
        let (factor, low, high, old) = (8.0f64, 1.0f64, 4.0f64, 8192.0f64);
        let plain = default_inv_freq(128, 500_000.0);
        let scaled = llama3_inv_freq(&plain, 8.0, 1.0, 4.0, 8192.0);
        let (mut n_low, mut n_mid, mut n_high) = (0, 0, 0);
        for (&p, &s) in plain.iter().zip(&scaled) {
            let p = f64::from(p);
            let wavelen = 2.0 * std::f64::consts::PI / p;
            let expected = if wavelen < old / high {
                n_high += 1;
                p
            } else if wavelen > old / low {
                n_low += 1;
                p / factor
            } else {
                n_mid += 1;
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 - smooth) * p / factor + smooth * p
            };
            assert!(close(s, expected, 1e-6), "{s} vs {expected}");
        }
        assert!(
            n_low > 0 && n_mid > 0 && n_high > 0,
            "{n_low} {n_mid} {n_high}"
        );
    }

    #[test]
    fn dynamic_ntk_grows_the_base_only_past_the_context() {
        let rope = Rope::new(64, 10_000.0, &RopeScaling::Dynamic { factor: 2.0 }, 128);
        let plain = default_inv_freq(64, 10_000.0);
        assert_eq!(&rope.inv_freq(128)[..], &plain[..]);
        let long = rope.inv_freq(512);
        // base' = base * (factor * len / max - (factor - 1)) ^ (dim / (dim - 2))
        let base = 10_000f64 * (2.0f64 * 512.0 / 128.0 - 1.0).powf(64.0 / 62.0);
        for (i, &f) in long.iter().enumerate() {
            let exact = 1.0 / base.powf(2.0 * i as f64 / 64.0);
            assert!(close(f, exact, 1e-6), "{i}: {f} vs {exact}");
        }
        // windows past the context get their own table
        let (cos, _) = rope.tables(&[100, 512], 512, &Device::Cpu).unwrap();
        assert_eq!(cos.dims(), &[2, 512, 32]);
        let (cos, _) = rope.tables(&[100, 128], 128, &Device::Cpu).unwrap();
        assert_eq!(cos.dims(), &[128, 32]);
    }

    #[test]
    fn gguf_factors_divide_the_frequencies() {
        let factors: Vec<f32> = (0..8).map(|i| 1.0 + i as f32).collect();
        let rope = Rope::new(16, 10_000.0, &RopeScaling::Factors(factors.clone()), 2048);
        let plain = default_inv_freq(16, 10_000.0);
        for ((a, p), d) in rope.inv_freq(1).iter().zip(&plain).zip(&factors) {
            assert_eq!(*a, p / d);
        }
    }

    #[test]
    fn tables_hold_cos_and_sin_of_position_times_frequency() {
        let rope = Rope::new(4, 100.0, &RopeScaling::None, 64);
        let (cos, sin) = rope.tables(&[3], 3, &Device::Cpu).unwrap();
        let cos = cos.to_vec2::<f32>().unwrap();
        let sin = sin.to_vec2::<f32>().unwrap();
        assert_eq!(cos[0], vec![1.0, 1.0]);
        assert!((cos[2][1] - (2.0f64 * 0.1).cos() as f32).abs() < 1e-7);
        assert!((sin[2][1] - (2.0f64 * 0.1).sin() as f32).abs() < 1e-7);
    }

    #[test]
    fn longrope_switches_factors_past_the_original_context() {
        let scaling = RopeScaling::LongRope {
            short: vec![1.0, 2.0],
            long: vec![4.0, 8.0],
            original_max_position_embeddings: 16,
            attention_factor: 1.5,
        };
        let rope = Rope::new(4, 100.0, &scaling, 64);
        assert_eq!(rope.inv_freq(16)[1], 1.0 / (2.0 * pow_f32(100.0, 0.5)));
        assert_eq!(rope.inv_freq(17)[1], 1.0 / (8.0 * pow_f32(100.0, 0.5)));
        let (cos, sin) = rope.tables(&[10, 20], 20, &Device::Cpu).unwrap();
        assert_eq!(cos.dims(), &[2, 20, 2]);
        // position 0: cos = attention factor, sin = 0
        let cos = cos.to_vec3::<f32>().unwrap();
        assert_eq!(cos[0][0], vec![1.5, 1.5]);
        assert_eq!(sin.to_vec3::<f32>().unwrap()[1][0], vec![0.0, 0.0]);
    }
}
