//! The per-document score schema: what `perplex score` writes for each
//! document, the summary of a run (or a shard of one), and the shard split.
//!
//! A [`ScoreRow`] is one document's result. Rows are written in corpus order
//! (by [`ScoreRow::index`], the document's position in the whole corpus,
//! whatever the shard), so the rows of every shard merged by `index` are the
//! rows of the unsharded run, field for field. The fields and their column
//! names are a versioned contract ([`ROWS_SCHEMA_VERSION`],
//! `docs/score-schema.md`); columns are only ever added within a version.
//!
//! A [`ScoreSummary`] carries the sufficient statistics of the rows it
//! covers ([`NllStats`], token, byte and word counts), so that shard
//! summaries merge into the corpus summary exactly: the NLL sums add, and
//! the variance merges with Chan's formula.

use serde::{Deserialize, Serialize};

use crate::accum::NllStats;
use crate::report::{
    DocumentStatus, Hash, ModelIdentity, ProtocolInfo, Timing, TokenizerIdentity, ToolInfo,
};

/// The version of the row columns and of the summary, written into both.
pub const ROWS_SCHEMA_VERSION: u32 = 1;

/// A value of a column copied from the input (`--keep-columns`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnValue {
    /// Missing or null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text (JSON objects and arrays are kept as their JSON text).
    Text(String),
}

/// One document's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// Position of the document in the whole corpus (all inputs, in order,
    /// before sharding), from 0.
    pub index: u64,
    /// The document's id: the id column's value, else `<source>:<n>` (`n`
    /// the document's position in its source, from 0).
    pub id: String,
    /// Why the document has or has no score.
    pub status: DocumentStatus,
    /// UTF-8 bytes of the text.
    pub bytes: u64,
    /// Words (pieces of `re.split(r"\s+", text)`, as lm-evaluation-harness counts).
    pub words: u64,
    /// Text tokens (BOS excluded).
    pub tokens: u64,
    /// Tokens scored under the protocol.
    pub scored_tokens: u64,
    /// ΣNLL of the scored tokens, nats.
    pub nll_sum: f64,
    /// Mean NLL per scored token, nats.
    pub mean_nll: Option<f64>,
    /// exp(mean NLL).
    pub perplexity: Option<f64>,
    /// ΣNLL / (bytes · ln 2), when the protocol scores whole documents.
    pub bits_per_byte: Option<f64>,
    /// Fraction of scored tokens that were the model's top-1 prediction.
    pub token_accuracy: Option<f64>,
    /// Columns copied from the input, in the order asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<(String, ColumnValue)>,
}

impl ScoreRow {
    /// The row of document `index` with statistics `stats`; `whole` when
    /// the protocol scores whole documents (bits per byte is defined).
    pub fn new(
        index: u64,
        id: String,
        counts: DocumentCounts,
        stats: &NllStats,
        whole: bool,
    ) -> Self {
        let status = if counts.bytes == 0 {
            DocumentStatus::Empty
        } else if stats.is_empty() {
            DocumentStatus::TooShort
        } else {
            DocumentStatus::Scored
        };
        let bits_per_byte = (whole && counts.bytes > 0 && !stats.is_empty())
            .then(|| stats.sum / (counts.bytes as f64 * std::f64::consts::LN_2));
        ScoreRow {
            index,
            id,
            status,
            bytes: counts.bytes,
            words: counts.words,
            tokens: counts.tokens,
            scored_tokens: stats.count,
            nll_sum: stats.sum,
            mean_nll: stats.mean_nll().map(|n| n.0),
            perplexity: stats.perplexity(),
            bits_per_byte,
            token_accuracy: stats.accuracy(),
            extra: Vec::new(),
        }
    }
}

/// Sizes of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DocumentCounts {
    /// UTF-8 bytes.
    pub bytes: u64,
    /// Words.
    pub words: u64,
    /// Text tokens.
    pub tokens: u64,
}

/// Which part of the corpus a process scores: document `index` belongs to
/// shard `index % count` (round robin, so every shard sees every part of
/// the corpus and the shards' union is the corpus, each document once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// The whole corpus.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 || index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Whether document `index` (in corpus order) is in this shard.
    pub fn holds(&self, index: u64) -> bool {
        index % u64::from(self.count) == u64::from(self.index)
    }

    /// `00002-of-00016`, what `{shard}` in an output path becomes.
    pub fn label(&self) -> String {
        format!("{:05}-of-{:05}", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    /// `I/N`, e.g. `0/3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ShardError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

/// A shard that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `I/N`.
    #[error("`{0}` is not a shard: expected I/N, e.g. 0/4")]
    Syntax(String),
    /// `I` not below `N`.
    #[error(
        "shard {index}/{count} does not exist: the index counts from 0 and is below the count"
    )]
    OutOfRange {
        /// The index asked for.
        index: u32,
        /// The count asked for.
        count: u32,
    },
}

