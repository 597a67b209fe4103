//! A streaming reader for safetensors checkpoints (one file or an indexed set
//! of shards), converting F32/F16/BF16 tensors to f32.
//!
//! The format is an 8-byte little-endian header length, a JSON header
//! `{name: {dtype, shape, data_offsets: [begin, end]}}` and the data section.
//! The header is checked against the file size up front, so a truncated
//! download is reported with the file's name before any weight is read;
//! f16/bf16 matrices are then views of the mapped file (`mapped.rs`), other
//! tensors are read one at a time (no whole-file buffer).

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{QStorage, QTensor, QuantizedType};
use candle_core::{Device, Tensor};
use serde::Deserialize;

use crate::error::ModelError;
use crate::mapped::{Encoding, MappedFile, MappedMatrix};

/// Headers larger than this are not safetensors headers.
const MAX_HEADER_BYTES: u64 = 256 << 20;

#[derive(Debug, Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

#[derive(Debug)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    begin: u64,
    end: u64,
}

/// One open safetensors file with its parsed and checked header.
#[derive(Debug)]
pub(crate) struct SafetensorsFile {
    path: PathBuf,
    file: fs_err::File,
    /// The file mapped read-only at the first f16/bf16 matrix asked for
    /// (`inspect` reads headers only, and an f32 checkpoint is read, not
    /// mapped); `None` inside where mapping failed: its matrices are then read.
    map: OnceCell<Option<Arc<MappedFile>>>,
    data_start: u64,
    tensors: HashMap<String, TensorInfo>,
}

fn element_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return None,
    })
}

impl SafetensorsFile {
    /// Opens `path` and checks its header against the file's size.
    pub(crate) fn open(path: &Path) -> Result<Self, ModelError> {
        let corrupt_because = |problem: String, source| ModelError::CorruptSafetensors {
            path: path.to_path_buf(),
            problem,
            source,
        };
        let corrupt = |problem: String| corrupt_because(problem, None);
        let mut file = fs_err::File::open(path)?;
        let file_len = file.metadata()?.len();
        if file_len < 8 {
            return Err(corrupt(format!(
                "the file has {file_len} bytes, fewer than the 8-byte header length"
            )));
        }
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes)?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES || header_len > file_len - 8 {
            return Err(corrupt(format!(
                "the header claims {header_len} bytes but the file has {file_len}"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)?;
        // sorted, so that of several bad entries the same one is named every time
        let raw: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&header)
                .map_err(|e| corrupt_because("the header is not valid JSON".into(), Some(e)))?;
        let data_start = 8 + header_len;
        let data_len = file_len - data_start;
        let mut tensors = HashMap::new();
        for (name, value) in raw {
            if name == "__metadata__" {
                continue;
            }
            let info: RawInfo = serde_json::from_value(value).map_err(|e| {
                corrupt_because(format!("the header entry of `{name}` is invalid"), Some(e))
            })?;
            let [begin, end] = info.data_offsets;
            if begin > end || end > data_len {
                return Err(corrupt(format!(
                    "tensor `{name}` needs bytes {begin}..{end} of the data section, which has \
                     {data_len}"
                )));
            }
            // every user of the shape multiplies it out: it must fit
            let elements = info
                .shape
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
            let Some(elements) = elements.filter(|&n| usize::try_from(n).is_ok()) else {
                return Err(corrupt(format!(
                    "tensor `{name}` has shape {:?}, too large to address",
                    info.shape
                )));
            };
            if let Some(size) = element_size(&info.dtype) {
                let expected = elements.checked_mul(size as u64);
                if expected != Some(end - begin) {
                    return Err(corrupt(format!(
                        "tensor `{name}` ({} {:?}) should have {} bytes, the header gives {}",
                        info.dtype,
                        info.shape,
                        elements.saturating_mul(size as u64),
                        end - begin
                    )));
                }
            }
            tensors.insert(
                name,
                TensorInfo {
                    dtype: info.dtype,
                    shape: info.shape,
                    begin,
                    end,
                },
            );
        }
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            file,
            map: OnceCell::new(),
            data_start,
            tensors,
        })
    }

    /// The tensor names, sorted.
    pub(crate) fn names(&self) -> impl Iterator<Item = &String> {
        let mut names: Vec<&String> = self.tensors.keys().collect();
        names.sort();
        names.into_iter()
    }

    /// Shape and stored dtype (lowercase) of `name`.
    pub(crate) fn info(&self, name: &str) -> Option<(Vec<usize>, String)> {
        self.tensors
            .get(name)
            .map(|i| (i.shape.clone(), i.dtype.to_ascii_lowercase()))
    }

    /// `name` (which must exist) as a view of the mapped file, when it is
    /// an f16 or bf16 matrix and the file is mapped; `None` otherwise.
    pub(crate) fn map_half(&self, name: &str) -> Option<MappedMatrix> {
        let info = &self.tensors[name];
        let half = match info.dtype.as_str() {
            "F16" => Encoding::F16,
            "BF16" => Encoding::Bf16,
            _ => return None,
        };
        let &[rows, cols] = info.shape.as_slice() else {
            return None;
        };
        let map = self
            .map
            .get_or_init(|| MappedFile::map(self.file.file()).ok())
            .as_ref()?;
        // the header check put the tensor's bytes inside the file
        let offset = usize::try_from(self.data_start + info.begin).ok()?;
        Some(MappedMatrix::new(map.clone(), offset, (rows, cols), half))
    }

    /// `name` (which must exist) in its stored half precision, when it is
    /// f16 or bf16 (as a ggml tensor of that type: 2 bytes an element, read
    /// without widening); `None` for other types.
    pub(crate) fn read_half(&mut self, name: &str) -> Result<Option<QTensor>, ModelError> {
        let info = &self.tensors[name];
        let elems: usize = info.shape.iter().product();
        let offset = self.data_start + info.begin;
        let storage: Box<dyn QuantizedType> = match info.dtype.as_str() {
            "F16" => Box::new(read_elements(
                &mut self.file,
                offset,
                vec![half::f16::ZERO; elems],
            )?),
            "BF16" => Box::new(read_elements(
                &mut self.file,
                offset,
                vec![half::bf16::ZERO; elems],
            )?),
            _ => return Ok(None),
        };
        QTensor::new(QStorage::Cpu(storage), info.shape.clone())
            .map(Some)
            .map_err(|source| ModelError::Backend {
                context: format!("building tensor `{name}` of {}", self.path.display()),
                source: crate::error::candle_source(source),
            })
    }

    /// `name` (which must exist) converted to f32.
    pub(crate) fn read_f32(&mut self, name: &str) -> Result<Tensor, ModelError> {
        let info = &self.tensors[name];
        let unsupported = || ModelError::UnsupportedDtype {
            name: name.to_string(),
            path: self.path.clone(),
            dtype: info.dtype.clone(),
        };
        let convert: fn(&[u8]) -> f32 = match info.dtype.as_str() {
            "F32" => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            "F16" => |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            "BF16" => |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            _ => return Err(unsupported()),
        };
        let width = element_size(&info.dtype).unwrap_or(4);
        let mut bytes = vec![0u8; (info.end - info.begin) as usize];
        self.file
            .seek(SeekFrom::Start(self.data_start + info.begin))?;
        self.file.read_exact(&mut bytes)?;
        let values: Vec<f32> = bytes.chunks_exact(width).map(convert).collect();
        Tensor::from_vec(values, info.shape.clone(), &Device::Cpu).map_err(|source| {
            ModelError::Backend {
                context: format!("building tensor `{name}` of {}", self.path.display()),
                source: crate::error::candle_source(source),
            }
        })
    }
}

