//! Causal self-attention: the parts of a batch every layer shares
//! ([`BatchContext`]: RoPE tables, query blocks, masks), and one layer's
//! attention on `perplex-kernels`' fused kernel or on candle's ops in query
//! blocks (bounded by [`super::Tiling`]), with grouped KV heads, per-layer
//! sliding windows and soft-capping.

use candle_core::{Device, Tensor};
use perplex_core::lm::WindowRef;

use super::layer::{Layer, Qkv};
use super::Decoder;
use crate::matmul::{with_slice, Kernels};

/// The parts of a batch every layer shares, built once per batch.
pub(super) struct BatchContext {
    pub(super) batch: usize,
    pub(super) len: usize,
    /// `(cos, sin)` per rope of the model.
    pub(super) ropes: Vec<(Tensor, Tensor)>,
    /// The attention spans a layer's `mask` index selects: `[full, sliding
    /// windows…]`.
    pub(super) windows: Vec<Option<usize>>,
    /// `(first query, queries)` of each query block (candle's path).
    pub(super) blocks: Vec<(usize, usize)>,
    /// `masks[mask][block]`: additive mask `[queries, first + queries]`
    /// (candle's path; the fused kernel masks by itself).
    pub(super) masks: Vec<Vec<Tensor>>,
}

impl Decoder {
    pub(super) fn batch_context(
        &self,
        batch: &[WindowRef<'_>],
    ) -> candle_core::Result<BatchContext> {
        let len = batch.iter().map(|w| w.tokens.len()).max().unwrap_or(0);
        let lens: Vec<usize> = batch.iter().map(|w| w.tokens.len()).collect();
        let ropes = self
            .ropes
            .iter()
            .map(|r| r.tables(&lens, len, &Device::Cpu))
            .collect::<candle_core::Result<_>>()?;
        let per_query = batch.len() * self.config.num_heads * len;
        let max_block = self.tiling.max_query_block.max(1);
        let block = (self.tiling.attention_score_elems / per_query.max(1))
            .clamp(16.min(max_block), max_block);
        let blocks: Vec<(usize, usize)> = (0..len)
            .step_by(block)
            .map(|q0| (q0, block.min(len - q0)))
            .collect();
        let windows: Vec<Option<usize>> = std::iter::once(None)
            .chain(self.config.sliding_windows().into_iter().map(Some))
            .collect();
        let masks = match self.kernels {
            Kernels::Packed(_) => Vec::new(),
            Kernels::Candle => windows
                .iter()
                .map(|&window| {
                    blocks
                        .iter()
                        .map(|&(q0, n)| causal_mask(q0, n, window))
                        .collect::<candle_core::Result<Vec<_>>>()
                })
                .collect::<candle_core::Result<_>>()?,
        };
        Ok(BatchContext {
            batch: batch.len(),
            len,
            ropes,
            windows,
            blocks,
            masks,
        })
    }

    /// The attention half of `layer` over the normed rows `xn`
    /// (`[b·len, hidden]`): projections, q/k norms, RoPE, attention, the
    /// output projection and its norm.
    pub(super) fn self_attention(
        &self,
        layer: &Layer,
        xn: &Tensor,
        ctx: &BatchContext,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, l, d) = (ctx.batch, ctx.len, c.head_dim);
        let (q_width, kv_width) = (c.num_heads * d, c.num_kv_heads * d);
        let (q, k, v) = match &layer.qkv {
            Qkv::Split { q, k, v } => (
                q.forward(xn, self.kernels)?,
                k.forward(xn, self.kernels)?,
                v.forward(xn, self.kernels)?,
            ),
            Qkv::Fused(qkv) => {
                let y = qkv.forward(xn, self.kernels)?;
                (
                    y.narrow(1, 0, q_width)?,
                    y.narrow(1, q_width, kv_width)?,
                    y.narrow(1, q_width + kv_width, kv_width)?,
                )
            }
        };
        let eps = c.norm_eps as f32;
        // per-head RMSNorm over head_dim, before RoPE
        let head_norm = |t: Tensor, w: &Option<Tensor>| -> candle_core::Result<Tensor> {
            match w {
                None => Ok(t),
                Some(w) => {
                    let rows = t.dims()[0];
                    let n = t.dims()[1] / d;
                    self.rms_norm(&t.contiguous()?.reshape((rows * n, d))?, w, eps)?
                        .reshape((rows, n * d))
                }
            }
        };
        let q = head_norm(q, &layer.q_norm)?;
        let k = head_norm(k, &layer.k_norm)?;
        let heads = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, l, n, d))?.transpose(1, 2)?.contiguous()
        };
        let v = heads(v, c.num_kv_heads)?;
        let (q, k) = match (self.kernels, ctx.ropes.get(layer.rope)) {
            // the split into heads and RoPE in one pass, candle's operations
            (Kernels::Packed(_), Some((cos, sin))) => (
                crate::fused::rope_heads(&q, (b, l, c.num_heads, d), cos, sin)?,
                crate::fused::rope_heads(&k, (b, l, c.num_kv_heads, d), cos, sin)?,
            ),
            (_, rope) => {
                let (mut q, mut k) = (heads(q, c.num_heads)?, heads(k, c.num_kv_heads)?);
                if let Some((cos, sin)) = rope {
                    q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
                    k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
                }
                (q, k)
            }
        };
        let attn = match self.kernels {
            Kernels::Packed(_) => self.fused_attention(&q, &k, &v, layer.mask, ctx)?,
            Kernels::Candle => self.attention(&q, &k, &v, &ctx.masks[layer.mask], ctx)?,
        };
        let mut attn = layer.o.forward(&attn, self.kernels)?;
        if let Some(n) = &layer.post_attn_norm {
            attn = self.norm(&attn, n)?;
        }
        Ok(attn)
    }

    /// Causal self-attention of one layer. `q`: `[b, heads, len, d]` and
    /// `k`, `v`: `[b, kv_heads, len, d]`, RoPE applied; returns `[b·len, heads·d]`.
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        masks: &[Tensor],
        ctx: &BatchContext,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, l, d) = (ctx.batch, ctx.len, c.head_dim);
        let (kv, rep) = (c.num_kv_heads, c.num_heads / c.num_kv_heads);
        // query head `g·rep + r` reads key/value head `g` (transformers' repeat_kv)
        let q = (q * c.attention_scale)?.reshape((b, kv, rep, l, d))?;
        let mut outs = Vec::with_capacity(ctx.blocks.len());
        for (&(q0, n), mask) in ctx.blocks.iter().zip(masks) {
            let keys = q0 + n;
            let qb = if n == l {
                q.reshape((b, kv, rep * l, d))?
            } else {
                q.narrow(3, q0, n)?
                    .contiguous()?
                    .reshape((b, kv, rep * n, d))?
            };
            let kb = k.narrow(2, 0, keys)?;
            let vb = v.narrow(2, 0, keys)?;
            let mut scores = qb.matmul(&kb.t()?)?;
            if let Some(cap) = c.attn_softcap {
                scores = ((scores / cap)?.tanh()? * cap)?;
            }
            let scores = scores.reshape((b, kv, rep, n, keys))?.broadcast_add(mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let out = probs.reshape((b, kv, rep * n, keys))?.matmul(&vb)?;
            outs.push(out.reshape((b, kv, rep, n, d))?);
        }
        let out = if outs.len() == 1 {
            outs.remove(0)
        } else {
            Tensor::cat(&outs, 3)?
        };
        out.reshape((b, c.num_heads, l, d))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * l, c.num_heads * d))
    }

    /// [`Self::attention`] by `perplex-kernels`' fused kernel; `mask`: the
    /// layer's index into `ctx.windows`.
    fn fused_attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: usize,
        ctx: &BatchContext,
    ) -> candle_core::Result<Tensor> {
        use perplex_kernels::attention::{causal_attention, AttentionParams, AttentionShape};
        let c = &self.config;
        let shape = AttentionShape {
            batch: ctx.batch,
            len: ctx.len,
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
        };
        let params = AttentionParams {
            scale: c.attention_scale as f32,
            softcap: c.attn_softcap.map(|cap| cap as f32),
            window: ctx.windows[mask],
        };
        let mut out = vec![0f32; ctx.batch * ctx.len * c.num_heads * c.head_dim];
        // one `?` per tensor read
        with_slice(q, |q| {
            with_slice(k, |k| {
                with_slice(v, |v| causal_attention(q, k, v, shape, params, &mut out))
            })
        })???;
        Tensor::from_vec(
            out,
            (ctx.batch * ctx.len, c.num_heads * c.head_dim),
            &Device::Cpu,
        )
    }
}

/// The additive mask of queries `q0..q0 + n` over keys `0..q0 + n`: causal,
/// and limited to the last `window` keys (the query's own included) when set.
fn causal_mask(q0: usize, n: usize, window: Option<usize>) -> candle_core::Result<Tensor> {
    let keys = q0 + n;
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| {
            let q = q0 + i;
            (0..keys).map(move |k| {
                let visible = k <= q && window.is_none_or(|w| q - k < w);
                if visible {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (n, keys), &Device::Cpu)
}