/// The corpus a score run read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreCorpus {
    /// Input files in order.
    pub sources: Vec<String>,
    /// Where the text came from (`parquet:text`, `jsonl:text`, `lines`, …).
    pub text: String,
    /// The id column, when one was named.
    pub id_column: Option<String>,
    /// Input columns copied into the rows.
    #[serde(default)]
    pub keep_columns: Vec<String>,
    /// Documents in the whole corpus (every shard reads them all).
    pub documents: u64,
    /// Hash over every document's id and text, in corpus order: the same
    /// for every shard of one corpus.
    pub hash: Hash,
}

/// Token and document counts of the rows a summary covers.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ScoreTotals {
    /// Rows (documents of this shard).
    pub documents: u64,
    /// Documents with at least one scored token.
    pub scored_documents: u64,
    /// Empty documents.
    pub empty_documents: u64,
    /// Documents too short to score a token.
    pub too_short_documents: u64,
    /// Text tokens.
    pub tokens: u64,
    /// UTF-8 bytes.
    pub bytes: u64,
    /// Words.
    pub words: u64,
    /// Bytes of the documents with a score (bits per byte's denominator).
    pub scored_bytes: u64,
    /// Tokens the model processed (windows' lengths summed).
    pub processed_tokens: u64,
    /// Token slots of the forward passes, padding included.
    pub padded_tokens: u64,
    /// Windows scored.
    pub windows: u64,
    /// Every scored token's statistics.
    pub stats: NllStats,
}

impl ScoreTotals {
    /// Counts `row` in.
    pub fn add_row(&mut self, row: &ScoreRow, stats: &NllStats) {
        self.documents += 1;
        match row.status {
            DocumentStatus::Scored => {
                self.scored_documents += 1;
                self.scored_bytes += row.bytes;
            }
            DocumentStatus::Empty => self.empty_documents += 1,
            DocumentStatus::TooShort | DocumentStatus::BeyondTokenLimit => {
                self.too_short_documents += 1
            }
        }
        self.tokens += row.tokens;
        self.bytes += row.bytes;
        self.words += row.words;
        self.stats += stats;
    }

    /// Fraction of forward-pass token slots that were padding.
    pub fn padding_fraction(&self) -> Option<f64> {
        (self.padded_tokens > 0)
            .then(|| 1.0 - self.processed_tokens as f64 / self.padded_tokens as f64)
    }
}

impl std::ops::AddAssign<&ScoreTotals> for ScoreTotals {
    fn add_assign(&mut self, o: &ScoreTotals) {
        self.documents += o.documents;
        self.scored_documents += o.scored_documents;
        self.empty_documents += o.empty_documents;
        self.too_short_documents += o.too_short_documents;
        self.tokens += o.tokens;
        self.bytes += o.bytes;
        self.words += o.words;
        self.scored_bytes += o.scored_bytes;
        self.processed_tokens += o.processed_tokens;
        self.padded_tokens += o.padded_tokens;
        self.windows += o.windows;
        self.stats += &o.stats;
    }
}

/// The corpus figures of a summary, derived from its totals.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ScoreFigures {
    /// Token-weighted perplexity of the rows.
    pub perplexity: Option<f64>,
    /// 95 % interval of the perplexity (tokens as independent samples).
    pub perplexity_ci95: Option<[f64; 2]>,
    /// Mean NLL per scored token, nats.
    pub mean_nll: Option<f64>,
    /// ΣNLL / (scored documents' bytes · ln 2), when the protocol scores
    /// whole documents.
    pub bits_per_byte: Option<f64>,
    /// Top-1 token accuracy.
    pub token_accuracy: Option<f64>,
    /// Fraction of the forward passes' token slots that were padding.
    pub padding_fraction: Option<f64>,
}

impl ScoreFigures {
    /// The figures of `totals`; `whole` when the protocol scores whole documents.
    pub fn of(totals: &ScoreTotals, whole: bool) -> Self {
        let s = &totals.stats;
        ScoreFigures {
            perplexity: s.perplexity(),
            perplexity_ci95: s.perplexity_ci95().map(|(lo, hi)| [lo, hi]),
            mean_nll: s.mean_nll().map(|n| n.0),
            bits_per_byte: (whole && totals.scored_bytes > 0)
                .then(|| s.sum / (totals.scored_bytes as f64 * std::f64::consts::LN_2)),
            token_accuracy: s.accuracy(),
            padding_fraction: totals.padding_fraction(),
        }
    }
}

