//! Following training: every checkpoint of a run evaluated on the same
//! tokens, with the trainer's own losses beside the measured perplexity.
//!
//! A run folder holds checkpoints as the Hugging Face `Trainer` writes them
//! (`checkpoint-N/`, full weights or a PEFT adapter) or any folders / GGUF
//! files with a step number in their name. Adapter checkpoints are applied
//! to a base: `--base`, else their `adapter_config.json`'s
//! `base_model_name_or_path` (a relative path is looked for from here, then
//! from the run folder and each folder above it; else it is a hub id). `trainer_state.json` (the run's, else
//! the last checkpoint's) gives the training loss and `eval_loss` by step.

use std::path::{Path, PathBuf};
use std::time::Instant;

use perplex_core::diagnose::{diagnose, DiagnoseSettings};
use perplex_core::inspect::Check;
use perplex_core::report::{
    fill_changes, CorpusIdentity, ProtocolInfo, Report, SweepPoint, SweepReport, TrainerLoss,
    SWEEP_SCHEMA_VERSION,
};
use perplex_core::sink::Sink;
use perplex_data::Corpus;

use crate::error::EvalError;
use crate::evaluate::{timing, tool_info, Evaluation};
use crate::model::{add_new, Model};
use crate::options::EvalOptions;
use crate::sweep_error::SweepError;

/// Loads a model from its spec (a folder, a GGUF file, a hub id,
/// `BASE+ADAPTER`): how sweeps and watches get each checkpoint, whatever
/// crate does the loading. Its error type is the caller's, so load
/// failures keep their own kind.
pub type Loader<'l, E> = dyn FnMut(&str) -> Result<Model, E> + 'l;

/// How a checkpoint stores its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// A Hugging Face model folder (`config.json` + weights).
    Model,
    /// A PEFT adapter folder, applied to the base.
    Adapter,
    /// A GGUF file.
    Gguf,
}

/// One checkpoint of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Training step (the last number in its name).
    pub step: u64,
    /// The folder or file.
    pub path: PathBuf,
    /// What it holds.
    pub kind: CheckpointKind,
}

/// The last run of ASCII digits in `name`, as a step.
fn step_of(name: &str) -> Option<u64> {
    let digits: String = name
        .chars()
        .rev()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// The checkpoints of `run`, by step. Folders without a model or adapter,
/// and names without a number, are not checkpoints.
pub fn discover(run: &Path) -> Result<Vec<Checkpoint>, EvalError> {
    if !run.is_dir() {
        return Err(EvalError::NoRunFolder {
            path: run.to_path_buf(),
        });
    }
    let list = |source| SweepError::ListRun {
        path: run.to_path_buf(),
        source,
    };
    let entries = std::fs::read_dir(run).map_err(list)?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(list)?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some(step) = step_of(&name) else { continue };
        let kind = if path.is_dir() && path.join("adapter_config.json").is_file() {
            CheckpointKind::Adapter
        } else if path.is_dir() && path.join("config.json").is_file() {
            CheckpointKind::Model
        } else if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
            CheckpointKind::Gguf
        } else {
            continue;
        };
        found.push(Checkpoint { step, path, kind });
    }
    found.sort_by(|a, b| a.step.cmp(&b.step).then(a.path.cmp(&b.path)));
    Ok(found)
}

/// `path` as JSON.
fn read_json(path: &Path) -> Result<serde_json::Value, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|source| SweepError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| SweepError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The trainer's losses by step from `trainer_state.json` (the run's, else
/// the last checkpoint's that has one).
pub fn trainer_losses(
    run: &Path,
    checkpoints: &[Checkpoint],
) -> Result<Vec<TrainerLoss>, EvalError> {
    let candidates = std::iter::once(run.join("trainer_state.json")).chain(
        checkpoints
            .iter()
            .rev()
            .map(|c| c.path.join("trainer_state.json")),
    );
    let Some(path) = candidates.into_iter().find(|p| p.is_file()) else {
        return Ok(Vec::new());
    };
    let state = read_json(&path)?;
    let mut out: Vec<TrainerLoss> = Vec::new();
    let history = state["log_history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for entry in history {
        let Some(step) = entry.get("step").and_then(serde_json::Value::as_u64) else {
            continue;
        };
        let num = |k: &str| entry.get(k).and_then(serde_json::Value::as_f64);
        let (loss, eval_loss) = (num("loss"), num("eval_loss"));
        if loss.is_none() && eval_loss.is_none() {
            continue;
        }
        match out.iter_mut().find(|l| l.step == step) {
            Some(l) => {
                l.loss = l.loss.or(loss);
                l.eval_loss = l.eval_loss.or(eval_loss);
            }
            None => out.push(TrainerLoss {
                step,
                loss,
                eval_loss,
            }),
        }
    }
    out.sort_by_key(|l| l.step);
    Ok(out)
}

