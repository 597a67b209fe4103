//! The Llama-family forward pass (Llama 2/3, Mistral, SmolLM, TinyLlama):
//! RMSNorm, RoPE, grouped-query attention, SwiGLU MLP, optionally tied
//! embeddings, computed in f32 on the CPU.
//!
//! A batch of windows is right-padded to its longest window; positions start
//! at 0 in every window and attention is causal, so padding only ever sits
//! after a window's real positions and cannot change their values. Weights
//! stored quantized are dequantized just before use (at most the three MLP
//! matrices of one layer at once) and dropped after, so memory is the stored
//! weights plus one layer's worth of f32 scratch; the output head is
//! dequantized in tiles of rows (see `head.rs`).

use std::sync::Arc;

use candle_core::{Device, Tensor};
use perplex_core::lm::{validate_batch, CausalLm, LmError, ModelInfo, TokenScore, WindowRef};

use crate::config::LlamaConfig;
use crate::error::ModelError;
use crate::gguf::{unpermute_rows, GgufFile};
use crate::head::{fused_head, HeadTiling, Running};
use crate::rope::Rope;
use crate::safetensors::SafetensorsSet;
use crate::weights::{ggml_type_name, StorageSummary, Weight};

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

/// A linear layer `y = x · Wᵀ + b`.
#[derive(Debug, Clone)]
struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

impl Linear {
    /// Applies the layer with an already materialised f32 weight.
    fn apply(&self, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.matmul(&w.t()?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.apply(x, &self.weight.to_f32()?)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// The parts of a batch every layer shares, built once per batch.
struct BatchContext {
    batch: usize,
    len: usize,
    cos: Tensor,
    sin: Tensor,
    /// `(first query, queries, additive mask [queries, first + queries])`.
    blocks: Vec<(usize, usize, Tensor)>,
}

/// A loaded Llama-family model. Implements [`CausalLm`].
pub struct Llama {
    config: LlamaConfig,
    info: ModelInfo,
    embed: Weight,
    layers: Vec<Layer>,
    norm: Tensor,
    /// `None`: tied to the embedding.
    head: Option<Weight>,
    rope: Rope,
    pool: Option<Arc<rayon::ThreadPool>>,
    tiling: Tiling,
}

impl std::fmt::Debug for Llama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama")
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

impl Llama {
    /// The model's hyperparameters.
    pub fn config(&self) -> &LlamaConfig {
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
        let (cos, sin) = self.rope.tables(&lens, len, &Device::Cpu)?;
        let per_query = batch.len() * self.config.num_heads * len;
        let max_block = self.tiling.max_query_block.max(1);
        let block = (self.tiling.attention_score_elems / per_query.max(1))
            .clamp(16.min(max_block), max_block);
        let mut blocks = Vec::new();
        for q0 in (0..len).step_by(block) {
            let n = block.min(len - q0);
            let keys = q0 + n;
            let window = self.config.sliding_window;
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
            blocks.push((q0, n, Tensor::from_vec(mask, (n, keys), &Device::Cpu)?));
        }
        Ok(BatchContext {
            batch: batch.len(),
            len,
            cos,
            sin,
            blocks,
        })
    }

    /// Causal self-attention of one layer. `q`: `[b, heads, len, d]` and
    /// `k`, `v`: `[b, kv_heads, len, d]`, RoPE applied; returns `[b·len, heads·d]`.
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        ctx: &BatchContext,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, l, d) = (ctx.batch, ctx.len, c.head_dim);
        let (kv, rep) = (c.num_kv_heads, c.num_heads / c.num_kv_heads);
        // query head `g·rep + r` reads key/value head `g` (transformers' repeat_kv)
        let q = (q * (1.0 / (d as f64).sqrt()))?.reshape((b, kv, rep, l, d))?;
        let mut outs = Vec::with_capacity(ctx.blocks.len());
        for (q0, n, mask) in &ctx.blocks {
            let keys = q0 + n;
            let qb = if *n == l {
                q.reshape((b, kv, rep * l, d))?
            } else {
                q.narrow(3, *q0, *n)?
                    .contiguous()?
                    .reshape((b, kv, rep * n, d))?
            };
            let kb = k.narrow(2, 0, keys)?;
            let vb = v.narrow(2, 0, keys)?;
            let scores = qb
                .matmul(&kb.t()?)?
                .reshape((b, kv, rep, *n, keys))?
                .broadcast_add(mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let out = probs.reshape((b, kv, rep * n, keys))?.matmul(&vb)?;
            outs.push(out.reshape((b, kv, rep, *n, d))?);
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

    fn layer_forward(
        &self,
        layer: &Layer,
        x: &Tensor,
        ctx: &BatchContext,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let eps = c.rms_norm_eps as f32;
        let (b, l, d) = (ctx.batch, ctx.len, c.head_dim);
        let xn = candle_nn::ops::rms_norm(x, &layer.attn_norm, eps)?;
        let heads = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, l, n, d))?.transpose(1, 2)?.contiguous()
        };
        let q = heads(layer.q.forward(&xn)?, c.num_heads)?;
        let k = heads(layer.k.forward(&xn)?, c.num_kv_heads)?;
        let v = heads(layer.v.forward(&xn)?, c.num_kv_heads)?;
        let q = candle_nn::rotary_emb::rope(&q, &ctx.cos, &ctx.sin)?;
        let k = candle_nn::rotary_emb::rope(&k, &ctx.cos, &ctx.sin)?;
        let attn = self.attention(&q, &k, &v, ctx)?;
        let x = (x + layer.o.forward(&attn)?)?;

        let xn = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
        let (wg, wu, wd) = (
            layer.gate.weight.to_f32()?,
            layer.up.weight.to_f32()?,
            layer.down.weight.to_f32()?,
        );
        let rows = b * l;
        let chunk = (self.tiling.mlp_activation_elems / c.intermediate_size).max(1);
        let mut parts = Vec::with_capacity(rows.div_ceil(chunk));
        for r0 in (0..rows).step_by(chunk) {
            let xs = xn.narrow(0, r0, chunk.min(rows - r0))?;
            let act = (candle_nn::ops::silu(&layer.gate.apply(&xs, &wg)?)?
                * layer.up.apply(&xs, &wu)?)?;
            parts.push(layer.down.apply(&act, &wd)?);
        }
        let mlp = if parts.len() == 1 {
            parts.remove(0)
        } else {
            Tensor::cat(&parts, 0)?
        };
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
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &ctx)?;
        }
        Ok((x, ctx.len))
    }

    /// The running head reductions for every scored position, windows in
    /// order, positions in order.
    fn score_positions(&self, batch: &[WindowRef<'_>]) -> candle_core::Result<Vec<Running>> {
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
        let hidden = x.index_select(&rows, 0)?;
        let hidden =
            candle_nn::ops::rms_norm(&hidden, &self.norm, self.config.rms_norm_eps as f32)?;
        let head = self.head.as_ref().unwrap_or(&self.embed);
        fused_head(&hidden, head, &targets, self.tiling.head)
    }
}

