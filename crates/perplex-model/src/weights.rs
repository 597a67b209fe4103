//! Weight storage: dense f32 tensors, matrices packed once for
//! `perplex-kernels`, f16/bf16 and GGUF matrices read in place from the
//! mapped checkpoint, or GGUF tensors read in their stored type (where the
//! file cannot be mapped); the last two are
//! widened or dequantized into scratch (packed panels, or an f32 tensor)
//! just before use.
//!
//! Matmuls are always `dequantize(W) × activations` in the compute
//! precision: candle's `QMatMul` quantizes the activations to q8 (as
//! llama.cpp does), which is not the model transformers evaluates.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};
use perplex_kernels::{PackedMatrix, Precision};
use rayon::prelude::*;

use crate::mapped::MappedMatrix;

/// Rows dequantized together when a whole matrix is materialised in parallel.
const DEQUANT_CHUNK_ELEMS: usize = 1 << 18;

/// A 2-D weight matrix `[rows, cols]` (PyTorch orientation: `y = x · Wᵀ`).
#[derive(Clone)]
pub(crate) enum Weight {
    /// f32, contiguous.
    Dense(Tensor),
    /// Stored in a GGUF type; rows are contiguous runs of blocks.
    Quant(Arc<QTensor>),
    /// Packed at load for the kernels (linear layers only: the embedding
    /// and head stay as stored, they are read by rows).
    Packed(Arc<PackedMatrix>),
    /// f16/bf16 in the mapped safetensors file.
    Mapped(MappedMatrix),
}

impl std::fmt::Debug for Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weight::Dense(t) => write!(f, "Dense({:?})", t.dims()),
            Weight::Quant(q) => write!(f, "Quant({:?}, {:?})", q.dtype(), q.shape().dims()),
            Weight::Packed(p) => write!(f, "{p:?}"),
            Weight::Mapped(m) => write!(f, "{m:?}"),
        }
    }
}

impl Weight {
    /// `(rows, cols)`.
    pub(crate) fn dims(&self) -> (usize, usize) {
        let dims = match self {
            Weight::Dense(t) => t.dims().to_vec(),
            Weight::Quant(q) => q.shape().dims().to_vec(),
            Weight::Packed(p) => vec![p.rows(), p.cols()],
            Weight::Mapped(m) => vec![m.dims().0, m.dims().1],
        };
        (dims[0], dims[1])
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Weight::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            Weight::Quant(q) => q.storage_size_in_bytes(),
            Weight::Packed(p) => p.bytes(),
            Weight::Mapped(m) => m.bytes(),
        }
    }

    /// The whole matrix in f32: the tensor itself, or a fresh dequantized copy.
    pub(crate) fn to_f32(&self) -> candle_core::Result<Tensor> {
        match self {
            Weight::Dense(t) => Ok(t.clone()),
            Weight::Quant(_) | Weight::Mapped(_) => {
                let (rows, cols) = self.dims();
                let chunk_rows = (DEQUANT_CHUNK_ELEMS / cols.max(1)).max(1);
                if rows <= chunk_rows {
                    return self.rows_f32(0, rows);
                }
                let starts: Vec<usize> = (0..rows).step_by(chunk_rows).collect();
                let parts = starts
                    .par_iter()
                    .map(|&s| self.rows_f32(s, chunk_rows.min(rows - s)))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&parts, 0)
            }
            Weight::Packed(_) => packed_as_tensor(),
        }
    }

    /// The matrix packed for the kernels in `precision`: itself if it was
    /// packed at load, else a fresh copy (a quantized one dequantized panel
    /// by panel, never whole in f32).
    pub(crate) fn packed(
        &self,
        precision: Precision,
    ) -> candle_core::Result<Cow<'_, PackedMatrix>> {
        self.packed_rows(0, self.dims().0, precision)
    }

    /// Rows `start..start + len` packed for the kernels in `precision`.
    pub(crate) fn packed_rows(
        &self,
        start: usize,
        len: usize,
        precision: Precision,
    ) -> candle_core::Result<Cow<'_, PackedMatrix>> {
        let (rows, cols) = self.dims();
        if start + len > rows {
            candle_core::bail!("rows {start}..{} of a {rows}-row matrix", start + len)
        }
        let packed = match self {
            Weight::Packed(p) if p.precision() == precision && (start, len) == (0, rows) => {
                return Ok(Cow::Borrowed(p));
            }
            Weight::Packed(_) => candle_core::bail!("a packed weight cannot be repacked"),
            Weight::Dense(_) | Weight::Quant(_) | Weight::Mapped(_) => {
                let failure = FirstFailure::default();
                let packed = PackedMatrix::pack_with(len, cols, precision, |first, n, out| {
                    failure.keep(self.rows_into(start + first, n, out))
                });
                failure.into_result()?;
                packed
            }
        };
        Ok(Cow::Owned(packed))
    }

    /// Writes rows `start..start + n` in f32, row-major, into `out` (`n ×
    /// cols` values): copied, or dequantized.
    pub(crate) fn rows_into(
        &self,
        start: usize,
        n: usize,
        out: &mut [f32],
    ) -> candle_core::Result<()> {
        let cols = self.dims().1;
        match self {
            Weight::Dense(t) => crate::matmul::with_slice(t, |data| {
                out.copy_from_slice(&data[start * cols..(start + n) * cols]);
            }),
            Weight::Quant(q) => {
                let rows = dequantize_rows(q, start, n)?;
                crate::matmul::with_slice(&rows, |data| out.copy_from_slice(data))
            }
            Weight::Mapped(m) => m.rows_into(start, n, out),
            Weight::Packed(_) => packed_as_tensor(),
        }
    }

    /// Rows `start..start + len` in f32 (a view for dense weights).
    pub(crate) fn rows_f32(&self, start: usize, len: usize) -> candle_core::Result<Tensor> {
        match self {
            Weight::Dense(t) => t.narrow(0, start, len),
            Weight::Quant(q) => dequantize_rows(q, start, len),
            Weight::Mapped(m) => m.rows_f32(start, len),
            Weight::Packed(_) => packed_as_tensor(),
        }
    }

    /// The rows of `ids` (an embedding lookup), in f32.
    pub(crate) fn embedding(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Weight::Dense(t) => t.index_select(ids, 0),
            // dequantizes only the selected rows, exactly
            Weight::Quant(q) => q.embedding(ids),
            Weight::Mapped(m) => m.embedding(ids),
            Weight::Packed(_) => packed_as_tensor(),
        }
    }
}

