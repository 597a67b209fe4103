//! `perplex merge`: the corpus result of a sharded score run, from its
//! shards' outputs.
//!
//! Each shard's summary carries sufficient statistics (token, byte and word
//! counts, ΣNLL, Welford's mean and M2), so the corpus totals are the
//! shards' totals added: the corpus perplexity equals the unsharded run's
//! up to the order of a handful of float additions. The shards must come
//! from one run (the same model, tokenizer, protocol, corpus and shard
//! count) and cover every shard exactly once; the rows, when asked for, are
//! merged back into corpus order, which makes them the unsharded run's rows.

use std::path::{Path, PathBuf};

use perplex_core::score::{Resumption, ScoreFigures, ScoreRow, ScoreSummary, ScoreTotals, Shard};
use perplex_data::rows::{open_rows, RowReader};

use super::journal::{read_summary, summary_path, write_row_file, Difference};
use super::{ScoreError, ScoreOutput};
use crate::error::EvalError;

/// Where merged rows go, and the summary beside them.
pub type MergeOutput = ScoreOutput;

/// Merges the outputs of a sharded run's shards (`rows` files, each with
/// its summary beside it) into the corpus summary; with `output`, also the
/// rows, in corpus order, and the summary beside them.
pub fn merge(rows: &[PathBuf], output: Option<&MergeOutput>) -> Result<ScoreSummary, EvalError> {
    let mut shards: Vec<(PathBuf, ScoreSummary)> = Vec::with_capacity(rows.len());
    for path in rows {
        let summary_file = summary_path(path);
        if let Err(source) = std::fs::metadata(&summary_file) {
            return Err(ScoreError::NoSummary {
                rows: path.clone(),
                summary: summary_file,
                source,
            }
            .into());
        }
        shards.push((path.clone(), read_summary(&summary_file)?));
    }
    let Some((first_path, first)) = shards.first() else {
        return Err(ScoreError::MissingShards {
            count: 0,
            missing: Vec::new(),
        }
        .into());
    };
    for (path, other) in &shards[1..] {
        if let Some((what, a, b)) = differs(first, other) {
            return Err(ScoreError::ShardsDiffer {
                first_path: first_path.clone(),
                other_path: path.clone(),
                what,
                first: a,
                other: b,
            }
            .into());
        }
    }
    let count = first.shards.first().map_or(1, |s| s.count);
    let mut owner: Vec<Option<&Path>> = vec![None; count as usize];
    for (path, summary) in &shards {
        for shard in &summary.shards {
            match owner[shard.index as usize] {
                Some(first) => {
                    return Err(ScoreError::DuplicateShard {
                        shard: *shard,
                        first: first.to_path_buf(),
                        second: path.clone(),
                    }
                    .into())
                }
                None => owner[shard.index as usize] = Some(path),
            }
        }
    }
    let missing: Vec<u32> = (0..count)
        .filter(|&i| owner[i as usize].is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ScoreError::MissingShards { count, missing }.into());
    }
    // in shard order, so that the sums do not depend on the argument order
    shards.sort_by_key(|(_, s)| s.shards.first().map_or(0, |s| s.index));
    let merged = merged_summary(&shards);
    if let Some(output) = output {
        write_rows(&shards, output)?;
        let file = output.summary_path();
        let json = serde_json::to_string_pretty(&merged).expect("serialisable");
        crate::files::write_atomically(&file, |w| {
            w.write_all(json.as_bytes())?;
            w.write_all(b"\n")
        })
        .map_err(|source| ScoreError::Output { path: file, source })?;
    }
    Ok(merged)
}

