//! One decoder block: its weights ([`Layer`], [`Linear`], [`Norm`]) and its
//! forward pass, `x + attn(norm(x))` then `x + mlp(norm(x))`, with the
//! optional norms after each (Gemma 2/3). The attention half is in
//! `attention.rs`. The MLP runs in chunks of rows (bounded by
//! [`super::Tiling`]) with its three weights made ready once per layer.

use candle_core::Tensor;

use super::attention::BatchContext;
use super::Decoder;
use crate::config::{Activation, NormKind};
use crate::lora::LoraDelta;
use crate::matmul::{Kernels, Ready};
use crate::weights::Weight;

/// A linear layer `y = x · Wᵀ + b + Σ s·(x·Aᵀ)·Bᵀ` (the last term: LoRA
/// adapters, see `lora.rs`).
#[derive(Debug, Clone)]
pub(super) struct Linear {
    pub(super) weight: Weight,
    pub(super) bias: Option<Tensor>,
    pub(super) lora: Vec<LoraDelta>,
}

impl Layer {
    /// The layer's matrices, for accounting.
    pub(super) fn linears(&self) -> Vec<&Linear> {
        let mut out = match &self.qkv {
            Qkv::Split { q, k, v } => vec![q, k, v],
            Qkv::Fused(qkv) => vec![qkv],
        };
        out.push(&self.o);
        match &self.mlp_in {
            MlpIn::Gated { gate, up } => out.extend([gate, up]),
            MlpIn::FusedGated(l) | MlpIn::Plain(l) => out.push(l),
        }
        out.push(&self.down);
        out
    }
}

impl Linear {
    /// The weight ready for `products` products with `kernels`.
    pub(super) fn ready(
        &self,
        kernels: Kernels,
        products: usize,
    ) -> candle_core::Result<Ready<'_>> {
        kernels.ready(&self.weight, 0, self.weight.dims().0, products)
    }

    /// Applies the layer with its weight made ready.
    pub(super) fn apply(&self, x: &Tensor, w: &Ready<'_>) -> candle_core::Result<Tensor> {
        let mut y = w.multiply(x)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        for d in &self.lora {
            y = (y + (x.matmul(&d.a.t()?)?.matmul(&d.b.t()?)? * d.scale)?)?;
        }
        Ok(y)
    }

    pub(super) fn forward(&self, x: &Tensor, kernels: Kernels) -> candle_core::Result<Tensor> {
        self.apply(x, &self.ready(kernels, 1)?)
    }
}

/// A normalisation's parameters; `weight` already holds the family's offset.
#[derive(Debug, Clone)]
pub(super) struct Norm {
    pub(super) weight: Tensor,
    /// LayerNorm only.
    pub(super) bias: Option<Tensor>,
}

/// The query/key/value projections.
#[derive(Debug, Clone)]
pub(super) enum Qkv {
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
pub(super) enum MlpIn {
    /// `act(gate(x)) · up(x)`.
    Gated { gate: Linear, up: Linear },
    /// One matrix whose output rows are `[gate; up]` (Phi-3).
    FusedGated(Linear),
    /// `act(up(x))` (GPT-2).
    Plain(Linear),
}

#[derive(Debug, Clone)]
/// One decoder block's weights.
pub(super) struct Layer {
    pub(super) attn_norm: Norm,
    pub(super) qkv: Qkv,
    pub(super) q_norm: Option<Tensor>,
    pub(super) k_norm: Option<Tensor>,
    pub(super) o: Linear,
    pub(super) post_attn_norm: Option<Norm>,
    pub(super) ffn_norm: Norm,
    pub(super) mlp_in: MlpIn,
    pub(super) down: Linear,
    pub(super) post_ffn_norm: Option<Norm>,
    /// Index into the batch's masks: 0 full causal, `i + 1` the model's
    /// `i`-th sliding window.
    pub(super) mask: usize,
    /// Index into the model's ropes: 0 global, 1 local.
    pub(super) rope: usize,
}

impl Decoder {
    pub(super) fn norm(&self, x: &Tensor, n: &Norm) -> candle_core::Result<Tensor> {
        let eps = self.config.norm_eps as f32;
        match (self.config.norm, &n.bias) {
            (NormKind::Layer, Some(b)) => candle_nn::ops::layer_norm(x, &n.weight, b, eps),
            (NormKind::Layer, None) => {
                let zero = n.weight.zeros_like()?;
                candle_nn::ops::layer_norm(x, &n.weight, &zero, eps)
            }
            (NormKind::Rms, _) => self.rms_norm(x, &n.weight, eps),
        }
    }

