//! Downloading `org/name[@revision]` specs from a fake hub on 127.0.0.1
//! (`hub_support`) into a temporary hub cache. Endpoint, token, offline mode
//! and cache all come through `LoadOptions`, so these tests read no
//! environment variable and run in parallel safely.

mod hub_support;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_support::{FakeHub, FakeRepo, Host};
use perplex_core::{TokenScore, WindowRef};
use perplex_model::{
    load, DownloadError, DownloadEvent, HubOptions, LoadOptions, LoadedModel, ModelError, Progress,
};
use sha2::{Digest, Sha256};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const TEXT: &str =
    "The quick brown fox jumps over the lazy dog. It was a bright cold day in April.";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn options(hub: &FakeHub, cache: &Path) -> LoadOptions {
    LoadOptions {
        hub_cache: Some(cache.to_path_buf()),
        hub: HubOptions {
            endpoint: Some(hub.endpoint.clone()),
            token: Some("hf_test".into()),
            offline: Some(false),
            progress: None,
        },
        ..LoadOptions::default()
    }
}

fn scores(loaded: &mut LoadedModel) -> Vec<TokenScore> {
    let ids = loaded.tokenizer.encode(TEXT).unwrap();
    assert!(ids.len() > 8);
    loaded
        .model
        .score_batch(&[WindowRef {
            tokens: &ids,
            score_from: 1,
        }])
        .unwrap()
        .remove(0)
}

fn load_path(path: &Path) -> LoadedModel {
    load(path.to_str().unwrap(), &LoadOptions::default()).unwrap()
}

/// The error, its causes, and its hint, one per line.
fn render(e: &ModelError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    out.push_str(&format!("\nhint: {}", e.hint().unwrap_or_default()));
    out
}

fn download_error(e: &ModelError) -> &DownloadError {
    match e {
        ModelError::DownloadFailed { source, .. } => source,
        other => panic!("not a download failure: {other}"),
    }
}

/// Every path under `dir`, symbolic links not followed.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out.sort();
    out
}

fn tiny_repo(name: &str) -> FakeRepo {
    FakeRepo::from_dir(name, SHA, &fixtures().join("tiny-llama"))
        .listing("README.md")
        .listing("pytorch_model.bin")
}

