//! Checkpoint files mapped into memory, and matrices read in place from
//! them.
//!
//! An f16/bf16 safetensors matrix, and a GGUF matrix in any type but f32,
//! is never copied at load: the weight is a view of the mapped file
//! ([`MappedMatrix`]), and its rows are widened to f32 (exactly) or
//! dequantized when a product packs them. Its pages are the page cache's,
//! shared with every other process that maps or reads the same file, and
//! the memory a model holds is the file's size plus the working set.
//!
//! The map is read-only. Changing or truncating the file while a run reads
//! it is outside the contract (as for every tool that maps its weights): a
//! run may then read the new bytes, or be stopped by the system (SIGBUS).

use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};

use crate::gguf::gguf_row_of_hf_row;
use crate::weights::{aligned_bytes, dequantize_bytes, row_bytes};

/// A whole file mapped read-only.
#[derive(Debug)]
pub(crate) struct MappedFile(memmap2::Mmap);

impl MappedFile {
    /// Maps `file` read-only, its pages read ahead.
    #[allow(unsafe_code)]
    pub(crate) fn map(file: &std::fs::File) -> std::io::Result<Arc<Self>> {
        // SAFETY: the map is only ever read, as bytes (no type is built on
        // it without a check), and the file is the checkpoint being
        // evaluated, which the module's contract says is not changed while
        // it is mapped.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
        Ok(Arc::new(MappedFile(map)))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// How a mapped matrix stores its elements (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    F16,
    Bf16,
    /// GGUF's quantization blocks: every row is a whole number of them.
    Blocks(GgmlDType),
}

impl Encoding {
    /// Bytes of a row of `cols` elements.
    fn row_bytes(self, cols: usize) -> usize {
        match self {
            Encoding::F16 | Encoding::Bf16 => cols * 2,
            Encoding::Blocks(dtype) => row_bytes(dtype, cols),
        }
    }
}

/// A `[rows, cols]` matrix inside a mapped file, rows stored one after the
/// other, or in the order llama.cpp's converter gives the rows of `attn_q`
/// and `attn_k` (see [`crate::gguf`]): then each row is read from where
/// that order put it, so the matrix is the Hugging Face one.
#[derive(Clone)]
pub(crate) struct MappedMatrix {
    file: Arc<MappedFile>,
    /// Byte offset of the first stored row.
    offset: usize,
    rows: usize,
    cols: usize,
    encoding: Encoding,
    /// `Some(n_head)` when the rows are stored in llama.cpp's RoPE order.
    heads: Option<usize>,
}

impl std::fmt::Debug for MappedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Mapped({:?}, [{}, {}])",
            self.encoding, self.rows, self.cols
        )
    }
}

impl MappedMatrix {
    /// The matrix at `offset` of `file`.
    ///
    /// # Panics
    /// If the file is too short for it, or a row is not a whole number of
    /// blocks (callers check the header first).
    pub(crate) fn new(
        file: Arc<MappedFile>,
        offset: usize,
        (rows, cols): (usize, usize),
        encoding: Encoding,
    ) -> MappedMatrix {
        if let Encoding::Blocks(dtype) = encoding {
            assert!(
                cols.is_multiple_of(dtype.block_size()),
                "rows are whole blocks"
            );
        }
        assert!(
            offset + rows * encoding.row_bytes(cols) <= file.bytes().len(),
            "the matrix is inside the file"
        );
        MappedMatrix {
            file,
            offset,
            rows,
            cols,
            encoding,
            heads: None,
        }
    }

