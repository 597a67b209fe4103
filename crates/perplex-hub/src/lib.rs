//! The Hugging Face hub for perplex: an `org/name[@revision]` model spec
//! turned into files on disk, from the local hub cache, downloaded into it
//! and verified when missing.
//!
//! # Contract
//!
//! [`resolve`] takes the base of a model spec (what precedes any
//! `+ADAPTER`) and answers:
//!
//! - `Ok(None)`: not the hub's. The spec is an existing path (a local path
//!   always wins over a hub id of the same spelling) or has no
//!   `org/name[@revision]` shape; the caller classifies it (perplex-model
//!   does, and reports a spec that is neither).
//! - `Ok(Some(path))`: the model in the hub cache, `snapshots/<commit>/`
//!   for a safetensors model or the `.gguf` file in it for a GGUF
//!   repository. A complete cached snapshot is used without any network
//!   request; otherwise only the files perplex reads are downloaded (see
//!   [`download_snapshot`]).
//! - `Err(`[`HubError`]`)`: every place looked in and, as its source, the
//!   [`DownloadError`] saying why the download failed or was not allowed;
//!   [`HubError::hint`] says what to do.
//!
//! Nothing here reads model files beyond a shard index's file names: the
//! model crate loads what the path names. The crate writes only under the
//! cache folder, in the layout `huggingface_hub` uses (`blobs/`,
//! `snapshots/`, `refs/`), so either tool finds what the other downloaded;
//! a file appears in a snapshot only complete and checked (length, and
//! sha256 for large files), and `refs/<revision>` is written last.
//!
//! # Environment
//!
//! Each [`HubOptions`] field left `None` falls back to these variables, read
//! only when they matter (the cache for a hub id; the others only when a
//! download is needed):
//!
//! | variable | meaning |
//! |---|---|
//! | `HF_HUB_CACHE` (or `HUGGINGFACE_HUB_CACHE`) | the cache folder; else `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`, `~/.cache/huggingface/hub` ([`HubCache`]) |
//! | `HF_HUB_OFFLINE` | `1`, `true`, `yes` or `on`: never download ([`DownloadError::Offline`]) |
//! | `HF_ENDPOINT` | the hub's base URL (default [`DEFAULT_ENDPOINT`]) |
//! | `HF_TOKEN` | access token for private and gated repositories; else the file `HF_TOKEN_PATH`, else `$HF_HOME/token` (`HF_HOME` defaulting to `$XDG_CACHE_HOME/huggingface`, then `~/.cache/huggingface`) |
//! | `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` | proxies, as ureq reads them (never for a loopback endpoint) |
//!
//! The token goes to the endpoint's origin only, never to a host a redirect
//! leads to (the CDN), and never into a message or `Debug` output.
//!
//! # Why not hf-hub
//!
//! The `hf-hub` crate (Hugging Face's Rust client) was measured against this
//! crate's needs on 2026-05 (crates.io versions 0.4.3 and 1.0.0):
//!
//! - **Features.** 0.4.3's sync API (ureq 2) reads the cache from `HF_HOME`
//!   only (not `HF_HUB_CACHE`), the token from the token file only (not
//!   `HF_TOKEN`), ignores `HF_HUB_OFFLINE`, never checks a blob's sha256,
//!   writes `refs/main` after each file rather than last, leaves `.lock`
//!   files in `blobs/`, and has no notion of "the files a model needs"
//!   (sharded indexes, one GGUF among many) nor of a partial snapshot;
//!   its errors are capitalised and carry the cause in the message
//!   (`request error: …`). Its resumable `.part` downloads are the one
//!   thing it has that this crate lacks (an interrupted file is fetched
//!   again whole). 1.0.0 honours the variables and has `local_files_only`,
//!   but is async (reqwest + tokio, the blocking API runs a tokio runtime),
//!   pulls hf-xet, and does not verify sha256 on download either.
//! - **Protocol.** hf-hub 0.4.3 learns a file's commit and size from a
//!   `Range: bytes=0-0` request that must answer `X-Repo-Commit` and
//!   `Content-Range`; our fake hub (tests/hub_support), like the hub's
//!   documented API this crate uses, sends neither for a plain resolve, so
//!   our download tests fail against it at the first file
//!   (`Header x-repo-commit is missing`).
//! - **Size.** Dependencies (normal + build, `cargo tree`, unique crates):
//!   this crate's set (ureq 3 + rustls, sha2, serde_json, thiserror,
//!   fs-err) 48, all already in the workspace for other reasons but ureq;
//!   hf-hub 0.4.3 with only `ureq` 86, 34 of them new to the workspace
//!   (ureq 2 beside ureq 3, url/idna/icu, indicatif 0.17, socks, dirs);
//!   hf-hub 1.0.0 `blocking` + `rustls-tls` 236, 154 new (tokio, reqwest,
//!   hyper, hf-xet). A clean debug build of a scratch crate on the 2-core
//!   build machine (loaded by other builds): ours 28 s, hf-hub 0.4.3 63 s.
//!
//! So the protocol stays here (about 800 lines with its tests), owned and
//! tested against the fake hub; hf-hub would replace the HTTP code but not
//! the snapshot planning, the checks or the error texts, and would add a
//! second HTTP stack.

mod cache;
mod download;
mod error;
mod resolve;

pub use cache::{HubCache, RepoId};
pub use download::{download_snapshot, DownloadEvent, HubOptions, Progress, DEFAULT_ENDPOINT};
pub use error::{DownloadError, HubError};
pub use resolve::resolve;
