//! From a model spec to the files a model loads from: local paths are
//! perplex-model's business, `org/name[@revision]` hub ids perplex-hub's (the
//! local hub cache, else a download into it). This is the one place the two meet.

use perplex_core::inspect::Inspection;
use perplex_hub::HubOptions;
use perplex_model::{ModelSource, ModelSpec};

use crate::Error;

/// Opens `spec`'s adapters, then finds its base: an existing path; else, for
/// an `org/name[@revision]` id, the model in the hub cache, downloaded into
/// it when missing (`hub` says how; unset fields come from the
/// environment); else [`perplex_model::ModelError::NotFound`].
pub fn resolve_model(spec: &str, hub: &HubOptions) -> Result<(ModelSpec, ModelSource), Error> {
    let spec = ModelSpec::parse(spec)?;
    let source = match perplex_hub::resolve(&spec.base, hub)? {
        Some(path) => ModelSource::from_path(&path)?,
        None => ModelSource::local(&spec.base)?,
    };
    Ok((spec, source))
}

/// Resolves `spec` ([`resolve_model`]) and inspects it
/// ([`perplex_model::inspect_spec`]).
pub fn inspect_model(spec: &str, hub: &HubOptions) -> Result<Inspection, Error> {
    let (spec, source) = resolve_model(spec, hub)?;
    Ok(perplex_model::inspect_spec(&spec, &source)?)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use perplex_hub::HubError;
    use perplex_model::{LoadOptions, ModelError};

    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name)
    }

    /// A hub cache holding `org/tiny` (a copy of the tiny-llama fixture),
    /// and options that forbid any download.
    fn cached_tiny(root: &Path) -> (HubOptions, PathBuf) {
        let repo = root.join("models--org--tiny");
        let snapshot = repo.join("snapshots").join(SHA);
        std::fs::create_dir_all(&snapshot).unwrap();
        for entry in std::fs::read_dir(fixture("tiny-llama")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, snapshot.join(path.file_name().unwrap())).unwrap();
        }
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), SHA).unwrap();
        let hub = HubOptions {
            cache: Some(root.to_path_buf()),
            endpoint: Some("http://127.0.0.1:9".into()),
            offline: Some(true),
            ..HubOptions::default()
        };
        (hub, snapshot)
    }

    #[test]
    fn hub_ids_load_from_the_cache_like_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let (hub, snapshot) = cached_tiny(tmp.path());
        let from_hub = crate::load_with_hub("org/tiny", &LoadOptions::default(), &hub).unwrap();
        let folder = fixture("tiny-llama");
        let from_folder =
            crate::load_with_hub(folder.to_str().unwrap(), &LoadOptions::default(), &hub).unwrap();
        assert_eq!(from_hub.identity.spec, "org/tiny");
        assert_eq!(from_hub.identity.path, snapshot.display().to_string());
        assert_eq!(from_hub.identity.format, "hf-folder");
        assert_eq!(from_hub.identity.hash, from_folder.identity.hash);
        let inspected = inspect_model("org/tiny", &hub).unwrap();
        assert_eq!(inspected.model.path, snapshot.display().to_string());
    }

    #[test]
    fn each_failure_comes_from_its_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let (hub, _) = cached_tiny(tmp.path());
        // not cached, offline: the hub's error
        let err = resolve_model("org/absent", &hub).unwrap_err();
        assert!(
            matches!(err, Error::Hub(HubError::DownloadFailed { .. })),
            "{err}"
        );
        // neither a path nor a hub id: the model crate's
        let err = resolve_model("no-such-model", &hub).unwrap_err();
        assert!(
            matches!(err, Error::Model(ModelError::NotFound { .. })),
            "{err}"
        );
        // a broken adapter fails before the hub is asked
        let adapter = tmp.path().join("adapter");
        std::fs::create_dir(&adapter).unwrap();
        let err = resolve_model(&format!("org/absent+{}", adapter.display()), &hub).unwrap_err();
        assert!(
            matches!(err, Error::Model(ModelError::InvalidAdapter { .. })),
            "{err}"
        );
    }
}