/// What a resumed run found and redid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resumption {
    /// Rows already committed by earlier runs of the same command.
    pub committed_rows: u64,
    /// Documents an interrupted run had started scoring but not committed,
    /// scored again (at most one block).
    pub redone_documents: u64,
    /// Runs before this one that were resumed from.
    pub runs: u32,
}

/// The summary of a score run, or of the shards `perplex merge` merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    /// [`ROWS_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The tool.
    pub tool: ToolInfo,
    /// The model.
    pub model: ModelIdentity,
    /// The tokenizer.
    pub tokenizer: TokenizerIdentity,
    /// Hash of the tokenizer's full definition.
    pub tokenizer_hash: Hash,
    /// The corpus.
    pub corpus: ScoreCorpus,
    /// Protocol, BOS, batch and threads.
    pub protocol: ProtocolInfo,
    /// The shards these rows come from (one, or every shard after a merge).
    pub shards: Vec<Shard>,
    /// Documents per committed block (the most a resumed run redoes).
    pub block_documents: usize,
    /// Sufficient statistics of the rows.
    pub totals: ScoreTotals,
    /// Figures derived from the totals.
    pub figures: ScoreFigures,
    /// What earlier, interrupted runs left.
    pub resumption: Resumption,
    /// Wall time of this run (not of earlier, interrupted ones).
    pub timing: Timing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_corpus() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        for doc in 0..100u64 {
            assert_eq!(shards.iter().filter(|s| s.holds(doc)).count(), 1);
        }
        assert!(Shard::WHOLE.holds(12345));
    }

    #[test]
    fn shards_parse_and_refuse_what_does_not_exist() {
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
        assert!(matches!(
            "5/5".parse::<Shard>(),
            Err(ShardError::OutOfRange { .. })
        ));
        assert!(matches!(
            "0/0".parse::<Shard>(),
            Err(ShardError::OutOfRange { .. })
        ));
        assert!(matches!("3".parse::<Shard>(), Err(ShardError::Syntax(_))));
        assert_eq!(Shard::new(2, 16).unwrap().label(), "00002-of-00016");
    }

    #[test]
    fn a_row_says_why_it_has_no_score() {
        let counts = DocumentCounts {
            bytes: 3,
            words: 1,
            tokens: 1,
        };
        let row = ScoreRow::new(0, "a".into(), counts, &NllStats::new(), true);
        assert_eq!(row.status, DocumentStatus::TooShort);
        assert_eq!((row.perplexity, row.bits_per_byte), (None, None));
        let empty = ScoreRow::new(
            1,
            "b".into(),
            DocumentCounts::default(),
            &NllStats::new(),
            true,
        );
        assert_eq!(empty.status, DocumentStatus::Empty);
        let mut s = NllStats::new();
        s.push(2.0, true);
        s.push(1.0, false);
        let row = ScoreRow::new(2, "c".into(), counts, &s, true);
        assert_eq!(row.status, DocumentStatus::Scored);
        assert_eq!(row.mean_nll, Some(1.5));
        assert!((row.bits_per_byte.unwrap() - 3.0 / (3.0 * std::f64::consts::LN_2)).abs() < 1e-15);
        assert_eq!(row.token_accuracy, Some(0.5));
    }

    #[test]
    fn totals_merge_like_one_pass() {
        let counts = DocumentCounts {
            bytes: 10,
            words: 2,
            tokens: 4,
        };
        let mut all = ScoreTotals::default();
        let mut parts = [ScoreTotals::default(), ScoreTotals::default()];
        for i in 0..7u64 {
            let mut s = NllStats::new();
            s.push(i as f64 * 0.3 + 0.1, i % 2 == 0);
            s.push(1.0, false);
            let row = ScoreRow::new(i, i.to_string(), counts, &s, true);
            all.add_row(&row, &s);
            parts[(i % 2) as usize].add_row(&row, &s);
        }
        let mut merged = parts[0];
        merged += &parts[1];
        assert_eq!(merged.documents, all.documents);
        assert_eq!(merged.stats.count, all.stats.count);
        assert!((merged.stats.sum - all.stats.sum).abs() <= 1e-12 * all.stats.sum);
        let (a, b) = (
            ScoreFigures::of(&merged, true),
            ScoreFigures::of(&all, true),
        );
        assert!((a.perplexity.unwrap() / b.perplexity.unwrap() - 1.0).abs() < 1e-12);
    }
}
