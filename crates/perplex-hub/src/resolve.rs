//! From an `org/name[@revision]` spec to a model on disk: the cached
//! snapshot when it is complete, else a fresh download into the cache.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::cache::{HubCache, RepoId};
use crate::download::{self, HubOptions};
use crate::error::DownloadError;
use crate::error::HubError;

/// Where the model `spec` names is on disk, when `spec` is the hub's:
/// `Ok(None)` when `spec` is an existing path (a local path takes
/// precedence; classifying it is the caller's business) or not of the shape
/// `org/name[@revision]`; else `Ok(Some(path))`, the snapshot folder in the
/// hub cache or, for a GGUF repository, its `.gguf` file there.
///
/// A snapshot is used as it is, without asking the hub whether a branch
/// moved (delete `refs/<revision>`, or pass a commit, to update it), when it
/// holds a model: config.json with its safetensors weights, or a single
/// `.gguf` file. Otherwise (none, or one an interrupted download or
/// transformers' config-only caching left) the model is downloaded into the
/// cache first (see [`download_snapshot`](crate::download_snapshot)); when
/// that fails too, the error lists every place that was tried (`spec` as a
/// path first) and why the download failed.
///
/// Unset [`HubOptions`] fields come from the environment (see the crate
/// docs), read only when they matter.
pub fn resolve(spec: &str, options: &HubOptions) -> Result<Option<PathBuf>, HubError> {
    let Some(id) = RepoId::parse(spec).filter(|_| !Path::new(spec).exists()) else {
        return Ok(None);
    };
    let cache = match &options.cache {
        Some(root) => Some(HubCache { root: root.clone() }),
        None => HubCache::from_env(),
    };
    resolve_repo(spec, &id, cache.as_ref(), options).map(Some)
}

/// [`resolve`] for the hub id `id` (spelt `spec`) in `cache` (`None`: no
/// cache folder is known).
fn resolve_repo(
    spec: &str,
    id: &RepoId,
    cache: Option<&HubCache>,
    options: &HubOptions,
) -> Result<PathBuf, HubError> {
    let mut searched = vec![PathBuf::from(spec)];
    let failed = |searched, source| HubError::DownloadFailed {
        spec: spec.to_string(),
        searched,
        repo: id.repo.clone(),
        source: Box::new(source),
    };
    let Some(cache) = cache else {
        return Err(failed(searched, DownloadError::NoCache));
    };
    match cache.snapshot(id) {
        Ok(dir) => match usable_snapshot(&dir) {
            Some(model) => return Ok(model),
            None => searched.push(dir),
        },
        Err(tried) => searched.extend(tried),
    }
    download::download_snapshot(id, cache, options).map_err(|source| failed(searched, source))
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
        // the model loader reports a broken index with its path
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
        } else if path.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            out.push(path);
        }
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

    /// Offline: any attempt to download fails, and says so.
    fn offline(cache: &Path) -> HubOptions {
        HubOptions {
            cache: Some(cache.to_path_buf()),
            endpoint: Some("http://127.0.0.1:9".into()),
            offline: Some(true),
            ..HubOptions::default()
        }
    }

    fn download_failure(err: &HubError) -> (&[PathBuf], &DownloadError) {
        let HubError::DownloadFailed {
            searched, source, ..
        } = err;
        (searched, source)
    }

    #[test]
    fn cached_snapshots_are_used_by_ref_or_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let snap = fake_snapshot(tmp.path(), "org/model", "main", commit);
        std::fs::write(snap.join("model.safetensors"), b"").unwrap();
        let hub = offline(tmp.path());
        assert_eq!(resolve("org/model", &hub).unwrap(), Some(snap.clone()));
        let by_commit = format!("org/model@{commit}");
        assert_eq!(resolve(&by_commit, &hub).unwrap(), Some(snap));
    }

    #[test]
    fn paths_and_other_specs_are_not_the_hubs() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = offline(tmp.path());
        // an existing path wins over a hub id of the same spelling
        let local = tmp.path().join("org").join("model");
        std::fs::create_dir_all(&local).unwrap();
        let spec = local.to_str().unwrap();
        assert_eq!(resolve(spec, &hub).unwrap(), None);
        for spec in ["no-such-file", "./a/b", "a/b/c", "a/b@"] {
            assert_eq!(resolve(spec, &hub).unwrap(), None, "{spec}");
        }
        assert!(!tmp.path().join("models--a--b").exists());
    }

    #[test]
    fn missing_models_list_every_place_tried() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = offline(tmp.path());
        let err = resolve("org/absent@dev", &hub).unwrap_err();
        let msg = err.to_string();
        let ref_file = tmp.path().join("models--org--absent/refs/dev");
        assert_eq!(
            msg,
            format!(
                "model `org/absent@dev` not found in the hub cache and could not be downloaded; \
                 looked in: org/absent@dev, {}",
                ref_file.display()
            )
        );
        let hint = err.hint().unwrap();
        assert!(
            hint.contains("huggingface-cli download org/absent"),
            "{hint}"
        );

        // a cached ref whose snapshot is gone
        let commit = "89abcdef0123456789abcdef0123456789abcdef";
        let snap = fake_snapshot(tmp.path(), "org/gone", "main", commit);
        std::fs::remove_dir_all(&snap).unwrap();
        let msg = resolve("org/gone", &hub).unwrap_err().to_string();
        assert!(msg.contains(&snap.display().to_string()), "{msg}");
    }

    #[test]
    fn downloads_only_what_the_cache_lacks() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = offline(tmp.path());
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let snap = fake_snapshot(tmp.path(), "org/model", "main", commit);

        // config.json alone (what transformers' AutoConfig caches) is not a model
        let err = resolve("org/model", &hub).unwrap_err();
        let (searched, source) = download_failure(&err);
        assert!(matches!(source, DownloadError::Offline), "{err}");
        assert_eq!(searched.last(), Some(&snap));

        // with its weights it is, and needs no network
        std::fs::write(snap.join("model.safetensors"), b"").unwrap();
        assert_eq!(resolve("org/model", &hub).unwrap(), Some(snap.clone()));
        // a shard index counts when all its shards are there
        std::fs::remove_file(snap.join("model.safetensors")).unwrap();
        std::fs::write(
            snap.join("model.safetensors.index.json"),
            r#"{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}"#,
        )
        .unwrap();
        std::fs::write(snap.join("s1.safetensors"), b"").unwrap();
        assert!(resolve("org/model", &hub).is_err());
        std::fs::write(snap.join("s2.safetensors"), b"").unwrap();
        assert!(resolve("org/model", &hub).is_ok());

        // a snapshot with one .gguf file, possibly in a subfolder
        let gguf_snap = fake_snapshot(tmp.path(), "org/gguf", "main", commit);
        std::fs::remove_file(gguf_snap.join("config.json")).unwrap();
        std::fs::create_dir(gguf_snap.join("q8")).unwrap();
        let gguf = gguf_snap.join("q8").join("m.Q8_0.gguf");
        std::fs::write(&gguf, b"GGUF").unwrap();
        assert_eq!(resolve("org/gguf", &hub).unwrap(), Some(gguf));
    }

    #[test]
    fn no_cache_folder_at_all() {
        let hub = offline(Path::new("/unused"));
        let id = RepoId::parse("org/model").unwrap();
        let err = resolve_repo("org/model", &id, None, &hub).unwrap_err();
        assert!(matches!(download_failure(&err).1, DownloadError::NoCache));
        assert!(err.to_string().contains("could not be downloaded"), "{err}");
        assert!(err.hint().unwrap().contains("HF_HUB_CACHE"), "{err}");
    }
}
