//! The decoder-only transformer every supported family runs on: GPT-2,
//! Llama 2/3, Mistral, Qwen2/3, Gemma 1/2/3 and Phi-3, on the CPU: the
//! matrix products and attention on `perplex-kernels` where the CPU has
//! AVX-512, candle's ops elsewhere (see `matmul.rs`).
//!
//! One forward pass with switches read from [`ModelConfig`] (norm kind,
//! fused or split projections, q/k norms, sandwich norms, GELU or SiLU,
//! gated or plain MLP, learned or rotary positions, per-layer sliding
//! windows and RoPE bases, attention and logit soft-capping, embedding
//! scale); the families differ only in those switches and in tensor names
//! (`Part`).
//!
//! A batch of windows is right-padded to its longest window; positions start
//! at 0 in every window and attention is causal, so padding only ever sits
//! after a window's real positions and cannot change their values. Weights
//! stored quantized are dequantized just before use (at most the MLP
//! matrices of one layer at once) and dropped after, so memory is the stored
//! weights plus one layer's worth of f32 scratch; the output head is
//! dequantized in tiles of rows (see `head.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use perplex_core::lm::{
    validate_batch, CausalLm, LmError, LogitTiles, ModelInfo, TokenScore, WindowRef,
};

use crate::config::{
    Activation, Mlp, ModelConfig, NormKind, Positions, Root, RopeScaling, TensorNames,
};
use crate::error::ModelError;
use crate::gguf::{unpermute_rows, GgufFile};
use crate::head::{fused_head, HeadTiling, Running};
use crate::lora::{LoraAdapter, LoraDelta, LoraSet};
use crate::matmul::{with_slice, Kernels, Ready};
use crate::rope::Rope;
use crate::safetensors::SafetensorsSet;
use crate::weights::{ggml_type_name, StorageSummary, Weight};
use crate::Compute;

/// How work is cut into bounded pieces. Results do not depend on it (the
/// tests check that); memory and speed do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tiling {
    /// f32 elements of attention scores computed at once (bounds the query block).
    attention_score_elems: usize,
    /// Longest query block: smaller blocks skip more of the masked upper triangle.
    max_query_block: usize,
    /// f32 elements of MLP activations computed at once (bounds the row chunk).
    mlp_activation_elems: usize,
    /// The output head's tiles.
    head: HeadTiling,
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling {
            attention_score_elems: 32 << 20,
            max_query_block: 256,
            mlp_activation_elems: 16 << 20,
            head: HeadTiling::default(),
        }
    }
}

/// A linear layer `y = x · Wᵀ + b + Σ s·(x·Aᵀ)·Bᵀ` (the last term: LoRA
/// adapters, see `lora.rs`).
#[derive(Debug, Clone)]
struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    lora: Vec<LoraDelta>,
}

impl Linear {
    /// The weight ready to multiply with `kernels`.
    fn ready(&self, kernels: Kernels) -> candle_core::Result<Ready<'_>> {
        kernels.ready(&self.weight, 0, self.weight.dims().0)
    }

    /// Applies the layer with its weight made ready.
    fn apply(&self, x: &Tensor, w: &Ready<'_>) -> candle_core::Result<Tensor> {
        let mut y = w.multiply(x)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        for d in &self.lora {
            y = (y + (x.matmul(&d.a.t()?)?.matmul(&d.b.t()?)? * d.scale)?)?;
        }
        Ok(y)
    }

    fn forward(&self, x: &Tensor, kernels: Kernels) -> candle_core::Result<Tensor> {
        self.apply(x, &self.ready(kernels)?)
    }
}

/// A normalisation's parameters; `weight` already holds the family's offset.
#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    /// LayerNorm only.
    bias: Option<Tensor>,
}

/// The query/key/value projections.
#[derive(Debug, Clone)]
enum Qkv {
    Split {
        q: Linear,
        k: Linear,
        v: Linear,
    },
    /// One matrix whose output rows are `[q; k; v]` (GPT-2, Phi-3).
    Fused(Linear),
}

/// The MLP's input projections (the output projection is `Layer::down`).
#[derive(Debug, Clone)]
enum MlpIn {
    /// `act(gate(x)) · up(x)`.
    Gated { gate: Linear, up: Linear },
    /// One matrix whose output rows are `[gate; up]` (Phi-3).
    FusedGated(Linear),
    /// `act(up(x))` (GPT-2).
    Plain(Linear),
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Norm,
    qkv: Qkv,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    o: Linear,
    post_attn_norm: Option<Norm>,
    ffn_norm: Norm,
    mlp_in: MlpIn,
    down: Linear,
    post_ffn_norm: Option<Norm>,
    /// Index into the batch's masks: 0 full causal, `i + 1` the model's
    /// `i`-th sliding window.
    mask: usize,
    /// Index into the model's ropes: 0 global, 1 local.
    rope: usize,
}

/// The parts of a batch every layer shares, built once per batch.
struct BatchContext {
    batch: usize,
    len: usize,
    /// `(cos, sin)` per rope of the model.
    ropes: Vec<(Tensor, Tensor)>,
    /// The attention spans a layer's `mask` index selects: `[full, sliding
    /// windows…]`.
    windows: Vec<Option<usize>>,
    /// `(first query, queries)` of each query block (candle's path).
    blocks: Vec<(usize, usize)>,
    /// `masks[mask][block]`: additive mask `[queries, first + queries]`
    /// (candle's path; the fused kernel masks by itself).
    masks: Vec<Vec<Tensor>>,
}

