//! Loading: the weights of a [`Store`] (a Hugging Face folder's
//! safetensors or a GGUF file) into the decoder's structs, by the family
//! table's names ([`super::names`]) and shapes from the config.
//!
//! What a format bakes in is undone here, once: GPT-2's `Conv1D` matrices
//! are transposed, llama.cpp's q/k row permutation reversed, Gemma's `1 + w`
//! added to Hugging Face norm weights. Dense matrices are packed for the
//! kernels in place of the tensor; quantized ones stay in their stored type.
//! LoRA deltas and whole-tensor replacements are attached to the module
//! they name, and any an adapter names that the model lacks is an error.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use perplex_core::lm::ModelInfo;

use super::layer::{Layer, Linear, MlpIn, Norm, Qkv};
use super::names::{Naming, Part};
use super::{Decoder, Tiling};
use crate::config::{Mlp, ModelConfig, NormKind, Positions, RopeScaling};
use crate::error::ModelError;
use crate::gguf::{unpermute_rows, GgufFile};
use crate::lora::{LoraAdapter, LoraSet};
use crate::matmul::Kernels;
use crate::rope::Rope;
use crate::safetensors::SafetensorsSet;
use crate::weights::{ggml_type_name, StorageSummary, Weight};
use crate::Compute;
/// Where tensors come from.
pub(crate) enum Store<'a> {
    /// A Hugging Face folder's safetensors.
    Hf(&'a mut SafetensorsSet),
    /// A GGUF file.
    Gguf(&'a mut GgufFile),
}

struct Loader<'a> {
    store: Store<'a>,
    naming: Naming,
    /// The store keeps projections `[in, out]` (GPT-2's `Conv1D`).
    conv1d: bool,
    /// The store keeps q/k rows in llama.cpp's RoPE order.
    permuted_qk: bool,
    /// Added to norm weights (Gemma's `1 + w` in HF checkpoints).
    norm_offset: f32,
    summary: StorageSummary,
    /// Adapters still to place.
    lora: LoraSet,
    kernels: Kernels,
}

