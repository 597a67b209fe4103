//! The output of a score run while it runs, committed a block at a time so
//! that a run killed at any moment (SIGKILL included) resumes where it left
//! off.
//!
//! While the run goes, the output `OUT` has a folder beside it,
//! `OUT.partial/`, holding:
//! - `run.json`: what identifies the run (model and tokenizer hashes,
//!   protocol, BOS, shard, block size, inputs, output format), written
//!   before the first row;
//! - `rows.jsonl`: the committed rows, one JSON line each, in corpus order;
//! - `journal.jsonl`: one line per event: `{"run":N}` when a run starts,
//!   `{"begin":K,"documents":D}` before block K is scored, and
//!   `{"commit":K,…}` once its rows are durable, with the rows file's
//!   length, the documents read so far, the corpus hash of those documents
//!   and the totals.
//!
//! A commit writes the block's rows, syncs the rows file, then appends the
//! commit line and syncs the journal: a commit line is only ever written
//! after its rows are on disk. Resuming reads the journal up to its last
//! complete line (a line cut by the kill is dropped), cuts the rows file
//! back to the last commit's length, and refuses when `run.json` differs
//! from this run's identity or the documents read again hash differently.
//! A `begin` after the last commit is the block that was in flight: the
//! only work redone, counted in the summary.
//!
//! When the corpus ends, `OUT` is written from the committed rows (as
//! JSONL, or converted to Parquet) and `OUT.summary.json` beside it, both
//! atomically, and the folder is removed. A rerun of a finished run finds
//! the summary, checks its identity, and returns it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use perplex_core::plan::{Protocol, ResolvedBos};
use perplex_core::score::{Resumption, ScoreRow, ScoreSummary, ScoreTotals, Shard};
use perplex_data::rows::{jsonl_row, parse_jsonl_row, ParquetRowWriter, RowFormat};
use perplex_data::stream::StreamInputs;

use super::{ScoreError, ScoreOptions, ScoreOutput};
use crate::error::EvalError;
use crate::files::{write_atomically, AtomicFile};
use crate::model::Model;

/// `<rows>.summary.json`.
pub fn summary_path(rows: &Path) -> PathBuf {
    let mut name = rows.as_os_str().to_owned();
    name.push(".summary.json");
    PathBuf::from(name)
}

