//! Reading Llama GGUF files: metadata, tensors kept in their stored type, and
//! the un-permutation of the attention projections.
//!
//! llama.cpp's converter permutes the rows of `attn_q` and `attn_k` so that
//! its RoPE can rotate adjacent pairs; for a tensor of `n_head` heads it
//! stores `w.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2)`.
//! Rows are whole runs of quantization blocks, so perplex undoes the
//! permutation at load by moving rows, without touching their data, and then
//! uses the same (half-split) RoPE as for Hugging Face weights.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

use crate::error::ModelError;
use crate::weights::{qtensor_from_bytes, row_bytes};

/// An open GGUF file with its parsed header.
pub(crate) struct GgufFile {
    pub(crate) path: PathBuf,
    pub(crate) content: gguf_file::Content,
    reader: BufReader<fs_err::File>,
}

impl GgufFile {
    /// Opens and parses the header of `path`. A tensor in a type candle does
    /// not know is reported by name.
    pub(crate) fn open(path: &Path) -> Result<Self, ModelError> {
        let mut reader = BufReader::new(fs_err::File::open(path)?);
        let content = match gguf_file::Content::read(&mut reader) {
            Ok(c) => c,
            Err(source) => {
                // candle rejects the whole header on an unknown tensor type
                // without naming the tensor: find it ourselves
                if let Ok(Some((name, type_id))) = find_unknown_tensor_type(path) {
                    return Err(ModelError::UnsupportedQuantization {
                        name,
                        path: path.to_path_buf(),
                        dtype: format!("{} ({type_id})", ggml_type_id_name(type_id)),
                    });
                }
                return Err(ModelError::Gguf {
                    path: path.to_path_buf(),
                    source: crate::error::candle_source(source),
                });
            }
        };
        Ok(GgufFile {
            path: path.to_path_buf(),
            content,
            reader,
        })
    }

    /// Dims (PyTorch order) and type of `name`, if present.
    pub(crate) fn info(&self, name: &str) -> Option<(Vec<usize>, GgmlDType)> {
        self.content
            .tensor_infos
            .get(name)
            .map(|i| (i.shape.dims().to_vec(), i.ggml_dtype))
    }

    /// Reads `name` in its stored type; `None` when the file has no such tensor.
    pub(crate) fn read(&mut self, name: &str) -> Result<Option<QTensor>, ModelError> {
        let Some(info) = self.content.tensor_infos.get(name) else {
            return Ok(None);
        };
        info.read(
            &mut self.reader,
            self.content.tensor_data_offset,
            &Device::Cpu,
        )
        .map(Some)
        .map_err(|source| ModelError::GgufTensor {
            name: name.to_string(),
            path: self.path.clone(),
            source: crate::error::candle_source(source),
        })
    }
}

/// For output row `r` of an un-permuted (Hugging Face order) matrix of
/// `rows` rows and `n_head` heads, the row of the GGUF matrix that holds it.
///
/// GGUF stores HF row `(h, s, j)` (head, half, index in half) at `(h, j, s)`.
pub(crate) fn gguf_row_of_hf_row(r: usize, rows: usize, n_head: usize) -> usize {
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let (h, within) = (r / head_dim, r % head_dim);
    let (s, j) = (within / half, within % half);
    h * head_dim + 2 * j + s
}

/// Undoes llama.cpp's q/k row permutation on a 2-D tensor (any type).
pub(crate) fn unpermute_rows(q: &QTensor, n_head: usize) -> candle_core::Result<QTensor> {
    let dims = q.shape().dims().to_vec();
    let (rows, cols) = match dims[..] {
        [r, c] => (r, c),
        [r] => (r, 1),
        _ => candle_core::bail!("cannot un-permute a tensor of shape {dims:?}"),
    };
    if n_head == 0 || !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        candle_core::bail!("cannot split {rows} rows into {n_head} heads of even size")
    }
    let rb = if dims.len() == 1 {
        q.dtype().type_size()
    } else {
        row_bytes(q.dtype(), cols)
    };
    if dims.len() == 1 && q.dtype().block_size() != 1 {
        candle_core::bail!("cannot un-permute a quantized vector")
    }
    let data = q.data()?;
    let mut out = vec![0u8; rows * rb];
    for (r, dst) in out.chunks_exact_mut(rb).enumerate() {
        let src = gguf_row_of_hf_row(r, rows, n_head);
        dst.copy_from_slice(&data[src * rb..(src + 1) * rb]);
    }
    qtensor_from_bytes(&out, q.dtype(), &dims)
}

