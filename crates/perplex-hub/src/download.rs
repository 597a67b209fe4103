//! Downloading `org/name[@revision]` models from the Hugging Face hub into
//! the local hub cache.
//!
//! [`resolve`](crate::resolve) calls [`download_snapshot`] only when the
//! cache does not already hold a usable snapshot: a cached model costs no
//! network request.
//!
//! # Protocol
//!
//! The hub's public HTTP API, from an endpoint (`HF_ENDPOINT`, default
//! <https://huggingface.co>):
//!
//! 1. `GET {endpoint}/api/models/{repo}/revision/{revision}` answers JSON
//!    with `sha`, the commit the revision points to, and `siblings`, the
//!    repository's files as `[{"rfilename": …}]`.
//! 2. `GET {endpoint}/{repo}/resolve/{commit}/{file}` answers the file,
//!    often through redirects (to a CDN for large files, or from a renamed
//!    repository). The hub's own answer names the content: `X-Linked-Etag`
//!    (large files: their sha256) or else `ETag`; `X-Linked-Size` is the
//!    large file's size.
//!
//! A token (`HF_TOKEN`, else the token file) is sent as
//! `Authorization: Bearer …` to the endpoint's origin only, never to a host
//! a redirect leads to. Errors carry the hub's `X-Error-Code` and
//! `X-Error-Message` when it sends them.
//!
//! # What is downloaded
//!
//! Only what perplex reads: `config.json`, `generation_config.json`,
//! `tokenizer.json` and `tokenizer_config.json` (those the repository has),
//! and the weights: `model.safetensors`, else
//! `model.safetensors.index.json` and every shard it names, else the
//! repository's `.gguf` file when it has exactly one (with several, the
//! choice is the user's: [`DownloadError::SeveralGguf`]). PyTorch `.bin`
//! checkpoints are never downloaded.
//!
//! # Cache layout
//!
//! The layout `huggingface_hub` reads and writes, so either tool finds what
//! the other downloaded ([`HubCache`] describes where the cache is):
//!
//! - `models--org--name/blobs/<name>`: the content, named by its `ETag`
//!   (for large files, their sha256) or, when the hub sends none, by the
//!   sha256 of the bytes;
//! - `models--org--name/snapshots/<commit>/<file>`: a relative symbolic link
//!   to the blob (a copy where links cannot be made);
//! - `models--org--name/refs/<revision>`: the commit, written last.
//!
//! # Failure safety
//!
//! A file is received into `blobs/<name>.<pid>.incomplete`, checked against
//! `Content-Length` and `X-Linked-Size` (and, for large files, its sha256),
//! synced, and only then renamed to its blob name and linked into the
//! snapshot. A failed transfer deletes its temporary file, so the snapshot
//! never shows a partial file; files that did arrive are kept, and the next
//! attempt fetches only what is missing.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cache::{HubCache, RepoId};
use crate::error::DownloadError;

/// The hub perplex talks to when neither [`HubOptions::endpoint`] nor
/// `HF_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Time to resolve the hub's host name, and again to connect to it: an
/// offline machine fails in seconds, not minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for response headers, or for any single read of a body.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed per request.
const MAX_REDIRECTS: usize = 10;
/// Largest JSON answer accepted (the revision listing, a shard index).
const MAX_JSON_BYTES: u64 = 64 << 20;

/// The small files perplex reads beside the weights, downloaded when the
/// repository has them, in this order.
const SIDE_FILES: [&str; 4] = [
    "config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "tokenizer.json",
];
const SINGLE_SAFETENSORS: &str = "model.safetensors";
const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";

/// Where the hub cache is and how to reach the hub. Every field left `None`
/// falls back to the environment, which is read only when it matters (the
/// cache for any hub id, the rest only when a download is needed).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HubOptions {
    /// The hub cache folder (the `hub` folder); `None`: the one the
    /// environment selects ([`HubCache::from_env`]).
    pub cache: Option<PathBuf>,
    /// The hub's base URL; `None`: `HF_ENDPOINT`, else [`DEFAULT_ENDPOINT`].
    pub endpoint: Option<String>,
    /// The access token for private and gated repositories; `None`:
    /// `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, else
    /// `$HF_HOME/token`, `HF_HOME` defaulting to `~/.cache/huggingface`);
    /// `Some("")`: no token.
    pub token: Option<String>,
    /// `Some(true)`: never download (offline mode); `None`: offline when
    /// `HF_HUB_OFFLINE` is `1`, `true`, `yes` or `on`.
    pub offline: Option<bool>,
    /// Told about each downloaded file; `None`: downloads are silent.
    pub progress: Option<Progress>,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("HubOptions")
            .field("cache", &self.cache)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .field("progress", &self.progress)
            .finish()
    }
}