    /// The same bytes read as a matrix whose rows llama.cpp's converter
    /// permuted for `n_head` heads.
    pub(crate) fn unpermuted(self, n_head: usize) -> candle_core::Result<MappedMatrix> {
        let rows = self.rows;
        if n_head == 0 || !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
            candle_core::bail!("cannot split {rows} rows into {n_head} heads of even size")
        }
        Ok(MappedMatrix {
            heads: Some(n_head),
            ..self
        })
    }

    pub(crate) fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes of the file it spans.
    pub(crate) fn bytes(&self) -> usize {
        self.rows * self.encoding.row_bytes(self.cols)
    }

    /// The stored bytes of row `r`.
    fn row(&self, r: usize) -> &[u8] {
        let stored = match self.heads {
            Some(n_head) => gguf_row_of_hf_row(r, self.rows, n_head),
            None => r,
        };
        let rb = self.encoding.row_bytes(self.cols);
        let from = self.offset + stored * rb;
        &self.file.bytes()[from..from + rb]
    }

    /// Widens (exactly) or dequantizes rows `start..start + n` to f32 into
    /// `out` (`n × cols` values).
    ///
    /// # Panics
    /// If the rows leave the matrix or `out` has another length.
    pub(crate) fn rows_into(
        &self,
        start: usize,
        n: usize,
        out: &mut [f32],
    ) -> candle_core::Result<()> {
        assert!(
            start + n <= self.rows,
            "rows {start}..{} of {}",
            start + n,
            self.rows
        );
        assert_eq!(out.len(), n * self.cols, "room for {n} rows");
        let rb = self.encoding.row_bytes(self.cols);
        match self.encoding {
            Encoding::Blocks(dtype) => {
                // the permuted rows gathered into aligned storage, which
                // candle then dequantizes as it would its own
                let mut gathered = Vec::new();
                let bytes = match self.heads {
                    None => {
                        let from = self.offset + start * rb;
                        &self.file.bytes()[from..from + n * rb]
                    }
                    Some(_) => {
                        let view = aligned_bytes(&mut gathered, n * rb);
                        for (r, dst) in (start..start + n).zip(view.chunks_exact_mut(rb.max(1))) {
                            dst.copy_from_slice(self.row(r));
                        }
                        &*view
                    }
                };
                let rows = dequantize_bytes(bytes, dtype, (n, self.cols))?;
                crate::matmul::with_slice(&rows, |data| out.copy_from_slice(data))
            }
            half => {
                if self.heads.is_none() {
                    let from = self.offset + start * rb;
                    widen_into(&self.file.bytes()[from..from + n * rb], half, out);
                } else {
                    for (r, row) in (start..start + n).zip(out.chunks_exact_mut(self.cols.max(1))) {
                        widen_into(self.row(r), half, row);
                    }
                }
                Ok(())
            }
        }
    }

    /// Rows `start..start + n` in an f32 tensor.
    pub(crate) fn rows_f32(&self, start: usize, n: usize) -> candle_core::Result<Tensor> {
        if start + n > self.rows {
            candle_core::bail!("rows {start}..{} of a {}-row matrix", start + n, self.rows)
        }
        let mut out = vec![0f32; n * self.cols];
        self.rows_into(start, n, &mut out)?;
        Tensor::from_vec(out, (n, self.cols), &Device::Cpu)
    }

    /// The rows of `ids` (an embedding lookup), in f32.
    pub(crate) fn embedding(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let shape = ids.dims().to_vec();
        let ids = ids.flatten_all()?.to_vec1::<u32>()?;
        let cols = self.cols;
        let mut out = vec![0f32; ids.len() * cols];
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(cols.max(1))) {
            let id = id as usize;
            if id >= self.rows {
                candle_core::bail!("token id {id} is past the embedding's {} rows", self.rows)
            }
            self.rows_into(id, 1, row)?;
        }
        let mut dims = shape;
        dims.push(cols);
        Tensor::from_vec(out, dims, &Device::Cpu)
    }
}