/// The base model for adapter checkpoints: `base`, else the first adapter's
/// `base_model_name_or_path`.
fn base_spec(
    run: &Path,
    checkpoints: &[Checkpoint],
    base: Option<&str>,
) -> Result<Option<String>, EvalError> {
    if let Some(b) = base {
        return Ok(Some(b.to_string()));
    }
    let Some(adapter) = checkpoints
        .iter()
        .find(|c| c.kind == CheckpointKind::Adapter)
    else {
        return Ok(None);
    };
    let path = adapter.path.join("adapter_config.json");
    let value = read_json(&path)?;
    let Some(name) = value["base_model_name_or_path"].as_str() else {
        return Err(SweepError::NoBase { config: path }.into());
    };
    // a relative path is relative to the trainer's working directory: try
    // here, then the run folder and every folder above it
    let found = std::iter::once(PathBuf::from(name))
        .chain(run.ancestors().map(|a| a.join(name)))
        .find(|p| p.join("config.json").is_file() || p.is_file());
    Ok(Some(match found {
        Some(p) => p.display().to_string(),
        None => name.to_string(), // a hub id
    }))
}

/// Evaluates checkpoints of one run, one at a time, on the same tokens:
/// what `sweep` does in one go and `watch` as checkpoints appear.
pub struct Sweeper<'a, E> {
    run: PathBuf,
    corpus: &'a Corpus,
    options: &'a EvalOptions,
    loader: &'a mut Loader<'a, E>,
    base: Option<String>,
    base_report: Option<Report>,
    /// The first model's token ids, to catch a checkpoint that tokenises
    /// differently.
    reference: Option<Vec<Vec<u32>>>,
    meta: Option<(CorpusIdentity, ProtocolInfo)>,
    untrained: Vec<String>,
    warnings: Vec<Check>,
}

