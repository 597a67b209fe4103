//! Deterministic mock models for engine and CLI tests.
//!
//! [`UniformLm`] assigns probability `1/V` to every token, so any corpus has
//! perplexity exactly `V`. [`HashLm`] gives a deterministic, context-dependent
//! but cheap distribution, so tests can tell whether windows, positions and
//! batches were routed correctly; [`HashLm::ruling_out`] is the same model
//! giving one token probability zero (a logit of `-inf`).

use crate::lm::{validate_batch, CausalLm, LmError, LogitTiles, ModelInfo, TokenScore, WindowRef};

/// Uniform over `vocab_size` tokens: NLL `ln V` everywhere, argmax 0.
#[derive(Debug, Clone)]
pub struct UniformLm {
    info: ModelInfo,
}

impl UniformLm {
    /// A uniform model over `vocab_size` tokens with an optional context limit.
    pub fn new(vocab_size: usize, max_context: Option<usize>) -> Self {
        Self {
            info: ModelInfo {
                vocab_size,
                max_context,
            },
        }
    }
}

impl CausalLm for UniformLm {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn score_batch(&mut self, batch: &[WindowRef<'_>]) -> Result<Vec<Vec<TokenScore>>, LmError> {
        validate_batch(&self.info, batch)?;
        let nll = (self.info.vocab_size as f64).ln();
        Ok(batch
            .iter()
            .map(|w| vec![TokenScore { nll, argmax: 0 }; w.scored()])
            .collect())
    }

    fn logits<'a>(
        &'a mut self,
        batch: &[WindowRef<'_>],
    ) -> Result<Box<dyn LogitTiles + 'a>, LmError> {
        validate_batch(&self.info, batch)?;
        Ok(Box::new(ZeroLogits(
            batch.iter().map(WindowRef::scored).sum(),
        )))
    }
}

/// Every logit 0: the uniform distribution.
struct ZeroLogits(usize);

impl LogitTiles for ZeroLogits {
    fn positions(&self) -> usize {
        self.0
    }
    fn tile(&self, _first: usize, len: usize, out: &mut Vec<f32>) -> Result<(), LmError> {
        out.clear();
        out.resize(self.0 * len, 0.0);
        Ok(())
    }
}

/// A deterministic model whose prediction at position `i` depends on the
/// previous token and on `i` (like RoPE does), with no randomness: the
/// distribution is a softmax over `score(v) = h(prev, i, v)` for a fixed hash
/// `h`. Exact to compute for small vocabularies.
#[derive(Debug, Clone)]
pub struct HashLm {
    info: ModelInfo,
    /// A token given probability zero everywhere.
    ruled_out: Option<u32>,
}

impl HashLm {
    /// A hash model over `vocab_size` tokens.
    pub fn new(vocab_size: usize, max_context: Option<usize>) -> Self {
        Self {
            info: ModelInfo {
                vocab_size,
                max_context,
            },
            ruled_out: None,
        }
    }

    /// The hash model with `token`'s logit `-inf` at every position: scoring
    /// that token is an [`LmError::ZeroProbability`].
    pub fn ruling_out(vocab_size: usize, max_context: Option<usize>, token: u32) -> Self {
        Self {
            ruled_out: Some(token),
            ..Self::new(vocab_size, max_context)
        }
    }

    fn logit_of(&self, prev: u32, pos: usize, v: u32) -> f64 {
        if self.ruled_out == Some(v) {
            f64::NEG_INFINITY
        } else {
            Self::logit(prev, pos, v)
        }
    }

    fn logit(prev: u32, pos: usize, v: u32) -> f64 {
        let mut x = (u64::from(prev) << 40) ^ ((pos as u64) << 20) ^ u64::from(v);
        // splitmix64 finaliser: a fixed, well-mixed hash
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        (x >> 11) as f64 / (1u64 << 53) as f64 * 4.0
    }
}

impl CausalLm for HashLm {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn logits<'a>(
        &'a mut self,
        batch: &[WindowRef<'_>],
    ) -> Result<Box<dyn LogitTiles + 'a>, LmError> {
        validate_batch(&self.info, batch)?;
        let contexts = batch
            .iter()
            .flat_map(|w| (w.score_from..w.tokens.len()).map(move |i| (w.tokens[i - 1], i)))
            .collect();
        Ok(Box::new(HashLogits {
            model: self,
            contexts,
        }))
    }

    fn score_batch(&mut self, batch: &[WindowRef<'_>]) -> Result<Vec<Vec<TokenScore>>, LmError> {
        validate_batch(&self.info, batch)?;
        let vocab = self.info.vocab_size as u32;
        batch
            .iter()
            .enumerate()
            .map(|(window, w)| {
                (w.score_from..w.tokens.len())
                    .map(|i| {
                        if self.ruled_out == Some(w.tokens[i]) {
                            return Err(LmError::ZeroProbability {
                                window,
                                position: i,
                            });
                        }
                        let prev = w.tokens[i - 1];
                        let logits: Vec<f64> =
                            (0..vocab).map(|v| self.logit_of(prev, i, v)).collect();
                        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
                        let argmax = logits
                            .iter()
                            .enumerate()
                            .fold((0, f64::NEG_INFINITY), |best, (j, &l)| {
                                if l > best.1 {
                                    (j, l)
                                } else {
                                    best
                                }
                            })
                            .0 as u32;
                        Ok(TokenScore {
                            nll: lse - logits[w.tokens[i] as usize],
                            argmax,
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

/// [`HashLm`]'s logits (rounded to f32) for `(previous token, position)` pairs.
struct HashLogits<'a> {
    model: &'a HashLm,
    contexts: Vec<(u32, usize)>,
}

impl LogitTiles for HashLogits<'_> {
    fn positions(&self) -> usize {
        self.contexts.len()
    }
    fn tile(&self, first: usize, len: usize, out: &mut Vec<f32>) -> Result<(), LmError> {
        out.clear();
        for &(prev, pos) in &self.contexts {
            let model = self.model;
            out.extend((first..first + len).map(|v| model.logit_of(prev, pos, v as u32) as f32));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_scores_ln_v() {
        let mut m = UniformLm::new(50, None);
        let out = m
            .score_batch(&[WindowRef {
                tokens: &[1, 2, 3],
                score_from: 1,
            }])
            .unwrap();
        assert_eq!(out[0].len(), 2);
        assert!(out[0].iter().all(|s| (s.nll - 50f64.ln()).abs() < 1e-15));
    }

    #[test]
    fn hash_model_probabilities_sum_to_one() {
        let mut m = HashLm::new(7, None);
        let total: f64 = (0..7)
            .map(|t| {
                let s = m
                    .score_batch(&[WindowRef {
                        tokens: &[3, t],
                        score_from: 1,
                    }])
                    .unwrap();
                (-s[0][0].nll).exp()
            })
            .sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn out_of_range_tokens_are_an_error() {
        let mut m = UniformLm::new(4, Some(8));
        let err = m
            .score_batch(&[WindowRef {
                tokens: &[1, 9],
                score_from: 1,
            }])
            .unwrap_err();
        assert!(matches!(err, LmError::TokenOutOfRange { id: 9, .. }));
    }
}
