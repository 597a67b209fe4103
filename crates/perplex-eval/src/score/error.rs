//! Why a score run or a merge failed, beyond what every run can fail on:
//! the inputs streamed, the rows and journal written, a resume refused, a
//! set of shards that does not make a corpus. Each names the file.

use std::path::PathBuf;

use perplex_core::score::Shard;
use perplex_data::corpus::CorpusError;
use perplex_data::rows::RowsError;

/// A score run or merge that cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// A document could not be read.
    #[error(transparent)]
    Input(#[from] CorpusError),
    /// A row file could not be read.
    #[error(transparent)]
    Rows(#[from] RowsError),
    /// An output (rows, journal, summary) could not be written.
    #[error("cannot write {}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The journal of an interrupted run is damaged beyond its last line.
    #[error("the journal {} is damaged at line {line}: {why}", path.display())]
    Journal {
        /// The journal.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// An interrupted run's output was made by another run.
    #[error(
        "{} holds the unfinished output of a run with another {what}: {was}, not {now}",
        partial.display()
    )]
    ResumeMismatch {
        /// The unfinished output's folder.
        partial: PathBuf,
        /// What differs: `model`, `tokenizer`, `protocol`, `corpus`, …
        what: &'static str,
        /// What the earlier run had.
        was: String,
        /// What this run has.
        now: String,
    },
    /// The corpus read again is not the one the committed rows came from.
    #[error(
        "the corpus changed since {} was written: its first {documents} documents hash \
         differently",
        partial.display()
    )]
    CorpusChanged {
        /// The unfinished output's folder.
        partial: PathBuf,
        /// Documents compared.
        documents: u64,
    },
    /// A finished output exists, made by another run.
    #[error(
        "{} already holds the finished output of a run with another {what}: {was}, not {now}",
        path.display()
    )]
    OutputExists {
        /// The summary found.
        path: PathBuf,
        /// What differs.
        what: &'static str,
        /// What the earlier run had.
        was: String,
        /// What this run has.
        now: String,
    },
    /// A row output's format cannot be told from its name.
    #[error("cannot tell the format of {} from its extension", path.display())]
    UnknownFormat {
        /// The output.
        path: PathBuf,
    },
    /// A shard output has no summary beside it.
    #[error("{} has no summary {}", rows.display(), summary.display())]
    NoSummary {
        /// The shard's rows.
        rows: PathBuf,
        /// The summary expected beside it.
        summary: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A summary is not a score summary of this version.
    #[error("{} is not a perplex score summary", path.display())]
    BadSummary {
        /// The summary.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Shards of different runs.
    #[error(
        "{} and {} come from runs with another {what}: {first}, not {other}",
        first_path.display(), other_path.display()
    )]
    ShardsDiffer {
        /// The first shard's output.
        first_path: PathBuf,
        /// The differing shard's output.
        other_path: PathBuf,
        /// What differs.
        what: &'static str,
        /// The first shard's value.
        first: String,
        /// The other's.
        other: String,
    },
    /// The same shard given twice.
    #[error("shard {shard} is given twice: {} and {}", first.display(), second.display())]
    DuplicateShard {
        /// The shard.
        shard: Shard,
        /// Its first output.
        first: PathBuf,
        /// The second.
        second: PathBuf,
    },
    /// Shards missing from the set.
    #[error("{} of {count} shards {} missing: {}", missing.len(), if missing.len() == 1 { "is" } else { "are" }, list(missing))]
    MissingShards {
        /// The shard count.
        count: u32,
        /// The missing indices.
        missing: Vec<u32>,
    },
    /// A shard's rows disagree with its summary (a file replaced or cut).
    #[error("{} holds {rows} row{}, but its summary counts {expected}", path.display(), if *rows == 1 { "" } else { "s" })]
    RowCount {
        /// The rows file.
        path: PathBuf,
        /// Rows read.
        rows: u64,
        /// Rows the summary counts.
        expected: u64,
    },
}

fn list(missing: &[u32]) -> String {
    let shown: Vec<String> = missing.iter().take(10).map(u32::to_string).collect();
    let more = missing.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl ScoreError {
    /// What an I/O error on `path` is to a run: [`ScoreError::Output`].
    pub(crate) fn on(path: &std::path::Path) -> impl Fn(std::io::Error) -> crate::EvalError + '_ {
        move |source| {
            ScoreError::Output {
                path: path.to_path_buf(),
                source,
            }
            .into()
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ScoreError::Input(e) => e.hint(),
            ScoreError::Rows(e) => e.hint(),
            ScoreError::Output { .. } => {
                Some("check that the output's folder exists, has room and is writable".into())
            }
            ScoreError::Journal { path, .. } => Some(format!(
                "the unfinished output cannot be resumed: delete {} to start over",
                path.parent().unwrap_or(path).display()
            )),
            ScoreError::ResumeMismatch { partial, .. }
            | ScoreError::CorpusChanged { partial, .. } => Some(format!(
                "rerun with the earlier run's model, options and inputs to resume it, or \
                     delete {} (or write to another --output) to start over",
                partial.display()
            )),
            ScoreError::OutputExists { .. } => Some(
                "write to another --output, or delete the existing output and its .summary.json"
                    .into(),
            ),
            ScoreError::UnknownFormat { .. } => {
                Some("name the output .parquet or .jsonl, or give --output-format".into())
            }
            ScoreError::NoSummary { .. } | ScoreError::BadSummary { .. } => Some(
                "give the outputs of finished `perplex score` runs: each is written with its \
                 .summary.json beside it"
                    .into(),
            ),
            ScoreError::ShardsDiffer { .. } => Some(
                "merge only the shards of one run: the same model, options and inputs, with \
                 --shard 0/N to N-1/N"
                    .into(),
            ),
            ScoreError::DuplicateShard { .. } => Some("give each shard's output once".into()),
            ScoreError::MissingShards { .. } => Some(
                "run the missing shards (rerunning a shard's command resumes it), then merge \
                 every shard's output"
                    .into(),
            ),
            ScoreError::RowCount { .. } => Some(
                "the rows file was changed after the run; rerun that shard into a fresh output"
                    .into(),
            ),
        }
    }
}