impl<'a, E: From<EvalError>> Sweeper<'a, E> {
    /// A sweeper for `run`; `base` overrides the adapters' own base;
    /// `loader` loads each model.
    pub fn new(
        run: &Path,
        base: Option<&str>,
        corpus: &'a Corpus,
        options: &'a EvalOptions,
        loader: &'a mut Loader<'a, E>,
    ) -> Self {
        Sweeper {
            run: run.to_path_buf(),
            corpus,
            options,
            loader,
            base: base.map(str::to_string),
            base_report: None,
            reference: None,
            meta: None,
            untrained: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn run_one(&mut self, spec: &str, sink: &mut dyn Sink) -> Result<(Report, bool), E> {
        let model = (self.loader)(spec)?;
        if model.checks.iter().any(|c| c.code == "untrained-lora") {
            self.untrained.push(spec.to_string());
        }
        add_new(&mut self.warnings, model.warnings(self.options));
        let Model {
            mut lm,
            tokenizer,
            identity,
            threads,
            ..
        } = model;
        let evaluation = Evaluation::new(&tokenizer, self.corpus, self.options)?;
        let tokens = evaluation.corpus().tokens();
        let same = self.reference.get_or_insert_with(|| tokens.to_vec()) == tokens;
        let report = evaluation.run(lm.as_mut(), &tokenizer, &identity, threads, sink)?;
        self.meta
            .get_or_insert_with(|| (report.corpus.clone(), report.protocol.clone()));
        Ok((report, same))
    }

    /// The text's and protocol's identities, once a model was evaluated.
    pub fn meta(&self) -> Option<&(CorpusIdentity, ProtocolInfo)> {
        self.meta.as_ref()
    }

    /// Takes the identities from an earlier run (a resumed watch).
    pub fn resume_meta(&mut self, meta: (CorpusIdentity, ProtocolInfo)) {
        self.meta = Some(meta);
    }

    /// Evaluates the base the first time an adapter checkpoint (or
    /// `--base`) needs it.
    pub fn ensure_base(
        &mut self,
        checkpoints: &[Checkpoint],
        sink: &mut dyn Sink,
    ) -> Result<(), E> {
        if self.base_report.is_some() {
            return Ok(());
        }
        let needs = self.base.is_some()
            || checkpoints
                .iter()
                .any(|c| c.kind == CheckpointKind::Adapter);
        if !needs {
            return Ok(());
        }
        let spec = base_spec(&self.run, checkpoints, self.base.as_deref())?
            .expect("a base is given or an adapter names one");
        self.base = Some(spec.clone());
        self.base_report = Some(self.run_one(&spec, sink)?.0);
        Ok(())
    }

    /// Evaluates one checkpoint; `losses` are the trainer's.
    pub fn evaluate(
        &mut self,
        c: &Checkpoint,
        losses: &[TrainerLoss],
        sink: &mut dyn Sink,
    ) -> Result<SweepPoint, E> {
        self.ensure_base(std::slice::from_ref(c), sink)?;
        let spec = match (c.kind, &self.base) {
            (CheckpointKind::Adapter, Some(b)) => format!("{b}+{}", c.path.display()),
            _ => c.path.display().to_string(),
        };
        let (report, same_tokens) = self.run_one(&spec, sink)?;
        let trainer = losses.iter().find(|l| l.step == c.step);
        let eval_loss = trainer.and_then(|l| l.eval_loss);
        Ok(SweepPoint {
            same_tokens_as_first: same_tokens,
            train_loss: trainer.and_then(|l| l.loss),
            eval_loss,
            eval_loss_perplexity: eval_loss.map(f64::exp),
            ..SweepPoint::from_summary(c.step, spec, &report.summary)
        })
    }

    /// The report of `points` (any order; sorted by step here), with the
    /// changes and diagnoses computed over the whole curve.
    pub fn report(
        &self,
        mut points: Vec<SweepPoint>,
        losses: Vec<TrainerLoss>,
        seconds: f64,
    ) -> Result<SweepReport, EvalError> {
        points.sort_by_key(|p| p.step);
        let base_ppl = self.base_report.as_ref().and_then(|r| r.summary.perplexity);
        fill_changes(&mut points, base_ppl);
        let base_point = self
            .base_report
            .as_ref()
            .map(|r| SweepPoint::from_summary(0, r.model.spec.clone(), &r.summary));
        let untrained: Vec<String> = self
            .untrained
            .iter()
            .filter(|s| Some(*s) != self.base.as_ref())
            .cloned()
            .collect();
        let diagnoses = diagnose(
            &points,
            base_point.as_ref(),
            &untrained,
            DiagnoseSettings::default(),
        );
        let processed = points.iter().map(|p| p.scored_tokens).sum();
        let Some((corpus, protocol)) = self.meta.clone() else {
            return Err(SweepError::NothingEvaluated {
                run: self.run.to_path_buf(),
            }
            .into());
        };
        Ok(SweepReport {
            schema_version: SWEEP_SCHEMA_VERSION,
            tool: tool_info(),
            run: self.run.display().to_string(),
            corpus,
            protocol,
            base: self
                .base_report
                .as_ref()
                .map(|r| (r.model.clone(), r.summary.clone())),
            points,
            trainer: losses,
            diagnoses,
            warnings: self.warnings.clone(),
            timing: timing(processed, seconds),
        })
    }
}

/// Evaluates every checkpoint of `run` (and the base, when there is one) on
/// the same tokens, each model loaded by `loader`.
pub fn sweep<E: From<EvalError>>(
    run: &Path,
    base: Option<&str>,
    corpus: &Corpus,
    options: &EvalOptions,
    loader: &mut Loader<'_, E>,
    sink: &mut dyn Sink,
) -> Result<SweepReport, E> {
    let checkpoints = discover(run)?;
    if checkpoints.is_empty() {
        return Err(EvalError::from(SweepError::NoCheckpoints {
            run: run.to_path_buf(),
        })
        .into());
    }
    let losses = trainer_losses(run, &checkpoints)?;
    let start = Instant::now();
    let mut sweeper = Sweeper::new(run, base, corpus, options, loader);
    sweeper.ensure_base(&checkpoints, sink)?;
    let points = checkpoints
        .iter()
        .map(|c| sweeper.evaluate(c, &losses, sink))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sweeper.report(points, losses, start.elapsed().as_secs_f64())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_the_last_number_in_a_name() {
        assert_eq!(step_of("checkpoint-1200"), Some(1200));
        assert_eq!(step_of("model-v2-step500.gguf"), Some(500));
        assert_eq!(step_of("final"), None);
    }

    #[test]
    fn discovery_keeps_models_adapters_and_ggufs_by_step() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |name: &str, file: &str| {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join(file), "{}").unwrap();
        };
        dir("checkpoint-20", "adapter_config.json");
        dir("checkpoint-3", "config.json");
        dir("checkpoint-7", "optimizer.pt"); // no model: not a checkpoint
        dir("runs", "config.json"); // no step
        std::fs::write(tmp.path().join("q8-step100.gguf"), "").unwrap();
        let found = discover(tmp.path()).unwrap();
        let got: Vec<(u64, CheckpointKind)> = found.iter().map(|c| (c.step, c.kind)).collect();
        assert_eq!(
            got,
            [
                (3, CheckpointKind::Model),
                (20, CheckpointKind::Adapter),
                (100, CheckpointKind::Gguf)
            ]
        );
    }

    #[test]
    fn trainer_losses_merge_train_and_eval_entries() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("trainer_state.json"),
            r#"{"log_history": [
                {"step": 1, "loss": 3.5}, {"step": 2, "loss": 3.1},
                {"step": 2, "eval_loss": 3.3}, {"step": 2, "train_runtime": 9.0}
            ]}"#,
        )
        .unwrap();
        let l = trainer_losses(tmp.path(), &[]).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[1].step, l[1].loss, l[1].eval_loss),
            (2, Some(3.1), Some(3.3))
        );
    }
}