/// Fills `values` with the file's bytes from `offset`: read straight
/// into the tensor's final storage, so a multi-GB checkpoint is not
/// copied a second time at load (the header check made sure the bytes
/// are there and the element count matches them).
fn read_elements<T: bytemuck::Pod>(
    file: &mut fs_err::File,
    offset: u64,
    mut values: Vec<T>,
) -> Result<Vec<T>, ModelError> {
    file.seek(SeekFrom::Start(offset))?;
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut values);
    file.read_exact(bytes)?;
    if cfg!(target_endian = "big") {
        // safetensors stores little-endian elements
        bytes
            .chunks_exact_mut(std::mem::size_of::<T>())
            .for_each(<[u8]>::reverse);
    }
    Ok(values)
}

/// The weight files of a Hugging Face folder.
#[derive(Debug)]
pub(crate) struct SafetensorsSet {
    files: Vec<SafetensorsFile>,
    /// Which file holds each tensor.
    owner: HashMap<String, usize>,
    /// The single file, or the shard index: what errors name for a missing tensor.
    described_by: PathBuf,
}

#[derive(Debug, Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

impl SafetensorsSet {
    /// Opens `model.safetensors`, or the shards listed by
    /// `model.safetensors.index.json`, in `dir`.
    pub(crate) fn open_folder(dir: &Path) -> Result<Self, ModelError> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let (paths, described_by) = if single.is_file() {
            (vec![single.clone()], single)
        } else if index.is_file() {
            let text = fs_err::read_to_string(&index)?;
            let parsed: ShardIndex =
                serde_json::from_str(&text).map_err(|source| ModelError::Json {
                    path: index.clone(),
                    source,
                })?;
            let shards: BTreeSet<&String> = parsed.weight_map.values().collect();
            // a shard is a file beside the index, never a path elsewhere
            let plain = |s: &str| {
                let mut parts = Path::new(s).components();
                matches!(parts.next(), Some(std::path::Component::Normal(_)))
                    && parts.next().is_none()
            };
            if let Some(shard) = shards.iter().find(|s| !plain(s)) {
                return Err(ModelError::ShardOutsideFolder {
                    index,
                    shard: shard.to_string(),
                });
            }
            let paths: Vec<PathBuf> = shards.into_iter().map(|s| dir.join(s)).collect();
            let missing: Vec<String> = paths
                .iter()
                .filter(|p| !p.is_file())
                .map(|p| {
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            if !missing.is_empty() {
                return Err(ModelError::MissingShards {
                    index,
                    missing,
                    listed: paths.len(),
                });
            }
            (paths, index)
        } else {
            return Err(ModelError::NoModelFiles {
                path: dir.to_path_buf(),
                problem: "no model.safetensors or model.safetensors.index.json".into(),
            });
        };
        let mut files = Vec::with_capacity(paths.len());
        let mut owner = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let f = SafetensorsFile::open(path)?;
            for name in f.tensors.keys() {
                owner.insert(name.clone(), i);
            }
            files.push(f);
        }
        Ok(SafetensorsSet {
            files,
            owner,
            described_by,
        })
    }

