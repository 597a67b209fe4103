//! From a model spec to files on disk, as far as this crate goes: local
//! paths.
//!
//! A spec is `BASE[+ADAPTER…]` ([`ModelSpec`]); the base names
//! 1. an existing path: a folder with `config.json` (a Hugging Face model
//!    folder), a `.gguf` file, or a folder holding exactly one `.gguf` file
//!    ([`ModelSource::local`]);
//! 2. or something a resolver outside this crate turns into such a path:
//!    the facade (`perplex`) asks `perplex-hub` for `org/name[@revision]`
//!    hub ids, and passes the path it answers to [`ModelSource::from_path`].
//!
//! This crate never touches the network.

use std::path::{Path, PathBuf};

use crate::error::ModelError;
use crate::lora::LoraAdapter;

/// What a spec's base resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A Hugging Face model folder (config.json, safetensors, tokenizer.json).
    HfFolder(PathBuf),
    /// A single GGUF file.
    Gguf(PathBuf),
}

impl ModelSource {
    /// The folder or file.
    pub fn path(&self) -> &Path {
        match self {
            ModelSource::HfFolder(p) | ModelSource::Gguf(p) => p,
        }
    }

    /// `hf-folder` or `gguf`, as recorded in the report.
    pub fn format(&self) -> &'static str {
        match self {
            ModelSource::HfFolder(_) => "hf-folder",
            ModelSource::Gguf(_) => "gguf",
        }
    }

    /// The model `base` names as a path; [`ModelError::NotFound`] when no
    /// such path exists.
    pub fn local(base: &str) -> Result<ModelSource, ModelError> {
        let path = Path::new(base);
        if path.exists() {
            return ModelSource::from_path(path);
        }
        Err(ModelError::NotFound {
            spec: base.to_string(),
            searched: vec![path.to_path_buf()],
        })
    }

    /// Classifies an existing path: a `.gguf` file; `config.json` (its
    /// folder); a folder with `config.json`; a folder with exactly one
    /// `.gguf` file.
    pub fn from_path(path: &Path) -> Result<ModelSource, ModelError> {
        if path.is_file() {
            if is_gguf(path) {
                return Ok(ModelSource::Gguf(path.to_path_buf()));
            }
            if path.file_name().is_some_and(|n| n == "config.json") {
                if let Some(parent) = path.parent() {
                    let parent = if parent.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        parent
                    };
                    return Ok(ModelSource::HfFolder(parent.to_path_buf()));
                }
            }
            return Err(ModelError::NoModelFiles {
                path: path.to_path_buf(),
                problem: "a file that is neither a .gguf file nor config.json".into(),
            });
        }
        if !path.is_dir() {
            return Err(ModelError::NoModelFiles {
                path: path.to_path_buf(),
                problem: "it is neither a file nor a folder (a device, a pipe or a socket)".into(),
            });
        }
        if path.join("config.json").is_file() {
            return Ok(ModelSource::HfFolder(path.to_path_buf()));
        }
        let mut ggufs: Vec<PathBuf> = fs_err::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_gguf(p))
            .collect();
        ggufs.sort();
        match ggufs.len() {
            1 => Ok(ModelSource::Gguf(ggufs.remove(0))),
            0 => Err(ModelError::NoModelFiles {
                path: path.to_path_buf(),
                problem: "no config.json and no .gguf file".into(),
            }),
            _ => Err(ModelError::NoModelFiles {
                path: path.to_path_buf(),
                problem: format!(
                    "no config.json and several .gguf files ({}); pass the path of one",
                    ggufs
                        .iter()
                        .filter_map(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }
}

fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// A model spec, `BASE[+ADAPTER…]`, with its adapters opened and its base
/// not yet resolved: the adapters are checked before the base is looked
/// for, so a broken adapter fails before any download.
pub struct ModelSpec {
    /// What the user passed, as recorded in the report.
    pub spec: String,
    /// The base model: a path, or anything a resolver turns into one.
    pub base: String,
    /// The adapters, in order.
    pub(crate) adapters: Vec<LoraAdapter>,
}

impl ModelSpec {
    /// Splits `spec` ([`split_spec`](crate::split_spec)) and opens its
    /// adapter folders.
    pub fn parse(spec: &str) -> Result<ModelSpec, ModelError> {
        let (base, adapter_dirs) = crate::split_spec(spec)?;
        let adapters = adapter_dirs
            .iter()
            .map(|d| LoraAdapter::open(d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ModelSpec {
            spec: spec.to_string(),
            base: base.to_string(),
            adapters,
        })
    }
}

impl std::fmt::Debug for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSpec")
            .field("spec", &self.spec)
            .field("base", &self.base)
            .field(
                "adapters",
                &self.adapters.iter().map(|a| &a.path).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let gguf = tmp.path().join("m.gguf");
        std::fs::write(&gguf, b"GGUF").unwrap();
        assert_eq!(
            ModelSource::local(gguf.to_str().unwrap()).unwrap(),
            ModelSource::Gguf(gguf.clone())
        );
        // a folder with a single gguf
        assert_eq!(
            ModelSource::local(tmp.path().to_str().unwrap()).unwrap(),
            ModelSource::Gguf(gguf)
        );
        std::fs::write(tmp.path().join("n.gguf"), b"GGUF").unwrap();
        let err = ModelSource::local(tmp.path().to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("m.gguf, n.gguf"), "{err}");
        // a folder with config.json, named by the folder or the file
        let hf = tmp.path().join("hf");
        std::fs::create_dir(&hf).unwrap();
        std::fs::write(hf.join("config.json"), "{}").unwrap();
        assert_eq!(
            ModelSource::from_path(&hf).unwrap(),
            ModelSource::HfFolder(hf.clone())
        );
        assert_eq!(
            ModelSource::from_path(&hf.join("config.json")).unwrap(),
            ModelSource::HfFolder(hf.clone())
        );
        let notes = hf.join("notes.txt");
        std::fs::write(&notes, "").unwrap();
        let err = ModelSource::from_path(&notes).unwrap_err();
        assert!(
            matches!(err, ModelError::NoModelFiles { ref path, .. } if *path == notes),
            "{err}"
        );
    }

    #[test]
    fn missing_paths_name_the_spec_with_a_hint() {
        let err = ModelSource::local("/definitely/not/here.gguf").unwrap_err();
        assert_eq!(
            err.to_string(),
            "model `/definitely/not/here.gguf` not found; looked in: /definitely/not/here.gguf"
        );
        assert!(err.hint().unwrap().contains("hub id"), "{err}");
    }

    #[test]
    fn specs_open_their_adapters_first() {
        let spec = ModelSpec::parse("org/model").unwrap();
        assert_eq!(
            (spec.spec.as_str(), spec.base.as_str()),
            ("org/model", "org/model")
        );
        assert!(spec.adapters.is_empty());
        let tmp = tempfile::tempdir().unwrap();
        let spec = format!("org/model+{}", tmp.path().display());
        let err = ModelSpec::parse(&spec).unwrap_err();
        assert!(matches!(err, ModelError::InvalidAdapter { .. }), "{err}");
    }
}
