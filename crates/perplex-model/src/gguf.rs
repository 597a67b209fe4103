//! Reading Llama GGUF files: metadata, tensors kept in their stored type, and
//! the un-permutation of the attention projections.
//!
//! llama.cpp's converter permutes the rows of `attn_q` and `attn_k` so that
//! its RoPE can rotate adjacent pairs; for a tensor of `n_head` heads it
//! stores `w.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2)`.
//! Rows are whole runs of quantization blocks, so perplex undoes the
//! permutation by reading each row from where the converter put it (a
//! matrix of the mapped file reads them in place; where the file cannot be
//! mapped, the rows are moved once at load), without touching their data,
//! and then uses the same (half-split) RoPE as for Hugging Face weights.

use std::cell::OnceCell;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

use crate::error::ModelError;
use crate::mapped::{Encoding, MappedFile, MappedMatrix};
use crate::weights::{qtensor_from_bytes, row_bytes};

/// An open GGUF file with its parsed header.
pub(crate) struct GgufFile {
    pub(crate) path: PathBuf,
    pub(crate) content: gguf_file::Content,
    reader: BufReader<fs_err::File>,
    /// The file mapped at the first matrix asked for (`inspect` reads the
    /// header only); `None` inside when it cannot be mapped.
    map: OnceCell<Option<Arc<MappedFile>>>,
}

