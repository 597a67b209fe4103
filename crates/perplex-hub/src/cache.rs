//! Where the local Hugging Face hub cache is, and how a repository's
//! revision is found in it (the layout `huggingface_hub` writes).

use std::ffi::OsString;
use std::path::PathBuf;

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

/// The Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HUGGINGFACE_HUB_CACHE`,
/// else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
/// `~/.cache/huggingface/hub` (the order `huggingface_hub` uses).
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn finds_refs_and_commits() {
        let tmp = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let dir = tmp.path().join("models--org--model");
        std::fs::create_dir_all(dir.join("refs")).unwrap();
        std::fs::write(dir.join("refs/main"), format!("{commit}\n")).unwrap();
        let snap = dir.join("snapshots").join(commit);
        std::fs::create_dir_all(&snap).unwrap();
        let cache = HubCache {
            root: tmp.path().to_path_buf(),
        };
        let id = |s| RepoId::parse(s).unwrap();
        assert_eq!(cache.snapshot(&id("org/model")), Ok(snap.clone()));
        let upper = format!("org/model@{}", commit.to_ascii_uppercase());
        assert_eq!(cache.snapshot(&id(&upper)), Ok(snap.clone()));
        assert_eq!(
            cache.snapshot(&id("org/model@dev")),
            Err(vec![dir.join("refs/dev")])
        );
        // a ref whose snapshot is gone
        std::fs::remove_dir_all(&snap).unwrap();
        assert_eq!(cache.snapshot(&id("org/model")), Err(vec![snap]));
    }
}
