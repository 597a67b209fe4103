//! Why an `org/name[@revision]` spec could not be turned into files on disk.

use std::error::Error as StdError;
use std::path::PathBuf;

/// What [`resolve`](crate::resolve) fails with.
///
/// Messages are lowercase, quote the spec and every path tried, and never
/// repeat their cause (the error's `source`); [`HubError::hint`] says what to
/// do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The model is not (completely) in the hub cache, and downloading it
    /// failed or was not allowed.
    #[error(
        "model `{spec}` not found in the hub cache and could not be downloaded; looked in: {}",
        display_paths(searched)
    )]
    DownloadFailed {
        /// What the user passed.
        spec: String,
        /// Every place that was tried, in order: the spec as a path, then the
        /// cache's ref file or snapshot folder.
        searched: Vec<PathBuf>,
        /// `org/name`.
        repo: String,
        /// Why the download failed.
        #[source]
        source: Box<DownloadError>,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl HubError {
    /// A suggestion for the user.
    pub fn hint(&self) -> Option<String> {
        match self {
            HubError::DownloadFailed { repo, source, .. } => Some(source.hint(repo)),
        }
    }
}

/// Files listed in error messages before `… and N more`.
const MAX_LISTED_FILES: usize = 20;

/// Why a model could not be downloaded.
///
/// Messages quote the URL (without its query, which may be a signature) or
/// the repository; the token never appears. [`DownloadError::hint`] says
/// what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// Offline mode forbids any network access.
    #[error("offline mode is on (HF_HUB_OFFLINE), so no download was tried")]
    Offline,
    /// No hub cache folder is known to download into.
    #[error(
        "no hub cache folder is known to download into (HF_HUB_CACHE, HF_HOME and HOME are unset)"
    )]
    NoCache,
    /// The revision cannot be stored as a ref file.
    #[error("revision `{revision}` is not a valid branch, tag or commit name")]
    InvalidRevision {
        /// What the spec named.
        revision: String,
    },
    /// The request failed before an answer arrived: name resolution,
    /// connection, TLS, timeout.
    #[error("request to {url} failed")]
    Request {
        /// The URL, without its query.
        url: String,
        /// The transport error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The hub (or a host it redirected to) answered with an error status.
    #[error("{url} answered HTTP {status}{}", status_detail(code.as_deref(), message.as_deref()))]
    Status {
        /// The URL, without its query.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The hub's `X-Error-Code`, e.g. `RepoNotFound`, `RevisionNotFound`, `GatedRepo`.
        code: Option<String>,
        /// The hub's `X-Error-Message`.
        message: Option<String>,
    },
    /// An answer that is not what the hub API documents.
    #[error("unexpected answer from {url}: {problem}")]
    BadResponse {
        /// The URL, without its query.
        url: String,
        /// What is wrong.
        problem: String,
        /// The JSON error, when the answer does not parse.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The repository has no weights perplex reads.
    #[error(
        "`{repo}` has no weights perplex reads (model.safetensors, \
         model.safetensors.index.json or a .gguf file); its files: {}",
        list_files(files)
    )]
    NoWeights {
        /// `org/name`.
        repo: String,
        /// The repository's files.
        files: Vec<String>,
    },
    /// The repository has safetensors weights but no `config.json`.
    #[error("`{repo}` has safetensors weights but no config.json")]
    NoConfig {
        /// `org/name`.
        repo: String,
    },
    /// The repository has no safetensors weights and several GGUF files.
    #[error(
        "`{repo}` has several .gguf files and no safetensors weights: {}",
        list_files(files)
    )]
    SeveralGguf {
        /// `org/name`.
        repo: String,
        /// The `.gguf` files.
        files: Vec<String>,
    },
    /// A transfer ended before the whole file arrived.
    #[error("download of {url} stopped after {received}{} bytes", of_expected(*expected))]
    Incomplete {
        /// The URL, without its query.
        url: String,
        /// Bytes received.
        received: u64,
        /// Bytes announced, when known.
        expected: Option<u64>,
        /// The read error, when the connection failed (rather than ended early).
        #[source]
        source: Option<std::io::Error>,
    },
    /// A file's content does not match the sha256 the hub announced.
    #[error("the download of {url} has sha256 {actual}, but the hub announced {expected}")]
    Checksum {
        /// The URL, without its query.
        url: String,
        /// The hub's sha256.
        expected: String,
        /// The received content's.
        actual: String,
    },
    /// Writing into the cache failed (the message names the file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn status_detail(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    }
}