/// A loaded model of any supported family. Implements [`CausalLm`].
pub struct Decoder {
    config: ModelConfig,
    info: ModelInfo,
    embed: Weight,
    /// Learned position table (GPT-2).
    positions: Option<Weight>,
    layers: Vec<Layer>,
    norm: Norm,
    /// `None`: tied to the embedding.
    head: Option<Weight>,
    /// The global rope, then the local one when layers use it.
    ropes: Vec<Rope>,
    pool: Option<Arc<rayon::ThreadPool>>,
    tiling: Tiling,
    kernels: Kernels,
    /// Adapters whose every lora_B is zero (set by the loader, for a warning).
    pub(crate) untrained_adapters: Vec<PathBuf>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("config", &self.config)
            .field(
                "threads",
                &self.pool.as_ref().map(|p| p.current_num_threads()),
            )
            .finish_non_exhaustive()
    }
}

fn backend(e: candle_core::Error) -> LmError {
    LmError::Backend(Box::new(e))
}

impl Decoder {
    /// The model's hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs `f` on this model's thread pool, if it has one.
    fn on_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    pub(crate) fn set_pool(&mut self, pool: Option<Arc<rayon::ThreadPool>>) {
        self.pool = pool;
    }

    fn batch_context(&self, batch: &[WindowRef<'_>]) -> candle_core::Result<BatchContext> {
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

    fn norm(&self, x: &Tensor, n: &Norm) -> candle_core::Result<Tensor> {
        let eps = self.config.norm_eps as f32;
        match (self.config.norm, &n.bias) {
            (NormKind::Layer, Some(b)) => candle_nn::ops::layer_norm(x, &n.weight, b, eps),
            (NormKind::Layer, None) => {
                let zero = n.weight.zeros_like()?;
                candle_nn::ops::layer_norm(x, &n.weight, &zero, eps)
            }
            (NormKind::Rms, _) => candle_nn::ops::rms_norm(x, &n.weight, eps),
        }
    }

    fn activation(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.config.activation {
            Activation::Silu => candle_nn::ops::silu(x),
            Activation::GeluTanh => x.gelu(),
            Activation::GeluErf => x.gelu_erf(),
        }
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

    fn layer_forward(
        &self,
        layer: &Layer,
        x: &Tensor,
        ctx: &BatchContext,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, l, d) = (ctx.batch, ctx.len, c.head_dim);
        let (q_width, kv_width) = (c.num_heads * d, c.num_kv_heads * d);
        let xn = self.norm(x, &layer.attn_norm)?;
        let (q, k, v) = match &layer.qkv {
            Qkv::Split { q, k, v } => (
                q.forward(&xn, self.kernels)?,
                k.forward(&xn, self.kernels)?,
                v.forward(&xn, self.kernels)?,
            ),
            Qkv::Fused(qkv) => {
                let y = qkv.forward(&xn, self.kernels)?;
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
                    candle_nn::ops::rms_norm(&t.contiguous()?.reshape((rows * n, d))?, w, eps)?
                        .reshape((rows, n * d))
                }
            }
        };
        let q = head_norm(q, &layer.q_norm)?;
        let k = head_norm(k, &layer.k_norm)?;
        let heads = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, l, n, d))?.transpose(1, 2)?.contiguous()
        };
        let (mut q, mut k) = (heads(q, c.num_heads)?, heads(k, c.num_kv_heads)?);
        let v = heads(v, c.num_kv_heads)?;
        if let Some((cos, sin)) = ctx.ropes.get(layer.rope) {
            q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
            k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        }
        let attn = match self.kernels {
            Kernels::Packed(_) => self.fused_attention(&q, &k, &v, layer.mask, ctx)?,
            Kernels::Candle => self.attention(&q, &k, &v, &ctx.masks[layer.mask], ctx)?,
        };
        let mut attn = layer.o.forward(&attn, self.kernels)?;
        if let Some(n) = &layer.post_attn_norm {
            attn = self.norm(&attn, n)?;
        }
        let x = (x + attn)?;

        let xn = self.norm(&x, &layer.ffn_norm)?;
        let inter = c.intermediate_size;
        let kernels = self.kernels;
        let wd = layer.down.ready(kernels)?;
        let (w1, w2) = match &layer.mlp_in {
            MlpIn::Gated { gate, up } => (gate.ready(kernels)?, Some(up.ready(kernels)?)),
            MlpIn::FusedGated(gu) => (gu.ready(kernels)?, None),
            MlpIn::Plain(up) => (up.ready(kernels)?, None),
        };
        let rows = b * l;
        let chunk = (self.tiling.mlp_activation_elems / (2 * inter)).max(1);
        let mut parts = Vec::with_capacity(rows.div_ceil(chunk));
        for r0 in (0..rows).step_by(chunk) {
            let xs = xn.narrow(0, r0, chunk.min(rows - r0))?;
            let act = match (&layer.mlp_in, &w2) {
                (MlpIn::Gated { gate, up }, Some(wu)) => {
                    (self.activation(&gate.apply(&xs, &w1)?)? * up.apply(&xs, wu)?)?
                }
                (MlpIn::FusedGated(gu), _) => {
                    let y = gu.apply(&xs, &w1)?;
                    (self.activation(&y.narrow(1, 0, inter)?)? * y.narrow(1, inter, inter)?)?
                }
                (MlpIn::Plain(up), _) | (MlpIn::Gated { up, .. }, None) => {
                    self.activation(&up.apply(&xs, &w1)?)?
                }
            };
            parts.push(layer.down.apply(&act, &wd)?);
        }
        let mut mlp = if parts.len() == 1 {
            parts.remove(0)
        } else {
            Tensor::cat(&parts, 0)?
        };
        if let Some(n) = &layer.post_ffn_norm {
            mlp = self.norm(&mlp, n)?;
        }
        x + mlp
    }

    /// Final hidden states `[b·len, hidden]` (before the final norm).
    fn hidden_states(&self, batch: &[WindowRef<'_>]) -> candle_core::Result<(Tensor, usize)> {
        let ctx = self.batch_context(batch)?;
        let mut ids = vec![0u32; ctx.batch * ctx.len];
        for (w, row) in batch.iter().zip(ids.chunks_exact_mut(ctx.len)) {
            row[..w.tokens.len()].copy_from_slice(w.tokens);
        }
        let ids = Tensor::from_vec(ids, ctx.batch * ctx.len, &Device::Cpu)?;
        let mut x = self.embed.embedding(&ids)?;
        if let Some(scale) = self.config.embed_scale {
            // transformers multiplies by the scale rounded to the weights' dtype
            x = (x * f64::from(scale as f32))?;
        }
        if let Some(table) = &self.positions {
            let pos: Vec<u32> = (0..ctx.batch * ctx.len)
                .map(|i| (i % ctx.len) as u32)
                .collect();
            let pos = Tensor::from_vec(pos, ctx.batch * ctx.len, &Device::Cpu)?;
            x = (x + table.embedding(&pos)?)?;
        }
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &ctx)?;
        }
        Ok((x, ctx.len))
    }

    /// The final-normed hidden states of every scored position `[P, h]`
    /// (windows in order, positions in order) and the tokens they predict.
    fn scored_hidden(&self, batch: &[WindowRef<'_>]) -> candle_core::Result<(Tensor, Vec<u32>)> {
        let (x, len) = self.hidden_states(batch)?;
        // position p predicts token p + 1: the head only sees scored positions
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for (bi, w) in batch.iter().enumerate() {
            for p in w.score_from - 1..w.tokens.len() - 1 {
                rows.push((bi * len + p) as u32);
                targets.push(w.tokens[p + 1]);
            }
        }
        let n = rows.len();
        let rows = Tensor::from_vec(rows, n, &Device::Cpu)?;
        let hidden = self.norm(&x.index_select(&rows, 0)?, &self.norm)?;
        Ok((hidden, targets))
    }

    /// The running head reductions for every scored position, windows in
    /// order, positions in order.
    fn score_positions(&self, batch: &[WindowRef<'_>]) -> candle_core::Result<Vec<Running>> {
        let (hidden, targets) = self.scored_hidden(batch)?;
        fused_head(
            &hidden,
            self.head_weight(),
            &targets,
            self.softcap(),
            self.tiling.head,
            self.kernels,
        )
    }

    fn head_weight(&self) -> &Weight {
        self.head.as_ref().unwrap_or(&self.embed)
    }

    fn softcap(&self) -> Option<f32> {
        self.config.final_softcap.map(|c| c as f32)
    }
}

/// A batch's scored positions, kept as final hidden states: each tile of
/// logits is one `[P, h] × [h, len]` matmul against rows of the head.
struct DecoderLogits<'a> {
    model: &'a Decoder,
    hidden: Tensor,
}

