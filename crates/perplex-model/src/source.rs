//! From a model spec to files on disk.
//!
//! A spec is, in order of precedence:
//! 1. an existing path: a folder with `config.json` (a Hugging Face model
//!    folder), a `.gguf` file, or a folder holding exactly one `.gguf` file;
//! 2. `org/name[@revision]`: a model in the local Hugging Face hub cache
//!    (see [`HubCache`]). [`resolve`] only looks there; [`resolve_or_download`]
//!    (what [`load`](crate::load) uses) downloads a model that is not cached
//!    into the cache first (see [`download`]), and when that fails too, the
//!    error lists every place that was tried and why the download failed.
//!
//! A cached model is used as it is, without asking the hub whether a branch
//! moved: delete `refs/<revision>` (or pass a commit) to update it.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::download::{self, DownloadError, HubOptions};
use crate::error::ModelError;

/// What a spec resolved to.
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
}

/// A hub model id with an optional revision: `org/name[@revision]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    /// `org/name`.
    pub repo: String,
    /// Branch, tag or commit; `main` when absent.
    pub revision: Option<String>,
}

impl RepoId {
    /// Parses `org/name[@revision]`; `None` when the spec does not have that shape.
    pub fn parse(spec: &str) -> Option<RepoId> {
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, rev)) if !rev.is_empty() => (repo, Some(rev.to_string())),
            Some(_) => return None,
            None => (spec, None),
        };
        let (org, name) = repo.split_once('/')?;
        let valid = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (valid(org) && valid(name)).then(|| RepoId {
            repo: repo.to_string(),
            revision,
        })
    }

    /// The cache folder name, `models--org--name`.
    pub fn cache_folder(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }

    /// The revision to use: the given one or `main`.
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

/// The Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`
/// (the order `huggingface_hub` uses).
///
/// Layout: `models--org--name/refs/<revision>` holds a commit hash and
/// `models--org--name/snapshots/<commit>/` the files; a revision of 40 hex
/// digits is a commit and is looked up in `snapshots/` directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    /// The `hub` folder.
    pub root: PathBuf,
}

impl HubCache {
    /// The cache the environment selects, when a home folder is known.
    pub fn from_env() -> Option<HubCache> {
        Self::from_vars(|k| std::env::var_os(k))
    }

    /// Like [`HubCache::from_env`] with an explicit environment (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Option<HubCache> {
        let nonempty = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let root = nonempty("HF_HUB_CACHE")
            .or_else(|| nonempty("HUGGINGFACE_HUB_CACHE"))
            .or_else(|| nonempty("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| nonempty("XDG_CACHE_HOME").map(|c| c.join("huggingface").join("hub")))
            .or_else(|| {
                nonempty("HOME").map(|h| h.join(".cache").join("huggingface").join("hub"))
            })?;
        Some(HubCache { root })
    }

    /// The snapshot folder of `id`, or every path that was tried.
    pub fn snapshot(&self, id: &RepoId) -> Result<PathBuf, Vec<PathBuf>> {
        let repo_dir = self.root.join(id.cache_folder());
        let rev = id.revision();
        let is_commit = rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit());
        let mut tried = Vec::new();
        let commit = if is_commit {
            rev.to_ascii_lowercase()
        } else {
            let ref_file = repo_dir.join("refs").join(rev);
            match std::fs::read_to_string(&ref_file) {
                Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
                _ => {
                    tried.push(ref_file);
                    return Err(tried);
                }
            }
        };
        let snapshot = repo_dir.join("snapshots").join(&commit);
        if snapshot.is_dir() {
            Ok(snapshot)
        } else {
            tried.push(snapshot);
            Err(tried)
        }
    }
}

/// Resolves `spec` to a model folder or GGUF file, like [`resolve`], and
/// downloads an `org/name[@revision]` model into `cache` when the cache has
/// no usable snapshot of it: none, or one a download was interrupted in (no
/// config.json with its safetensors weights, and no single `.gguf` file).
/// `hub` says how to reach the hub (unset fields come from the environment,
/// read only when a download is needed).
pub fn resolve_or_download(
    spec: &str,
    cache: Option<&HubCache>,
    hub: &HubOptions,
) -> Result<ModelSource, ModelError> {
    let (id, mut searched) = match local_or_repo(spec)? {
        Spec::Local(source) => return Ok(source),
        Spec::Repo(id, searched) => (id, searched),
    };
    let failed = |searched, source| ModelError::DownloadFailed {
        spec: spec.to_string(),
        searched,
        repo: id.repo.clone(),
        source: Box::new(source),
    };
    let Some(cache) = cache else {
        return Err(failed(searched, DownloadError::NoCache));
    };
    match cache.snapshot(&id) {
        Ok(dir) => match usable_snapshot(&dir) {
            Some(model) => return classify_path(&model),
            None => searched.push(dir),
        },
        Err(tried) => searched.extend(tried),
    }
    match download::download_snapshot(&id, cache, hub) {
        Ok(model) => classify_path(&model),
        Err(source) => Err(failed(searched, source)),
    }
}