fn of_expected(expected: Option<u64>) -> String {
    expected.map_or_else(String::new, |n| format!(" of {n}"))
}

fn list_files(files: &[String]) -> String {
    if files.is_empty() {
        return "none".into();
    }
    let mut shown = files
        .iter()
        .take(MAX_LISTED_FILES)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > MAX_LISTED_FILES {
        shown.push_str(&format!(" … and {} more", files.len() - MAX_LISTED_FILES));
    }
    shown
}

impl DownloadError {
    /// What to do about it; `repo` is the `org/name` being downloaded.
    pub fn hint(&self, repo: &str) -> String {
        let elsewhere = format!(
            "download it where the hub is reachable (`huggingface-cli download {repo}`) into \
             this machine's hub cache, or pass the path of a model folder or a .gguf file"
        );
        match self {
            DownloadError::Offline => {
                format!("unset HF_HUB_OFFLINE to let perplex download it, or {elsewhere}")
            }
            DownloadError::NoCache => "set HF_HUB_CACHE (or HF_HOME) to a writable folder, or \
                                       pass the path of a model folder or a .gguf file"
                .into(),
            DownloadError::InvalidRevision { .. } => {
                "a revision is a branch, tag or commit, e.g. `org/name@main`".into()
            }
            DownloadError::Request { .. } => format!(
                "check the network connection, any proxy (HTTPS_PROXY) and HF_ENDPOINT; \
                 offline, {elsewhere}"
            ),
            DownloadError::Status { status, code, .. } => match (code.as_deref(), status) {
                (Some("RevisionNotFound"), _) => format!(
                    "check the revision after `@`: it must be a branch, tag or commit of `{repo}`"
                ),
                (Some("GatedRepo"), _) => format!(
                    "`{repo}` is gated: accept its conditions on the hub, then set HF_TOKEN (or \
                     run `huggingface-cli login`)"
                ),
                (_, 401 | 403 | 404) => format!(
                    "check the name `{repo}`; a private or gated repository needs a token: set \
                     HF_TOKEN (or run `huggingface-cli login`)"
                ),
                (_, 429 | 500..=599) => {
                    format!("the hub is busy or unavailable: try again later, or {elsewhere}")
                }
                _ => format!("check HF_ENDPOINT; or {elsewhere}"),
            },
            DownloadError::BadResponse { .. } => {
                format!("check that HF_ENDPOINT is a Hugging Face hub; or {elsewhere}")
            }
            DownloadError::NoWeights { .. } => {
                "perplex reads safetensors and GGUF weights, not PyTorch .bin checkpoints: \
                 choose a repository with one of those (or convert the checkpoint)"
                    .into()
            }
            DownloadError::NoConfig { .. } => {
                "perplex needs config.json beside safetensors weights: download the model folder \
                 and pass its path"
                    .into()
            }
            DownloadError::SeveralGguf { .. } => format!(
                "download the one you want (`huggingface-cli download {repo} FILE.gguf`) and pass \
                 its path; choosing a file inside an `org/name` spec is not supported yet"
            ),
            DownloadError::Incomplete { .. } | DownloadError::Checksum { .. } => {
                "the transfer was interrupted or corrupted and nothing partial was kept: run \
                 perplex again to retry"
                    .into()
            }
            DownloadError::Io(_) => {
                "check that the hub cache folder (HF_HUB_CACHE) is writable and has space".into()
            }
        }
    }
}
