//! Checkpoint files mapped into memory, and matrices read in place from
//! them.
//!
//! An f16/bf16 safetensors matrix is never copied at load: the weight is a
//! view of the mapped file ([`MappedMatrix`]), and its rows are widened to
//! f32 (exactly) when a product packs them. Its pages are the page cache's,
//! shared with every other process that maps or reads the same file, and
//! the memory a model holds is the file's size plus the working set.
//!
//! The map is read-only. Changing or truncating the file while a run reads
//! it is outside the contract (as for every tool that maps its weights): a
//! run may then read the new bytes, or be stopped by the system (SIGBUS).

use std::sync::Arc;

use candle_core::{Device, Tensor};

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
pub(crate) enum Half {
    F16,
    Bf16,
}

/// A row-major `[rows, cols]` f16/bf16 matrix inside a mapped file.
#[derive(Clone)]
pub(crate) struct MappedMatrix {
    file: Arc<MappedFile>,
    /// Byte offset of the first element.
    offset: usize,
    rows: usize,
    cols: usize,
    half: Half,
}

impl std::fmt::Debug for MappedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapped({:?}, [{}, {}])", self.half, self.rows, self.cols)
    }
}

impl MappedMatrix {
    /// The matrix at `offset` of `file`.
    ///
    /// # Panics
    /// If the file is too short for it (callers check the header first).
    pub(crate) fn new(
        file: Arc<MappedFile>,
        offset: usize,
        (rows, cols): (usize, usize),
        half: Half,
    ) -> MappedMatrix {
        assert!(
            offset + rows * cols * 2 <= file.bytes().len(),
            "the matrix is inside the file"
        );
        MappedMatrix {
            file,
            offset,
            rows,
            cols,
            half,
        }
    }

    pub(crate) fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes of the file it spans.
    pub(crate) fn bytes(&self) -> usize {
        self.rows * self.cols * 2
    }

    /// Widens rows `start..start + n` to f32 into `out` (`n × cols`
    /// values): exact for both types.
    ///
    /// # Panics
    /// If the rows leave the matrix or `out` has another length.
    pub(crate) fn rows_into(&self, start: usize, n: usize, out: &mut [f32]) {
        assert!(
            start + n <= self.rows,
            "rows {start}..{} of {}",
            start + n,
            self.rows
        );
        let from = self.offset + start * self.cols * 2;
        let bytes = &self.file.bytes()[from..from + n * self.cols * 2];
        assert_eq!(out.len(), n * self.cols, "room for {n} rows");
        // safetensors does not align its tensors: 2-byte aligned data is
        // viewed as elements (half's slice conversions use F16C where the
        // CPU has it), the rest converted from pairs of bytes
        let aligned = cfg!(target_endian = "little")
            .then(|| bytemuck::try_cast_slice::<u8, u16>(bytes).ok())
            .flatten();
        match (self.half, aligned) {
            (Half::F16, Some(bits)) => {
                use half::slice::HalfFloatSliceExt;
                let values: &[half::f16] = bytemuck::cast_slice(bits);
                values.convert_to_f32_slice(out);
            }
            (Half::Bf16, Some(bits)) => {
                for (o, &b) in out.iter_mut().zip(bits) {
                    *o = f32::from_bits(u32::from(b) << 16);
                }
            }
            (Half::F16, None) => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            (Half::Bf16, None) => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
                }
            }
        }
    }

    /// Rows `start..start + n` widened into an f32 tensor.
    pub(crate) fn rows_f32(&self, start: usize, n: usize) -> candle_core::Result<Tensor> {
        if start + n > self.rows {
            candle_core::bail!("rows {start}..{} of a {}-row matrix", start + n, self.rows)
        }
        let mut out = vec![0f32; n * self.cols];
        self.rows_into(start, n, &mut out);
        Tensor::from_vec(out, (n, self.cols), &Device::Cpu)
    }

    /// The rows of `ids` (an embedding lookup), widened to f32.
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
            self.rows_into(id, 1, row);
        }
        let mut dims = shape;
        dims.push(cols);
        Tensor::from_vec(out, dims, &Device::Cpu)
    }
}

#[cfg(test)]
mod tests {
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
        for half in [Half::F16, Half::Bf16] {
            let stored: Vec<[u8; 2]> = values
                .iter()
                .map(|&v| match half {
                    Half::F16 => half::f16::from_f32(v).to_le_bytes(),
                    Half::Bf16 => half::bf16::from_f32(v).to_le_bytes(),
                })
                .collect();
            let widened: Vec<f32> = stored
                .iter()
                .map(|&b| match half {
                    Half::F16 => half::f16::from_le_bytes(b).to_f32(),
                    Half::Bf16 => half::bf16::from_le_bytes(b).to_f32(),
                })
                .collect();
            // an even offset, then an odd one: viewed as elements, then by bytes
            for lead in [2, 3] {
                let mut bytes = vec![0xAAu8; lead];
                bytes.extend(stored.iter().flatten());
                let (_dir, file) = mapped(&bytes);
                let m = MappedMatrix::new(file, lead, (6, 10), half);
                let mut out = vec![0f32; 20];
                m.rows_into(2, 2, &mut out);
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
}