impl LogitTiles for DecoderLogits<'_> {
    fn positions(&self) -> usize {
        self.hidden.dims()[0]
    }

    fn tile(&self, first: usize, len: usize, out: &mut Vec<f32>) -> Result<(), LmError> {
        let m = self.model;
        let logits = m
            .on_pool(|| -> candle_core::Result<Vec<f32>> {
                let rows = m.kernels.ready(m.head_weight(), first, len)?;
                rows.multiply(&self.hidden)?.flatten_all()?.to_vec1::<f32>()
            })
            .map_err(backend)?;
        *out = logits;
        if let Some(cap) = m.softcap() {
            out.iter_mut().for_each(|l| *l = (*l / cap).tanh() * cap);
        }
        Ok(())
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

impl CausalLm for Decoder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn logits<'a>(
        &'a mut self,
        batch: &[WindowRef<'_>],
    ) -> Result<Box<dyn LogitTiles + 'a>, LmError> {
        validate_batch(&self.info, batch)?;
        let this = &*self;
        let hidden = if batch.is_empty() {
            Tensor::zeros(
                (0, this.config.hidden_size),
                candle_core::DType::F32,
                &Device::Cpu,
            )
        } else {
            this.on_pool(|| this.scored_hidden(batch).map(|(h, _)| h))
        }
        .map_err(backend)?;
        Ok(Box::new(DecoderLogits {
            model: this,
            hidden,
        }))
    }

    fn score_batch(&mut self, batch: &[WindowRef<'_>]) -> Result<Vec<Vec<TokenScore>>, LmError> {
        validate_batch(&self.info, batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let this = &*self;
        let states = this
            .on_pool(|| this.score_positions(batch))
            .map_err(backend)?;
        let mut states = states.into_iter();
        batch
            .iter()
            .enumerate()
            .map(|(window, w)| {
                (w.score_from..w.tokens.len())
                    .map(|position| {
                        let state = states.next().expect("one state per scored position");
                        match state.finish() {
                            Ok((nll, argmax)) => Ok(TokenScore { nll, argmax }),
                            Err(value) => Err(LmError::NonFinite {
                                window,
                                position,
                                value: value.to_string(),
                            }),
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Loading

/// A part of the model, named differently by each family and format.
#[derive(Debug, Clone, Copy)]
enum Part {
    Embed,
    PosEmbed,
    Norm,
    Head,
    AttnNorm(usize),
    Q(usize),
    K(usize),
    V(usize),
    Qkv(usize),
    QNorm(usize),
    KNorm(usize),
    O(usize),
    PostAttnNorm(usize),
    FfnNorm(usize),
    Gate(usize),
    Up(usize),
    GateUp(usize),
    Down(usize),
    PostFfnNorm(usize),
}

impl Part {
    /// Whether the part is a projection (a linear layer's matrix).
    fn is_projection(self) -> bool {
        matches!(
            self,
            Part::Q(_)
                | Part::K(_)
                | Part::V(_)
                | Part::Qkv(_)
                | Part::O(_)
                | Part::Gate(_)
                | Part::Up(_)
                | Part::GateUp(_)
                | Part::Down(_)
        )
    }
}

/// Names the parts of one checkpoint: a family's names in one format, under
/// one root.
#[derive(Debug, Clone, Copy)]
struct Namer {
    names: &'static TensorNames,
    root: Root,
}

impl Namer {
    /// The name of `part.suffix` (`weight` or `bias`).
    fn name(&self, part: Part, suffix: &str) -> String {
        let n = self.names;
        let prefix = self.root.prefix;
        let layer = |i: usize, name: &str| format!("{prefix}{}.{i}.{name}.{suffix}", n.layers);
        let name = match part {
            Part::Embed => n.embed,
            Part::PosEmbed => n.pos_embed,
            Part::Norm => n.final_norm,
            Part::Head => return format!("{}.{suffix}", self.root.head),
            Part::AttnNorm(i) => return layer(i, n.attn_norm),
            Part::Q(i) => return layer(i, n.q),
            Part::K(i) => return layer(i, n.k),
            Part::V(i) => return layer(i, n.v),
            Part::Qkv(i) => return layer(i, n.qkv),
            Part::QNorm(i) => return layer(i, n.q_norm),
            Part::KNorm(i) => return layer(i, n.k_norm),
            Part::O(i) => return layer(i, n.o),
            Part::PostAttnNorm(i) => return layer(i, n.post_attn_norm),
            Part::FfnNorm(i) => return layer(i, n.ffn_norm),
            Part::Gate(i) => return layer(i, n.gate),
            Part::Up(i) => return layer(i, n.up),
            Part::GateUp(i) => return layer(i, n.gate_up),
            Part::Down(i) => return layer(i, n.down),
            Part::PostFfnNorm(i) => return layer(i, n.post_ffn_norm),
        };
        format!("{prefix}{name}.{suffix}")
    }
}

/// Where tensors come from.
pub(crate) enum Store<'a> {
    /// A Hugging Face folder's safetensors.
    Hf(&'a mut SafetensorsSet),
    /// A GGUF file.
    Gguf(&'a mut GgufFile),
}

struct Loader<'a> {
    store: Store<'a>,
    /// The tensors' names in the store.
    stored: Namer,
    /// The modules' names in the Hugging Face module tree, which PEFT
    /// adapters use whatever the base's format.
    modules: Namer,
    /// The store keeps projections `[in, out]` (GPT-2's `Conv1D`).
    conv1d: bool,
    /// Added to norm weights (Gemma's `1 + w` in HF checkpoints).
    norm_offset: f32,
    summary: StorageSummary,
    /// Adapters still to place.
    lora: LoraSet,
    kernels: Kernels,
}

impl Loader<'_> {
    fn name(&self, part: Part, suffix: &str) -> String {
        self.stored.name(part, suffix)
    }

    /// The module's name in the Hugging Face module tree.
    fn module_name(&self, part: Part) -> String {
        let name = self.modules.name(part, "weight");
        name.strip_suffix(".weight").unwrap_or(&name).to_string()
    }

    fn missing(&self, name: String) -> ModelError {
        let path = match &self.store {
            Store::Hf(set) => set.path_of(&name).to_path_buf(),
            Store::Gguf(g) => g.path.clone(),
        };
        ModelError::MissingTensor { name, path }
    }

    /// Whether `part` is stored `[in, out]` rather than `[out, in]`.
    fn transposed(&self, part: Part) -> bool {
        self.conv1d && part.is_projection()
    }

    /// Loads `part.suffix` (`weight` or `bias`) with shape `expected`.
    /// `rope_heads`: the tensor is a q/k projection of that many heads, which
    /// GGUF stores permuted.
    fn load(
        &mut self,
        part: Part,
        suffix: &str,
        expected: &[usize],
        rope_heads: Option<usize>,
    ) -> Result<Option<Weight>, ModelError> {
        // a whole tensor an adapter replaces (`modules_to_save`)
        let replaced = format!("{}.{suffix}", self.module_name(part));
        if let Some((adapter, t)) = self.lora.take_replacement(&replaced) {
            if t.dims() != expected {
                return Err(ModelError::TensorShape {
                    name: replaced,
                    path: adapter.join("adapter_model.safetensors"),
                    actual: t.dims().to_vec(),
                    expected: expected.to_vec(),
                });
            }
            return Ok(Some(Weight::Dense(t)));
        }
        let name = self.name(part, suffix);
        let backend = |context: String| {
            move |source| ModelError::Backend {
                context,
                source: Box::new(source),
            }
        };
        let transposed = self.transposed(part) && expected.len() == 2;
        let stored: Vec<usize> = if transposed {
            expected.iter().rev().copied().collect()
        } else {
            expected.to_vec()
        };
        let shape_error = |path: PathBuf, actual: Vec<usize>| ModelError::TensorShape {
            name: name.clone(),
            path,
            actual,
            expected: stored.clone(),
        };
        match &mut self.store {
            Store::Hf(set) => {
                let Some((shape, dtype)) = set.info(&name) else {
                    return Ok(None);
                };
                if shape != stored {
                    return Err(shape_error(set.path_of(&name).to_path_buf(), shape));
                }
                let mut t = set.read_f32(&name)?.expect("present: info() found it");
                self.summary.add(&dtype, t.elem_count());
                if transposed {
                    t = t
                        .t()
                        .and_then(|t| t.contiguous())
                        .map_err(backend(format!("transposing `{name}`")))?;
                }
                Ok(Some(Weight::Dense(t)))
            }
            Store::Gguf(g) => {
                let Some((shape, _)) = g.info(&name) else {
                    return Ok(None);
                };
                if shape != stored {
                    return Err(shape_error(g.path.clone(), shape));
                }
                let mut q = g.read(&name)?.expect("present: info() found it");
                self.summary
                    .add(ggml_type_name(q.dtype()), q.shape().elem_count());
                if let Some(n_head) = rope_heads {
                    q = unpermute_rows(&q, n_head)
                        .map_err(backend(format!("un-permuting `{name}`")))?;
                }
                // f32 and vectors gain nothing from staying in ggml storage
                if expected.len() == 1 || q.dtype() == candle_core::quantized::GgmlDType::F32 {
                    let t = q
                        .dequantize(&Device::Cpu)
                        .map_err(backend(format!("reading `{name}`")))?;
                    Ok(Some(Weight::Dense(t)))
                } else {
                    Ok(Some(Weight::Quant(Arc::new(q))))
                }
            }
        }
    }

    fn required(
        &mut self,
        part: Part,
        expected: &[usize],
        rope_heads: Option<usize>,
    ) -> Result<Weight, ModelError> {
        match self.load(part, "weight", expected, rope_heads)? {
            Some(w) => Ok(w),
            None => Err(self.missing(self.name(part, "weight"))),
        }
    }

    fn vector(&mut self, part: Part, len: usize) -> Result<Tensor, ModelError> {
        match self.required(part, &[len], None)? {
            Weight::Dense(t) => Ok(t),
            Weight::Quant(_) | Weight::Packed(_) => unreachable!("vectors are loaded dense"),
        }
    }

    /// A norm's weight (with the family's offset) and, for LayerNorm, bias.
    fn norm(&mut self, part: Part, len: usize, layer_norm: bool) -> Result<Norm, ModelError> {
        let weight = self.vector(part, len)?;
        let weight = if self.norm_offset == 0.0 {
            weight
        } else {
            (weight + f64::from(self.norm_offset)).map_err(|source| ModelError::Backend {
                context: format!("offsetting `{}`", self.name(part, "weight")),
                source: Box::new(source),
            })?
        };
        let bias = if layer_norm {
            Some(
                self.bias(part, len, true, None)?
                    .expect("required biases exist"),
            )
        } else {
            None
        };
        Ok(Norm { weight, bias })
    }

    fn bias(
        &mut self,
        part: Part,
        len: usize,
        wanted: bool,
        rope_heads: Option<usize>,
    ) -> Result<Option<Tensor>, ModelError> {
        // transformers ignores bias tensors its config does not ask for;
        // GGUF has no such flag, so there a bias is used when present
        if !wanted && matches!(self.store, Store::Hf(_)) {
            return Ok(None);
        }
        let loaded = self.load(part, "bias", &[len], rope_heads)?;
        match (loaded, wanted) {
            (Some(Weight::Dense(t)), _) => Ok(Some(t)),
            (Some(Weight::Quant(_) | Weight::Packed(_)), _) => {
                unreachable!("vectors are loaded dense")
            }
            (None, true) => Err(self.missing(self.name(part, "bias"))),
            (None, false) => Ok(None),
        }
    }

    fn linear(
        &mut self,
        part: Part,
        (out, inp): (usize, usize),
        bias: bool,
        rope_heads: Option<usize>,
    ) -> Result<Linear, ModelError> {
        let module = self.module_name(part);
        let lora = self.lora.take_deltas(&module);
        for d in &lora {
            let (a, b) = (d.a.dims(), d.b.dims());
            if a.len() != 2 || b.len() != 2 || a[1] != inp || b[0] != out || a[0] != b[1] {
                return Err(ModelError::AdapterShape {
                    module,
                    a: a.to_vec(),
                    b: b.to_vec(),
                    expected: [out, inp],
                });
            }
        }
        let mut weight = self.required(part, &[out, inp], rope_heads)?;
        // dense weights are packed once, in place of the tensor; quantized
        // ones stay compact and are dequantized into panels at each use
        if let (Kernels::Packed(precision), Weight::Dense(_)) = (self.kernels, &weight) {
            let packed = weight
                .packed(precision)
                .map_err(|source| ModelError::Backend {
                    context: format!("packing `{module}`"),
                    source: Box::new(source),
                })?
                .into_owned();
            weight = Weight::Packed(Arc::new(packed));
        }
        Ok(Linear {
            weight,
            bias: self.bias(part, out, bias, rope_heads)?,
            lora,
        })
    }
}

/// Builds the model from `store` with `adapters` applied; returns it with
/// the storage summary.
pub(crate) fn build(
    config: ModelConfig,
    store: Store<'_>,
    adapters: &[LoraAdapter],
    compute: Compute,
) -> Result<(Decoder, StorageSummary), ModelError> {
    let kernels = Kernels::select(compute)?;
    let rules = config.family.rules();
    let hf = &rules.hf_tensors;
    // PEFT names modules as the default Hugging Face layout does
    let default_root = hf.roots[hf.roots.len() - 1];
    let (stored, modules, conv1d) = match &store {
        Store::Hf(set) => {
            let root = hf
                .roots
                .iter()
                .find(|r| {
                    let namer = Namer {
                        names: &hf.names,
                        root: r.stored,
                    };
                    set.info(&namer.name(Part::Embed, "weight")).is_some()
                })
                .unwrap_or(&default_root);
            let stored = Namer {
                names: &hf.names,
                root: root.stored,
            };
            (stored, root.modules, hf.conv1d)
        }
        Store::Gguf(_) => {
            let gguf = &rules.gguf_tensors;
            let stored = Namer {
                names: &gguf.names,
                root: gguf.root,
            };
            (stored, default_root.modules, false)
        }
    };
    let is_gguf = matches!(store, Store::Gguf(_));
    let c = &config;
    let mut ld = Loader {
        store,
        stored,
        modules: Namer {
            names: &hf.names,
            root: modules,
        },
        conv1d,
        norm_offset: if is_gguf { 0.0 } else { c.norm_weight_offset },
        summary: StorageSummary::default(),
        lora: LoraSet::new(adapters)?,
        kernels,
    };
    let (h, d, inter) = (c.hidden_size, c.head_dim, c.intermediate_size);
    let (q_rows, kv_rows) = (c.num_heads * d, c.num_kv_heads * d);
    let permuted = |n: usize| (is_gguf && rules.gguf_tensors.permuted_qk).then_some(n);
    let layer_norm = c.norm == NormKind::Layer;
    let embed = ld.required(Part::Embed, &[c.vocab_size, h], None)?;
    let positions = match c.positions {
        Positions::Learned => {
            Some(ld.required(Part::PosEmbed, &[c.max_position_embeddings, h], None)?)
        }
        Positions::Rope => None,
    };
    let windows = c.sliding_windows();
    let mut layers = Vec::with_capacity(c.num_layers);
    for (i, attention) in c.layers.iter().enumerate() {
        let qb = c.qkv_bias;
        let qkv = if rules.fused_qkv {
            Qkv::Fused(ld.linear(Part::Qkv(i), (q_rows + 2 * kv_rows, h), qb, None)?)
        } else {
            Qkv::Split {
                q: ld.linear(Part::Q(i), (q_rows, h), qb, permuted(c.num_heads))?,
                k: ld.linear(Part::K(i), (kv_rows, h), qb, permuted(c.num_kv_heads))?,
                v: ld.linear(Part::V(i), (kv_rows, h), qb, None)?,
            }
        };
        let (q_norm, k_norm) = if c.qk_norm {
            (
                Some(ld.norm(Part::QNorm(i), d, false)?.weight),
                Some(ld.norm(Part::KNorm(i), d, false)?.weight),
            )
        } else {
            (None, None)
        };
        let mb = c.mlp_bias;
        let mlp_in = match rules.mlp {
            Mlp::Plain => MlpIn::Plain(ld.linear(Part::Up(i), (inter, h), mb, None)?),
            Mlp::FusedGated => {
                MlpIn::FusedGated(ld.linear(Part::GateUp(i), (2 * inter, h), mb, None)?)
            }
            Mlp::Gated => MlpIn::Gated {
                gate: ld.linear(Part::Gate(i), (inter, h), mb, None)?,
                up: ld.linear(Part::Up(i), (inter, h), mb, None)?,
            },
        };
        let sandwich = c.sandwich_norms;
        layers.push(Layer {
            attn_norm: ld.norm(Part::AttnNorm(i), h, layer_norm)?,
            qkv,
            q_norm,
            k_norm,
            o: ld.linear(Part::O(i), (h, q_rows), c.o_bias, None)?,
            post_attn_norm: sandwich
                .then(|| ld.norm(Part::PostAttnNorm(i), h, layer_norm))
                .transpose()?,
            ffn_norm: ld.norm(Part::FfnNorm(i), h, layer_norm)?,
            mlp_in,
            down: ld.linear(Part::Down(i), (h, inter), mb, None)?,
            post_ffn_norm: sandwich
                .then(|| ld.norm(Part::PostFfnNorm(i), h, layer_norm))
                .transpose()?,
            mask: attention
                .sliding_window
                .and_then(|w| windows.iter().position(|&x| x == w))
                .map_or(0, |p| p + 1),
            rope: usize::from(attention.local_rope),
        });
    }
    let norm = ld.norm(Part::Norm, h, layer_norm)?;
    // an adapter that saves `lm_head` unties it
    let head_module = ld.modules.name(Part::Head, "weight");
    let head = if c.tie_word_embeddings && !ld.lora.replaces(&head_module) {
        None
    } else {
        Some(ld.required(Part::Head, &[c.vocab_size, h], None)?)
    };
    if let Some(e) = ld.lora.leftovers() {
        return Err(e);
    }
    let mut ropes = Vec::new();
    if c.positions == Positions::Rope {
        ropes.push(Rope::new(
            d,
            c.rope_theta,
            &c.rope_scaling,
            c.max_position_embeddings,
        ));
        if let Some(theta) = c.local_rope_theta {
            ropes.push(Rope::new(
                d,
                theta,
                &RopeScaling::None,
                c.max_position_embeddings,
            ));
        }
    }
    let info = ModelInfo {
        vocab_size: c.vocab_size,
        max_context: c.max_context(),
    };
    let model = Decoder {
        info,
        embed,
        positions,
        layers,
        norm,
        head,
        ropes,
        pool: None,
        tiling: Tiling::default(),
        kernels,
        untrained_adapters: Vec::new(),
        config,
    };
    Ok((model, ld.summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::tiny_hf_folder;
    use crate::{load_model, LoadOptions};

    fn load_dir(dir: &std::path::Path) -> Decoder {
        load_model(dir.to_str().unwrap(), &LoadOptions::default())
            .unwrap()
            .0
    }

    fn tokens(n: usize, seed: u32) -> Vec<u32> {
        (0..n as u32)
            .map(|i| (i * 7 + seed * 13 + 3) % 50)
            .collect()
    }

    fn score(m: &mut Decoder, windows: &[(&[u32], usize)]) -> Vec<Vec<TokenScore>> {
        let refs: Vec<WindowRef<'_>> = windows
            .iter()
            .map(|&(tokens, score_from)| WindowRef { tokens, score_from })
            .collect();
        m.score_batch(&refs).unwrap()
    }

    fn assert_close(a: &[Vec<TokenScore>], b: &[Vec<TokenScore>], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.len(), y.len());
            for (s, t) in x.iter().zip(y) {
                assert!((s.nll - t.nll).abs() <= tol, "{} vs {}", s.nll, t.nll);
                assert_eq!(s.argmax, t.argmax);
            }
        }
    }

    #[test]
    fn tiling_and_batching_do_not_change_scores() {
        let tmp = tempfile::tempdir().unwrap();
        tiny_hf_folder(tmp.path(), 2, serde_json::json!({}), &[]);
        let mut m = load_dir(tmp.path());
        let (a, b, c) = (tokens(70, 1), tokens(9, 2), tokens(41, 3));
        let windows = [(&a[..], 1), (&b[..], 4), (&c[..], 20)];
        let reference: Vec<Vec<TokenScore>> = windows
            .iter()
            .flat_map(|w| score(&mut m, std::slice::from_ref(w)))
            .collect();
        assert_close(&score(&mut m, &windows), &reference, 1e-5);
        // many query blocks, MLP row chunks, head tiles and position chunks
        m.tiling = Tiling {
            attention_score_elems: 1,
            max_query_block: 7,
            mlp_activation_elems: 48 * 13,
            head: HeadTiling {
                weight_elems: 32 * 9,
                logit_elems: 9 * 5,
            },
        };
        assert_close(&score(&mut m, &windows), &reference, 1e-5);
        // a one-thread pool
        m.set_pool(Some(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap(),
        )));
        assert_close(&score(&mut m, &windows), &reference, 1e-5);
    }

    #[test]
    fn logit_tiles_reduce_to_the_scores() {
        let tmp = tempfile::tempdir().unwrap();
        tiny_hf_folder(tmp.path(), 2, serde_json::json!({}), &[]);
        let mut m = load_dir(tmp.path());
        let (a, b) = (tokens(30, 1), tokens(12, 2));
        let windows = [(&a[..], 3), (&b[..], 1)];
        let scores: Vec<TokenScore> = score(&mut m, &windows).concat();
        let refs: Vec<WindowRef<'_>> = windows
            .iter()
            .map(|&(tokens, score_from)| WindowRef { tokens, score_from })
            .collect();
        let targets: Vec<u32> = windows
            .iter()
            .flat_map(|&(t, from)| t[from..].to_vec())
            .collect();
        let vocab = m.info().vocab_size;
        let tiles = m.logits(&refs).unwrap();
        assert_eq!(tiles.positions(), scores.len());
        // read in uneven tiles, then reduce each full row in f64
        let mut rows = vec![Vec::new(); scores.len()];
        let mut buf = Vec::new();
        for first in (0..vocab).step_by(17) {
            let len = 17.min(vocab - first);
            tiles.tile(first, len, &mut buf).unwrap();
            for (p, row) in rows.iter_mut().enumerate() {
                row.extend_from_slice(&buf[p * len..(p + 1) * len]);
            }
        }
        for ((row, s), &t) in rows.iter().zip(&scores).zip(&targets) {
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let lse = f64::from(max)
                + row
                    .iter()
                    .map(|&l| f64::from(l - max).exp())
                    .sum::<f64>()
                    .ln();
            let nll = lse - f64::from(row[t as usize]);
            // the fused head takes each exp in f32
            assert!((nll - s.nll).abs() < 1e-6, "{nll} vs {}", s.nll);
            let argmax = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &l)| if l > b.1 { (i, l) } else { b },
                )
                .0;
            assert_eq!(argmax as u32, s.argmax);
        }
    }

    #[test]
    fn sliding_window_attention_sees_only_the_window() {
        // With one layer, the last position under a window of w keys sees
        // exactly what a fresh window of those w tokens sees.
        let tmp = tempfile::tempdir().unwrap();
        let extra =
            serde_json::json!({"architectures": ["MistralForCausalLM"], "sliding_window": 4});
        tiny_hf_folder(tmp.path(), 1, extra, &[]);
        let mut m = load_dir(tmp.path());
        assert_eq!(m.config().sliding_windows(), vec![4]);
        let t = tokens(12, 5);
        let full = score(&mut m, &[(&t, 11)]);
        let short = score(&mut m, &[(&t[7..], 4)]);
        assert_close(&full, &short, 1e-5);

        // without the window the long context matters
        let tmp = tempfile::tempdir().unwrap();
        tiny_hf_folder(tmp.path(), 1, serde_json::json!({}), &[]);
        let mut plain = load_dir(tmp.path());
        let full = score(&mut plain, &[(&t, 11)]);
        let short = score(&mut plain, &[(&t[7..], 4)]);
        assert!((full[0][0].nll - short[0][0].nll).abs() > 1e-4);
    }

    #[test]
    fn dynamic_ntk_windows_are_scored_independently() {
        let tmp = tempfile::tempdir().unwrap();
        let extra = serde_json::json!({
            "rope_scaling": {"rope_type": "dynamic", "factor": 2.0},
            "max_position_embeddings": 16
        });
        tiny_hf_folder(tmp.path(), 2, extra, &[]);
        let mut m = load_dir(tmp.path());
        assert_eq!(m.info().max_context, None);
        let (long, short) = (tokens(40, 1), tokens(10, 2));
        let both = score(&mut m, &[(&long, 1), (&short, 1)]);
        let alone = [score(&mut m, &[(&long, 1)]), score(&mut m, &[(&short, 1)])].concat();
        assert_close(&both, &alone, 1e-5);
        // past the context the base grows: a plain-RoPE model scores differently
        let tmp = tempfile::tempdir().unwrap();
        tiny_hf_folder(
            tmp.path(),
            2,
            serde_json::json!({"max_position_embeddings": 64}),
            &[],
        );
        let plain = score(&mut load_dir(tmp.path()), &[(&long, 1), (&short, 1)]);
        assert_close(&plain[1..], &both[1..], 1e-5);
        assert!((plain[0][30].nll - both[0][30].nll).abs() > 1e-4);
    }

    #[test]
    fn biases_and_tied_heads_load() {
        let tmp = tempfile::tempdir().unwrap();
        let extra = serde_json::json!({
            "attention_bias": true, "mlp_bias": true, "tie_word_embeddings": true
        });
        tiny_hf_folder(tmp.path(), 1, extra.clone(), &[]);
        let (mut m, id) =
            load_model(tmp.path().to_str().unwrap(), &LoadOptions::default()).unwrap();
        // embedding, 3 norms, 7 matrices, 7 biases; the head is the embedding
        assert_eq!(id.weights, "f32: 18");
        let t = tokens(6, 1);
        assert!(score(&mut m, &[(&t, 1)])[0]
            .iter()
            .all(|s| s.nll.is_finite()));

        // a missing bias is named, with its file
        let tmp = tempfile::tempdir().unwrap();
        tiny_hf_folder(tmp.path(), 1, extra, &["model.layers.0.mlp.up_proj.bias"]);
        let err = load_model(tmp.path().to_str().unwrap(), &LoadOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "tensor `model.layers.0.mlp.up_proj.bias` is missing from {}",
                tmp.path().join("model.safetensors").display()
            )
        );
    }

    #[test]
    fn a_tokenizer_larger_than_the_embedding_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        tiny_hf_folder(tmp.path(), 1, serde_json::json!({}), &[]);
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tiny-llama");
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(fixture.join(f), tmp.path().join(f)).unwrap();
        }
        let err = crate::load(tmp.path().to_str().unwrap(), &LoadOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the tokenizer has 384 tokens but the model's embedding has only 50 rows"
        );
        assert!(err.hint().is_some());
    }

    #[test]
    fn invalid_windows_are_rejected_before_any_work() {
        let tmp = tempfile::tempdir().unwrap();
        tiny_hf_folder(tmp.path(), 1, serde_json::json!({}), &[]);
        let mut m = load_dir(tmp.path());
        let err = m
            .score_batch(&[WindowRef {
                tokens: &[1, 50],
                score_from: 1,
            }])
            .unwrap_err();
        assert!(
            matches!(err, LmError::TokenOutOfRange { id: 50, .. }),
            "{err}"
        );
        assert!(m.score_batch(&[]).unwrap().is_empty());
    }
}
