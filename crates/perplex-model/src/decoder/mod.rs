//! The decoder-only transformer every supported family runs on: GPT-2,
//! Llama 2/3, Mistral, Qwen2/3, Gemma 1/2/3 and Phi-3, on the CPU: the
//! matrix products, attention, RMSNorm, `SiLU(gate)·up` and the residual
//! adds on `perplex-kernels` where the CPU has AVX2 and FMA, candle's ops
//! elsewhere (see `matmul.rs` and `fused.rs`).
//!
//! One forward pass with switches read from [`ModelConfig`] (norm kind,
//! fused or split projections, q/k norms, sandwich norms, GELU or SiLU,
//! gated or plain MLP, learned or rotary positions, per-layer sliding
//! windows and RoPE bases, attention and logit soft-capping, embedding
//! scale); the families differ only in those switches and in tensor names,
//! both from the family table (`config/family.rs`).
//!
//! A batch of windows is right-padded to its longest window; positions start
//! at 0 in every window and attention is causal, so padding only ever sits
//! after a window's real positions and cannot change their values. Weights
//! stored quantized are dequantized just before use (at most the MLP
//! matrices of one layer at once) and dropped after, so memory is the stored
//! weights plus one layer's worth of f32 scratch; the output head is
//! dequantized in tiles of rows (see `head.rs`).
//!
//! This file holds the model and its [`CausalLm`] face (embeddings, the
//! layers in turn, the fused head); `layer.rs` one block and its MLP,
//! `attention.rs` the attention half, `names.rs` what tensors are called,
//! `load.rs` the weights into these structs.

mod attention;
mod layer;
mod load;
mod names;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use perplex_core::lm::{
    validate_batch, CausalLm, LmError, LogitTiles, ModelInfo, TokenScore, WindowRef,
};

use crate::config::ModelConfig;
use crate::head::{fused_head, HeadTiling, Running, Unscorable};
use crate::matmul::Kernels;
use crate::rope::Rope;
use crate::weights::Weight;
use layer::{Layer, Norm};

pub(crate) use load::{build, Store};

/// How work is cut into bounded pieces. Results do not depend on it (the
/// tests check that); memory and speed do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tiling {
    /// f32 elements of attention scores computed at once (bounds the query block).
    pub(crate) attention_score_elems: usize,
    /// Longest query block: smaller blocks skip more of the masked upper triangle.
    pub(crate) max_query_block: usize,
    /// f32 elements of MLP activations computed at once (bounds the row chunk).
    pub(crate) mlp_activation_elems: usize,
    /// The output head's tiles.
    pub(crate) head: HeadTiling,
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
    LmError::Backend(crate::error::candle_source(e))
}

impl Decoder {
    /// The model's hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Bytes the weight matrices hold (embedding, head, every layer's
    /// linear layers; norms and biases aside).
    pub fn weight_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .flat_map(Layer::linears)
            .map(|l| l.weight.bytes())
            .sum();
        let tables = [
            Some(&self.embed),
            self.positions.as_ref(),
            self.head.as_ref(),
        ];
        layers
            + tables
                .into_iter()
                .flatten()
                .map(Weight::bytes)
                .sum::<usize>()
    }

    /// The report's name of the kernels the products run on.
    pub(crate) fn kernels_name(&self) -> &'static str {
        self.kernels.name()
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
                let rows = m.kernels.ready(m.head_weight(), first, len, 1)?;
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

impl CausalLm for Decoder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn working_memory(&self, windows: usize, len: usize) -> Option<u64> {
        // on the model's pool: the packed path's buffers are per thread
        Some(self.on_pool(|| {
            crate::memory::working_bytes_with(
                &self.config,
                &self.tiling,
                self.kernels,
                windows,
                len,
            )
        }))
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
                            Err(Unscorable::ZeroProbability) => {
                                Err(LmError::ZeroProbability { window, position })
                            }
                            Err(Unscorable::NonFinite(value)) => Err(LmError::NonFinite {
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
