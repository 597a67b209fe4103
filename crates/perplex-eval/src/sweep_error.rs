//! Why a run folder could not be swept or watched (the folder, its
//! checkpoints, the trainer's state, the watcher's state file); each with
//! what the user can do about it.

use std::path::PathBuf;

/// A run folder that cannot be swept or watched.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The run folder could not be listed.
    #[error("cannot list the run folder {}", path.display())]
    ListRun {
        /// The run folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No entry of the run folder is a checkpoint.
    #[error(
        "{} holds no checkpoints (folders or .gguf files with a step number in their name, \
         holding a model or a PEFT adapter)",
        run.display()
    )]
    NoCheckpoints {
        /// The run folder.
        run: PathBuf,
    },
    /// A trainer_state.json or adapter_config.json could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A trainer_state.json or adapter_config.json is not valid JSON.
    #[error("cannot parse {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Adapter checkpoints whose config names no base, and no `--base`.
    #[error("{} names no base_model_name_or_path", config.display())]
    NoBase {
        /// The adapter_config.json.
        config: PathBuf,
    },
    /// The sweep ended without a single evaluated checkpoint.
    #[error("no checkpoint of {} was evaluated", run.display())]
    NothingEvaluated {
        /// The run folder.
        run: PathBuf,
    },
    /// The watch ended before any checkpoint was complete.
    #[error("no checkpoint of {} was completed while watching", run.display())]
    NothingCompleted {
        /// The run folder.
        run: PathBuf,
    },
    /// The watcher's state file could not be read or parsed.
    #[error("state file {}: {why}", path.display())]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The watcher's state file was made for another text, protocol or base.
    #[error(
        "state file {}: it was made with another text, protocol or base; delete it, or give \
         --state another path",
        path.display()
    )]
    OtherSettings {
        /// The state file.
        path: PathBuf,
    },
    /// The watcher's state file could not be written.
    #[error("cannot write the state file {}", path.display())]
    WriteState {
        /// The state file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The state file's lock could not be taken (other than by a watcher
    /// holding it).
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl SweepError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            SweepError::ListRun { .. } | SweepError::Read { .. } => {
                "check that the run folder and its files are readable".into()
            }
            SweepError::NoCheckpoints { .. } => "give the training run's output folder: \
                 checkpoint-N folders (as the Trainer saves them: config.json and weights, or \
                 a PEFT adapter) or .gguf files with the step in their name"
                .into(),
            SweepError::Parse { .. } => "the file is cut off or damaged (a checkpoint still \
                 being written?); let the trainer finish it, or fix or remove the file"
                .into(),
            SweepError::NoBase { .. } => "give the base model with --base".into(),
            SweepError::NothingEvaluated { .. } => {
                "check that the checkpoints hold models perplex can load".into()
            }
            SweepError::NothingCompleted { .. } => "check that the trainer saves checkpoints \
                 into RUN_DIR, or raise --exit-when-idle (a checkpoint counts once its files \
                 stop changing for --settle seconds)"
                .into(),
            SweepError::BadState { .. } => "the state file is damaged: delete it (the \
                 checkpoints are evaluated again), or give --state another path"
                .into(),
            SweepError::OtherSettings { .. } => "delete the state file to start over with \
                 these settings, or give this watch its own --state file"
                .into(),
            SweepError::WriteState { .. } | SweepError::Lock { .. } => {
                "check that the state file's folder is writable, or give --state another path"
                    .into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_keep_the_cause_out() {
        let err = SweepError::Parse {
            path: "run/trainer_state.json".into(),
            source: serde_json::from_str::<serde_json::Value>("{").unwrap_err(),
        };
        assert_eq!(err.to_string(), "cannot parse run/trainer_state.json");
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.hint().contains("fix or remove"));
        let err = SweepError::NoBase {
            config: "run/checkpoint-5/adapter_config.json".into(),
        };
        assert_eq!(err.hint(), "give the base model with --base");
    }
}
