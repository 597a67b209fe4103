//! A hub id end to end: `org/tiny` downloaded from a fake hub on 127.0.0.1
//! (`perplex_testkit::fake_hub`, serving the tiny Llama fixture) into a
//! temporary hub cache, then loaded and evaluated, through the library and
//! through the real binary. It must score exactly as the fixture folder it
//! was served from (the same bytes load the same model), and a second load
//! must come from the cache without a single request.
//!
//! Hub settings reach the library through `HubOptions` and the binary
//! through its own environment, so these tests set no variable of their own
//! process and run in parallel safely.

mod common;

use std::path::{Path, PathBuf};

use common::{json_of, perplex};
use perplex::core::Protocol;
use perplex::hub::HubOptions;
use perplex::model::LoadOptions;
use perplex::{Corpus, EvalOptions, Evaluator, Model};
use perplex_testkit::fake_hub::{FakeHub, FakeRepo};

const SHA: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// Long enough for two windows of the context below.
const TEXT: &str = "The quick brown fox jumps over the lazy dog, and then the dog \
                    chases the fox around the garden until both of them are tired.";
const CONTEXT: usize = 32;

fn folder() -> PathBuf {
    common::fixture("tiny-llama")
}

/// A hub serving the tiny Llama fixture as `org/tiny`.
fn serve_tiny_llama() -> FakeHub {
    FakeHub::start(vec![FakeRepo::from_dir("org/tiny", SHA, &folder())])
}

/// Where `org/tiny` lands in the hub cache `cache`.
fn snapshot(cache: &Path) -> PathBuf {
    cache.join("models--org--tiny/snapshots").join(SHA)
}

/// Hub settings naming everything, so that no environment variable counts.
fn hub_options(hub: &FakeHub, cache: &Path) -> HubOptions {
    HubOptions {
        cache: Some(cache.to_path_buf()),
        endpoint: Some(hub.endpoint.clone()),
        token: Some(String::new()),
        offline: Some(false),
        progress: None,
    }
}

fn perplexity(model: Model) -> f64 {
    let options = EvalOptions::new(Protocol::Chunks { context: CONTEXT }).unwrap();
    let report = Evaluator::new(model)
        .evaluate(&Corpus::from_texts([TEXT]), &options)
        .unwrap();
    assert!(report.summary.windows >= 2, "{:?}", report.summary);
    report.summary.perplexity.unwrap()
}

#[test]
fn a_downloaded_hub_id_scores_exactly_as_its_folder_then_loads_from_the_cache() {
    let hub = serve_tiny_llama();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let mut opts = hub_options(&hub, &cache);
    let load = LoadOptions::default();

    let from_folder = perplex::load_with_hub(folder().to_str().unwrap(), &load, &opts).unwrap();
    assert_eq!(hub.request_count(), 0, "a folder never asks the hub");
    let from_hub = perplex::load_with_hub("org/tiny", &load, &opts).unwrap();
    let requests = hub.requests();
    assert_eq!(requests[0].path, "/api/models/org/tiny/revision/main");
    assert_eq!(from_hub.identity.spec, "org/tiny");
    assert_eq!(
        from_hub.identity.path,
        snapshot(&cache).display().to_string()
    );
    assert_eq!(from_hub.identity.format, "hf-folder");
    assert_eq!(from_hub.identity.hash, from_folder.identity.hash);
    let expected = perplexity(from_folder);
    assert_eq!(perplexity(from_hub), expected);

    // cached: no request at all, online or offline
    let before = requests.len();
    let cached = perplex::load_with_hub("org/tiny", &load, &opts).unwrap();
    assert_eq!(perplexity(cached), expected);
    opts.offline = Some(true);
    let offline = perplex::load_with_hub("org/tiny", &load, &opts).unwrap();
    assert_eq!(perplexity(offline), expected);
    assert_eq!(hub.request_count(), before, "{:#?}", hub.requests());
}

#[test]
fn the_cli_downloads_a_hub_id_and_scores_it_exactly_as_its_folder() {
    let hub = serve_tiny_llama();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let eval = |model: &str| {
        let context = CONTEXT.to_string();
        perplex()
            .args(["eval", "-m", model, "--format", "json", "-q"])
            .args(["-c", &context, "-t", "1", TEXT])
            .env("HF_ENDPOINT", &hub.endpoint)
            .env("HF_HUB_CACHE", &cache)
            // no token from this machine's environment or token file
            .env("HF_HOME", tmp.path().join("home"))
            .env_remove("HF_TOKEN")
            .env_remove("HF_TOKEN_PATH")
            .env_remove("HF_HUB_OFFLINE")
            .output()
            .unwrap()
    };

    let from_folder = json_of(&eval(folder().to_str().unwrap()));
    assert_eq!(hub.request_count(), 0, "a folder never asks the hub");
    let from_hub = json_of(&eval("org/tiny"));
    let requests = hub.requests();
    assert_eq!(requests[0].path, "/api/models/org/tiny/revision/main");
    assert!(
        requests.iter().all(|r| r.authorization.is_none()),
        "{requests:#?}"
    );
    assert_eq!(from_hub["model"]["spec"], "org/tiny");
    assert_eq!(
        from_hub["model"]["path"],
        snapshot(&cache).display().to_string()
    );
    assert_eq!(from_hub["model"]["hash"], from_folder["model"]["hash"]);
    let perplexity = |report: &serde_json::Value| report["summary"]["perplexity"].as_f64().unwrap();
    let expected = perplexity(&from_folder);
    assert_eq!(perplexity(&from_hub), expected);

    // cached: the second run sends no request
    let before = requests.len();
    let cached = json_of(&eval("org/tiny"));
    assert_eq!(perplexity(&cached), expected);
    assert_eq!(hub.request_count(), before, "{:#?}", hub.requests());
}