/// llama.cpp's name for a ggml type id (for error messages).
pub(crate) fn ggml_type_id_name(id: u32) -> &'static str {
    match id {
        0 => "f32",
        1 => "f16",
        2 => "q4_0",
        3 => "q4_1",
        6 => "q5_0",
        7 => "q5_1",
        8 => "q8_0",
        9 => "q8_1",
        10 => "q2_k",
        11 => "q3_k",
        12 => "q4_k",
        13 => "q5_k",
        14 => "q6_k",
        15 => "q8_k",
        16 => "iq2_xxs",
        17 => "iq2_xs",
        18 => "iq3_xxs",
        19 => "iq1_s",
        20 => "iq4_nl",
        21 => "iq3_s",
        22 => "iq2_s",
        23 => "iq4_xs",
        24 => "i8",
        25 => "i16",
        26 => "i32",
        27 => "i64",
        28 => "f64",
        29 => "iq1_m",
        30 => "bf16",
        34 => "tq1_0",
        35 => "tq2_0",
        39 => "mxfp4",
        _ => "unknown type",
    }
}

/// The ggml type ids perplex (through candle) dequantizes.
fn known_type_id(id: u32) -> bool {
    matches!(id, 0..=3 | 6..=15 | 30)
}

/// Walks a GGUF header and returns the first tensor whose type id is not
/// one candle reads, with that id. Only used to explain a header candle
/// rejected, so any parse problem just yields `Ok(None)`.
fn find_unknown_tensor_type(path: &Path) -> std::io::Result<Option<(String, u32)>> {
    let mut r = BufReader::new(fs_err::File::open(path)?);
    let u32_ = |r: &mut BufReader<fs_err::File>| -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        r.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    };
    let read_u64 = |r: &mut BufReader<fs_err::File>| -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    };
    let magic = u32_(&mut r)?;
    if magic != 0x4655_4747 {
        return Ok(None);
    }
    let version = u32_(&mut r)?;
    let v1 = version == 1;
    let mut len = |r: &mut BufReader<fs_err::File>| -> std::io::Result<u64> {
        if v1 {
            u32_(r).map(u64::from)
        } else {
            read_u64(r)
        }
    };
    let n_tensors = len(&mut r)?;
    let n_kv = len(&mut r)?;
    fn skip(r: &mut BufReader<fs_err::File>, n: u64) -> std::io::Result<()> {
        r.seek(SeekFrom::Current(
            i64::try_from(n).map_err(std::io::Error::other)?,
        ))
        .map(|_| ())
    }
    // a value of type `t`; arrays recurse once per element type
    fn skip_value(
        r: &mut BufReader<fs_err::File>,
        t: u32,
        len: &mut dyn FnMut(&mut BufReader<fs_err::File>) -> std::io::Result<u64>,
        depth: usize,
    ) -> std::io::Result<()> {
        let fixed = match t {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            _ => 0,
        };
        match t {
            8 => {
                let n = len(r)?;
                skip(r, n)
            }
            9 if depth < 8 => {
                let mut b = [0u8; 4];
                r.read_exact(&mut b)?;
                let elem = u32::from_le_bytes(b);
                let n = len(r)?;
                if elem == 8 || elem == 9 {
                    for _ in 0..n {
                        skip_value(r, elem, len, depth + 1)?;
                    }
                    Ok(())
                } else {
                    let width = match elem {
                        0 | 1 | 7 => 1,
                        2 | 3 => 2,
                        4..=6 => 4,
                        10..=12 => 8,
                        _ => return Err(std::io::Error::other("bad array type")),
                    };
                    skip(r, n * width)
                }
            }
            _ if fixed > 0 => skip(r, fixed),
            _ => Err(std::io::Error::other("bad value type")),
        }
    }
    for _ in 0..n_kv {
        let key_len = len(&mut r)?;
        skip(&mut r, key_len)?;
        let t = u32_(&mut r)?;
        skip_value(&mut r, t, &mut len, 0)?;
    }
    for _ in 0..n_tensors {
        let name_len = len(&mut r)?;
        if name_len > 1 << 16 {
            return Ok(None);
        }
        let mut name = vec![0u8; name_len as usize];
        r.read_exact(&mut name)?;
        let n_dims = u32_(&mut r)?;
        for _ in 0..n_dims {
            len(&mut r)?;
        }
        let type_id = u32_(&mut r)?;
        read_u64(&mut r)?;
        if !known_type_id(type_id) {
            return Ok(Some((String::from_utf8_lossy(&name).into_owned(), type_id)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    /// The converter's permutation, written from its numpy expression:
    /// `w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)`.
    fn llama_cpp_permute(w: &Tensor, n_head: usize) -> Tensor {
        let (rows, cols) = w.dims2().unwrap();
        w.reshape((n_head, 2, rows / n_head / 2, cols))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((rows, cols))
            .unwrap()
    }

    #[test]
    fn unpermuting_inverts_the_converter_permutation() {
        let (rows, cols, n_head) = (4 * 8, 64, 4);
        let data: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.25 - 100.0).collect();
        let hf = Tensor::from_vec(data, (rows, cols), &Device::Cpu).unwrap();
        let gguf = llama_cpp_permute(&hf, n_head);
        for r in 0..rows {
            let expected = hf.get(r).unwrap().to_vec1::<f32>().unwrap();
            let stored = gguf
                .get(gguf_row_of_hf_row(r, rows, n_head))
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(expected, stored, "row {r}");
        }
        for dtype in [
            GgmlDType::F32,
            GgmlDType::F16,
            GgmlDType::Q8_0,
            GgmlDType::Q4_1,
        ] {
            let q = QTensor::quantize(&gguf, dtype).unwrap();
            let back = unpermute_rows(&q, n_head).unwrap();
            let direct = QTensor::quantize(&hf, dtype)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap();
            let got = back.dequantize(&Device::Cpu).unwrap();
            let diff = (direct - got).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{dtype:?}");
        }
    }

    fn write_gguf(path: &Path, tensors: &[(&str, QTensor)]) {
        let mut f = std::fs::File::create(path).unwrap();
        let arch = gguf_file::Value::String("llama".into());
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        gguf_file::write(&mut f, &[("general.architecture", &arch)], &refs).unwrap();
    }

    #[test]
    fn truncated_files_and_unknown_types_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.gguf");
        let w = Tensor::ones((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        write_gguf(
            &path,
            &[
                ("a.weight", QTensor::quantize(&w, GgmlDType::F32).unwrap()),
                ("b.weight", QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()),
            ],
        );
        let bytes = std::fs::read(&path).unwrap();
        let mut g = GgufFile::open(&path).unwrap();
        assert!(g.read("a.weight").unwrap().is_some());

        // data cut short: the header parses, the tensor does not
        std::fs::write(&path, &bytes[..bytes.len() - 60]).unwrap();
        let mut g = GgufFile::open(&path).unwrap();
        let err = g.read("b.weight").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read tensor `b.weight` from gguf file {}",
                path.display()
            )
        );
        assert!(err.hint().unwrap().contains("download it again"));

        // header cut short
        std::fs::write(&path, &bytes[..40]).unwrap();
        let err = GgufFile::open(&path).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!("cannot read gguf file {}", path.display())
        );

        // an i-quant type id in place of q8_0 (8)
        let mut patched = bytes.clone();
        let name = b"b.weight";
        let at = patched.windows(name.len()).position(|w| w == name).unwrap();
        // name, n_dims (u32), 2 dims (u64 each), then the type id
        let type_at = at + name.len() + 4 + 16;
        assert_eq!(patched[type_at], 8);
        patched[type_at] = 16;
        std::fs::write(&path, &patched).unwrap();
        let err = GgufFile::open(&path).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "tensor `b.weight` in {} uses quantization type iq2_xxs (16), which perplex \
                 cannot dequantize (supported: {})",
                path.display(),
                crate::error::SUPPORTED_GGML_TYPES
            )
        );
    }
}