/// What a download is doing, for [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownloadEvent<'a> {
    /// A file starts downloading.
    Started {
        /// `org/name`.
        repo: &'a str,
        /// The file's name in the repository.
        file: &'a str,
        /// Its size, when the hub tells it.
        size: Option<u64>,
    },
    /// More of the file arrived.
    Received {
        /// The file's name in the repository.
        file: &'a str,
        /// Bytes so far.
        received: u64,
        /// Its size, when the hub tells it.
        size: Option<u64>,
    },
    /// The file is complete, checked, and in the cache.
    Finished {
        /// The file's name in the repository.
        file: &'a str,
        /// Its size.
        size: u64,
    },
}

/// A callback told about downloads (the library itself never prints).
/// Two `Progress` values are equal when they share one callback.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(&DownloadEvent<'_>) + Send + Sync>);

impl Progress {
    /// Wraps `callback`; it runs on the loading thread, between reads, so it
    /// should be quick.
    pub fn new(callback: impl Fn(&DownloadEvent<'_>) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(callback))
    }

    fn emit(&self, event: DownloadEvent<'_>) {
        (self.0)(&event);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl PartialEq for Progress {
    fn eq(&self, other: &Progress) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Progress {}

/// [`HubOptions`] with every field settled.
struct Hub {
    endpoint: String,
    token: Option<String>,
    offline: bool,
    progress: Option<Progress>,
}

impl HubOptions {
    /// Fills unset fields from `var` (the environment, in production).
    fn settle(&self, var: impl Fn(&str) -> Option<OsString>) -> Hub {
        let nonempty = |k: &str| {
            var(k)
                .map(|v| v.to_string_lossy().trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| nonempty("HF_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        let offline = self.offline.unwrap_or_else(|| {
            nonempty("HF_HUB_OFFLINE").is_some_and(|v| {
                ["1", "true", "yes", "on"]
                    .iter()
                    .any(|t| v.eq_ignore_ascii_case(t))
            })
        });
        let token = match &self.token {
            Some(t) => Some(t.trim().to_string()),
            None => nonempty("HF_TOKEN").or_else(|| {
                let file = nonempty("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| {
                    let home = nonempty("HF_HOME").map(PathBuf::from).or_else(|| {
                        nonempty("XDG_CACHE_HOME")
                            .map(|c| PathBuf::from(c).join("huggingface"))
                            .or_else(|| {
                                nonempty("HOME")
                                    .map(|h| PathBuf::from(h).join(".cache").join("huggingface"))
                            })
                    })?;
                    Some(home.join("token"))
                })?;
                // A missing or unreadable token file means no token: public
                // repositories need none, and a 401 hints at HF_TOKEN.
                std::fs::read_to_string(file)
                    .ok()
                    .map(|t| t.trim().to_string())
            }),
        }
        .filter(|t| !t.is_empty());
        Hub {
            endpoint,
            token,
            offline,
            progress: self.progress.clone(),
        }
    }
}

/// Downloads what perplex needs of `id` into `cache` (see the module docs)
/// and returns the snapshot folder, or the `.gguf` file in it for a GGUF
/// repository. Files already in the snapshot are not downloaded again.
/// Unset [`HubOptions`] fields come from the environment.
pub fn download_snapshot(
    id: &RepoId,
    cache: &HubCache,
    options: &HubOptions,
) -> Result<PathBuf, DownloadError> {
    options.settle(|k| std::env::var_os(k)).download(id, cache)
}

#[derive(Debug, Deserialize)]
struct RepoInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
}

#[derive(Debug, Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

/// What to fetch from a repository.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// Fetched in order.
    files: Vec<String>,
    /// A shard index whose shards are fetched after it.
    index: Option<String>,
    /// The GGUF file that is the model.
    gguf: Option<String>,
}

/// Chooses the files to fetch from the repository's file list.
fn plan(repo: &str, names: &BTreeSet<String>) -> Result<Plan, DownloadError> {
    let mut files: Vec<String> = SIDE_FILES
        .iter()
        .filter(|f| names.contains(**f))
        .map(|f| f.to_string())
        .collect();
    let safetensors = names.contains(SINGLE_SAFETENSORS) || names.contains(SAFETENSORS_INDEX);
    if safetensors && !names.contains("config.json") {
        return Err(DownloadError::NoConfig {
            repo: repo.to_string(),
        });
    }
    if names.contains(SINGLE_SAFETENSORS) {
        files.push(SINGLE_SAFETENSORS.to_string());
        return Ok(Plan {
            files,
            index: None,
            gguf: None,
        });
    }
    if names.contains(SAFETENSORS_INDEX) {
        return Ok(Plan {
            files,
            index: Some(SAFETENSORS_INDEX.to_string()),
            gguf: None,
        });
    }
    let ggufs: Vec<String> = names
        .iter()
        .filter(|n| {
            Path::new(n.as_str())
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        })
        .cloned()
        .collect();
    match ggufs.as_slice() {
        [one] => Ok(Plan {
            files: vec![one.clone()],
            index: None,
            gguf: Some(one.clone()),
        }),
        [] => Err(DownloadError::NoWeights {
            repo: repo.to_string(),
            files: names.iter().cloned().collect(),
        }),
        _ => Err(DownloadError::SeveralGguf {
            repo: repo.to_string(),
            files: ggufs,
        }),
    }
}

/// A repository file name that stays inside the snapshot folder.
fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains(['\\', '\0', ':'])
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// A name the hub gave (an etag) that is safe as a blob file name.
fn safe_blob_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Percent-encodes one URL path segment (everything but RFC 3986 unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `scheme://authority` of an absolute URL.
fn origin(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme_end + end])
}

/// Whether `url`'s host is `localhost` or a loopback address.
fn is_loopback(url: &str) -> bool {
    let Some(origin) = origin(url) else {
        return false;
    };
    let authority = &origin[origin.find("://").map_or(0, |i| i + 3)..];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `url` without its query or fragment, for messages.
fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_string()
}

/// Where a `Location` header leads from `current`.
fn redirect_target(current: &str, location: &str) -> Option<String> {
    if location.contains("://") {
        return Some(location.to_string());
    }
    let origin = origin(current)?;
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = &origin[..origin.find("://")?];
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    let base = without_query(current);
    let dir = &base[..base.rfind('/').filter(|&i| i >= origin.len())? + 1];
    Some(format!("{dir}{location}"))
}

/// Strips quotes and a weak marker from an `ETag`.
fn normalize_etag(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the hub said about a file, gathered over redirects.
#[derive(Debug, Default)]
struct FileMeta {
    /// The blob name: `X-Linked-Etag` from any hop, else the hub's `ETag`.
    etag: Option<String>,
    /// `X-Linked-Size`.
    linked_size: Option<u64>,
}

type Response = ureq::http::Response<ureq::Body>;

/// Distinguishes the temporary files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_name(base: &str) -> String {
    format!(
        "{base}.{}-{}.incomplete",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes a temporary file unless it was kept.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Hub {
    fn download(&self, id: &RepoId, cache: &HubCache) -> Result<PathBuf, DownloadError> {
        if self.offline {
            return Err(DownloadError::Offline);
        }
        let revision = id.revision();
        if !safe_file_name(revision) {
            return Err(DownloadError::InvalidRevision {
                revision: revision.to_string(),
            });
        }
        let agent = self.agent();
        // Nothing is written before the hub has answered: an unreachable hub
        // leaves the cache untouched.
        let info_url = format!(
            "{}/api/models/{}/revision/{}",
            self.endpoint,
            id.repo,
            encode_segment(revision)
        );
        let info: RepoInfo = self.get_json(&agent, &info_url)?;
        let bad = |problem: String| DownloadError::BadResponse {
            url: without_query(&info_url),
            problem,
            source: None,
        };
        let commit = match info.sha {
            Some(sha) if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
                sha.to_ascii_lowercase()
            }
            Some(sha) => return Err(bad(format!("`sha` is `{sha}`, not a commit hash"))),
            None => return Err(bad("no `sha` field".into())),
        };
        let names: BTreeSet<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
        let plan = plan(&id.repo, &names)?;
        let mut files = plan.files.clone();
        files.extend(plan.index.clone());
        if let Some(file) = files.iter().find(|f| !safe_file_name(f)) {
            return Err(bad(format!("unsafe file name `{file}`")));
        }

        let repo_dir = cache.root.join(id.cache_folder());
        let blobs = repo_dir.join("blobs");
        let snapshot = repo_dir.join("snapshots").join(&commit);
        fs_err::create_dir_all(&blobs)?;
        fs_err::create_dir_all(&snapshot)?;
        for file in &files {
            self.fetch_file(&agent, id, &commit, file, &blobs, &snapshot)?;
        }
        if let Some(index) = &plan.index {
            let path = snapshot.join(index);
            let text = fs_err::read_to_string(&path)?;
            let parsed: ShardIndex =
                serde_json::from_str(&text).map_err(|source| DownloadError::BadResponse {
                    url: self.file_url(id, &commit, index),
                    problem: "the shard index is not valid".into(),
                    source: Some(source),
                })?;
            let shards: BTreeSet<String> = parsed.weight_map.into_values().collect();
            for shard in &shards {
                if !safe_file_name(shard) || !names.contains(shard) {
                    return Err(DownloadError::BadResponse {
                        url: self.file_url(id, &commit, index),
                        problem: format!(
                            "the shard index names `{shard}`, which the repository does not have"
                        ),
                        source: None,
                    });
                }
                self.fetch_file(&agent, id, &commit, shard, &blobs, &snapshot)?;
            }
        }
        if revision.to_ascii_lowercase() != commit {
            write_ref(&repo_dir.join("refs").join(revision), &commit)?;
        }
        Ok(match &plan.gguf {
            Some(file) => snapshot.join(file),
            None => snapshot,
        })
    }

    fn agent(&self) -> ureq::Agent {
        let builder = ureq::Agent::config_builder();
        // A proxy (HTTPS_PROXY, …) cannot reach this machine's own loopback
        // address: a hub mirror or test server there is reached directly.
        let builder = if is_loopback(&self.endpoint) {
            builder.proxy(None)
        } else {
            builder
        };
        builder
            // statuses and redirects are handled here: the hub's own headers
            // name the blob, and the token must not follow a redirect away
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_resolve(Some(CONNECT_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(STALL_TIMEOUT))
            .timeout_per_read(Some(STALL_TIMEOUT))
            .user_agent(format!("perplex/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into()
    }

    fn file_url(&self, id: &RepoId, commit: &str, file: &str) -> String {
        let path: Vec<String> = file.split('/').map(encode_segment).collect();
        format!(
            "{}/{}/resolve/{commit}/{}",
            self.endpoint,
            id.repo,
            path.join("/")
        )
    }

    /// GETs `url`, following redirects, and returns the final `200` answer
    /// with what the hub said about the content on the way; `None` without
    /// following a redirect further once `have(etag)` says the content is
    /// already cached.
    fn get(
        &self,
        agent: &ureq::Agent,
        url: &str,
        have: impl Fn(&str) -> bool,
    ) -> Result<(Option<Response>, FileMeta), DownloadError> {
        let hub_origin = origin(&self.endpoint).unwrap_or(&self.endpoint).to_string();
        let mut meta = FileMeta::default();
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let at_hub = origin(&current) == Some(hub_origin.as_str());
            let mut request = agent.get(&current);
            if let (Some(token), true) = (&self.token, at_hub) {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = request.call().map_err(|e| DownloadError::Request {
                url: without_query(&current),
                source: Box::new(e),
            })?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let status = response.status().as_u16();
            if meta.etag.is_none() {
                // A CDN's ETag is its own business (often an MD5): only the
                // hub's names the blob the way huggingface_hub does.
                meta.etag = header("x-linked-etag")
                    .or_else(|| header("etag").filter(|_| at_hub && status == 200))
                    .map(|e| normalize_etag(&e));
            }
            if meta.linked_size.is_none() {
                meta.linked_size = header("x-linked-size").and_then(|s| s.trim().parse().ok());
            }
            if meta.etag.as_deref().is_some_and(&have) {
                return Ok((None, meta));
            }
            if (300..400).contains(&status) && status != 304 {
                let target = header("location").and_then(|l| redirect_target(&current, &l));
                match target {
                    Some(target) => {
                        current = target;
                        continue;
                    }
                    None => {
                        return Err(DownloadError::BadResponse {
                            url: without_query(&current),
                            problem: format!("HTTP {status} without a usable Location header"),
                            source: None,
                        })
                    }
                }
            }
            if status != 200 {
                let clip = |s: String| s.chars().take(200).collect::<String>();
                return Err(DownloadError::Status {
                    url: without_query(&current),
                    status,
                    code: header("x-error-code").map(clip),
                    message: header("x-error-message").map(clip),
                });
            }
            return Ok((Some(response), meta));
        }
        Err(DownloadError::BadResponse {
            url: without_query(url),
            problem: format!("more than {MAX_REDIRECTS} redirects"),
            source: None,
        })
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        agent: &ureq::Agent,
        url: &str,
    ) -> Result<T, DownloadError> {
        let (Some(response), _) = self.get(agent, url, |_| false)? else {
            return Err(DownloadError::BadResponse {
                url: without_query(url),
                problem: "no body".into(),
                source: None,
            });
        };
        let bytes = response
            .into_body()
            .into_with_config()
            .limit(MAX_JSON_BYTES)
            .read_to_vec()
            .map_err(|e| DownloadError::Request {
                url: without_query(url),
                source: Box::new(e),
            })?;
        serde_json::from_slice(&bytes).map_err(|source| DownloadError::BadResponse {
            url: without_query(url),
            problem: "not the JSON the hub API documents".into(),
            source: Some(source),
        })
    }

    /// Puts `file` into the snapshot, downloading its blob unless the cache
    /// already has it.
    fn fetch_file(
        &self,
        agent: &ureq::Agent,
        id: &RepoId,
        commit: &str,
        file: &str,
        blobs: &Path,
        snapshot: &Path,
    ) -> Result<(), DownloadError> {
        let target = snapshot.join(file);
        if target.is_file() {
            return Ok(());
        }
        let url = self.file_url(id, commit, file);
        // Another revision (or an interrupted run) may have brought the
        // content already: then the hub's answer names it and the transfer
        // is skipped.
        let cached = |etag: &str| safe_blob_name(etag) && blobs.join(etag).is_file();
        let (response, meta) = self.get(agent, &url, cached)?;
        let etag = meta.etag.filter(|e| safe_blob_name(e));
        let Some(response) = response else {
            let blob = blobs.join(etag.as_deref().unwrap_or_default());
            return link(&blob, &target, file);
        };
        let content_length: Option<u64> = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let expected = content_length.or(meta.linked_size);
        if let Some(progress) = &self.progress {
            progress.emit(DownloadEvent::Started {
                repo: &id.repo,
                file,
                size: expected,
            });
        }

        let temp_path = blobs.join(temp_name(etag.as_deref().unwrap_or("download")));
        let temp = TempFile(Some(temp_path.clone()));
        let mut out = fs_err::File::create(&temp_path)?;
        let mut reader = response.into_body().into_reader();
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut buf = vec![0u8; 256 << 10];
        let incomplete = |received, source| DownloadError::Incomplete {
            url: without_query(&url),
            received,
            expected,
            source,
        };
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(incomplete(received, Some(e))),
            };
            out.write_all(&buf[..n])?;
            hasher.update(&buf[..n]);
            received += n as u64;
            if let Some(progress) = &self.progress {
                progress.emit(DownloadEvent::Received {
                    file,
                    received,
                    size: expected,
                });
            }
        }
        if [content_length, meta.linked_size]
            .into_iter()
            .flatten()
            .any(|n| n != received)
        {
            return Err(incomplete(received, None));
        }
        let sha256 = format!("{:x}", hasher.finalize());
        if let Some(etag) = etag.as_deref().filter(|e| is_sha256_hex(e)) {
            if !etag.eq_ignore_ascii_case(&sha256) {
                return Err(DownloadError::Checksum {
                    url: without_query(&url),
                    expected: etag.to_string(),
                    actual: sha256,
                });
            }
        }
        out.sync_all()?;
        drop(out);
        let blob = blobs.join(etag.unwrap_or(sha256));
        fs_err::rename(&temp_path, &blob)?;
        temp.keep();
        link(&blob, &target, file)?;
        if let Some(progress) = &self.progress {
            progress.emit(DownloadEvent::Finished {
                file,
                size: received,
            });
        }
        Ok(())
    }
}

/// Makes `target` (the snapshot entry for `file`) a relative symbolic link
/// to `blob`, or a copy of it where links cannot be made. The entry appears
/// atomically, by rename.
fn link(blob: &Path, target: &Path, file: &str) -> Result<(), DownloadError> {
    let parent = target.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(parent)?;
    let temp_path = parent.join(temp_name(
        &target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    ));
    let temp = TempFile(Some(temp_path.clone()));
    // From snapshots/<commit>/<dirs of file>/ back to the repository folder.
    let mut relative = PathBuf::new();
    for _ in 0..file.split('/').count() + 1 {
        relative.push("..");
    }
    relative.push("blobs");
    relative.push(blob.file_name().unwrap_or_default());
    if symlink(&relative, &temp_path).is_err() {
        fs_err::copy(blob, &temp_path)?;
    }
    fs_err::rename(&temp_path, target)?;
    temp.keep();
    Ok(())
}

#[cfg(unix)]
fn symlink(original: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(original, link)
}

#[cfg(windows)]
fn symlink(original: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(original, link)
}

#[cfg(not(any(unix, windows)))]
fn symlink(_original: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Writes `refs/<revision>` atomically (no newline, as `huggingface_hub` does).
fn write_ref(path: &Path, commit: &str) -> Result<(), DownloadError> {
    if std::fs::read_to_string(path).is_ok_and(|s| s.trim() == commit) {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(parent)?;
    let temp_path = parent.join(temp_name(
        &path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    ));
    let temp = TempFile(Some(temp_path.clone()));
    fs_err::write(&temp_path, commit)?;
    fs_err::rename(&temp_path, path)?;
    temp.keep();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_only_what_perplex_reads() {
        let p = plan(
            "o/n",
            &names(&[
                "README.md",
                "config.json",
                "model.safetensors",
                "pytorch_model.bin",
                "tokenizer.json",
                "tokenizer.model",
            ]),
        )
        .unwrap();
        assert_eq!(
            p,
            Plan {
                files: vec![
                    "config.json".into(),
                    "tokenizer.json".into(),
                    "model.safetensors".into()
                ],
                index: None,
                gguf: None,
            }
        );
        let p = plan(
            "o/n",
            &names(&[
                "config.json",
                "model.safetensors.index.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "x.gguf",
            ]),
        )
        .unwrap();
        assert_eq!(p.files, ["config.json"]);
        assert_eq!(p.index.as_deref(), Some("model.safetensors.index.json"));

        let p = plan("o/n", &names(&["README.md", "sub/m.Q8_0.GGUF"])).unwrap();
        assert_eq!(p.gguf.as_deref(), Some("sub/m.Q8_0.GGUF"));
        assert_eq!(p.files, ["sub/m.Q8_0.GGUF"]);

        let err = plan("o/n", &names(&["a.gguf", "b.gguf", "config.json"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`o/n` has several .gguf files and no safetensors weights: a.gguf, b.gguf"
        );
        assert!(err
            .hint("o/n")
            .contains("huggingface-cli download o/n FILE.gguf"));
        let err = plan("o/n", &names(&["config.json", "pytorch_model.bin"])).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("its files: config.json, pytorch_model.bin"),
            "{err}"
        );
        let err = plan("o/n", &names(&["model.safetensors"])).unwrap_err();
        assert!(matches!(err, DownloadError::NoConfig { .. }), "{err}");
    }

    #[test]
    fn file_names_stay_inside_the_snapshot() {
        for ok in ["config.json", "sub/dir/m.gguf", "refs/pr/1", "v1.0"] {
            assert!(safe_file_name(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a\\b",
            "c:x",
            "./a",
        ] {
            assert!(!safe_file_name(bad), "{bad}");
        }
        assert!(safe_blob_name(
            "3f1b1e2a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
        ));
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(!safe_blob_name(bad), "{bad}");
        }
    }

    #[test]
    fn urls_are_built_and_redirects_followed() {
        assert_eq!(encode_segment("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_segment("v1.0-rc_2~"), "v1.0-rc_2~");
        assert_eq!(
            origin("https://hf.co:8443/a/b?x"),
            Some("https://hf.co:8443")
        );
        assert_eq!(origin("http://h"), Some("http://h"));
        assert_eq!(origin("no-scheme"), None);
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:9/x",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in [
            "https://huggingface.co",
            "http://127.example",
            "http://[fe80::1]",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
        let cur = "https://hf.co/o/n/resolve/abc/sub/f.json?x=1";
        assert_eq!(
            redirect_target(cur, "https://cdn.example/blob?sig=2").unwrap(),
            "https://cdn.example/blob?sig=2"
        );
        assert_eq!(
            redirect_target(cur, "//cdn.example/b").unwrap(),
            "https://cdn.example/b"
        );
        assert_eq!(
            redirect_target(cur, "/api/x").unwrap(),
            "https://hf.co/api/x"
        );
        assert_eq!(
            redirect_target(cur, "g.json").unwrap(),
            "https://hf.co/o/n/resolve/abc/sub/g.json"
        );
        assert_eq!(
            without_query(cur),
            "https://hf.co/o/n/resolve/abc/sub/f.json"
        );
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
    }

    #[test]
    fn settings_come_from_the_options_then_the_environment() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("token"), "hf_file\n").unwrap();
        let home = tmp.path().to_str().unwrap().to_string();
        let env = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let hub = HubOptions::default().settle(env(vec![]));
        assert_eq!(hub.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(hub.token, None);
        assert!(!hub.offline);

        let hub = HubOptions::default().settle(env(vec![
            ("HF_ENDPOINT", "http://mirror.example/".into()),
            ("HF_HUB_OFFLINE", "TRUE".into()),
            ("HF_HOME", home.clone()),
        ]));
        assert_eq!(hub.endpoint, "http://mirror.example");
        assert_eq!(hub.token.as_deref(), Some("hf_file"));
        assert!(hub.offline);

        let hub = HubOptions::default().settle(env(vec![
            ("HF_TOKEN", "hf_env".into()),
            ("HF_HOME", home.clone()),
            ("HF_HUB_OFFLINE", "0".into()),
        ]));
        assert_eq!(hub.token.as_deref(), Some("hf_env"));
        assert!(!hub.offline);

        let options = HubOptions {
            cache: None,
            endpoint: Some("http://127.0.0.1:1".into()),
            token: Some(String::new()),
            offline: Some(false),
            progress: None,
        };
        let hub = options.settle(env(vec![
            ("HF_TOKEN", "hf_env".into()),
            ("HF_HUB_OFFLINE", "1".into()),
        ]));
        assert_eq!(hub.endpoint, "http://127.0.0.1:1");
        assert_eq!(hub.token, None);
        assert!(!hub.offline);

        let debug = format!(
            "{:?}",
            HubOptions {
                token: Some("hf_secret".into()),
                ..HubOptions::default()
            }
        );
        assert!(!debug.contains("hf_secret"), "{debug}");
    }

    #[test]
    fn offline_mode_touches_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = HubCache {
            root: tmp.path().join("hub"),
        };
        let options = HubOptions {
            endpoint: Some("http://127.0.0.1:9".into()),
            offline: Some(true),
            ..HubOptions::default()
        };
        let id = RepoId::parse("o/n").unwrap();
        let err = download_snapshot(&id, &cache, &options).unwrap_err();
        assert!(matches!(err, DownloadError::Offline), "{err}");
        assert!(err.hint("o/n").contains("unset HF_HUB_OFFLINE"));
        assert!(!cache.root.exists());
    }

    #[test]
    fn refs_and_links_are_written_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("models--o--n");
        let blob = repo.join("blobs").join("abc");
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, "content").unwrap();
        let target = repo
            .join("snapshots")
            .join("c0mmit")
            .join("sub")
            .join("f.txt");
        link(&blob, &target, "sub/f.txt").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "content");
        #[cfg(unix)]
        assert_eq!(
            std::fs::read_link(&target).unwrap(),
            Path::new("../../../blobs/abc")
        );
        write_ref(&repo.join("refs").join("refs/pr/1"), "c0mmit").unwrap();
        assert_eq!(
            std::fs::read_to_string(repo.join("refs/refs/pr/1")).unwrap(),
            "c0mmit"
        );
        let leftovers: Vec<_> = walk(&repo)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".incomplete"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }
}
