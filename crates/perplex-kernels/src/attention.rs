//! Causal self-attention in f32, fused: scores, mask, softmax and the
//! weighted sum of values per block of queries, without the
//! `[heads, len, len]` score tensor or an additive mask.
//!
//! Per (window, key/value head) the keys are packed as a weight matrix and
//! the values transposed into one; then each (window, head, block of 64
//! queries) is a task: `S = Q·Kᵀ` over the keys the block can see (whole
//! 32-key panels), `scale`, optional soft-capping `tanh(s / cap)·cap`,
//! softmax over each query's visible keys (causal, and within the sliding
//! window when set), `O = P·V`. Query head `h` reads key/value head
//! `h / (heads / kv_heads)` (transformers' `repeat_kv`). A query's result
//! depends only on its own window's keys, never on the block or batch.

use rayon::prelude::*;

use crate::exp::softmax_in_place;
use crate::gemm::{matmul_block, PackedMatrix, Precision};

/// Queries per task.
const QUERY_BLOCK: usize = 64;

/// The shape of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Windows in the batch.
    pub batch: usize,
    /// Positions per window (padding included).
    pub len: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Dimension per head.
    pub head_dim: usize,
}

/// What is applied to the scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionParams {
    /// Multiplies `q·k` (usually `1/√head_dim`).
    pub scale: f32,
    /// `s ← tanh(s / cap)·cap` after scaling (Gemma 2).
    pub softcap: Option<f32>,
    /// A query sees only the last `window` keys, itself included.
    pub window: Option<usize>,
}