/// The first error of a callback that cannot return one (a `fill` of the
/// kernels'), kept to be returned once it is done.
#[derive(Default)]
pub(crate) struct FirstFailure(std::sync::Mutex<Option<candle_core::Error>>);

impl FirstFailure {
    pub(crate) fn keep(&self, result: candle_core::Result<()>) {
        if let Err(e) = result {
            self.0.lock().expect("not poisoned").get_or_insert(e);
        }
    }

    pub(crate) fn into_result(self) -> candle_core::Result<()> {
        match self.0.into_inner().expect("not poisoned") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Only linear layers are packed, and they are only multiplied.
fn packed_as_tensor<T>() -> candle_core::Result<T> {
    candle_core::bail!("a weight packed for the kernels has no f32 tensor")
}

/// Bytes of one row of a `[rows, cols]` tensor of type `dtype`.
pub(crate) fn row_bytes(dtype: GgmlDType, cols: usize) -> usize {
    cols / dtype.block_size() * dtype.type_size()
}

/// Dequantizes rows `start..start + len` of a 2-D quantized tensor.
fn dequantize_rows(q: &QTensor, start: usize, len: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = q.shape().dims2()?;
    if start + len > rows {
        candle_core::bail!("rows {start}..{} of a {rows}-row tensor", start + len)
    }
    let rb = row_bytes(q.dtype(), cols);
    let data = q.data()?;
    dequantize_bytes(
        &data[start * rb..(start + len) * rb],
        q.dtype(),
        (len, cols),
    )
}

/// Dequantizes `(rows, cols)` of `dtype` data from `bytes`, which are
/// copied into aligned storage first where they are not aligned for the
/// block type (a QTensor's own storage is; a mapped file's may not be).
pub(crate) fn dequantize_bytes(
    bytes: &[u8],
    dtype: GgmlDType,
    dims: (usize, usize),
) -> candle_core::Result<Tensor> {
    let mut copy = Vec::new();
    let bytes = if (bytes.as_ptr() as usize).is_multiple_of(4) {
        bytes
    } else {
        let view = aligned_bytes(&mut copy, bytes.len());
        view.copy_from_slice(bytes);
        &*view
    };
    let storage = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, dtype)?;
    QTensor::new(storage, dims)?.dequantize(&Device::Cpu)
}

/// `len` zeroed bytes in `storage`, aligned for every block type (the
/// widest field of one is an f32).
pub(crate) fn aligned_bytes(storage: &mut Vec<u32>, len: usize) -> &mut [u8] {
    *storage = vec![0u32; len.div_ceil(4)];
    &mut bytemuck::cast_slice_mut(storage)[..len]
}

/// Builds a quantized tensor from rows of raw ggml data. `bytes` is copied
/// into block-aligned storage.
pub(crate) fn qtensor_from_bytes(
    bytes: &[u8],
    dtype: GgmlDType,
    dims: &[usize],
) -> candle_core::Result<QTensor> {
    let mut aligned = Vec::new();
    let view = aligned_bytes(&mut aligned, bytes.len());
    view.copy_from_slice(bytes);
    let storage = QStorage::from_data(Cow::Borrowed(view), &Device::Cpu, dtype)?;
    QTensor::new(storage, dims.to_vec())
}

/// Lower-case name of a GGUF type, as in llama.cpp (`q4_k`, `f16`).
pub(crate) fn ggml_type_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::F32 => "f32",
        GgmlDType::F16 => "f16",
        GgmlDType::BF16 => "bf16",
        GgmlDType::Q4_0 => "q4_0",
        GgmlDType::Q4_1 => "q4_1",
        GgmlDType::Q5_0 => "q5_0",
        GgmlDType::Q5_1 => "q5_1",
        GgmlDType::Q8_0 => "q8_0",
        GgmlDType::Q8_1 => "q8_1",
        GgmlDType::Q2K => "q2_k",
        GgmlDType::Q3K => "q3_k",
        GgmlDType::Q4K => "q4_k",
        GgmlDType::Q5K => "q5_k",
        GgmlDType::Q6K => "q6_k",
        GgmlDType::Q8K => "q8_k",
    }
}