#[test]
fn downloads_into_the_hub_cache_once_and_loads_like_the_folder() {
    let hub = FakeHub::start(vec![tiny_repo("org/tiny")]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let mut opts = options(&hub, &cache);
    opts.hub.progress = Some(Progress::new(move |e| {
        let line = match e {
            DownloadEvent::Started { repo, file, size } => format!("start {repo} {file} {size:?}"),
            DownloadEvent::Finished { file, size } => format!("done {file} {size}"),
            _ => return,
        };
        seen.lock().unwrap().push(line);
    }));

    let mut downloaded = load("org/tiny@main", &opts).unwrap();
    let mut folder = load_path(&fixtures().join("tiny-llama"));
    assert_eq!(scores(&mut downloaded), scores(&mut folder));
    assert_eq!(downloaded.identity.hash, folder.identity.hash);
    assert_eq!(downloaded.identity.spec, "org/tiny@main");
    assert_eq!(downloaded.identity.format, "hf-folder");

    // the standard layout
    let repo = cache.join("models--org--tiny");
    let snapshot = repo.join("snapshots").join(SHA);
    assert_eq!(downloaded.identity.path, snapshot.display().to_string());
    assert_eq!(
        std::fs::read_to_string(repo.join("refs").join("main")).unwrap(),
        SHA
    );
    let fixture = |f: &str| std::fs::read(fixtures().join("tiny-llama").join(f)).unwrap();
    let weights_sha = format!("{:x}", Sha256::digest(fixture("model.safetensors")));
    let config_etag = format!("{:x}", Sha256::digest(fixture("config.json")))[..40].to_string();
    assert_eq!(
        std::fs::read(snapshot.join("config.json")).unwrap(),
        fixture("config.json")
    );
    assert_eq!(
        std::fs::read(repo.join("blobs").join(&weights_sha)).unwrap(),
        fixture("model.safetensors")
    );
    assert!(repo.join("blobs").join(&config_etag).is_file());
    #[cfg(unix)]
    {
        assert_eq!(
            std::fs::read_link(snapshot.join("model.safetensors")).unwrap(),
            Path::new("../../blobs").join(&weights_sha)
        );
        assert_eq!(
            std::fs::read_link(snapshot.join("config.json")).unwrap(),
            Path::new("../../blobs").join(&config_etag)
        );
    }
    let mut in_snapshot: Vec<String> = std::fs::read_dir(&snapshot)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    in_snapshot.sort();
    assert_eq!(
        in_snapshot,
        [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    let leftovers: Vec<_> = walk(&cache)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("incomplete"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // the requests: the listing, five files, one of them through the CDN;
    // the token goes to the hub only
    let requests = hub.requests();
    assert_eq!(requests[0].path, "/api/models/org/tiny/revision/main");
    assert_eq!(requests.len(), 7, "{requests:#?}");
    for r in &requests {
        match r.host {
            Host::Hub => assert_eq!(r.authorization.as_deref(), Some("Bearer hf_test"), "{r:?}"),
            Host::Cdn => assert_eq!(r.authorization, None, "{r:?}"),
        }
    }
    assert_eq!(
        requests.iter().filter(|r| r.host == Host::Cdn).count(),
        1,
        "{requests:#?}"
    );
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 10, "{events:#?}");
    let size = fixture("model.safetensors").len();
    assert!(
        events.contains(&format!("start org/tiny model.safetensors Some({size})")),
        "{events:#?}"
    );
    assert!(
        events.contains(&format!("done model.safetensors {size}")),
        "{events:#?}"
    );

    // cached: no request at all, by branch or by commit
    let before = hub.request_count();
    load("org/tiny@main", &opts).unwrap();
    load("org/tiny", &opts).unwrap();
    load(&format!("org/tiny@{SHA}"), &opts).unwrap();
    assert_eq!(hub.request_count(), before);

    // a snapshot entry lost (an interrupted earlier download) is fetched
    // again, and an existing blob is linked, not downloaded
    std::fs::remove_file(snapshot.join("model.safetensors")).unwrap();
    load("org/tiny@main", &opts).unwrap();
    let again = &hub.requests()[before..];
    assert_eq!(again.len(), 2, "{again:#?}");
    assert!(again.iter().all(|r| r.host == Host::Hub), "{again:#?}");
}

#[test]
fn renamed_repositories_follow_relative_redirects() {
    let hub = FakeHub::start(vec![tiny_repo("org/tiny")]);
    let tmp = tempfile::tempdir().unwrap();
    let (old, _) = hub_support::RENAMED;
    let loaded = load(old, &options(&hub, tmp.path())).unwrap();
    let repo = tmp.path().join("models--org--renamed");
    assert_eq!(
        loaded.identity.path,
        repo.join("snapshots").join(SHA).display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        SHA
    );
}

#[test]
fn sharded_and_gguf_repositories() {
    let gguf = std::fs::read(fixtures().join("tiny-llama-q8_0.gguf")).unwrap();
    let fixture = |f: &str| std::fs::read(fixtures().join("tiny-llama").join(f)).unwrap();
    let hub = FakeHub::start(vec![
        FakeRepo::from_dir("org/sharded", SHA, &fixtures().join("tiny-llama-sharded")),
        FakeRepo::new("org/gguf", SHA)
            .with_file("config.json", fixture("config.json"))
            .with_file("tokenizer.json", fixture("tokenizer.json"))
            .with_file("tiny-llama-q8_0.gguf", gguf.clone())
            .listing("README.md"),
        FakeRepo::new("org/ggufs", SHA)
            .with_file("a.Q4_0.gguf", gguf.clone())
            .with_file("b.Q8_0.gguf", gguf.clone()),
        FakeRepo::new("org/bin", SHA)
            .with_file("config.json", b"{}".to_vec())
            .listing("pytorch_model.bin"),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(&hub, tmp.path());

    let mut sharded = load("org/sharded", &opts).unwrap();
    let mut folder = load_path(&fixtures().join("tiny-llama-sharded"));
    assert_eq!(scores(&mut sharded), scores(&mut folder));
    assert_eq!(sharded.identity.hash, folder.identity.hash);

    // a GGUF repository: only its .gguf file is downloaded, even beside config.json
    let before = hub.request_count();
    let mut from_hub = load("org/gguf", &opts).unwrap();
    let mut file = load_path(&fixtures().join("tiny-llama-q8_0.gguf"));
    assert_eq!(from_hub.identity.format, "gguf");
    assert!(from_hub.identity.path.ends_with("tiny-llama-q8_0.gguf"));
    assert_eq!(scores(&mut from_hub), scores(&mut file));
    assert_eq!(hub.request_count() - before, 3, "{:#?}", hub.requests());
    let before = hub.request_count();
    load("org/gguf", &opts).unwrap();
    assert_eq!(hub.request_count(), before);

    let err = load("org/ggufs", &opts).unwrap_err();
    assert!(
        matches!(download_error(&err), DownloadError::SeveralGguf { .. }),
        "{err}"
    );
    let text = render(&err);
    assert!(text.contains("a.Q4_0.gguf, b.Q8_0.gguf"), "{text}");
    assert!(text.contains("pass its path"), "{text}");

    let err = load("org/bin", &opts).unwrap_err();
    let text = render(&err);
    assert!(
        text.contains("`org/bin` has no weights perplex reads"),
        "{text}"
    );
    assert!(text.contains("pytorch_model.bin"), "{text}");
    // only the listing was requested, nothing was cached
    assert!(!tmp.path().join("models--org--bin").exists());
}

#[test]
fn an_interrupted_download_leaves_nothing_half_written() {
    let hub = FakeHub::start(vec![tiny_repo("org/tiny")]);
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(&hub, tmp.path());
    let repo = tmp.path().join("models--org--tiny");
    let snapshot = repo.join("snapshots").join(SHA);

    for file in ["model.safetensors", "tokenizer.json"] {
        hub.faults.lock().unwrap().truncate = Some(file.into());
        let err = load("org/tiny", &opts).unwrap_err();
        assert!(
            matches!(download_error(&err), DownloadError::Incomplete { .. }),
            "{}",
            render(&err)
        );
        let text = render(&err);
        assert!(
            text.starts_with(
                "model `org/tiny` not found in the hub cache and could not be downloaded; \
                 looked in: org/tiny, "
            ),
            "{text}"
        );
        assert!(text.contains("stopped after"), "{text}");
        assert!(text.contains("run perplex again"), "{text}");
        // no partial file anywhere, no ref: the resolver cannot pick it up
        assert!(!snapshot.join(file).exists());
        let names: Vec<_> = walk(&repo)
            .into_iter()
            .map(|p| p.strip_prefix(&repo).unwrap().display().to_string())
            .collect();
        assert!(names.iter().all(|n| !n.contains("incomplete")), "{names:?}");
        assert!(!repo.join("refs/main").exists(), "{names:?}");
        std::fs::remove_dir_all(&repo).unwrap();
    }

    // files that arrived are kept: a retry fetches only what is missing
    hub.faults.lock().unwrap().truncate = Some("model.safetensors".into());
    load("org/tiny", &opts).unwrap_err();
    assert!(snapshot.join("config.json").is_file());
    hub.faults.lock().unwrap().truncate = None;
    let before = hub.request_count();
    load("org/tiny", &opts).unwrap();
    let retry = &hub.requests()[before..];
    let paths: Vec<_> = retry.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths.len(), 3, "{paths:#?}");
    assert!(
        paths[1].ends_with(&format!("/resolve/{SHA}/model.safetensors")),
        "{paths:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        SHA
    );
}

#[test]
fn offline_mode_sends_no_request() {
    let hub = FakeHub::start(vec![tiny_repo("org/tiny")]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let mut opts = options(&hub, &cache);
    opts.hub.offline = Some(true);
    let err = load("org/tiny", &opts).unwrap_err();
    assert_eq!(hub.request_count(), 0);
    assert!(!cache.exists());
    let ref_file = cache.join("models--org--tiny/refs/main");
    assert_eq!(
        render(&err),
        format!(
            "model `org/tiny` not found in the hub cache and could not be downloaded; looked in: \
             org/tiny, {}\n\
             caused by: offline mode is on (HF_HUB_OFFLINE), so no download was tried\n\
             hint: unset HF_HUB_OFFLINE to let perplex download it, or download it where the hub \
             is reachable (`huggingface-cli download org/tiny`) into this machine's hub cache, or \
             pass the path of a model folder or a .gguf file",
            ref_file.display()
        )
    );

    // a cached model needs no network, offline or not
    opts.hub.offline = Some(false);
    load("org/tiny", &opts).unwrap();
    let before = hub.request_count();
    opts.hub.offline = Some(true);
    load("org/tiny", &opts).unwrap();
    assert_eq!(hub.request_count(), before);
}

#[test]
fn hub_errors_are_named_with_a_hint() {
    let hub = FakeHub::start(vec![tiny_repo("org/tiny")]);
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(&hub, tmp.path());

    let err = load("org/nope", &opts).unwrap_err();
    let text = render(&err);
    assert!(
        text.contains(&format!(
            "caused by: {}/api/models/org/nope/revision/main answered HTTP 401 (RepoNotFound: \
             Repository not found)",
            hub.endpoint
        )),
        "{text}"
    );
    assert!(text.contains("set HF_TOKEN"), "{text}");

    let err = load("org/tiny@v9", &opts).unwrap_err();
    let text = render(&err);
    assert!(text.contains("HTTP 404 (RevisionNotFound"), "{text}");
    assert!(text.contains("check the revision"), "{text}");
    assert!(!tmp.path().join("models--org--tiny").exists());

    // nothing listens: a quick connection error
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut opts = opts.clone();
    opts.hub.endpoint = Some(endpoint.clone());
    let start = Instant::now();
    let err = load("org/tiny", &opts).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(download_error(&err), DownloadError::Request { .. }),
        "{err}"
    );
    let text = render(&err);
    assert!(
        text.contains(&format!(
            "caused by: request to {endpoint}/api/models/org/tiny/revision/main failed"
        )),
        "{text}"
    );
    assert!(text.contains("check the network connection"), "{text}");
}