impl Loader<'_> {
    fn name(&self, part: Part, suffix: &str) -> String {
        self.naming.stored.name(part, suffix)
    }

    /// The module's name in the Hugging Face module tree.
    fn module_name(&self, part: Part) -> String {
        let name = self.naming.modules.name(part, "weight");
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
                source: crate::error::candle_source(source),
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
                // f16/bf16 matrices stay in their 2 bytes an element and are
                // widened (exactly) into panels at each use, as GGUF's are
                if expected.len() == 2 && !transposed {
                    if let Some(m) = set.map_half(&name) {
                        self.summary.add(&dtype, m.dims().0 * m.dims().1);
                        return Ok(Some(Weight::Mapped(m)));
                    }
                    if let Some(q) = set.read_half(&name)? {
                        self.summary.add(&dtype, q.shape().elem_count());
                        return Ok(Some(Weight::Quant(Arc::new(q))));
                    }
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
                let Some((shape, dtype)) = g.info(&name) else {
                    return Ok(None);
                };
                if shape != stored {
                    return Err(shape_error(g.path.clone(), shape));
                }
                // matrices stay in the mapped file in their stored type, the
                // q/k rows read through the converter's permutation
                if expected.len() == 2 {
                    if let Some(m) = g.map_matrix(&name)? {
                        self.summary
                            .add(ggml_type_name(dtype), m.dims().0 * m.dims().1);
                        let m = match rope_heads {
                            Some(n_head) => m
                                .unpermuted(n_head)
                                .map_err(backend(format!("un-permuting `{name}`")))?,
                            None => m,
                        };
                        return Ok(Some(Weight::Mapped(m)));
                    }
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
            Weight::Quant(_) | Weight::Packed(_) | Weight::Mapped(_) => {
                unreachable!("vectors are loaded dense")
            }
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
                source: crate::error::candle_source(source),
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
            (Some(Weight::Quant(_) | Weight::Packed(_) | Weight::Mapped(_)), _) => {
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
                    source: crate::error::candle_source(source),
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

    /// Loads layer `i` of `c`; `windows`: the model's distinct sliding
    /// windows, which the layer's mask indexes.
    fn layer(&mut self, c: &ModelConfig, i: usize, windows: &[usize]) -> Result<Layer, ModelError> {
        let rules = c.family.rules();
        let (h, d, inter) = (c.hidden_size, c.head_dim, c.intermediate_size);
        let (q_rows, kv_rows) = (c.num_heads * d, c.num_kv_heads * d);
        let permuted = |n: usize| self.permuted_qk.then_some(n);
        let (q_heads, kv_heads) = (permuted(c.num_heads), permuted(c.num_kv_heads));
        let layer_norm = c.norm == NormKind::Layer;
        let qb = c.qkv_bias;
        let qkv = if rules.fused_qkv {
            Qkv::Fused(self.linear(Part::Qkv(i), (q_rows + 2 * kv_rows, h), qb, None)?)
        } else {
            Qkv::Split {
                q: self.linear(Part::Q(i), (q_rows, h), qb, q_heads)?,
                k: self.linear(Part::K(i), (kv_rows, h), qb, kv_heads)?,
                v: self.linear(Part::V(i), (kv_rows, h), qb, None)?,
            }
        };
        let (q_norm, k_norm) = if c.qk_norm {
            (
                Some(self.norm(Part::QNorm(i), d, false)?.weight),
                Some(self.norm(Part::KNorm(i), d, false)?.weight),
            )
        } else {
            (None, None)
        };
        let mb = c.mlp_bias;
        let mlp_in = match rules.mlp {
            Mlp::Plain => MlpIn::Plain(self.linear(Part::Up(i), (inter, h), mb, None)?),
            Mlp::FusedGated => {
                MlpIn::FusedGated(self.linear(Part::GateUp(i), (2 * inter, h), mb, None)?)
            }
            Mlp::Gated => MlpIn::Gated {
                gate: self.linear(Part::Gate(i), (inter, h), mb, None)?,
                up: self.linear(Part::Up(i), (inter, h), mb, None)?,
            },
        };
        let sandwich = c.sandwich_norms;
        let attention = c.layers[i];
        Ok(Layer {
            attn_norm: self.norm(Part::AttnNorm(i), h, layer_norm)?,
            qkv,
            q_norm,
            k_norm,
            o: self.linear(Part::O(i), (h, q_rows), c.o_bias, None)?,
            post_attn_norm: sandwich
                .then(|| self.norm(Part::PostAttnNorm(i), h, layer_norm))
                .transpose()?,
            ffn_norm: self.norm(Part::FfnNorm(i), h, layer_norm)?,
            mlp_in,
            down: self.linear(Part::Down(i), (h, inter), mb, None)?,
            post_ffn_norm: sandwich
                .then(|| self.norm(Part::PostFfnNorm(i), h, layer_norm))
                .transpose()?,
            mask: attention
                .sliding_window
                .and_then(|w| windows.iter().position(|&x| x == w))
                .map_or(0, |p| p + 1),
            rope: usize::from(attention.local_rope),
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
    let (naming, is_gguf) = match &store {
        Store::Hf(set) => (Naming::hf(rules, |name| set.info(name).is_some()), false),
        Store::Gguf(_) => (Naming::gguf(rules), true),
    };
    let c = &config;
    let mut ld = Loader {
        store,
        naming,
        conv1d: !is_gguf && rules.hf_tensors.conv1d,
        permuted_qk: is_gguf && rules.gguf_tensors.permuted_qk,
        norm_offset: if is_gguf { 0.0 } else { c.norm_weight_offset },
        summary: StorageSummary::default(),
        lora: LoraSet::new(adapters)?,
        kernels,
    };
    let h = c.hidden_size;
    let embed = ld.required(Part::Embed, &[c.vocab_size, h], None)?;
    let positions = match c.positions {
        Positions::Learned => {
            Some(ld.required(Part::PosEmbed, &[c.max_position_embeddings, h], None)?)
        }
        Positions::Rope => None,
    };
    let windows = c.sliding_windows();
    let layers = (0..c.num_layers)
        .map(|i| ld.layer(c, i, &windows))
        .collect::<Result<Vec<_>, _>>()?;
    let norm = ld.norm(Part::Norm, h, c.norm == NormKind::Layer)?;
    // an adapter that saves `lm_head` unties it
    let head_module = ld.naming.modules.name(Part::Head, "weight");
    let head = if c.tie_word_embeddings && !ld.lora.replaces(&head_module) {
        None
    } else {
        Some(ld.required(Part::Head, &[c.vocab_size, h], None)?)
    };
    if let Some(e) = ld.lora.leftovers() {
        return Err(e);
    }
    let model = Decoder {
        info: ModelInfo {
            vocab_size: c.vocab_size,
            max_context: c.max_context(),
        },
        embed,
        positions,
        layers,
        norm,
        head,
        ropes: ropes(c),
        pool: None,
        tiling: Tiling::default(),
        kernels,
        untrained_adapters: Vec::new(),
        config,
    };
    Ok((model, ld.summary))
}

/// The global RoPE, then the local one when layers use it; none for learned
/// positions.
fn ropes(c: &ModelConfig) -> Vec<Rope> {
    let mut ropes = Vec::new();
    if c.positions == Positions::Rope {
        let d = c.head_dim;
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
    ropes
}