/// `out` (`[batch, len, heads·head_dim]`) = causal attention of `q`
/// (`[batch, heads, len, head_dim]`) over `k`, `v`
/// (`[batch, kv_heads, len, head_dim]`), all contiguous. Runs on the
/// current rayon pool.
///
/// # Panics
/// If the slices do not match `shape`, or `kv_heads` does not divide `heads`.
pub fn causal_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    params: AttentionParams,
    out: &mut [f32],
) {
    let AttentionShape {
        batch,
        len,
        heads,
        kv_heads,
        head_dim: d,
    } = shape;
    assert!(
        kv_heads > 0 && heads % kv_heads == 0,
        "{heads} heads over {kv_heads}"
    );
    assert_eq!(q.len(), batch * heads * len * d);
    assert_eq!(k.len(), batch * kv_heads * len * d);
    assert_eq!(v.len(), k.len());
    assert_eq!(out.len(), q.len());
    if q.is_empty() {
        return;
    }
    let rep = heads / kv_heads;
    // keys as rows of a weight ([len, d]); values transposed ([d, len])
    let packed: Vec<(PackedMatrix, PackedMatrix)> = (0..batch * kv_heads)
        .into_par_iter()
        .map(|bg| {
            let kh = &k[bg * len * d..(bg + 1) * len * d];
            let vh = &v[bg * len * d..(bg + 1) * len * d];
            let keys = PackedMatrix::pack(kh, len, d, Precision::F32);
            let values = PackedMatrix::pack_with(d, len, Precision::F32, |first, n, dst| {
                for (r, row) in dst.chunks_exact_mut(len).enumerate().take(n) {
                    for (t, x) in row.iter_mut().enumerate() {
                        *x = vh[t * d + first + r];
                    }
                }
            });
            (keys, values)
        })
        .collect();
    let blocks = len.div_ceil(QUERY_BLOCK);
    let width = heads * d;
    // each task writes its queries' rows of its head: disjoint parts of `out`
    let results: Vec<(usize, usize, usize, Vec<f32>)> = (0..batch * heads * blocks)
        .into_par_iter()
        .map_init(Vec::new, |scores, task| {
            let (bh, blk) = (task / blocks, task % blocks);
            let (b, h) = (bh / heads, bh % heads);
            let (keys, values) = &packed[b * kv_heads + h / rep];
            let q0 = blk * QUERY_BLOCK;
            let nq = QUERY_BLOCK.min(len - q0);
            let lo = params.window.map_or(0, |w| (q0 + 1).saturating_sub(w));
            let first_key = lo / 32 * 32;
            let keys_end = q0 + nq;
            let nk = keys_end - first_key;
            let qs = &q[(bh * len + q0) * d..(bh * len + q0 + nq) * d];
            scores.clear();
            scores.resize(nq * nk, 0.0);
            matmul_block(qs, d, nq, keys, first_key..keys_end, 0..d, scores, nk);
            for (i, row) in scores.chunks_exact_mut(nk).enumerate() {
                let query = q0 + i;
                let from = params.window.map_or(0, |w| (query + 1).saturating_sub(w));
                let (visible_lo, visible_hi) = (from - first_key, query + 1 - first_key);
                row[..visible_lo].fill(0.0);
                row[visible_hi..].fill(0.0);
                let visible = &mut row[visible_lo..visible_hi];
                for s in visible.iter_mut() {
                    *s *= params.scale;
                }
                if let Some(cap) = params.softcap {
                    for s in visible.iter_mut() {
                        *s = (*s / cap).tanh() * cap;
                    }
                }
                softmax_in_place(visible);
            }
            let mut o = vec![0.0; nq * d];
            matmul_block(scores, nk, nq, values, 0..d, first_key..keys_end, &mut o, d);
            (b, h, q0, o)
        })
        .collect();
    for (b, h, q0, o) in results {
        for (i, row) in o.chunks_exact(d).enumerate() {
            let at = (b * len + q0 + i) * width + h * d;
            out[at..at + d].copy_from_slice(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random;

    /// Textbook attention in f64.
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: AttentionShape,
        p: AttentionParams,
    ) -> Vec<f64> {
        let (len, d) = (s.len, s.head_dim);
        let rep = s.heads / s.kv_heads;
        let mut out = vec![0.0; q.len()];
        for b in 0..s.batch {
            for h in 0..s.heads {
                let g = b * s.kv_heads + h / rep;
                for i in 0..len {
                    let qi = &q[((b * s.heads + h) * len + i) * d..][..d];
                    let from = p.window.map_or(0, |w| (i + 1).saturating_sub(w));
                    let scores: Vec<f64> = (from..=i)
                        .map(|j| {
                            let kj = &k[(g * len + j) * d..][..d];
                            let dot: f64 = qi
                                .iter()
                                .zip(kj)
                                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                                .sum();
                            let s = dot * f64::from(p.scale);
                            p.softcap
                                .map_or(s, |c| (s / f64::from(c)).tanh() * f64::from(c))
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for t in 0..d {
                        let o: f64 = (from..=i)
                            .zip(&scores)
                            .map(|(j, s)| (s - max).exp() / z * f64::from(v[(g * len + j) * d + t]))
                            .sum();
                        out[(b * len + i) * s.heads * d + h * d + t] = o;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_textbook_with_gqa_windows_and_softcap() {
        for (shape, params) in [
            (
                AttentionShape {
                    batch: 2,
                    len: 150,
                    heads: 6,
                    kv_heads: 2,
                    head_dim: 16,
                },
                AttentionParams {
                    scale: 0.25,
                    softcap: None,
                    window: None,
                },
            ),
            (
                AttentionShape {
                    batch: 1,
                    len: 200,
                    heads: 4,
                    kv_heads: 4,
                    head_dim: 40,
                },
                AttentionParams {
                    scale: 0.3,
                    softcap: Some(5.0),
                    window: Some(70),
                },
            ),
            (
                AttentionShape {
                    batch: 3,
                    len: 5,
                    heads: 2,
                    kv_heads: 1,
                    head_dim: 8,
                },
                AttentionParams {
                    scale: 1.0,
                    softcap: None,
                    window: Some(2),
                },
            ),
        ] {
            let n = shape.batch * shape.heads * shape.len * shape.head_dim;
            let nkv = shape.batch * shape.kv_heads * shape.len * shape.head_dim;
            let (q, k, v) = (random(n, 1), random(nkv, 2), random(nkv, 3));
            let want = reference(&q, &k, &v, shape, params);
            let mut got = vec![f32::NAN; n];
            causal_attention(&q, &k, &v, shape, params, &mut got);
            let err = got
                .iter()
                .zip(&want)
                .map(|(&g, &w)| (f64::from(g) - w).abs())
                .fold(0.0, f64::max);
            assert!(err < 2e-6, "{shape:?}: {err}");
        }
    }

    #[test]
    fn a_window_does_not_depend_on_its_batch_or_padding() {
        let (heads, kv, d) = (4, 2, 16);
        let shape = |batch, len| AttentionShape {
            batch,
            len,
            heads,
            kv_heads: kv,
            head_dim: d,
        };
        let params = AttentionParams {
            scale: 0.25,
            softcap: None,
            window: None,
        };
        // window 0 of length 100, alone and as the first of two padded to 130
        let (q1, k1, v1) = (
            random(heads * 100 * d, 4),
            random(kv * 100 * d, 5),
            random(kv * 100 * d, 6),
        );
        let mut alone = vec![0.0; heads * 100 * d];
        causal_attention(&q1, &k1, &v1, shape(1, 100), params, &mut alone);
        let pad = |x: &[f32], h: usize| -> Vec<f32> {
            let mut out = Vec::new();
            for head in x.chunks(100 * d).take(h) {
                out.extend_from_slice(head);
                out.extend(random(30 * d, 7));
            }
            out.extend(random(h * 130 * d, 8));
            out
        };
        let (q2, k2, v2) = (pad(&q1, heads), pad(&k1, kv), pad(&v1, kv));
        let mut batched = vec![0.0; 2 * heads * 130 * d];
        causal_attention(&q2, &k2, &v2, shape(2, 130), params, &mut batched);
        for i in 0..100 {
            let w = heads * d;
            assert_eq!(
                &alone[i * w..(i + 1) * w],
                &batched[i * w..(i + 1) * w],
                "position {i}"
            );
        }
    }
}