/// Widens f16/bf16 `bytes` into `out`, exactly.
fn widen_into(bytes: &[u8], half: Encoding, out: &mut [f32]) {
    // safetensors does not align its tensors: 2-byte aligned data is viewed
    // as elements (half's slice conversions use F16C where the CPU has it),
    // the rest converted from pairs of bytes
    let aligned = cfg!(target_endian = "little")
        .then(|| bytemuck::try_cast_slice::<u8, u16>(bytes).ok())
        .flatten();
    match (half, aligned) {
        (Encoding::F16, Some(bits)) => {
            use half::slice::HalfFloatSliceExt;
            let values: &[half::f16] = bytemuck::cast_slice(bits);
            values.convert_to_f32_slice(out);
        }
        (Encoding::Bf16, Some(bits)) => {
            for (o, &b) in out.iter_mut().zip(bits) {
                *o = f32::from_bits(u32::from(b) << 16);
            }
        }
        (Encoding::F16, None) => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        (Encoding::Bf16, None) => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
            }
        }
        (Encoding::Blocks(_), _) => unreachable!("blocks are dequantized, not widened"),
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::QTensor;

    use super::*;

    /// A mapped temporary file holding `bytes`.
    fn mapped(bytes: &[u8]) -> (tempfile::TempDir, Arc<MappedFile>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let map = MappedFile::map(&file).unwrap();
        (dir, map)
    }

    #[test]
    fn rows_widen_exactly_at_any_alignment() {
        let values: Vec<f32> = (0..60).map(|i| (i as f32 - 30.0) * 0.37).collect();
        for half in [Encoding::F16, Encoding::Bf16] {
            let stored: Vec<[u8; 2]> = values
                .iter()
                .map(|&v| match half {
                    Encoding::F16 => half::f16::from_f32(v).to_le_bytes(),
                    _ => half::bf16::from_f32(v).to_le_bytes(),
                })
                .collect();
            let widened: Vec<f32> = stored
                .iter()
                .map(|&b| match half {
                    Encoding::F16 => half::f16::from_le_bytes(b).to_f32(),
                    _ => half::bf16::from_le_bytes(b).to_f32(),
                })
                .collect();
            // an even offset, then an odd one: viewed as elements, then by bytes
            for lead in [2, 3] {
                let mut bytes = vec![0xAAu8; lead];
                bytes.extend(stored.iter().flatten());
                let (_dir, file) = mapped(&bytes);
                let m = MappedMatrix::new(file, lead, (6, 10), half);
                let mut out = vec![0f32; 20];
                m.rows_into(2, 2, &mut out).unwrap();
                assert_eq!(out, widened[20..40], "{half:?} at offset {lead}");
                let ids = Tensor::new(&[[5u32, 0]], &Device::Cpu).unwrap();
                let rows = m.embedding(&ids).unwrap();
                assert_eq!(rows.dims(), [1, 2, 10]);
                let rows = rows.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(rows[..10], widened[50..60]);
                assert_eq!(rows[10..], widened[..10]);
                let past = Tensor::new(&[6u32], &Device::Cpu).unwrap();
                let e = m.embedding(&past).unwrap_err().to_string();
                assert!(
                    e.contains("token id 6 is past the embedding's 6 rows"),
                    "{e}"
                );
            }
        }
    }

    fn ramp(rows: usize, cols: usize) -> Tensor {
        let data: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        Tensor::from_vec(data, (rows, cols), &Device::Cpu).unwrap()
    }

    fn rows_of(m: &MappedMatrix, start: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n * m.dims().1];
        m.rows_into(start, n, &mut out).unwrap();
        out
    }

    #[test]
    fn blocks_dequantize_as_candle_does_at_any_alignment() {
        let (rows, cols) = (40, 256);
        for dtype in [
            GgmlDType::Q4_0,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            let q = QTensor::quantize(&ramp(rows, cols), dtype).unwrap();
            let whole = q.dequantize(&Device::Cpu).unwrap();
            let whole = whole.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let data = q.data().unwrap();
            // a GGUF's alignment, then one that is not (copied before dequantizing)
            for lead in [32, 3] {
                let mut bytes = vec![0xAAu8; lead];
                bytes.extend_from_slice(&data);
                let (_dir, file) = mapped(&bytes);
                let m = MappedMatrix::new(file, lead, (rows, cols), Encoding::Blocks(dtype));
                assert_eq!(m.bytes(), data.len());
                assert_eq!(
                    rows_of(&m, 7, 5),
                    whole[7 * cols..12 * cols],
                    "{dtype:?} at {lead}"
                );
                let ids = Tensor::new(&[39u32, 0], &Device::Cpu).unwrap();
                let picked = m.embedding(&ids).unwrap().flatten_all().unwrap();
                let picked = picked.to_vec1::<f32>().unwrap();
                assert_eq!(picked[..cols], whole[39 * cols..]);
                assert_eq!(picked[cols..], whole[..cols]);
            }
        }
    }

    #[test]
    fn permuted_rows_are_read_where_the_converter_put_them() {
        // 4 heads of 6 rows: the un-permutation of rows moved at load
        let (rows, cols, n_head) = (24, 32, 4);
        let hf = ramp(rows, cols);
        let hf_rows = hf.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for encoding in [Encoding::Bf16, Encoding::Blocks(GgmlDType::Q8_0)] {
            // the GGUF order: HF row r stored at gguf_row_of_hf_row(r)
            let mut order: Vec<usize> = (0..rows).collect();
            order.sort_by_key(|&r| gguf_row_of_hf_row(r, rows, n_head));
            let stored: Vec<f32> = order
                .iter()
                .flat_map(|&r| hf_rows[r * cols..(r + 1) * cols].to_vec())
                .collect();
            let stored = Tensor::from_vec(stored, (rows, cols), &Device::Cpu).unwrap();
            let (bytes, expected) = match encoding {
                Encoding::Blocks(dtype) => {
                    let q = QTensor::quantize(&stored, dtype).unwrap();
                    let back = crate::gguf::unpermute_rows(&q, n_head).unwrap();
                    let back = back.dequantize(&Device::Cpu).unwrap();
                    (q.data().unwrap().to_vec(), back)
                }
                _ => {
                    let bytes: Vec<u8> = stored
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                        .collect();
                    let back = hf.to_dtype(candle_core::DType::BF16).unwrap();
                    (bytes, back.to_dtype(candle_core::DType::F32).unwrap())
                }
            };
            let expected = expected.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (_dir, file) = mapped(&bytes);
            let m = MappedMatrix::new(file, 0, (rows, cols), encoding)
                .unpermuted(n_head)
                .unwrap();
            assert_eq!(rows_of(&m, 0, rows), expected, "{encoding:?}");
            assert_eq!(
                rows_of(&m, 5, 9),
                expected[5 * cols..14 * cols],
                "{encoding:?}"
            );
        }
        let (_dir, file) = mapped(&[0u8; 5 * 2 * 2]);
        let odd = MappedMatrix::new(file, 0, (5, 2), Encoding::F16);
        let e = odd.unpermuted(2).unwrap_err().to_string();
        assert!(e.contains("cannot split 5 rows into 2 heads"), "{e}");
    }
}
