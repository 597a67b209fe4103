//! How much memory a run needs, estimated from a model's shapes before any
//! forward pass, so that a batch × context that cannot fit is refused with a
//! hint instead of swapping the machine to a halt or being killed.
//!
//! Two parts:
//! - the weights as held in memory: [`weight_bytes`] from the stored types
//!   (what `perplex inspect` reads);
//! - the working set of one batch: [`working_bytes`] (for a loaded model,
//!   `CausalLm::working_memory`, which is what a run checks against the
//!   memory left after loading). Activations grow with
//!   the batch's rows (`windows × longest window`), the tiled parts
//!   (attention scores, MLP chunks, output-head tiles) are bounded by the
//!   decoder's tiling, and candle's attention path adds its causal masks
//!   (`len²` per kind of window).
//!
//! The estimate is meant to err high, never low: `scripts/bench-memory`
//! compares it with the peak RSS of real runs (figures in
//! docs/performance.md).

use candle_core::quantized::GgmlDType;

use crate::config::ModelConfig;
use crate::decoder::Tiling;
use crate::matmul::Kernels;
use crate::Compute;

/// Bytes a batch needs besides its tensors: RoPE tables, thread-local
/// buffers, the allocator's slack.
const OVERHEAD_BYTES: u64 = 32 << 20;

/// The memory a run of batches of `windows` windows of up to `len` tokens
/// needs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The weights as held in memory.
    pub weights: u64,
    /// One batch's working set (activations, tiles, masks) and fixed overhead.
    pub working: u64,
}

impl MemoryEstimate {
    /// Weights and working set together: the run's peak.
    pub fn peak(&self) -> u64 {
        self.weights + self.working
    }
}

/// Bytes a tensor of `elems` elements stored as `dtype` (a name as
/// `perplex inspect` reports it: `f32`, `bf16`, `q4_k`, …) takes once
/// loaded: f16 and bf16 matrices and quantized GGUF tensors as stored,
/// anything else in f32. An unknown type counts as f32.
pub fn tensor_bytes(dtype: &str, elems: u64) -> u64 {
    if matches!(dtype, "f16" | "bf16") {
        // vectors (norms, biases) are widened, but are a rounding error
        return elems * 2;
    }
    let quantized = match dtype {
        "q4_0" => Some(GgmlDType::Q4_0),
        "q4_1" => Some(GgmlDType::Q4_1),
        "q5_0" => Some(GgmlDType::Q5_0),
        "q5_1" => Some(GgmlDType::Q5_1),
        "q8_0" => Some(GgmlDType::Q8_0),
        "q8_1" => Some(GgmlDType::Q8_1),
        "q2_k" => Some(GgmlDType::Q2K),
        "q3_k" => Some(GgmlDType::Q3K),
        "q4_k" => Some(GgmlDType::Q4K),
        "q5_k" => Some(GgmlDType::Q5K),
        "q6_k" => Some(GgmlDType::Q6K),
        "q8_k" => Some(GgmlDType::Q8K),
        _ => None,
    };
    match quantized {
        Some(q) => elems.div_ceil(q.block_size() as u64) * q.type_size() as u64,
        None => elems * 4,
    }
}

/// The weights' bytes in memory for `storage`: `(type, elements)` pairs.
pub fn weight_bytes<'a>(storage: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
    storage
        .into_iter()
        .map(|(dtype, elems)| tensor_bytes(dtype, elems))
        .sum()
}

/// One batch's working set, in bytes, for `config` run with `compute` on
/// this CPU: batches of `windows` windows padded to `len` tokens.
pub fn working_bytes(config: &ModelConfig, compute: Compute, windows: usize, len: usize) -> u64 {
    // without a kernel for this CPU the run is refused anyway: count candle's
    let kernels = Kernels::select(compute).unwrap_or(Kernels::Candle);
    working_bytes_with(config, &Tiling::default(), kernels, windows, len)
}