impl CausalLm for Llama {
    fn info(&self) -> &ModelInfo {
        &self.info
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

/// A part of the model, named differently by each format.
#[derive(Debug, Clone, Copy)]
enum Part {
    Embed,
    Norm,
    Head,
    AttnNorm(usize),
    Q(usize),
    K(usize),
    V(usize),
    O(usize),
    FfnNorm(usize),
    Gate(usize),
    Up(usize),
    Down(usize),
}

impl Part {
    fn hf(self, suffix: &str) -> String {
        let layer = |i: usize, rest: &str| format!("model.layers.{i}.{rest}.{suffix}");
        match self {
            Part::Embed => format!("model.embed_tokens.{suffix}"),
            Part::Norm => format!("model.norm.{suffix}"),
            Part::Head => format!("lm_head.{suffix}"),
            Part::AttnNorm(i) => layer(i, "input_layernorm"),
            Part::Q(i) => layer(i, "self_attn.q_proj"),
            Part::K(i) => layer(i, "self_attn.k_proj"),
            Part::V(i) => layer(i, "self_attn.v_proj"),
            Part::O(i) => layer(i, "self_attn.o_proj"),
            Part::FfnNorm(i) => layer(i, "post_attention_layernorm"),
            Part::Gate(i) => layer(i, "mlp.gate_proj"),
            Part::Up(i) => layer(i, "mlp.up_proj"),
            Part::Down(i) => layer(i, "mlp.down_proj"),
        }
    }

    fn gguf(self, suffix: &str) -> String {
        let layer = |i: usize, rest: &str| format!("blk.{i}.{rest}.{suffix}");
        match self {
            Part::Embed => format!("token_embd.{suffix}"),
            Part::Norm => format!("output_norm.{suffix}"),
            Part::Head => format!("output.{suffix}"),
            Part::AttnNorm(i) => layer(i, "attn_norm"),
            Part::Q(i) => layer(i, "attn_q"),
            Part::K(i) => layer(i, "attn_k"),
            Part::V(i) => layer(i, "attn_v"),
            Part::O(i) => layer(i, "attn_output"),
            Part::FfnNorm(i) => layer(i, "ffn_norm"),
            Part::Gate(i) => layer(i, "ffn_gate"),
            Part::Up(i) => layer(i, "ffn_up"),
            Part::Down(i) => layer(i, "ffn_down"),
        }
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
    summary: StorageSummary,
}

impl Loader<'_> {
    fn name(&self, part: Part, suffix: &str) -> String {
        match self.store {
            Store::Hf(_) => part.hf(suffix),
            Store::Gguf(_) => part.gguf(suffix),
        }
    }

    fn missing(&self, name: String) -> ModelError {
        let path = match &self.store {
            Store::Hf(set) => set.path_of(&name).to_path_buf(),
            Store::Gguf(g) => g.path.clone(),
        };
        ModelError::MissingTensor { name, path }
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
        let name = self.name(part, suffix);
        let backend = |context: String| {
            move |source| ModelError::Backend {
                context,
                source: Box::new(source),
            }
        };
        let shape_error = |path: std::path::PathBuf, actual: Vec<usize>| ModelError::TensorShape {
            name: name.clone(),
            path,
            actual,
            expected: expected.to_vec(),
        };
        match &mut self.store {
            Store::Hf(set) => {
                let Some((shape, dtype)) = set.info(&name) else {
                    return Ok(None);
                };
                if shape != expected {
                    return Err(shape_error(set.path_of(&name).to_path_buf(), shape));
                }
                let t = set.read_f32(&name)?.expect("present: info() found it");
                self.summary.add(&dtype, t.elem_count());
                Ok(Some(Weight::Dense(t)))
            }
            Store::Gguf(g) => {
                let Some((shape, _)) = g.info(&name) else {
                    return Ok(None);
                };
                if shape != expected {
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
            Weight::Quant(_) => unreachable!("vectors are loaded dense"),
        }
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
            (Some(Weight::Quant(_)), _) => unreachable!("vectors are loaded dense"),
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
        Ok(Linear {
            weight: self.required(part, &[out, inp], rope_heads)?,
            bias: self.bias(part, out, bias, rope_heads)?,
        })
    }
}

/// Builds the model from `store`; returns it with the storage summary.
pub(crate) fn build(
    config: LlamaConfig,
    store: Store<'_>,
) -> Result<(Llama, StorageSummary), ModelError> {
    let mut ld = Loader {
        store,
        summary: StorageSummary::default(),
    };
    let c = &config;
    let (h, d) = (c.hidden_size, c.head_dim);
    let (q_rows, kv_rows) = (c.num_heads * d, c.num_kv_heads * d);
    let is_gguf = matches!(ld.store, Store::Gguf(_));
    let permuted = |n: usize| is_gguf.then_some(n);
    let embed = ld.required(Part::Embed, &[c.vocab_size, h], None)?;
    let mut layers = Vec::with_capacity(c.num_layers);
    for i in 0..c.num_layers {
        let (ab, mb) = (c.attention_bias, c.mlp_bias);
        layers.push(Layer {
            attn_norm: ld.vector(Part::AttnNorm(i), h)?,
            q: ld.linear(Part::Q(i), (q_rows, h), ab, permuted(c.num_heads))?,
            k: ld.linear(Part::K(i), (kv_rows, h), ab, permuted(c.num_kv_heads))?,
            v: ld.linear(Part::V(i), (kv_rows, h), ab, None)?,
            o: ld.linear(Part::O(i), (h, q_rows), ab, None)?,
            ffn_norm: ld.vector(Part::FfnNorm(i), h)?,
            gate: ld.linear(Part::Gate(i), (c.intermediate_size, h), mb, None)?,
            up: ld.linear(Part::Up(i), (c.intermediate_size, h), mb, None)?,
            down: ld.linear(Part::Down(i), (h, c.intermediate_size), mb, None)?,
        });
    }
    let norm = ld.vector(Part::Norm, h)?;
    let head = if c.tie_word_embeddings {
        None
    } else {
        Some(ld.required(Part::Head, &[c.vocab_size, h], None)?)
    };
    let rope = Rope::new(d, c.rope_theta, &c.rope_scaling, c.max_position_embeddings);
    let info = ModelInfo {
        vocab_size: c.vocab_size,
        max_context: c.max_context(),
    };
    let model = Llama {
        info,
        embed,
        layers,
        norm,
        head,
        rope,
        pool: None,
        tiling: Tiling::default(),
        config,
    };
    Ok((model, ld.summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::tiny_hf_folder;
    use crate::{load_model, LoadOptions};

    fn load_dir(dir: &std::path::Path) -> Llama {
        load_model(dir.to_str().unwrap(), &LoadOptions::default())
            .unwrap()
            .0
    }

    fn tokens(n: usize, seed: u32) -> Vec<u32> {
        (0..n as u32)
            .map(|i| (i * 7 + seed * 13 + 3) % 50)
            .collect()
    }

    fn score(m: &mut Llama, windows: &[(&[u32], usize)]) -> Vec<Vec<TokenScore>> {
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
    fn sliding_window_attention_sees_only_the_window() {
        // With one layer, the last position under a window of w keys sees
        // exactly what a fresh window of those w tokens sees.
        let tmp = tempfile::tempdir().unwrap();
        let extra =
            serde_json::json!({"architectures": ["MistralForCausalLM"], "sliding_window": 4});
        tiny_hf_folder(tmp.path(), 1, extra, &[]);
        let mut m = load_dir(tmp.path());
        assert_eq!(m.config().sliding_window, Some(4));
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