/// Parameter count and storage types of the tensors of a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StorageSummary {
    /// Total elements.
    pub parameters: u64,
    /// Tensors per stored type.
    pub types: BTreeMap<String, usize>,
}

impl StorageSummary {
    pub(crate) fn add(&mut self, dtype: &str, elems: usize) {
        self.parameters += elems as u64;
        *self.types.entry(dtype.to_string()).or_default() += 1;
    }

    /// `q4_1: 210, f32: 61, q8_0: 1`: most used first, then by name.
    pub(crate) fn describe(&self) -> String {
        let mut entries: Vec<(&String, &usize)> = self.types.iter().collect();
        entries.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        entries
            .iter()
            .map(|(name, n)| format!("{name}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(rows: usize, cols: usize) -> Tensor {
        let data: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        Tensor::from_vec(data, (rows, cols), &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>())
            .unwrap()
    }

    #[test]
    fn row_tiles_equal_the_whole_dequantized_matrix() {
        for dtype in [
            GgmlDType::Q4_0,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::F16,
        ] {
            let q = QTensor::quantize(&ramp(2100, 256), dtype).unwrap();
            let whole = q.dequantize(&Device::Cpu).unwrap();
            let w = Weight::Quant(Arc::new(q));
            let parallel = w.to_f32().unwrap();
            assert_eq!(max_abs_diff(&whole, &parallel), 0.0, "{dtype:?}");
            let tile = w.rows_f32(1000, 37).unwrap();
            let expected = whole.narrow(0, 1000, 37).unwrap();
            assert_eq!(max_abs_diff(&tile, &expected), 0.0, "{dtype:?}");
        }
    }

    #[test]
    fn summaries_list_the_most_used_type_first() {
        let mut s = StorageSummary::default();
        for _ in 0..3 {
            s.add("q4_1", 10);
        }
        s.add("q8_0", 5);
        s.add("f32", 1);
        s.add("f32", 1);
        assert_eq!(s.describe(), "q4_1: 3, f32: 2, q8_0: 1");
        assert_eq!(s.parameters, 37);
    }
}