pub(crate) fn working_bytes_with(
    config: &ModelConfig,
    tiling: &Tiling,
    kernels: Kernels,
    windows: usize,
    len: usize,
) -> u64 {
    let f32s = |n: u128| n * 4;
    let c = config;
    let (b, l) = (windows as u128, len as u128);
    let rows = b * l;
    let h = c.hidden_size as u128;
    let q = (c.num_heads * c.head_dim) as u128;
    let kv = (c.num_kv_heads * c.head_dim) as u128;
    let inter = c.intermediate_size as u128;
    // per row, live at a layer's end: its input, both norms, the attention
    // and MLP outputs (chunks and joined), the new residuals (up to 8 h);
    // during attention, q, k, v with their per-head copies, packed keys and
    // values, and the output (2 q + 3 kv beyond what the end keeps)
    let activations = f32s(rows * (8 * h + 2 * q + 3 * kv));
    // a chunk of MLP rows: gate, up and their product
    let chunk = (tiling.mlp_activation_elems as u128 / (2 * inter).max(1)).max(1);
    // matrices not packed at load, widened for the kernels at use: candle
    // takes a layer's whole; the packed path packs a group of 8 panels of
    // 32 rows per thread during each product (and its 32 rows of scratch),
    // or the MLP's whole when its rows are split in chunks. The threads are
    // the calling pool's: a model estimates on its own pool.
    let layer_weights = match kernels {
        Kernels::Candle => f32s(h * (2 * q + 2 * kv + 3 * inter)),
        Kernels::Packed(_) => {
            let threads = rayon::current_num_threads() as u128;
            let widest = h.max(q).max(inter);
            let mlp_whole = if rows > chunk { f32s(3 * h * inter) } else { 0 };
            f32s(threads * 9 * 32 * widest) + mlp_whole
        }
    };
    let mlp = f32s(3 * chunk.min(rows) * inter);
    // the output head: a dequantized weight tile and a block of logits
    let vocab = c.vocab_size as u128;
    let head = f32s(
        (tiling.head.weight_elems as u128).min(vocab * h)
            + (tiling.head.logit_elems as u128).min(rows * vocab),
    );
    // candle's attention: one query block's scores for every window and
    // head with their masked and softmaxed copies, and an additive mask per
    // kind of window for every query block (about len²/2 each); the fused
    // kernel needs neither
    let attention = match kernels {
        Kernels::Candle => {
            let heads = c.num_heads as u128;
            let block = (tiling.attention_score_elems as u128 / (b * heads * l).max(1))
                .clamp(16, tiling.max_query_block as u128)
                .min(l);
            let kinds = 1 + c.sliding_windows().len() as u128;
            f32s(3 * b * heads * block * l + kinds * l * (l + block) / 2)
        }
        Kernels::Packed(_) => 0,
    };
    let total = activations + layer_weights + mlp + head + attention + u128::from(OVERHEAD_BYTES);
    u64::try_from(total).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2_like() -> ModelConfig {
        let json = r#"{"architectures": ["LlamaForCausalLM"], "vocab_size": 49152,
            "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
            "num_attention_heads": 9, "num_key_value_heads": 3,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
            "tie_word_embeddings": true}"#;
        ModelConfig::from_hf_json(json, std::path::Path::new("config.json")).unwrap()
    }

    #[test]
    fn quantized_types_count_their_blocks_and_floats_count_as_f32() {
        // q4_0: 32 elements in 18 bytes; q8_0: 32 in 34; q4_k: 256 in 144
        assert_eq!(tensor_bytes("q4_0", 64), 36);
        assert_eq!(tensor_bytes("q8_0", 33), 68);
        assert_eq!(tensor_bytes("q4_k", 256), 144);
        assert_eq!(tensor_bytes("bf16", 10), 20);
        assert_eq!(tensor_bytes("f32", 10), 40);
        assert_eq!(weight_bytes([("f16", 2), ("q4_0", 32)]), 4 + 18);
    }

    #[test]
    fn the_working_set_grows_with_the_batch_and_the_context() {
        let c = smollm2_like();
        let tiling = Tiling::default();
        let at = |k, w, l| working_bytes_with(&c, &tiling, k, w, l);
        for k in [
            Kernels::Candle,
            Kernels::Packed(perplex_kernels::Precision::F32),
        ] {
            assert!(at(k, 1, 512) < at(k, 2, 512));
            assert!(at(k, 2, 512) < at(k, 2, 1024));
            // once the tiles are at their bounds, activations grow linearly
            let d1 = at(k, 64, 512) - at(k, 32, 512);
            let d2 = at(k, 128, 512) - at(k, 64, 512);
            assert!((d2 as f64 / d1 as f64 - 2.0).abs() < 0.05, "{d1} {d2}");
        }
        // candle's masks are quadratic in the window
        let candle = at(Kernels::Candle, 1, 32768);
        let packed = at(Kernels::Packed(perplex_kernels::Precision::F32), 1, 32768);
        assert!(candle > packed + (2u64 << 30), "{candle} {packed}");
    }
}