impl GgufFile {
    /// Opens and parses the header of `path`. A tensor in a type candle does
    /// not know is reported by name.
    pub(crate) fn open(path: &Path) -> Result<Self, ModelError> {
        let mut reader = BufReader::new(fs_err::File::open(path)?);
        let mut scan = HeaderScan::default();
        // what it finds is all that matters; a walk that fails is candle's to report
        let _ = scan_header(path, &mut scan);
        // candle divides by the alignment (a panic on zero)
        if scan.alignment == Some(0) {
            return Err(ModelError::CorruptGguf {
                path: path.to_path_buf(),
                problem: "general.alignment is 0".into(),
            });
        }
        let content = match gguf_file::Content::read(&mut reader) {
            Ok(c) => c,
            Err(source) => {
                // candle rejects the whole header on an unknown tensor type
                // without naming the tensor: the scan found it
                if let Some((name, type_id)) = scan.unknown_type {
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
        check_tensor_table(&content, path)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            content,
            reader,
            map: OnceCell::new(),
        })
    }

    /// Dims (PyTorch order) and type of `name`, if present.
    pub(crate) fn info(&self, name: &str) -> Option<(Vec<usize>, GgmlDType)> {
        self.content
            .tensor_infos
            .get(name)
            .map(|i| (i.shape.dims().to_vec(), i.ggml_dtype))
    }

    /// `name` (which must exist) as a view of the mapped file, when it is a
    /// matrix stored in another type than f32 and the file can be mapped;
    /// `None` otherwise (then it is read). Its rows are in the file's order:
    /// see [`MappedMatrix::unpermuted`] for `attn_q` and `attn_k`.
    pub(crate) fn map_matrix(&self, name: &str) -> Result<Option<MappedMatrix>, ModelError> {
        let info = &self.content.tensor_infos[name];
        let encoding = match info.ggml_dtype {
            GgmlDType::F32 => return Ok(None),
            GgmlDType::F16 => Encoding::F16,
            GgmlDType::BF16 => Encoding::Bf16,
            dtype => Encoding::Blocks(dtype),
        };
        // PyTorch order: rows, then the elements of a row
        let &[rows, cols] = info.shape.dims() else {
            return Ok(None);
        };
        if !cols.is_multiple_of(info.ggml_dtype.block_size()) {
            return Ok(None);
        }
        let map = self
            .map
            .get_or_init(|| MappedFile::map(self.reader.get_ref().file()).ok());
        let Some(map) = map else {
            return Ok(None);
        };
        // the header check made the size a number; the data may still be cut off
        let size = rows * row_bytes(info.ggml_dtype, cols);
        let start = usize::try_from(self.content.tensor_data_offset)
            .ok()
            .zip(usize::try_from(info.offset).ok())
            .and_then(|(base, offset)| base.checked_add(offset));
        let file_len = map.bytes().len();
        match start.filter(|s| s.checked_add(size).is_some_and(|end| end <= file_len)) {
            Some(start) => Ok(Some(MappedMatrix::new(
                map.clone(),
                start,
                (rows, cols),
                encoding,
            ))),
            None => Err(ModelError::GgufTensor {
                name: name.to_string(),
                path: self.path.clone(),
                source: Box::new(candle_core::Error::Msg(format!(
                    "its {size} bytes of data end past the file's {file_len}"
                ))),
            }),
        }
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

/// Checks that every tensor's element count and byte size are numbers:
/// candle's own arithmetic on them (`Shape::elem_count`, the size it reads)
/// would overflow on dimensions such as `[2^32, 2^32]` from a corrupt header.
/// Whether the data is in the file is checked when a tensor is read, so a
/// header with its data cut off still inspects.
fn check_tensor_table(content: &gguf_file::Content, path: &Path) -> Result<(), ModelError> {
    for (name, info) in &content.tensor_infos {
        let dims = info.shape.dims();
        let bytes = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .and_then(|elems| {
                (elems / info.ggml_dtype.block_size()).checked_mul(info.ggml_dtype.type_size())
            });
        if bytes.is_none() {
            return Err(ModelError::CorruptGguf {
                path: path.to_path_buf(),
                problem: format!("tensor `{name}` has dimensions {dims:?}, too large to address"),
            });
        }
    }
    Ok(())
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

/// What perplex reads from a GGUF header itself, beside candle's parse.
#[derive(Debug, Default)]
struct HeaderScan {
    /// `general.alignment`, when stored in a type candle honours (an integer
    /// of at most 32 bits).
    alignment: Option<i64>,
    /// The first tensor whose type id candle does not read, with that id.
    unknown_type: Option<(String, u32)>,
}

/// Walks the header of `path` into `scan`, as far as it parses (a header
/// candle rejects for another reason may stop the walk anywhere: the scan
/// then holds what came before).
fn scan_header(path: &Path, scan: &mut HeaderScan) -> std::io::Result<()> {
    let mut w = Walker {
        r: BufReader::new(fs_err::File::open(path)?),
        v1: false,
    };
    if w.u32()? != 0x4655_4747 {
        return Ok(());
    }
    w.v1 = w.u32()? == 1;
    let n_tensors = w.len()?;
    let n_kv = w.len()?;
    for _ in 0..n_kv {
        let key_len = w.len()?;
        let key = if key_len <= 64 {
            let mut key = vec![0u8; key_len as usize];
            w.r.read_exact(&mut key)?;
            key
        } else {
            w.skip(key_len)?;
            Vec::new()
        };
        let t = w.u32()?;
        match t {
            // u8, i8, u16, i16, u32, i32
            0..=5 if key == b"general.alignment" => {
                let width = [1, 1, 2, 2, 4, 4][t as usize];
                let mut b = [0u8; 4];
                w.r.read_exact(&mut b[..width])?;
                let u = u32::from_le_bytes(b);
                let signed = t % 2 == 1;
                let shift = 32 - 8 * width as u32;
                scan.alignment = Some(if signed {
                    i64::from((u << shift) as i32 >> shift)
                } else {
                    i64::from(u)
                });
            }
            _ => w.skip_value(t, 0)?,
        }
    }
    for _ in 0..n_tensors {
        let name_len = w.len()?;
        if name_len > 1 << 16 {
            return Ok(());
        }
        let mut name = vec![0u8; name_len as usize];
        w.r.read_exact(&mut name)?;
        let n_dims = w.u32()?;
        for _ in 0..n_dims {
            w.len()?;
        }
        let type_id = w.u32()?;
        w.u64()?;
        if !known_type_id(type_id) {
            scan.unknown_type = Some((String::from_utf8_lossy(&name).into_owned(), type_id));
            return Ok(());
        }
    }
    Ok(())
}

/// A GGUF header reader that skips what the scan does not need.
struct Walker {
    r: BufReader<fs_err::File>,
    /// Version 1 stores lengths in 32 bits, later versions in 64.
    v1: bool,
}

impl Walker {
    fn u32(&mut self) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn len(&mut self) -> std::io::Result<u64> {
        if self.v1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        // within the buffer when it can (a vocabulary is many short strings)
        self.r
            .seek_relative(i64::try_from(n).map_err(std::io::Error::other)?)
    }

    /// Skips a value of type `t`; arrays recurse once per element type.
    fn skip_value(&mut self, t: u32, depth: usize) -> std::io::Result<()> {
        let width = |t: u32| match t {
            0 | 1 | 7 => Some(1u64),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match t {
            8 => {
                let n = self.len()?;
                self.skip(n)
            }
            9 if depth < 8 => {
                let elem = self.u32()?;
                let n = self.len()?;
                if elem == 8 || elem == 9 {
                    for _ in 0..n {
                        self.skip_value(elem, depth + 1)?;
                    }
                    Ok(())
                } else {
                    let width = width(elem).ok_or_else(|| std::io::Error::other("bad type"))?;
                    self.skip(
                        n.checked_mul(width)
                            .ok_or_else(|| std::io::Error::other("too long"))?,
                    )
                }
            }
            _ => match width(t) {
                Some(n) => self.skip(n),
                None => Err(std::io::Error::other("bad value type")),
            },
        }
    }
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
    fn a_zero_alignment_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.gguf");
        let mut f = std::fs::File::create(&path).unwrap();
        let arch = gguf_file::Value::String("llama".into());
        let zero = gguf_file::Value::U32(0);
        gguf_file::write(
            &mut f,
            &[
                ("general.architecture", &arch),
                ("general.alignment", &zero),
            ],
            &[],
        )
        .unwrap();
        drop(f);
        let err = GgufFile::open(&path).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "gguf file {} is corrupt: general.alignment is 0",
                path.display()
            )
        );
    }

    /// Found by fuzzing (fuzz/regressions/gguf/): dimensions whose product
    /// overflows made candle's element count panic.
    #[test]
    fn dimensions_too_large_to_address_are_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.gguf");
        let w = Tensor::ones((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        write_gguf(
            &path,
            &[("a.weight", QTensor::quantize(&w, GgmlDType::F32).unwrap())],
        );
        let mut bytes = std::fs::read(&path).unwrap();
        let name = b"a.weight";
        let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
        // name, n_dims (u32), then 2 dims (u64 each)
        let dims_at = at + name.len() + 4;
        for d in 0..2 {
            let at = dims_at + 8 * d;
            bytes[at..at + 8].copy_from_slice(&(1u64 << 32).to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = GgufFile::open(&path).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "gguf file {} is corrupt: tensor `a.weight` has dimensions [4294967296, \
                 4294967296], too large to address",
                path.display()
            )
        );
        assert!(err.hint().unwrap().contains("download it again"));
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
        // f32 is read (and kept dense); other matrices are views of the map
        assert!(g.map_matrix("a.weight").unwrap().is_none());
        let m = g.map_matrix("b.weight").unwrap().unwrap();
        let read = g.read("b.weight").unwrap().unwrap();
        let read = read
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap();
        assert_eq!(
            m.rows_f32(0, 4)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            read.to_vec1::<f32>().unwrap()
        );

        // data cut short: the header parses, the tensor does not
        std::fs::write(&path, &bytes[..bytes.len() - 60]).unwrap();
        let mut g = GgufFile::open(&path).unwrap();
        let mapped = g.map_matrix("b.weight").unwrap_err();
        let err = g.read("b.weight").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read tensor `b.weight` from gguf file {}",
                path.display()
            )
        );
        assert!(err.hint().unwrap().contains("download it again"));
        // mapped, the same error and hint, the cause saying where the data ends
        assert_eq!(mapped.to_string(), err.to_string());
        assert_eq!(mapped.hint(), err.hint());
        let cause = std::error::Error::source(&mapped).unwrap().to_string();
        assert!(cause.contains("end past the file's"), "{cause}");

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
