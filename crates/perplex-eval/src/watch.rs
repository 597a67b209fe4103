//! Watching a training run: each checkpoint evaluated once, as soon as it is
//! completely written, with a state file so that a restart resumes.
//!
//! A checkpoint is complete when its files (names and sizes) have not
//! changed for `settle` and, for a folder, it holds `trainer_state.json` (the
//! Hugging Face `Trainer` writes it last) — or, in runs whose checkpoints
//! carry no trainer state, when it has been unchanged for three times
//! `settle`. The state file (`RUN_DIR/perplex-watch.json` by default) holds
//! every evaluated point and a hash of the text and settings; it is
//! rewritten atomically after each checkpoint, so killing the watcher loses
//! at most the checkpoint being evaluated, which is evaluated again on the
//! next start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perplex_core::report::{CorpusIdentity, ProtocolInfo, SweepPoint, SweepReport};
use perplex_core::sink::Sink;
use perplex_data::tokenized::hash_documents;
use perplex_data::Corpus;
use serde_json::json;

use crate::error::EvalError;
use crate::options::EvalOptions;
use crate::sweep::{discover, trainer_losses, CheckpointKind, Loader, Sweeper};
use crate::sweep_error::SweepError;

/// How to watch.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchOptions {
    /// Time between looks at the run folder.
    pub interval: Duration,
    /// How long a checkpoint's files must stay unchanged.
    pub settle: Duration,
    /// Stop after this long without a new checkpoint (`None`: never).
    pub exit_when_idle: Option<Duration>,
    /// Stop once a checkpoint of at least this step is evaluated.
    pub until_step: Option<u64>,
    /// The state file.
    pub state: PathBuf,
}

/// What is recorded of a run between starts.
struct State {
    settings: String,
    points: Vec<SweepPoint>,
    /// The text's and protocol's identities, once known.
    meta: Option<(CorpusIdentity, ProtocolInfo)>,
}

/// A hash of the text and the settings, so a state file is not reused for
/// another evaluation.
fn settings_hash(corpus: &Corpus, options: &EvalOptions, base: Option<&str>) -> String {
    let text = hash_documents(&corpus.documents).value;
    let settings = format!("{text} {options:?} base={base:?}");
    blake3::hash(settings.as_bytes()).to_hex().to_string()
}

