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
//! Hugging Face's Rust client, `hf-hub`, was measured against this crate's
//! needs (crates.io 0.4.3, whose sync API uses ureq 2, and 1.0.0, async):
//!
//! - **Features.** 0.4.3 reads the cache from `HF_HOME` only (not
//!   `HF_HUB_CACHE`) and the token from the token file only (not
//!   `HF_TOKEN`), ignores `HF_HUB_OFFLINE`, never checks a blob's sha256,
//!   writes `refs/main` after each file rather than last, leaves `.lock`
//!   files in `blobs/`, downloads each file by branch (so a branch moving
//!   mid-download mixes commits in one snapshot), and has no notion of the
//!   files a model needs (a shard index's shards, the one GGUF among many)
//!   or of a partial snapshot; its errors are capitalised with the cause in
//!   the message (`request error: …`). It does resume `.part` files by
//!   `Range`, which this crate does not (an interrupted file is fetched
//!   again whole). 1.0.0 reads `HF_HUB_CACHE`/`HF_TOKEN`/`HF_ENDPOINT` but
//!   still not `HF_HUB_OFFLINE` (a `local_files_only` flag instead), checks
//!   no sha256 on download either, and is reqwest + tokio (its blocking API
//!   runs a tokio runtime) with hf-xet.
//! - **Our tests.** 0.4.3 run against `tests/hub_support`'s fake hub
//!   (scratch crate): the listing works; every file fails, first with 404
//!   (it asks `resolve/main/…`, the fake hub serves commits only), and with
//!   branches allowed, with `Header Content-Range is missing` (it sizes a
//!   file by a `Range: bytes=0-0` request); and it sent the
//!   `Authorization` header to the CDN host, which our tests forbid.
//! - **Size.** Unique crates compiled (`cargo tree -e normal,build`): this
//!   crate's set (ureq 3 + rustls, sha2, serde_json, thiserror, fs-err) 48,
//!   all but ureq already in the workspace for other reasons; hf-hub 0.4.3
//!   with only `ureq` 86, 34 new to the workspace (ureq 2 beside ureq 3,
//!   url/idna/icu, indicatif 0.17, socks, dirs); hf-hub 1.0.0 `blocking` +
//!   `rustls-tls` 236, 154 new (tokio, reqwest, hyper, hf-xet). A clean
//!   debug build of a scratch crate on the shared 2-core build machine:
//!   ours 30 s CPU (28 s wall at load 3), hf-hub 0.4.3 43 s CPU (63 s
//!   wall at load 5); 1.0.0 was not built.
//!
//! So the protocol stays here, owned and tested against the fake hub:
//! hf-hub would replace the HTTP code but not the snapshot planning, the
//! checks or the error texts, and would add a second HTTP stack.

mod cache;
mod download;
mod error;
mod resolve;

pub use cache::{HubCache, RepoId};
pub use download::{download_snapshot, DownloadEvent, HubOptions, Progress, DEFAULT_ENDPOINT};
pub use error::{DownloadError, HubError};
pub use resolve::resolve;