/// The first thing in which two shards' runs differ.
fn differs(a: &ScoreSummary, b: &ScoreSummary) -> Option<Difference> {
    let shard_count = |s: &ScoreSummary| s.shards.first().map_or(1, |s| s.count).to_string();
    let protocol =
        |s: &ScoreSummary| format!("{}, BOS {}", s.protocol.description, s.protocol.bos.name());
    let corpus = |s: &ScoreSummary| {
        format!(
            "{} documents hashing to {} ({})",
            s.corpus.documents, s.corpus.hash.value, s.corpus.text
        )
    };
    let pairs: [(&'static str, String, String); 6] = [
        ("model", model(a), model(b)),
        (
            "tokenizer",
            a.tokenizer_hash.value.clone(),
            b.tokenizer_hash.value.clone(),
        ),
        ("protocol", protocol(a), protocol(b)),
        ("corpus", corpus(a), corpus(b)),
        (
            "set of kept columns",
            a.corpus.keep_columns.join(", "),
            b.corpus.keep_columns.join(", "),
        ),
        ("shard count", shard_count(a), shard_count(b)),
    ];
    pairs.into_iter().find(|(_, x, y)| x != y)
}

fn model(s: &ScoreSummary) -> String {
    super::journal::model_name(&s.model.spec, &s.model.hash.value)
}

fn merged_summary(shards: &[(PathBuf, ScoreSummary)]) -> ScoreSummary {
    let first = &shards[0].1;
    let mut totals = ScoreTotals::default();
    let mut resumption = Resumption::default();
    let (mut seconds, mut processed) = (0.0, 0u64);
    let mut all: Vec<Shard> = Vec::new();
    for (_, s) in shards {
        totals += &s.totals;
        resumption.committed_rows += s.resumption.committed_rows;
        resumption.redone_documents += s.resumption.redone_documents;
        resumption.runs += s.resumption.runs;
        seconds += s.timing.seconds;
        processed += s.totals.processed_tokens;
        all.extend(&s.shards);
    }
    all.sort_by_key(|s| s.index);
    let whole = first.protocol.protocol.covers_whole_documents();
    ScoreSummary {
        shards: all,
        totals,
        figures: ScoreFigures::of(&totals, whole),
        resumption,
        timing: crate::evaluate::timing(processed, seconds),
        ..first.clone()
    }
}

/// Writes the shards' rows in corpus order: a merge of sorted streams,
/// checking each shard's order and row count.
fn write_rows(shards: &[(PathBuf, ScoreSummary)], output: &MergeOutput) -> Result<(), EvalError> {
    let mut streams = Vec::with_capacity(shards.len());
    for (path, summary) in shards {
        let reader = open_rows(path).map_err(ScoreError::from)?;
        let mut stream = ShardRows::new(path, reader, summary.totals.documents);
        let head = stream.next_row()?;
        streams.push((head, stream));
    }
    let keep = shards[0].1.corpus.keep_columns.clone();
    let mut rows = std::iter::from_fn(|| {
        let (_, i) = streams
            .iter()
            .enumerate()
            .filter_map(|(i, (head, _))| head.as_ref().map(|r| (r.index, i)))
            .min()?;
        let (head, stream) = &mut streams[i];
        let row = head.take().expect("the smallest head");
        match stream.next_row() {
            Ok(next) => *head = next,
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(row))
    });
    write_row_file(output, &keep, &mut rows)
}

/// One shard's rows, read in order.
struct ShardRows {
    path: PathBuf,
    reader: RowReader,
    read: u64,
    expected: u64,
    last: Option<u64>,
}

impl ShardRows {
    fn new(path: &Path, reader: RowReader, expected: u64) -> Self {
        ShardRows {
            path: path.to_path_buf(),
            reader,
            read: 0,
            expected,
            last: None,
        }
    }

    /// The next row, checked to follow the last in corpus order; at the
    /// end, the count checked against the summary's.
    fn next_row(&mut self) -> Result<Option<ScoreRow>, EvalError> {
        match self.reader.next() {
            None if self.read == self.expected => Ok(None),
            None => Err(ScoreError::RowCount {
                path: self.path.clone(),
                rows: self.read,
                expected: self.expected,
            }
            .into()),
            Some(row) => {
                let row = row.map_err(ScoreError::from)?;
                self.read += 1;
                if self.read > self.expected {
                    return Err(ScoreError::RowCount {
                        path: self.path.clone(),
                        rows: self.read,
                        expected: self.expected,
                    }
                    .into());
                }
                if self.last.is_some_and(|last| row.index <= last) {
                    return Err(ScoreError::Journal {
                        path: self.path.clone(),
                        line: self.read as usize,
                        why: format!(
                            "row of document {} follows that of document {}: not in corpus order",
                            row.index,
                            self.last.unwrap_or(0)
                        ),
                    }
                    .into());
                }
                self.last = Some(row.index);
                Ok(Some(row))
            }
        }
    }
}