/// What a spec names before any cache is consulted.
enum Spec {
    /// An existing path, classified.
    Local(ModelSource),
    /// A hub repo id, with the paths already looked at.
    Repo(RepoId, Vec<PathBuf>),
}

/// An existing path is classified at once; anything else must be a repo id.
fn local_or_repo(spec: &str) -> Result<Spec, ModelError> {
    let path = Path::new(spec);
    if path.exists() {
        return classify_path(path).map(Spec::Local);
    }
    let searched = vec![path.to_path_buf()];
    match RepoId::parse(spec) {
        Some(id) => Ok(Spec::Repo(id, searched)),
        None => Err(ModelError::NotFound {
            spec: spec.to_string(),
            searched,
            repo: None,
        }),
    }
}

/// The model in a cached snapshot: the folder when it has config.json and
/// every safetensors file, else its only `.gguf` file; `None` when an
/// interrupted or partial download (e.g. transformers caching config.json
/// alone) left less than that.
fn usable_snapshot(dir: &Path) -> Option<PathBuf> {
    if dir.join("config.json").is_file() && has_safetensors(dir) {
        return Some(dir.to_path_buf());
    }
    let mut ggufs = Vec::new();
    find_ggufs(dir, 3, &mut ggufs);
    match ggufs.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn has_safetensors(dir: &Path) -> bool {
    if dir.join("model.safetensors").is_file() {
        return true;
    }
    #[derive(serde::Deserialize)]
    struct ShardIndex {
        weight_map: HashMap<String, String>,
    }
    let Ok(text) = std::fs::read_to_string(dir.join("model.safetensors.index.json")) else {
        return false;
    };
    match serde_json::from_str::<ShardIndex>(&text) {
        Ok(index) => index
            .weight_map
            .values()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .all(|shard| dir.join(shard).is_file()),
        // the loader reports a broken index with its path
        Err(_) => true,
    }
}

fn find_ggufs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.is_dir() {
            if depth > 1 {
                find_ggufs(&path, depth - 1, out);
            }
        } else if path.is_file() && is_gguf(&path) {
            out.push(path);
        }
    }
}

/// Resolves `spec` to a model folder or GGUF file. `hub` is the cache to look
/// in for `org/name` specs (`None`: no cache is known). Never downloads (see
/// [`resolve_or_download`]).
pub fn resolve(spec: &str, hub: Option<&HubCache>) -> Result<ModelSource, ModelError> {
    let (id, mut searched) = match local_or_repo(spec)? {
        Spec::Local(source) => return Ok(source),
        Spec::Repo(id, searched) => (id, searched),
    };
    if let Some(hub) = hub {
        match hub.snapshot(&id) {
            Ok(dir) => return classify_path(&dir),
            Err(tried) => searched.extend(tried),
        }
    }
    Err(ModelError::NotFound {
        spec: spec.to_string(),
        searched,
        repo: Some(id.repo),
    })
}

fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