fn read_state(path: &Path, settings: &str) -> Result<State, EvalError> {
    if !path.exists() {
        return Ok(State {
            settings: settings.to_string(),
            points: Vec::new(),
            meta: None,
        });
    }
    let bad = |why: String| SweepError::BadState {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if value["settings"] != settings {
        return Err(SweepError::OtherSettings {
            path: path.to_path_buf(),
        }
        .into());
    }
    let points = serde_json::from_value(value["points"].clone()).map_err(|e| bad(e.to_string()))?;
    let meta = serde_json::from_value(value["meta"].clone()).map_err(|e| bad(e.to_string()))?;
    Ok(State {
        settings: settings.to_string(),
        points,
        meta,
    })
}

fn write_state(path: &Path, state: &State) -> Result<(), EvalError> {
    let text = serde_json::to_string_pretty(&json!({
        "schema_version": 1,
        "settings": state.settings,
        "meta": state.meta,
        "points": state.points,
    }))
    .expect("points serialise");
    crate::files::write_atomically(path, |out| out.write_all(text.as_bytes())).map_err(|source| {
        SweepError::WriteState {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

/// The exclusive hold of one watcher on a state file: an OS file lock on
/// `<state>.lock` (released by the OS when the process ends, however it
/// ends, so no stale lock survives a kill), which names the holder's
/// process id for the watcher that is refused.
struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// Takes the lock of `state`, or says who holds it. `None` while the
    /// state file's folder does not exist yet (nothing can be written there).
    fn acquire(state: &Path) -> Result<Option<StateLock>, EvalError> {
        let path = state.with_extension("lock");
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        if folder.is_some_and(|f| !f.is_dir()) {
            return Ok(None);
        }
        let cannot = |source: std::io::Error| SweepError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(cannot)?;
        match file.try_lock() {
            Ok(()) => {
                use std::io::{Seek, Write};
                file.set_len(0).map_err(cannot)?;
                file.seek(std::io::SeekFrom::Start(0)).map_err(cannot)?;
                writeln!(file, "{}", std::process::id()).map_err(cannot)?;
                Ok(Some(StateLock { _file: file }))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Err(EvalError::WatchLocked {
                    state: state.to_path_buf(),
                    holder: holder.trim().parse().ok(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(cannot(e).into()),
        }
    }
}

/// Names and sizes of a checkpoint's files, sorted.
fn snapshot(path: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(m) = std::fs::metadata(&p) {
            files.push((p, m.len()));
        }
    }
    files.sort();
    files
}

/// Watches `run` and evaluates each checkpoint once it is complete, each
/// model loaded by `loader`; `updated` gets the report after each new
/// point (its error stops the watch), `log` a line per event. Returns the
/// report when an exit condition is met.
#[allow(clippy::too_many_arguments)] // the watcher's inputs are independent
pub fn watch<E: From<EvalError>>(
    run: &Path,
    base: Option<&str>,
    corpus: &Corpus,
    options: &EvalOptions,
    loader: &mut Loader<'_, E>,
    watch: &WatchOptions,
    updated: &mut dyn FnMut(&SweepReport) -> Result<(), E>,
    log: &mut dyn FnMut(&str),
    sink: &mut dyn Sink,
) -> Result<SweepReport, E> {
    let settings = settings_hash(corpus, options, base);
    let mut lock = StateLock::acquire(&watch.state)?;
    let mut state = read_state(&watch.state, &settings)?;
    if !state.points.is_empty() {
        log(&format!(
            "resuming: {} checkpoint(s) already evaluated ({})",
            state.points.len(),
            watch.state.display()
        ));
    }
    let mut sweeper = Sweeper::new(run, base, corpus, options, loader);
    if let Some(meta) = state.meta.clone() {
        sweeper.resume_meta(meta);
    }
    if run.exists() && !run.is_dir() {
        return Err(EvalError::NoRunFolder {
            path: run.to_path_buf(),
        }
        .into());
    }
    if !run.is_dir() {
        // a watcher may start before the trainer creates its folder
        log(&format!(
            "{} does not exist yet: waiting for it",
            run.display()
        ));
    }
    let start = Instant::now();
    // per checkpoint path: its last snapshot and since when it has not changed
    let mut seen: HashMap<PathBuf, (Vec<(PathBuf, u64)>, Instant)> = HashMap::new();
    let mut last_activity = Instant::now();
    loop {
        let checkpoints = discover(run).unwrap_or_default();
        let with_state = checkpoints
            .iter()
            .any(|c| c.path.join("trainer_state.json").is_file());
        for c in &checkpoints {
            if state.points.iter().any(|p| p.step == c.step) {
                continue;
            }
            let snap = snapshot(&c.path);
            let now = Instant::now();
            let since = match seen.get(&c.path) {
                Some((old, since)) if *old == snap => *since,
                _ => {
                    seen.insert(c.path.clone(), (snap, now));
                    last_activity = now;
                    continue;
                }
            };
            let stable = now.duration_since(since);
            let ready = match c.kind {
                CheckpointKind::Gguf => stable >= watch.settle,
                _ if c.path.join("trainer_state.json").is_file() => stable >= watch.settle,
                _ => !with_state && stable >= 3 * watch.settle,
            };
            if !ready {
                continue;
            }
            let losses = trainer_losses(run, &checkpoints)?;
            if lock.is_none() {
                // the run folder exists now: own its state file before writing it
                lock = StateLock::acquire(&watch.state)?;
            }
            let point = sweeper.evaluate(c, &losses, sink)?;
            log(&format!(
                "evaluated step {}: perplexity {}",
                c.step,
                point
                    .perplexity
                    .map_or_else(|| "-".into(), |p| format!("{p:.4}"))
            ));
            state.points.push(point);
            state.points.sort_by_key(|p| p.step);
            state.meta = sweeper.meta().cloned();
            write_state(&watch.state, &state)?;
            last_activity = Instant::now();
            let losses = trainer_losses(run, &checkpoints)?;
            let report =
                sweeper.report(state.points.clone(), losses, start.elapsed().as_secs_f64())?;
            updated(&report)?;
        }
        let reached = watch
            .until_step
            .is_some_and(|u| state.points.iter().any(|p| p.step >= u));
        let idle = watch
            .exit_when_idle
            .is_some_and(|d| last_activity.elapsed() >= d);
        if reached || idle {
            break;
        }
        // in short steps, so an interrupt is seen within a tenth of a second
        let wake = Instant::now() + watch.interval;
        while Instant::now() < wake {
            if sink.should_stop() {
                return Err(EvalError::Interrupted.into());
            }
            std::thread::sleep(
                wake.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            );
        }
    }
    let checkpoints = discover(run).unwrap_or_default();
    let losses = trainer_losses(run, &checkpoints)?;
    if state.points.is_empty() {
        return Err(EvalError::from(SweepError::NothingCompleted {
            run: run.to_path_buf(),
        })
        .into());
    }
    // the base is the reference of the changes and diagnoses
    sweeper.ensure_base(&checkpoints, sink)?;
    Ok(sweeper.report(state.points, losses, start.elapsed().as_secs_f64())?)
}