    /// RMSNorm over the last dimension: `perplex-kernels`' on the packed
    /// path, candle's on candle's.
    pub(super) fn rms_norm(
        &self,
        x: &Tensor,
        weight: &Tensor,
        eps: f32,
    ) -> candle_core::Result<Tensor> {
        match self.kernels {
            Kernels::Packed(_) => crate::fused::rms_norm(x, weight, eps),
            Kernels::Candle => candle_nn::ops::rms_norm(x, weight, eps),
        }
    }

    /// `x + y`, into `y`'s storage on the packed path: `y` must be a tensor
    /// just computed and shared with no other.
    fn residual(&self, x: &Tensor, y: Tensor) -> candle_core::Result<Tensor> {
        match self.kernels {
            Kernels::Packed(_) if y.is_contiguous() && x.is_contiguous() => {
                crate::fused::add_in_place(&y, x)?;
                Ok(y)
            }
            _ => x + y,
        }
    }

    /// `act(gate) · up` for the gate and up projections just computed
    /// (`gate` shared with no other): fused in place for SiLU on the packed
    /// path.
    fn gated(&self, gate: Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
        let fused = matches!(self.kernels, Kernels::Packed(_))
            && self.config.activation == Activation::Silu
            && gate.is_contiguous()
            && up.is_contiguous();
        if fused {
            crate::fused::silu_mul_in_place(&gate, up)?;
            Ok(gate)
        } else {
            self.activation(&gate)? * up
        }
    }

    fn activation(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.config.activation {
            Activation::Silu => candle_nn::ops::silu(x),
            Activation::GeluTanh => x.gelu(),
            Activation::GeluErf => x.gelu_erf(),
        }
    }

    pub(super) fn layer_forward(
        &self,
        layer: &Layer,
        x: &Tensor,
        ctx: &BatchContext,
    ) -> candle_core::Result<Tensor> {
        let xn = self.norm(x, &layer.attn_norm)?;
        let attn = self.self_attention(layer, &xn, ctx)?;
        let x = self.residual(x, attn)?;
        let xn = self.norm(&x, &layer.ffn_norm)?;
        let mlp = self.mlp(layer, &xn)?;
        self.residual(&x, mlp)
    }

    /// The MLP of `layer` over the normed rows `xn` (`[rows, hidden]`), with
    /// its output norm.
    fn mlp(&self, layer: &Layer, xn: &Tensor) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let inter = c.intermediate_size;
        let kernels = self.kernels;
        let rows = xn.dims()[0];
        let chunk = (self.tiling.mlp_activation_elems / (2 * inter)).max(1);
        let chunks = rows.div_ceil(chunk);
        let wd = layer.down.ready(kernels, chunks)?;
        let (w1, w2) = match &layer.mlp_in {
            MlpIn::Gated { gate, up } => (
                gate.ready(kernels, chunks)?,
                Some(up.ready(kernels, chunks)?),
            ),
            MlpIn::FusedGated(gu) => (gu.ready(kernels, chunks)?, None),
            MlpIn::Plain(up) => (up.ready(kernels, chunks)?, None),
        };
        let mut parts = Vec::with_capacity(chunks);
        for r0 in (0..rows).step_by(chunk) {
            let xs = xn.narrow(0, r0, chunk.min(rows - r0))?;
            let act = match (&layer.mlp_in, &w2) {
                (MlpIn::Gated { gate, up }, Some(wu)) => {
                    self.gated(gate.apply(&xs, &w1)?, &up.apply(&xs, wu)?)?
                }
                (MlpIn::FusedGated(gu), _) => {
                    let y = gu.apply(&xs, &w1)?;
                    // the gate half copied out into storage of its own (for one row
                    // `contiguous` would return a view of `y`'s, which the in-place
                    // step would then lock for writing while reading `up` from it)
                    let gate = y.narrow(1, 0, inter)?.force_contiguous()?;
                    self.gated(gate, &y.narrow(1, inter, inter)?.contiguous()?)?
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
        Ok(mlp)
    }
}