fn classify_path(path: &Path) -> Result<ModelSource, ModelError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_snapshot(root: &Path, repo: &str, rev: &str, commit: &str) -> PathBuf {
        let dir = root.join(format!("models--{}", repo.replace('/', "--")));
        std::fs::create_dir_all(dir.join("refs")).unwrap();
        std::fs::write(dir.join("refs").join(rev), format!("{commit}\n")).unwrap();
        let snap = dir.join("snapshots").join(commit);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        snap
    }

    #[test]
    fn parses_repo_ids() {
        let id = RepoId::parse("HuggingFaceTB/SmolLM2-135M@v1.0").unwrap();
        assert_eq!(id.repo, "HuggingFaceTB/SmolLM2-135M");
        assert_eq!(id.revision(), "v1.0");
        assert_eq!(id.cache_folder(), "models--HuggingFaceTB--SmolLM2-135M");
        assert_eq!(RepoId::parse("a/b").unwrap().revision(), "main");
        assert!(RepoId::parse("a/b/c").is_none());
        assert!(RepoId::parse("./a/b").is_none());
        assert!(RepoId::parse("a/b@").is_none());
        assert!(RepoId::parse("single").is_none());
    }

    #[test]
    fn cache_location_follows_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let root = |pairs| HubCache::from_vars(env(pairs)).unwrap().root;
        assert_eq!(
            root(&[("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h"), ("HOME", "/u")]),
            PathBuf::from("/c")
        );
        assert_eq!(
            root(&[("HF_HOME", "/h"), ("HOME", "/u")]),
            PathBuf::from("/h/hub")
        );
        assert_eq!(
            root(&[("HOME", "/u")]),
            PathBuf::from("/u/.cache/huggingface/hub")
        );
        assert!(HubCache::from_vars(|_| None).is_none());
    }

    #[test]
    fn resolves_refs_and_commits_in_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let snap = fake_snapshot(tmp.path(), "org/model", "main", commit);
        let hub = HubCache {
            root: tmp.path().to_path_buf(),
        };
        assert_eq!(
            resolve("org/model", Some(&hub)).unwrap(),
            ModelSource::HfFolder(snap.clone())
        );
        assert_eq!(
            resolve(&format!("org/model@{commit}"), Some(&hub)).unwrap(),
            ModelSource::HfFolder(snap)
        );
    }

    #[test]
    fn missing_models_list_every_place_tried() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = HubCache {
            root: tmp.path().to_path_buf(),
        };
        let err = resolve("org/absent@dev", Some(&hub)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("model `org/absent@dev` not found"), "{msg}");
        assert!(msg.contains("org/absent@dev,"), "{msg}");
        let ref_file = tmp
            .path()
            .join("models--org--absent")
            .join("refs")
            .join("dev");
        assert!(msg.contains(&ref_file.display().to_string()), "{msg}");
        let hint = err.hint().unwrap();
        assert!(
            hint.contains("huggingface-cli download org/absent"),
            "{hint}"
        );

        // a cached ref whose snapshot is gone
        let commit = "89abcdef0123456789abcdef0123456789abcdef";
        let snap = fake_snapshot(tmp.path(), "org/gone", "main", commit);
        std::fs::remove_dir_all(&snap).unwrap();
        let msg = resolve("org/gone", Some(&hub)).unwrap_err().to_string();
        assert!(msg.contains(&snap.display().to_string()), "{msg}");
    }

    #[test]
    fn downloads_only_what_the_cache_lacks() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = HubCache {
            root: tmp.path().to_path_buf(),
        };
        // offline: any attempt to download fails, and says so
        let offline = HubOptions {
            endpoint: Some("http://127.0.0.1:9".into()),
            offline: Some(true),
            ..HubOptions::default()
        };
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let snap = fake_snapshot(tmp.path(), "org/model", "main", commit);

        // config.json alone (what transformers' AutoConfig caches) is not a model
        let err = resolve_or_download("org/model", Some(&hub), &offline).unwrap_err();
        let ModelError::DownloadFailed {
            searched, source, ..
        } = &err
        else {
            panic!("{err}");
        };
        assert!(matches!(**source, DownloadError::Offline), "{err}");
        assert_eq!(searched.last(), Some(&snap));

        // with its weights it is, and needs no network
        std::fs::write(snap.join("model.safetensors"), b"").unwrap();
        assert_eq!(
            resolve_or_download("org/model", Some(&hub), &offline).unwrap(),
            ModelSource::HfFolder(snap.clone())
        );
        // a shard index counts when all its shards are there
        std::fs::remove_file(snap.join("model.safetensors")).unwrap();
        std::fs::write(
            snap.join("model.safetensors.index.json"),
            r#"{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}"#,
        )
        .unwrap();
        std::fs::write(snap.join("s1.safetensors"), b"").unwrap();
        assert!(resolve_or_download("org/model", Some(&hub), &offline).is_err());
        std::fs::write(snap.join("s2.safetensors"), b"").unwrap();
        assert!(resolve_or_download("org/model", Some(&hub), &offline).is_ok());

        // a snapshot with one .gguf file, possibly in a subfolder
        let gguf_snap = fake_snapshot(tmp.path(), "org/gguf", "main", commit);
        std::fs::remove_file(gguf_snap.join("config.json")).unwrap();
        std::fs::create_dir(gguf_snap.join("q8")).unwrap();
        let gguf = gguf_snap.join("q8").join("m.Q8_0.gguf");
        std::fs::write(&gguf, b"GGUF").unwrap();
        assert_eq!(
            resolve_or_download("org/gguf", Some(&hub), &offline).unwrap(),
            ModelSource::Gguf(gguf)
        );

        // no cache folder at all
        let err = resolve_or_download("org/model", None, &offline).unwrap_err();
        assert!(err.to_string().contains("could not be downloaded"), "{err}");
        assert!(err.hint().unwrap().contains("HF_HUB_CACHE"), "{err}");
        // not a hub id: no download is tried
        let err = resolve_or_download("no-such-file", Some(&hub), &offline).unwrap_err();
        assert!(
            matches!(err, ModelError::NotFound { repo: None, .. }),
            "{err}"
        );
    }

    #[test]
    fn classifies_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let gguf = tmp.path().join("m.gguf");
        std::fs::write(&gguf, b"GGUF").unwrap();
        assert_eq!(
            resolve(gguf.to_str().unwrap(), None).unwrap(),
            ModelSource::Gguf(gguf.clone())
        );
        // a folder with a single gguf
        assert_eq!(
            resolve(tmp.path().to_str().unwrap(), None).unwrap(),
            ModelSource::Gguf(gguf)
        );
        std::fs::write(tmp.path().join("n.gguf"), b"GGUF").unwrap();
        let err = resolve(tmp.path().to_str().unwrap(), None).unwrap_err();
        assert!(err.to_string().contains("m.gguf, n.gguf"), "{err}");
        let err = resolve("/definitely/not/here.gguf", None).unwrap_err();
        assert!(
            matches!(err, ModelError::NotFound { repo: None, .. }),
            "{err}"
        );
    }
}
