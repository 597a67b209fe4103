//! Downloading `org/name[@revision]` specs from a fake hub on 127.0.0.1
//! (`perplex_testkit::fake_hub`) into a temporary hub cache. Cache, endpoint, token and
//! offline mode all come through `HubOptions`, so these tests read no
//! environment variable and run in parallel safely.
//!
//! A downloaded snapshot must hold the fixture's files byte for byte: the
//! model crate then loads it exactly as it loads the fixture folder.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use perplex_hub::{resolve, DownloadError, DownloadEvent, HubError, HubOptions, Progress};
use perplex_testkit::fake_hub::{self, FakeHub, FakeRepo, Host};
use perplex_testkit::fixtures;
use sha2::{Digest, Sha256};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn options(hub: &FakeHub, cache: &Path) -> HubOptions {
    HubOptions {
        cache: Some(cache.to_path_buf()),
        endpoint: Some(hub.endpoint.clone()),
        token: Some("hf_test".into()),
        offline: Some(false),
        progress: None,
    }
}

/// The model path `spec` resolves to (a hub id, so never `None`).
fn fetch(spec: &str, opts: &HubOptions) -> Result<PathBuf, HubError> {
    resolve(spec, opts).map(|path| path.expect("a hub id"))
}

/// The file names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file of `snapshot` has the bytes of the same file in `fixture`,
/// and `snapshot` has each of `expected`.
fn assert_same_files(snapshot: &Path, fixture: &Path, expected: &[&str]) {
    assert_eq!(names(snapshot), expected);
    for name in expected {
        assert!(
            std::fs::read(snapshot.join(name)).unwrap()
                == std::fs::read(fixture.join(name)).unwrap(),
            "{name} differs from the fixture's"
        );
    }
}

/// The error, its causes, and its hint, one per line.
fn render(e: &HubError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    out.push_str(&format!("\nhint: {}", e.hint().unwrap_or_default()));
    out
}

fn download_error(e: &HubError) -> &DownloadError {
    match e {
        HubError::DownloadFailed { source, .. } => source,
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
fn downloads_into_the_hub_cache_once_with_the_folders_files() {
    let hub = FakeHub::start(vec![tiny_repo("org/tiny")]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let mut opts = options(&hub, &cache);
    opts.progress = Some(Progress::new(move |e| {
        let line = match e {
            DownloadEvent::Started { repo, file, size } => format!("start {repo} {file} {size:?}"),
            DownloadEvent::Finished { file, size } => format!("done {file} {size}"),
            _ => return,
        };
        seen.lock().unwrap().push(line);
    }));

    let downloaded = fetch("org/tiny@main", &opts).unwrap();

    // the standard layout, with the fixture's files
    let repo = cache.join("models--org--tiny");
    let snapshot = repo.join("snapshots").join(SHA);
    assert_eq!(downloaded, snapshot);
    assert_same_files(
        &snapshot,
        &fixtures().join("tiny-llama"),
        &[
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ],
    );
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
    for spec in ["org/tiny@main", "org/tiny", &format!("org/tiny@{SHA}")] {
        assert_eq!(fetch(spec, &opts).unwrap(), snapshot, "{spec}");
    }
    assert_eq!(hub.request_count(), before);

    // a snapshot entry lost (an interrupted earlier download) is fetched
    // again, and an existing blob is linked, not downloaded
    std::fs::remove_file(snapshot.join("model.safetensors")).unwrap();
    fetch("org/tiny@main", &opts).unwrap();
    assert!(snapshot.join("model.safetensors").is_file());
    let again = &hub.requests()[before..];
    assert_eq!(again.len(), 2, "{again:#?}");
    assert!(again.iter().all(|r| r.host == Host::Hub), "{again:#?}");
}

#[test]
fn renamed_repositories_follow_relative_redirects() {
    let hub = FakeHub::start(vec![tiny_repo("org/tiny")]);
    let tmp = tempfile::tempdir().unwrap();
    let (old, _) = fake_hub::RENAMED;
    let path = fetch(old, &options(&hub, tmp.path())).unwrap();
    let repo = tmp.path().join("models--org--renamed");
    assert_eq!(path, repo.join("snapshots").join(SHA));
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

    // every shard the index names, and the side files
    let sharded = fetch("org/sharded", &opts).unwrap();
    let fixture = fixtures().join("tiny-llama-sharded");
    let all = names(&fixture);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    assert_same_files(&sharded, &fixture, &all);

    // a GGUF repository: only its .gguf file is downloaded, even beside config.json
    let before = hub.request_count();
    let from_hub = fetch("org/gguf", &opts).unwrap();
    assert_eq!(
        from_hub,
        tmp.path()
            .join("models--org--gguf/snapshots")
            .join(SHA)
            .join("tiny-llama-q8_0.gguf")
    );
    assert!(std::fs::read(&from_hub).unwrap() == gguf);
    assert_eq!(names(from_hub.parent().unwrap()), ["tiny-llama-q8_0.gguf"]);
    assert_eq!(hub.request_count() - before, 3, "{:#?}", hub.requests());
    let before = hub.request_count();
    assert_eq!(fetch("org/gguf", &opts).unwrap(), from_hub);
    assert_eq!(hub.request_count(), before);

    let err = fetch("org/ggufs", &opts).unwrap_err();
    assert!(
        matches!(download_error(&err), DownloadError::SeveralGguf { .. }),
        "{err}"
    );
    let text = render(&err);
    assert!(text.contains("a.Q4_0.gguf, b.Q8_0.gguf"), "{text}");
    assert!(text.contains("pass its path"), "{text}");

    let err = fetch("org/bin", &opts).unwrap_err();
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
        let err = fetch("org/tiny", &opts).unwrap_err();
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
    fetch("org/tiny", &opts).unwrap_err();
    assert!(snapshot.join("config.json").is_file());
    hub.faults.lock().unwrap().truncate = None;
    let before = hub.request_count();
    fetch("org/tiny", &opts).unwrap();
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
    opts.offline = Some(true);
    let err = fetch("org/tiny", &opts).unwrap_err();
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
    opts.offline = Some(false);
    fetch("org/tiny", &opts).unwrap();
    let before = hub.request_count();
    opts.offline = Some(true);
    fetch("org/tiny", &opts).unwrap();
    assert_eq!(hub.request_count(), before);
}

#[test]
fn hub_errors_are_named_with_a_hint() {
    let hub = FakeHub::start(vec![tiny_repo("org/tiny")]);
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(&hub, tmp.path());

    let err = fetch("org/nope", &opts).unwrap_err();
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

    let err = fetch("org/tiny@v9", &opts).unwrap_err();
    let text = render(&err);
    assert!(text.contains("HTTP 404 (RevisionNotFound"), "{text}");
    assert!(text.contains("check the revision"), "{text}");
    assert!(!tmp.path().join("models--org--tiny").exists());

    // nothing listens: a quick connection error
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut opts = opts.clone();
    opts.endpoint = Some(endpoint.clone());
    let start = Instant::now();
    let err = fetch("org/tiny", &opts).unwrap_err();
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
