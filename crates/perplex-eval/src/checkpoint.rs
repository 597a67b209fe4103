//! A resumable `perplex eval`: the run's progress saved beside its report
//! as it goes, so that a run killed at any moment (SIGKILL included) and
//! rerun with the same command goes on from its last save.
//!
//! While the run goes, the report `REPORT` has a folder beside it,
//! `REPORT.partial/`, holding `run.json` (what identifies the run: model,
//! tokenizer, corpus hash, protocol, BOS, token limit, whether scored tokens
//! are kept), `checkpoint.json` (the windows scored so far, in plan order,
//! and the accumulators of every document; replaced atomically) and, with
//! `--per-token`, `tokens.jsonl` (the scored tokens so far). A save flushes
//! the scored tokens first, and records the token file's length: a resumed
//! run cuts the file back to it and appends. Saves happen after a batch, at
//! most once per [`SAVE_INTERVAL`], so a kill loses at most that much work
//! and the batch in flight. Once the run ends, the report and the per-token
//! file are written to their places (atomically) and the folder removed.
//! The report is the uninterrupted run's (its `timing` aside); the per-token
//! file is byte for byte the same.
//!
//! A rerun with another model, tokenizer, corpus or protocol is refused,
//! naming what differs.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use perplex_core::report::Hash;
use perplex_core::sink::Sink;

use crate::engine::Outcome;
use crate::error::EvalError;
use crate::files::write_atomically;
use crate::score::journal::Difference;
use crate::score::journal::{claim, read_record};
use crate::score::ScoreError;

/// The least time between two saves.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies an eval run: a resumed run must match it field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalIdentity {
    /// Hash of the model's weights.
    pub model_hash: String,
    /// Hash of the tokenizer's definition.
    pub tokenizer_hash: String,
    /// The corpus's sources.
    pub sources: Vec<String>,
    /// Hash of the corpus as evaluated.
    pub corpus_hash: Hash,
    /// The protocol, BOS and token limit, as reports describe them.
    pub protocol: String,
    /// Whether the scored tokens are kept (`--per-token`).
    pub per_token: bool,
}

impl EvalIdentity {
    fn differs(&self, now: &EvalIdentity) -> Option<Difference> {
        let pairs: [(&'static str, String, String); 5] = [
            ("model", self.model_hash.clone(), now.model_hash.clone()),
            (
                "tokenizer",
                self.tokenizer_hash.clone(),
                now.tokenizer_hash.clone(),
            ),
            (
                "corpus",
                format!("{} ({})", self.sources.join(", "), self.corpus_hash.value),
                format!("{} ({})", now.sources.join(", "), now.corpus_hash.value),
            ),
            ("protocol", self.protocol.clone(), now.protocol.clone()),
            (
                "per-token output",
                on(self.per_token).into(),
                on(now.per_token).into(),
            ),
        ];
        pairs.into_iter().find(|(_, a, b)| a != b)
    }
}

fn on(kept: bool) -> &'static str {
    if kept {
        "kept"
    } else {
        "not kept"
    }
}

/// Progress as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Windows scored, in plan order.
    pub windows: usize,
    /// The accumulators so far.
    pub outcome: Outcome,
    /// Bytes of the per-token file so far.
    pub token_bytes: u64,
}

/// The saved progress of one eval run.
#[derive(Debug)]
pub struct EvalJournal {
    partial: PathBuf,
    resumed: Option<Checkpoint>,
    tokens: Option<PathBuf>,
    last_save: Instant,
}

/// `<report>.partial`.
pub fn partial_path(report: &Path) -> PathBuf {
    crate::score::journal::partial_path(report)
}

impl EvalJournal {
    /// Opens the saved progress of a run of `identity` writing `report`:
    /// resumes it, or starts it.
    pub fn open(report: &Path, identity: &EvalIdentity) -> Result<Self, EvalError> {
        let partial = partial_path(report);
        let checkpoint_file = partial.join("checkpoint.json");
        let resuming = claim(&partial, identity, EvalIdentity::differs)?;
        let resumed = if resuming && checkpoint_file.exists() {
            Some(read_record(&checkpoint_file)?)
        } else {
            None
        };
        Ok(EvalJournal {
            tokens: identity.per_token.then(|| partial.join("tokens.jsonl")),
            partial,
            resumed,
            last_save: Instant::now(),
        })
    }

    /// Where an earlier run stopped, when one did.
    pub fn resumed(&self) -> Option<&Checkpoint> {
        self.resumed.as_ref()
    }

    /// The file the scored tokens go to while the run goes, cut back to the
    /// last save and open at its end (`None` without `--per-token`).
    pub fn tokens_file(&self) -> Result<Option<File>, EvalError> {
        let Some(path) = &self.tokens else {
            return Ok(None);
        };
        let io = |source| {
            EvalError::from(ScoreError::Output {
                path: path.clone(),
                source,
            })
        };
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        let saved = self.resumed.as_ref().map_or(0, |c| c.token_bytes);
        let length = file.metadata().map_err(io)?.len();
        if length < saved {
            return Err(ScoreError::Journal {
                path: path.clone(),
                line: 0,
                why: format!("it holds {length} bytes, fewer than the {saved} saved"),
            }
            .into());
        }
        file.set_len(saved).map_err(io)?;
        file.seek(SeekFrom::Start(saved)).map_err(io)?;
        Ok(Some(file))
    }

    /// Saves the progress after `windows` windows, unless the last save is
    /// less than [`SAVE_INTERVAL`] old (or `force`); `sink` is flushed first.
    pub(crate) fn save(
        &mut self,
        windows: usize,
        outcome: &Outcome,
        sink: &mut dyn Sink,
        force: bool,
    ) -> Result<(), EvalError> {
        if !force && self.last_save.elapsed() < SAVE_INTERVAL {
            return Ok(());
        }
        sink.flush().map_err(EvalError::Sink)?;
        let token_bytes = match &self.tokens {
            Some(path) => std::fs::metadata(path)
                .map_err(|source| ScoreError::Output {
                    path: path.clone(),
                    source,
                })?
                .len(),
            None => 0,
        };
        let checkpoint = Checkpoint {
            windows,
            outcome: outcome.clone(),
            token_bytes,
        };
        let path = self.partial.join("checkpoint.json");
        let json = serde_json::to_string(&checkpoint).expect("serialisable");
        write_atomically(&path, |w| w.write_all(json.as_bytes()))
            .map_err(|source| ScoreError::Output { path, source })?;
        self.last_save = Instant::now();
        Ok(())
    }

    /// Writes the report (through `write`) to `report` and the scored tokens
    /// to `per_token`, both atomically, and removes the saved progress.
    pub fn finish(
        self,
        report: &Path,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
        per_token: Option<&Path>,
    ) -> Result<(), EvalError> {
        if let (Some(from), Some(to)) = (&self.tokens, per_token) {
            let mut tokens = File::open(from).map_err(ScoreError::on(from))?;
            write_atomically(to, |w| std::io::copy(&mut tokens, w).map(|_| ()))
                .map_err(ScoreError::on(to))?;
        }
        write_atomically(report, write).map_err(ScoreError::on(report))?;
        std::fs::remove_dir_all(&self.partial).map_err(ScoreError::on(&self.partial))
    }
}