    /// The weight files, in the order they are hashed.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// Shape and stored dtype of `name`, if present.
    pub(crate) fn info(&self, name: &str) -> Option<(Vec<usize>, String)> {
        let f = &self.files[*self.owner.get(name)?];
        let info = &f.tensors[name];
        Some((info.shape.clone(), info.dtype.to_ascii_lowercase()))
    }

    /// Shape and stored dtype of every tensor, in no particular order.
    pub(crate) fn tensors(&self) -> impl Iterator<Item = (Vec<usize>, String)> + '_ {
        self.files.iter().flat_map(|f| {
            f.tensors
                .values()
                .map(|info| (info.shape.clone(), info.dtype.to_ascii_lowercase()))
        })
    }

    /// `name` as a view of its mapped file (see
    /// [`SafetensorsFile::map_half`]), or `None` when no file has it or it
    /// cannot be mapped.
    pub(crate) fn map_half(&self, name: &str) -> Option<MappedMatrix> {
        self.files[*self.owner.get(name)?].map_half(name)
    }

    /// `name` in its stored half precision (see
    /// [`SafetensorsFile::read_half`]), or `None` when no file has it or it
    /// is not f16 or bf16.
    pub(crate) fn read_half(&mut self, name: &str) -> Result<Option<QTensor>, ModelError> {
        match self.owner.get(name) {
            None => Ok(None),
            Some(&i) => self.files[i].read_half(name),
        }
    }

    /// `name` converted to f32, or `None` when no file has it.
    pub(crate) fn read_f32(&mut self, name: &str) -> Result<Option<Tensor>, ModelError> {
        match self.owner.get(name) {
            None => Ok(None),
            Some(&i) => self.files[i].read_f32(name).map(Some),
        }
    }

    /// The file holding `name` (or the index / single file when absent).
    pub(crate) fn path_of(&self, name: &str) -> &Path {
        match self.owner.get(name) {
            Some(&i) => &self.files[i].path,
            None => &self.described_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::write_safetensors;

    #[test]
    fn reads_tensors_and_reports_truncation() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("model.safetensors");
        write_safetensors(
            &path,
            &[
                ("a".into(), vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
                ("b".into(), vec![3], vec![5.0, 6.0, 7.0]),
            ],
        );
        let mut set = SafetensorsSet::open_folder(tmp.path()).unwrap();
        let a = set.read_f32("a").unwrap().unwrap();
        assert_eq!(
            a.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );
        assert!(set.read_f32("c").unwrap().is_none());

        // cut the file in the middle of the data section
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 6]).unwrap();
        let err = SafetensorsSet::open_folder(tmp.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "safetensors file {} is truncated or corrupt: tensor `",
                path.display()
            )),
            "{msg}"
        );
        assert!(err.hint().unwrap().contains("download it again"));

        // cut inside the header
        std::fs::write(&path, &bytes[..20]).unwrap();
        let msg = SafetensorsSet::open_folder(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("the header claims"), "{msg}");
        std::fs::write(&path, &bytes[..5]).unwrap();
        let msg = SafetensorsSet::open_folder(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("fewer than the 8-byte header length"), "{msg}");
    }

    #[test]
    fn shapes_too_large_to_address_are_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("model.safetensors");
        // 2^32 * 2^32 elements wrap to 0, which matched the empty data
        for (dtype, shape) in [
            ("F32", "[4294967296,4294967296]"),
            ("I4", "[4294967296,4294967296]"),
        ] {
            let header =
                format!(r#"{{"a":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[0,0]}}}}"#);
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(header.as_bytes());
            std::fs::write(&path, &bytes).unwrap();
            let err = SafetensorsFile::open(&path).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "safetensors file {} is truncated or corrupt: tensor `a` has shape \
                     [4294967296, 4294967296], too large to address",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn a_folder_without_weights_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = SafetensorsSet::open_folder(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("no model.safetensors"), "{err}");
        assert!(err.hint().is_some());
    }

    #[test]
    fn an_index_naming_a_path_outside_its_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let index = tmp.path().join("model.safetensors.index.json");
        for shard in [
            "../elsewhere.safetensors",
            "/dev/zero",
            "sub/x.safetensors",
            "..",
        ] {
            let text = serde_json::json!({"weight_map": {"a": shard}}).to_string();
            std::fs::write(&index, text).unwrap();
            let err = SafetensorsSet::open_folder(tmp.path()).unwrap_err();
            assert!(
                matches!(&err, ModelError::ShardOutsideFolder { shard: s, .. } if s == shard),
                "{shard}: {err}"
            );
            assert!(err.hint().is_some());
        }
    }
}
