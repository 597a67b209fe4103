//! The default path: with `HubOptions::default()`, the cache, endpoint,
//! token and offline mode come from `HF_HUB_CACHE`, `HF_ENDPOINT`,
//! `HF_TOKEN` and `HF_HUB_OFFLINE`. Environment variables are process-wide,
//! so this binary holds this one test only.

use perplex_hub::{resolve, DownloadError, HubError, HubOptions};
use perplex_testkit::fake_hub::{FakeHub, FakeRepo, Host};

const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";

#[test]
fn the_environment_configures_downloads() {
    let fixture = perplex_testkit::fixtures().join("tiny-llama");
    let hub = FakeHub::start(vec![FakeRepo::from_dir("org/tiny", SHA, &fixture)]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    std::env::set_var("HF_HUB_CACHE", &cache);
    std::env::set_var("HF_ENDPOINT", format!("{}/", hub.endpoint));
    std::env::set_var("HF_TOKEN", "hf_from_env");
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let err = resolve("org/tiny", &HubOptions::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            HubError::DownloadFailed { source, .. } if matches!(**source, DownloadError::Offline)
        ),
        "{err}"
    );
    assert_eq!(hub.request_count(), 0);
    assert!(!cache.exists());

    std::env::remove_var("HF_HUB_OFFLINE");
    let path = resolve("org/tiny", &HubOptions::default()).unwrap();
    assert_eq!(
        path,
        Some(cache.join("models--org--tiny/snapshots").join(SHA))
    );
    let requests = hub.requests();
    assert_eq!(requests[0].path, "/api/models/org/tiny/revision/main");
    assert!(requests
        .iter()
        .filter(|r| r.host == Host::Hub)
        .all(|r| r.authorization.as_deref() == Some("Bearer hf_from_env")));
}