/// `<rows>.partial`.
pub fn partial_path(rows: &Path) -> PathBuf {
    let mut name = rows.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// How two runs differ: what, as it was, as it is now.
pub type Difference = (&'static str, String, String);

/// What identifies a run: a resumed run must match it field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The model as given.
    pub model_spec: String,
    /// Hash of the model's weights.
    pub model_hash: String,
    /// Hash of the tokenizer's definition.
    pub tokenizer_hash: perplex_core::report::Hash,
    /// The protocol.
    pub protocol: Protocol,
    /// BOS as resolved.
    pub bos: ResolvedBos,
    /// The shard.
    pub shard: Shard,
    /// Documents per block.
    pub block_documents: usize,
    /// Input files.
    pub sources: Vec<String>,
    /// Where the text comes from.
    pub text: String,
    /// The id column.
    pub id_column: Option<String>,
    /// Input columns copied into the rows.
    pub keep_columns: Vec<String>,
    /// The output format.
    pub format: String,
}

impl RunIdentity {
    /// The identity of scoring `inputs` with `model` under `options` into `output`.
    pub fn new(
        model: &Model,
        inputs: &StreamInputs,
        options: &ScoreOptions,
        output: &ScoreOutput,
    ) -> Result<Self, EvalError> {
        let settings = options.settings(&model.tokenizer)?;
        Ok(RunIdentity {
            model_spec: model.identity.spec.clone(),
            model_hash: model.identity.hash.value.clone(),
            tokenizer_hash: tokenizer_hash(&model.tokenizer),
            protocol: settings.protocol(),
            bos: settings.bos(),
            shard: options.shard,
            block_documents: options.block_documents,
            sources: inputs.sources(),
            text: inputs.text_description(),
            id_column: inputs.id_column.clone(),
            keep_columns: inputs.keep_columns.clone(),
            format: output.format.name().to_string(),
        })
    }

    /// The identity of the run `summary` describes, written as `format`.
    fn of_summary(summary: &ScoreSummary, format: RowFormat) -> Self {
        RunIdentity {
            model_spec: summary.model.spec.clone(),
            model_hash: summary.model.hash.value.clone(),
            tokenizer_hash: summary.tokenizer_hash.clone(),
            protocol: summary.protocol.protocol,
            bos: summary.protocol.bos,
            shard: summary.shards.first().copied().unwrap_or(Shard::WHOLE),
            block_documents: summary.block_documents,
            sources: summary.corpus.sources.clone(),
            text: summary.corpus.text.clone(),
            id_column: summary.corpus.id_column.clone(),
            keep_columns: summary.corpus.keep_columns.clone(),
            format: format.name().to_string(),
        }
    }

    /// The model as compared: its weights' hash (a moved file is the same
    /// model), or its spec when it has none (a mock).
    fn model(&self) -> String {
        model_name(&self.model_spec, &self.model_hash)
    }

    /// The first field in which `self` (an earlier run) differs from `now`:
    /// what, as it was, as it is now.
    pub fn differs(&self, now: &RunIdentity) -> Option<Difference> {
        let pairs: [(&'static str, String, String); 9] = [
            ("model", self.model(), now.model()),
            (
                "tokenizer",
                self.tokenizer_hash.value.clone(),
                now.tokenizer_hash.value.clone(),
            ),
            (
                "protocol",
                format!("{}, BOS {}", self.protocol, self.bos.name()),
                format!("{}, BOS {}", now.protocol, now.bos.name()),
            ),
            ("corpus", self.sources.join(", "), now.sources.join(", ")),
            (
                "text source",
                describe(&self.text, &self.id_column),
                describe(&now.text, &now.id_column),
            ),
            (
                "set of kept columns",
                self.keep_columns.join(", "),
                now.keep_columns.join(", "),
            ),
            ("shard", self.shard.to_string(), now.shard.to_string()),
            (
                "block size",
                format!("{} documents", self.block_documents),
                format!("{} documents", now.block_documents),
            ),
            ("output format", self.format.clone(), now.format.clone()),
        ];
        pairs
            .into_iter()
            .find(|(_, was, now)| was != now)
            .map(|(what, was, now)| {
                let quote = |s: String| if s.is_empty() { "none".to_string() } else { s };
                (what, quote(was), quote(now))
            })
    }
}

/// A model as resumes and merges compare it: its weights' hash (a moved
/// file is the same model), or its spec when it has none (a mock).
pub(crate) fn model_name(spec: &str, hash: &str) -> String {
    if hash.is_empty() {
        format!("`{spec}`")
    } else {
        format!("weights {}", &hash[..hash.len().min(16)])
    }
}

fn describe(text: &str, id: &Option<String>) -> String {
    match id {
        Some(id) => format!("{text} with ids from {id}"),
        None => text.to_string(),
    }
}

/// Hash of a tokenizer's full definition (vocabulary, merges, normaliser,
/// pre-tokeniser, special tokens).
pub fn tokenizer_hash(
    tokenizer: &perplex_data::tokenizer::TextTokenizer,
) -> perplex_core::report::Hash {
    let mut hasher = blake3::Hasher::new();
    match tokenizer.to_tokenizer_json(false) {
        Ok(json) => hasher.update(json.as_bytes()),
        // a tokenizer that cannot be written out is named by what it says of itself
        Err(_) => hasher.update(format!("{:?}", tokenizer.identity()).as_bytes()),
    };
    perplex_core::report::Hash {
        algorithm: "blake3".into(),
        value: hasher.finalize().to_hex().to_string(),
    }
}

/// What is committed: where a resumed run starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Committed {
    /// The unfinished output's folder.
    pub partial: PathBuf,
    /// Blocks committed.
    pub blocks: u64,
    /// Documents of the corpus read through the last committed block.
    pub read: u64,
    /// Hash of those documents.
    pub prefix: String,
    /// Rows committed.
    pub rows: u64,
    /// Bytes of the rows file.
    pub rows_bytes: u64,
    /// Totals of the committed rows.
    pub totals: ScoreTotals,
}

impl Committed {
    /// The error of a corpus that no longer starts with the committed documents.
    pub(crate) fn corpus_changed(&self) -> EvalError {
        ScoreError::CorpusChanged {
            partial: self.partial.clone(),
            documents: self.read,
        }
        .into()
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Record {
    Run {
        run: u32,
    },
    Begin {
        begin: u64,
        documents: u64,
    },
    Commit {
        commit: u64,
        read: u64,
        prefix: String,
        rows: u64,
        rows_bytes: u64,
        totals: ScoreTotals,
    },
}

/// What opening an output found.
#[derive(Debug)]
pub enum Opened {
    /// An identical run already finished it: its summary.
    Finished(Box<ScoreSummary>),
    /// A journal to go on with (new, or resumed).
    Journal(Box<Journal>),
}

/// An output being written.
#[derive(Debug)]
pub struct Journal {
    output: ScoreOutput,
    partial: PathBuf,
    rows: File,
    journal: File,
    committed: Committed,
    resumption: Resumption,
    keep_columns: Vec<String>,
}

impl Journal {
    /// Opens `output` for a run of `identity`: resumes its unfinished
    /// output, starts a new one, or finds it finished.
    pub fn open(output: &ScoreOutput, identity: &RunIdentity) -> Result<Opened, EvalError> {
        let partial = partial_path(&output.path);
        let summary = output.summary_path();
        if !partial.exists() && output.path.exists() && summary.exists() {
            let found = read_summary(&summary)?;
            let was = RunIdentity::of_summary(&found, output.format);
            return match was.differs(identity) {
                None => Ok(Opened::Finished(Box::new(found))),
                Some((what, was, now)) => Err(ScoreError::OutputExists {
                    path: summary,
                    what,
                    was,
                    now,
                }
                .into()),
            };
        }
        let rows_path = partial.join("rows.jsonl");
        let journal_path = partial.join("journal.jsonl");
        let (committed, resumption) = if claim(&partial, identity, RunIdentity::differs)? {
            read_journal(&partial, &journal_path)?
        } else {
            File::create(&journal_path).map_err(ScoreError::on(&journal_path))?;
            (
                Committed {
                    partial: partial.clone(),
                    ..Committed::default()
                },
                Resumption::default(),
            )
        };
        let rows = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&rows_path)
            .map_err(ScoreError::on(&rows_path))?;
        let length = rows.metadata().map_err(ScoreError::on(&rows_path))?.len();
        if length < committed.rows_bytes {
            return Err(ScoreError::Journal {
                path: journal_path,
                line: committed.blocks as usize,
                why: format!(
                    "the rows file holds {length} bytes, fewer than the {} committed",
                    committed.rows_bytes
                ),
            }
            .into());
        }
        // rows written after the last commit are redone
        rows.set_len(committed.rows_bytes)
            .map_err(ScoreError::on(&rows_path))?;
        let journal = OpenOptions::new()
            .append(true)
            .open(&journal_path)
            .map_err(ScoreError::on(&journal_path))?;
        let mut journal = Journal {
            output: output.clone(),
            partial,
            rows,
            journal,
            committed,
            resumption,
            keep_columns: identity.keep_columns.clone(),
        };
        journal.resumption.runs += 1;
        journal.append(
            &Record::Run {
                run: journal.resumption.runs,
            },
            false,
        )?;
        Ok(Opened::Journal(Box::new(journal)))
    }

    /// What is committed.
    pub fn committed(&self) -> &Committed {
        &self.committed
    }

    /// What earlier runs left and this one redid.
    pub fn resumption(&self) -> Resumption {
        Resumption {
            runs: self.resumption.runs - 1,
            ..self.resumption
        }
    }

    /// Records that a block of `documents` documents is about to be scored.
    pub fn begin(&mut self, documents: u64) -> Result<(), EvalError> {
        let record = Record::Begin {
            begin: self.committed.blocks,
            documents,
        };
        self.append(&record, false)
    }

    /// Makes `rows` durable, then records the commit: `read` documents of
    /// the corpus, hashing to `prefix`, have been read; `totals` are the
    /// committed rows' totals.
    pub fn commit(
        &mut self,
        rows: &[ScoreRow],
        read: u64,
        prefix: &str,
        totals: &ScoreTotals,
    ) -> Result<(), EvalError> {
        let rows_path = self.partial.join("rows.jsonl");
        let io = |source| {
            EvalError::from(ScoreError::Output {
                path: rows_path.clone(),
                source,
            })
        };
        let mut text = String::new();
        for row in rows {
            text.push_str(&jsonl_row(row));
            text.push('\n');
        }
        self.rows
            .seek(SeekFrom::Start(self.committed.rows_bytes))
            .map_err(io)?;
        self.rows.write_all(text.as_bytes()).map_err(io)?;
        self.rows.sync_data().map_err(io)?;
        let committed = Committed {
            partial: self.partial.clone(),
            blocks: self.committed.blocks + 1,
            read,
            prefix: prefix.to_string(),
            rows: self.committed.rows + rows.len() as u64,
            rows_bytes: self.committed.rows_bytes + text.len() as u64,
            totals: *totals,
        };
        self.append(
            &Record::Commit {
                commit: self.committed.blocks,
                read,
                prefix: committed.prefix.clone(),
                rows: committed.rows,
                rows_bytes: committed.rows_bytes,
                totals: *totals,
            },
            true,
        )?;
        self.committed = committed;
        Ok(())
    }

    fn append(&mut self, record: &Record, sync: bool) -> Result<(), EvalError> {
        let path = self.partial.join("journal.jsonl");
        let mut line = serde_json::to_string(record).expect("serialisable");
        line.push('\n');
        let result = self.journal.write_all(line.as_bytes()).and_then(|()| {
            if sync {
                self.journal.sync_data()
            } else {
                Ok(())
            }
        });
        result.map_err(|source| ScoreError::Output { path, source }.into())
    }

    /// Writes the finished output and its summary from the committed rows,
    /// and removes the unfinished output's folder.
    pub fn finish(self, summary: &ScoreSummary) -> Result<(), EvalError> {
        let Journal {
            output,
            partial,
            rows,
            keep_columns,
            ..
        } = self;
        drop(rows);
        let rows_path = partial.join("rows.jsonl");
        let reader = BufReader::new(File::open(&rows_path).map_err(ScoreError::on(&rows_path))?);
        let mut rows = reader.lines().enumerate().map(|(n, line)| {
            let line = line.map_err(ScoreError::on(&rows_path))?;
            parse_jsonl_row(&line).map_err(|e| {
                ScoreError::Journal {
                    path: rows_path.clone(),
                    line: n + 1,
                    why: e.to_string(),
                }
                .into()
            })
        });
        write_row_file(&output, &keep_columns, &mut rows)?;
        let summary_file = output.summary_path();
        let json = serde_json::to_string_pretty(summary).expect("serialisable");
        write_atomically(&summary_file, |w| {
            w.write_all(json.as_bytes())?;
            w.write_all(b"\n")
        })
        .map_err(ScoreError::on(&summary_file))?;
        std::fs::remove_dir_all(&partial).map_err(ScoreError::on(&partial))
    }
}

/// Writes `rows` to `output` atomically, as JSONL or Parquet.
pub(crate) fn write_row_file(
    output: &ScoreOutput,
    keep_columns: &[String],
    rows: &mut dyn Iterator<Item = Result<ScoreRow, EvalError>>,
) -> Result<(), EvalError> {
    let io = |source| {
        EvalError::from(ScoreError::Output {
            path: output.path.clone(),
            source,
        })
    };
    let mut file = AtomicFile::create(&output.path).map_err(io)?;
    match output.format {
        RowFormat::Jsonl => {
            let w = file.writer();
            for row in rows {
                w.write_all(jsonl_row(&row?).as_bytes()).map_err(io)?;
                w.write_all(b"\n").map_err(io)?;
            }
        }
        RowFormat::Parquet => {
            let metadata = [(
                "perplex.score.schema_version".to_string(),
                perplex_core::score::ROWS_SCHEMA_VERSION.to_string(),
            )];
            let mut writer = ParquetRowWriter::new(file.writer(), keep_columns, &metadata)
                .map_err(ScoreError::from)?;
            for row in rows {
                writer.write(&row?).map_err(ScoreError::from)?;
            }
            writer.finish().map_err(ScoreError::from)?;
        }
    }
    file.commit().map_err(io)
}

/// Reads a journal up to its last complete line: what is committed, and
/// what the interrupted run had begun.
fn read_journal(partial: &Path, path: &Path) -> Result<(Committed, Resumption), EvalError> {
    let io = |source| {
        EvalError::from(ScoreError::Output {
            path: path.to_path_buf(),
            source,
        })
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let mut committed = Committed {
        partial: partial.to_path_buf(),
        ..Committed::default()
    };
    let mut resumption = Resumption::default();
    let mut begun = None;
    let mut good = 0usize;
    let mut lines = bytes
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .peekable();
    while let Some((n, line)) = lines.next() {
        let last = lines.peek().is_none();
        let complete = line.ends_with(b"\n");
        let record = std::str::from_utf8(line)
            .ok()
            .and_then(|l| serde_json::from_str::<Record>(l.trim_end()).ok());
        let record = match (record, complete) {
            (Some(r), true) => r,
            // the line the kill cut short
            _ if last => break,
            _ => {
                return Err(ScoreError::Journal {
                    path: path.to_path_buf(),
                    line: n + 1,
                    why: "not a journal record".into(),
                }
                .into())
            }
        };
        good += line.len();
        // numbers no run writes, which would overflow once counted on
        let damaged = |why: String| ScoreError::Journal {
            path: path.to_path_buf(),
            line: n + 1,
            why,
        };
        match record {
            Record::Run { run } if run == u32::MAX => {
                return Err(damaged(format!("run {run} cannot be followed by another")).into())
            }
            // the next commit is block `commit + 1`, and then counts one more
            Record::Commit { commit, .. } if commit.checked_add(2).is_none() => {
                return Err(damaged(format!("block {commit} cannot be followed by another")).into())
            }
            Record::Commit {
                rows, rows_bytes, ..
            } if rows > rows_bytes => {
                return Err(damaged(format!(
                    "{rows} rows cannot take {rows_bytes} bytes (each takes a line)"
                ))
                .into())
            }
            Record::Run { run } => resumption.runs = run,
            Record::Begin { documents, .. } => begun = Some(documents),
            Record::Commit {
                commit,
                read,
                prefix,
                rows,
                rows_bytes,
                totals,
            } => {
                committed = Committed {
                    partial: partial.to_path_buf(),
                    blocks: commit + 1,
                    read,
                    prefix,
                    rows,
                    rows_bytes,
                    totals,
                };
                begun = None;
            }
        }
    }
    if good < bytes.len() {
        let file = OpenOptions::new().write(true).open(path).map_err(io)?;
        file.set_len(good as u64).map_err(io)?;
    }
    resumption.committed_rows = committed.rows;
    resumption.redone_documents = begun.unwrap_or(0);
    Ok((committed, resumption))
}

/// Claims the unfinished-output folder `partial` for a run of `identity`:
/// starts it (creates the folder and writes `run.json`; returns false), or
/// checks that the run that left it had the same identity (true: resume).
pub(crate) fn claim<T: Serialize + serde::de::DeserializeOwned>(
    partial: &Path,
    identity: &T,
    differs: fn(&T, &T) -> Option<Difference>,
) -> Result<bool, EvalError> {
    let run_file = partial.join("run.json");
    if !run_file.exists() {
        std::fs::create_dir_all(partial).map_err(ScoreError::on(partial))?;
        let json = serde_json::to_string_pretty(identity).expect("serialisable");
        write_atomically(&run_file, |w| w.write_all(json.as_bytes()))
            .map_err(ScoreError::on(&run_file))?;
        return Ok(false);
    }
    let was: T = read_record(&run_file)?;
    match differs(&was, identity) {
        None => Ok(true),
        Some((what, was, now)) => Err(ScoreError::ResumeMismatch {
            partial: partial.to_path_buf(),
            what,
            was,
            now,
        }
        .into()),
    }
}

/// Reads the JSON record `path` of an unfinished output; one that does not
/// parse is a damaged journal.
pub(crate) fn read_record<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EvalError> {
    let text = std::fs::read_to_string(path).map_err(ScoreError::on(path))?;
    serde_json::from_str(&text).map_err(|e| {
        ScoreError::Journal {
            path: path.to_path_buf(),
            line: e.line(),
            why: e.to_string(),
        }
        .into()
    })
}

/// Reads a summary written by a finished run.
pub fn read_summary(path: &Path) -> Result<ScoreSummary, EvalError> {
    let text = std::fs::read_to_string(path).map_err(ScoreError::on(path))?;
    serde_json::from_str(&text).map_err(|source| {
        ScoreError::BadSummary {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read_journal` of a journal of `lines`, or its error's message.
    fn read(lines: &str) -> Result<(Committed, Resumption), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, lines).unwrap();
        read_journal(dir.path(), &path)
            .map_err(|e| e.to_string().replace(&format!("{} ", path.display()), ""))
    }

    fn commit(block: u64, rows: u64, rows_bytes: u64) -> String {
        let totals = serde_json::to_string(&ScoreTotals::default()).unwrap();
        format!(
            "{{\"commit\":{block},\"read\":2,\"prefix\":\"ab\",\"rows\":{rows},\
             \"rows_bytes\":{rows_bytes},\"totals\":{totals}}}\n"
        )
    }

    #[test]
    fn counts_that_would_overflow_when_resumed_are_damage() {
        let (committed, resumption) =
            read(&format!("{{\"run\":2}}\n{}", commit(4, 2, 300))).unwrap();
        assert_eq!((committed.blocks, committed.rows), (5, 2));
        assert_eq!(resumption.runs, 2);

        assert_eq!(
            read("{\"run\":1}\n{\"run\":4294967295}\n").unwrap_err(),
            "the journal is damaged at line 2: run 4294967295 cannot be followed by another"
        );
        assert_eq!(
            read(&commit(u64::MAX - 1, 2, 300)).unwrap_err(),
            "the journal is damaged at line 1: block 18446744073709551614 cannot be followed \
             by another"
        );
        assert_eq!(
            read(&commit(0, u64::MAX, 300)).unwrap_err(),
            "the journal is damaged at line 1: 18446744073709551615 rows cannot take 300 bytes \
             (each takes a line)"
        );
    }
}
