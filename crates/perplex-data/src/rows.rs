//! Score row files: one [`ScoreRow`] per document, as JSON Lines or Parquet.
//!
//! # Contract
//!
//! Both formats hold the same columns, in this order:
//!
//! | column | JSONL | Parquet |
//! |---|---|---|
//! | `index` | integer | `INT64`, required |
//! | `id` | string | `BYTE_ARRAY` (UTF8), required |
//! | `status` | string | `BYTE_ARRAY` (UTF8), required |
//! | `bytes`, `words`, `tokens`, `scored_tokens` | integer | `INT64`, required |
//! | `nll_sum` | number | `DOUBLE`, required |
//! | `mean_nll`, `perplexity`, `bits_per_byte`, `token_accuracy` | number or `null` | `DOUBLE`, optional |
//! | kept columns, by their names | their JSON value | `BYTE_ARRAY` (UTF8), optional |
//!
//! `status` is `scored`, `empty`, `too-short` or `beyond-token-limit`.
//!
//! - **JSONL** ([`jsonl_row`], [`parse_jsonl_row`]): one object per line,
//!   keys in the order above, no spaces; numbers are written in the
//!   shortest form that reads back to the same `f64`, so a row round-trips
//!   exactly, and the same row always gives the same bytes. A non-finite
//!   number is written `null` (JSON has no other way), which reads back as
//!   `None`, or as an error for `nll_sum`. Kept columns keep their JSON
//!   types: text as strings, integers, floats, booleans, `null`.
//! - **Parquet** ([`ParquetRowWriter`], [`open_rows`]): Snappy-compressed,
//!   a row group every [`ROW_GROUP_ROWS`] rows, the caller's key-value
//!   metadata in the footer in the order given, no time stamps anywhere, so
//!   the same rows and metadata give the same bytes. Kept columns are
//!   stored as text: [`ColumnValue::Text`] as is, integers, floats and
//!   booleans as their JSON text, `Null` (and non-finite floats) as null;
//!   they read back as [`ColumnValue::Text`] or [`ColumnValue::Null`].
//! - Kept columns may not take a score column's name, nor appear twice
//!   ([`check_extra_columns`]).
//! - [`open_rows`] picks the format from the extension (`.jsonl`, `.json`;
//!   `.parquet`, `.pq`), else from the `PAR1` magic, else JSONL, and reads
//!   lazily: a line, or one Parquet row group, at a time. Blank JSONL lines
//!   are skipped.
//!
//! ```
//! use perplex_core::accum::NllStats;
//! use perplex_core::score::{DocumentCounts, ScoreRow};
//! use perplex_data::rows::{jsonl_row, parse_jsonl_row};
//!
//! let counts = DocumentCounts { bytes: 0, words: 0, tokens: 0 };
//! let row = ScoreRow::new(3, "a.txt:3".into(), counts, &NllStats::new(), true);
//! let line = jsonl_row(&row);
//! assert_eq!(
//!     line,
//!     r#"{"index":3,"id":"a.txt:3","status":"empty","bytes":0,"words":0,"tokens":0,"scored_tokens":0,"nll_sum":0.0,"mean_nll":null,"perplexity":null,"bits_per_byte":null,"token_accuracy":null}"#
//! );
//! assert_eq!(parse_jsonl_row(&line)?, row);
//! # Ok::<(), perplex_data::rows::RowsError>(())
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::types::Type;
use perplex_core::report::DocumentStatus;
use perplex_core::score::{ColumnValue, ScoreRow};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use crate::pages::CheckedRowGroup;
use crate::stream::{field_column_value, json_column_value};

/// The score columns, in file order; kept columns follow.
pub const SCORE_COLUMNS: [&str; 12] = [
    "index",
    "id",
    "status",
    "bytes",
    "words",
    "tokens",
    "scored_tokens",
    "nll_sum",
    "mean_nll",
    "perplexity",
    "bits_per_byte",
    "token_accuracy",
];

/// Rows per Parquet row group ([`ParquetRowWriter`] buffers this many).
pub const ROW_GROUP_ROWS: usize = 8192;

/// The format of a row file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    /// JSON Lines.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl RowFormat {
    /// The format a path's extension names: `.jsonl` / `.json` or
    /// `.parquet` / `.pq` (any case).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "json" => Some(RowFormat::Jsonl),
            "parquet" | "pq" => Some(RowFormat::Parquet),
            _ => None,
        }
    }

    /// `jsonl` or `parquet`.
    pub fn name(self) -> &'static str {
        match self {
            RowFormat::Jsonl => "jsonl",
            RowFormat::Parquet => "parquet",
        }
    }
}

impl std::fmt::Display for RowFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with one row.
#[derive(Debug, thiserror::Error)]
pub enum RowFault {
    /// Not one JSON object.
    #[error("it is not one JSON object")]
    Json(#[source] serde_json::Error),
    /// Not UTF-8.
    #[error("it is not valid UTF-8")]
    NotUtf8,
    /// A score column is missing.
    #[error("it has no `{0}`")]
    Missing(&'static str),
    /// A key appears twice.
    #[error("`{0}` appears twice")]
    Duplicate(String),
    /// A required value is null.
    #[error("`{0}` is null")]
    Null(&'static str),
    /// A value of the wrong kind.
    #[error("`{column}` is {found}, not {expected}")]
    WrongType {
        /// The column.
        column: &'static str,
        /// What the row holds.
        found: String,
        /// What the column holds.
        expected: &'static str,
    },
    /// A status that is not one of the four.
    #[error("status `{0}` is not one of `scored`, `empty`, `too-short`, `beyond-token-limit`")]
    Status(String),
}

/// Why a row file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// The file could not be opened or read.
    #[error("could not read `{path}`")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSONL line is not a score row.
    #[error("{} is not a score row", jsonl_place(path.as_deref(), *line))]
    JsonlRow {
        /// The file, when known.
        path: Option<String>,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        #[source]
        fault: RowFault,
    },
    /// A Parquet file could not be opened or decoded.
    #[error("could not read `{path}` as parquet")]
    Parquet {
        /// The file.
        path: String,
        /// The decoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A Parquet file lacks a score column or has one of another type.
    #[error("`{path}` is not a score row file: {problem}")]
    Schema {
        /// The file.
        path: String,
        /// What is missing or mistyped, e.g. "it has no column `nll_sum`".
        problem: String,
    },
    /// A Parquet row is not a score row.
    #[error("`{path}` row {row} is not a score row")]
    ParquetRow {
        /// The file.
        path: String,
        /// The 0-based row.
        row: u64,
        /// What is wrong.
        #[source]
        fault: RowFault,
    },
    /// Parquet rows could not be written.
    #[error("could not write parquet score rows")]
    Write {
        /// The encoder's or the output's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A kept column takes a score column's name or appears twice.
    #[error("kept column `{column}` {problem}")]
    ColumnName {
        /// The column.
        column: String,
        /// `has the name of a score column` or `is named twice`.
        problem: &'static str,
    },
    /// A row's kept columns are not the writer's.
    #[error(
        "row {index} has kept columns {}, not {}",
        names(found),
        names(expected)
    )]
    ExtraColumns {
        /// The row's index.
        index: u64,
        /// The writer's kept columns.
        expected: Vec<String>,
        /// The row's.
        found: Vec<String>,
    },
    /// A count beyond Parquet's signed 64-bit integers.
    #[error("row {index}: `{column}` = {value} does not fit a parquet INT64")]
    TooLarge {
        /// The row's index.
        index: u64,
        /// The column.
        column: &'static str,
        /// The value.
        value: u64,
    },
}

impl RowsError {
    /// A suggestion for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            RowsError::Read { source, .. } => Some(match source.kind() {
                std::io::ErrorKind::NotFound => "check the path".to_owned(),
                std::io::ErrorKind::IsADirectory => "pass a file, not a directory".to_owned(),
                _ => "check that the file is readable".to_owned(),
            }),
            RowsError::JsonlRow { .. }
            | RowsError::ParquetRow { .. }
            | RowsError::Schema { .. } => Some(
                "pass a row file written by `perplex score`; a run that was killed may \
                     leave a partial last line, which resuming the run repairs"
                    .to_owned(),
            ),
            RowsError::Parquet { .. } => Some(
                "check that the file is a complete Parquet file; a file still being written \
                 has no footer yet"
                    .to_owned(),
            ),
            RowsError::Write { .. } => {
                Some("check that the disk has room and the output is writable".to_owned())
            }
            RowsError::ColumnName { .. } => {
                Some("leave the column out, or rename it in the input".to_owned())
            }
            RowsError::ExtraColumns { .. } | RowsError::TooLarge { .. } => None,
        }
    }
}

fn jsonl_place(path: Option<&str>, line: Option<usize>) -> String {
    match (path, line) {
        (Some(p), Some(l)) => format!("`{p}:{l}`"),
        (Some(p), None) => format!("a line of `{p}`"),
        (None, Some(l)) => format!("line {l}"),
        (None, None) => "the line".to_owned(),
    }
}

fn names(columns: &[String]) -> String {
    if columns.is_empty() {
        return "none".to_owned();
    }
    let quoted: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
    quoted.join(", ")
}

/// Checks that kept columns neither take a score column's name nor repeat.
pub fn check_extra_columns(columns: &[String]) -> Result<(), RowsError> {
    for (i, column) in columns.iter().enumerate() {
        let problem = if SCORE_COLUMNS.contains(&column.as_str()) {
            "has the name of a score column"
        } else if columns[..i].contains(column) {
            "is named twice"
        } else {
            continue;
        };
        return Err(RowsError::ColumnName {
            column: column.clone(),
            problem,
        });
    }
    Ok(())
}

/// `scored`, `empty`, `too-short`, `beyond-token-limit`: the names serde writes.
fn status_name(status: DocumentStatus) -> &'static str {
    match status {
        DocumentStatus::Scored => "scored",
        DocumentStatus::Empty => "empty",
        DocumentStatus::TooShort => "too-short",
        DocumentStatus::BeyondTokenLimit => "beyond-token-limit",
    }
}

fn parse_status(name: &str) -> Option<DocumentStatus> {
    Some(match name {
        "scored" => DocumentStatus::Scored,
        "empty" => DocumentStatus::Empty,
        "too-short" => DocumentStatus::TooShort,
        "beyond-token-limit" => DocumentStatus::BeyondTokenLimit,
        _ => return None,
    })
}

/// A value's JSON text (these values always serialize).
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// `row` as one JSONL line, without the line ending (see the module contract).
pub fn jsonl_row(row: &ScoreRow) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "{{\"index\":{},\"id\":{},\"status\":\"{}\",\"bytes\":{},\"words\":{},\"tokens\":{},\
         \"scored_tokens\":{},\"nll_sum\":{},\"mean_nll\":{},\"perplexity\":{},\
         \"bits_per_byte\":{},\"token_accuracy\":{}",
        row.index,
        json(&row.id),
        status_name(row.status),
        row.bytes,
        row.words,
        row.tokens,
        row.scored_tokens,
        json(&row.nll_sum),
        json(&row.mean_nll),
        json(&row.perplexity),
        json(&row.bits_per_byte),
        json(&row.token_accuracy),
    );
    for (name, value) in &row.extra {
        let _ = write!(out, ",{}:{}", json(name), json(value));
    }
    out.push('}');
    out
}

/// A JSON object's entries in file order (serde_json's map sorts them).
struct Ordered(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

fn json_found(value: &serde_json::Value) -> String {
    crate::corpus::json_kind(value).to_owned()
}

/// Parses one line written by [`jsonl_row`]; kept columns are every key
/// that is not a score column, in file order.
pub fn parse_jsonl_row(line: &str) -> Result<ScoreRow, RowsError> {
    parse_row(line).map_err(|fault| RowsError::JsonlRow {
        path: None,
        line: None,
        fault,
    })
}

fn parse_row(line: &str) -> Result<ScoreRow, RowFault> {
    let Ordered(entries) = serde_json::from_str(line).map_err(RowFault::Json)?;
    let mut fixed: [Option<serde_json::Value>; 12] = Default::default();
    let mut extra: Vec<(String, ColumnValue)> = Vec::new();
    for (key, value) in entries {
        if let Some(i) = SCORE_COLUMNS.iter().position(|c| *c == key) {
            if fixed[i].replace(value).is_some() {
                return Err(RowFault::Duplicate(key));
            }
        } else if extra.iter().any(|(k, _)| *k == key) {
            return Err(RowFault::Duplicate(key));
        } else {
            extra.push((key, json_column_value(value)));
        }
    }
    let mut take = |i: usize| fixed[i].take().ok_or(RowFault::Missing(SCORE_COLUMNS[i]));
    let count = |i: usize, v: serde_json::Value| {
        v.as_u64().ok_or_else(|| RowFault::WrongType {
            column: SCORE_COLUMNS[i],
            found: json_found(&v),
            expected: "a non-negative integer",
        })
    };
    let string = |i: usize, v: serde_json::Value| match v {
        serde_json::Value::String(s) => Ok(s),
        other => Err(RowFault::WrongType {
            column: SCORE_COLUMNS[i],
            found: json_found(&other),
            expected: "a string",
        }),
    };
    let number = |i: usize, v: serde_json::Value| -> Result<Option<f64>, RowFault> {
        match v {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Number(n) => Ok(n.as_f64()),
            other => Err(RowFault::WrongType {
                column: SCORE_COLUMNS[i],
                found: json_found(&other),
                expected: "a number or null",
            }),
        }
    };
    let index = count(0, take(0)?)?;
    let id = string(1, take(1)?)?;
    let status = string(2, take(2)?)?;
    let status = parse_status(&status).ok_or(RowFault::Status(status))?;
    let bytes = count(3, take(3)?)?;
    let words = count(4, take(4)?)?;
    let tokens = count(5, take(5)?)?;
    let scored_tokens = count(6, take(6)?)?;
    let nll_sum = number(7, take(7)?)?.ok_or(RowFault::Null("nll_sum"))?;
    let mut optional = |i: usize| -> Result<Option<f64>, RowFault> {
        match fixed[i].take() {
            None => Err(RowFault::Missing(SCORE_COLUMNS[i])),
            Some(v) => number(i, v),
        }
    };
    Ok(ScoreRow {
        index,
        id,
        status,
        bytes,
        words,
        tokens,
        scored_tokens,
        nll_sum,
        mean_nll: optional(8)?,
        perplexity: optional(9)?,
        bits_per_byte: optional(10)?,
        token_accuracy: optional(11)?,
        extra,
    })
}

/// A kept value as Parquet text (see the module contract).
fn column_text(value: &ColumnValue) -> Option<String> {
    match value {
        ColumnValue::Null => None,
        ColumnValue::Text(s) => Some(s.clone()),
        ColumnValue::Bool(b) => Some(b.to_string()),
        ColumnValue::Int(i) => Some(i.to_string()),
        ColumnValue::Float(f) => f.is_finite().then(|| json(f)),
    }
}

/// The Parquet schema of rows with `keep_columns`.
fn row_schema(keep_columns: &[String]) -> Result<Type, parquet::errors::ParquetError> {
    let column = |name: &str, physical, repetition, string: bool| {
        Type::primitive_type_builder(name, physical)
            .with_repetition(repetition)
            .with_logical_type(string.then_some(LogicalType::String))
            .build()
            .map(Arc::new)
    };
    use PhysicalType::{BYTE_ARRAY, DOUBLE, INT64};
    const OPTIONAL: Repetition = Repetition::OPTIONAL;
    const REQUIRED: Repetition = Repetition::REQUIRED;
    let mut fields = Vec::with_capacity(SCORE_COLUMNS.len() + keep_columns.len());
    for (i, name) in SCORE_COLUMNS.iter().enumerate() {
        fields.push(match i {
            1 | 2 => column(name, BYTE_ARRAY, REQUIRED, true)?,
            7 => column(name, DOUBLE, REQUIRED, false)?,
            8..=11 => column(name, DOUBLE, OPTIONAL, false)?,
            _ => column(name, INT64, REQUIRED, false)?,
        });
    }
    for name in keep_columns {
        fields.push(column(name, BYTE_ARRAY, OPTIONAL, true)?);
    }
    Type::group_type_builder("score_rows")
        .with_fields(fields)
        .build()
}

fn write_error(e: impl std::error::Error + Send + Sync + 'static) -> RowsError {
    RowsError::Write {
        source: Box::new(e),
    }
}

/// One row group's columns, buffered.
#[derive(Default)]
struct Buffers {
    rows: usize,
    ints: [Vec<i64>; 5],
    strings: [Vec<ByteArray>; 2],
    nll_sum: Vec<f64>,
    /// Values present and definition levels of the optional doubles.
    optional: [(Vec<f64>, Vec<i16>); 4],
    extra: Vec<(Vec<ByteArray>, Vec<i16>)>,
}

/// Writes score rows as Parquet (see the module contract).
pub struct ParquetRowWriter<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    keep_columns: Vec<String>,
    buffers: Buffers,
}

impl<W: Write + Send> ParquetRowWriter<W> {
    /// A writer of rows whose kept columns are `keep_columns`, with
    /// `metadata` in the file's key-value metadata.
    pub fn new(
        out: W,
        keep_columns: &[String],
        metadata: &[(String, String)],
    ) -> Result<Self, RowsError> {
        check_extra_columns(keep_columns)?;
        let schema = row_schema(keep_columns).map_err(write_error)?;
        let kv: Vec<KeyValue> = metadata
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        // The default `created_by` names the parquet crate and its version:
        // no time, no host, so the bytes depend on the rows alone.
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_key_value_metadata((!kv.is_empty()).then_some(kv))
            .build();
        let writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(properties))
            .map_err(write_error)?;
        let buffers = Buffers {
            extra: vec![Default::default(); keep_columns.len()],
            ..Buffers::default()
        };
        Ok(ParquetRowWriter {
            writer,
            keep_columns: keep_columns.to_vec(),
            buffers,
        })
    }

    /// Buffers `row`; every [`ROW_GROUP_ROWS`] rows a row group is written.
    pub fn write(&mut self, row: &ScoreRow) -> Result<(), RowsError> {
        if row.extra.len() != self.keep_columns.len()
            || row
                .extra
                .iter()
                .zip(&self.keep_columns)
                .any(|((name, _), want)| name != want)
        {
            return Err(RowsError::ExtraColumns {
                index: row.index,
                expected: self.keep_columns.clone(),
                found: row.extra.iter().map(|(n, _)| n.clone()).collect(),
            });
        }
        let int = |column: &'static str, value: u64| {
            i64::try_from(value).map_err(|_| RowsError::TooLarge {
                index: row.index,
                column,
                value,
            })
        };
        let ints = [
            int("index", row.index)?,
            int("bytes", row.bytes)?,
            int("words", row.words)?,
            int("tokens", row.tokens)?,
            int("scored_tokens", row.scored_tokens)?,
        ];
        let b = &mut self.buffers;
        for (buffer, value) in b.ints.iter_mut().zip(ints) {
            buffer.push(value);
        }
        b.strings[0].push(ByteArray::from(row.id.as_str()));
        b.strings[1].push(ByteArray::from(status_name(row.status)));
        b.nll_sum.push(row.nll_sum);
        let optional = [
            row.mean_nll,
            row.perplexity,
            row.bits_per_byte,
            row.token_accuracy,
        ];
        for ((values, levels), value) in b.optional.iter_mut().zip(optional) {
            levels.push(i16::from(value.is_some()));
            values.extend(value);
        }
        for ((values, levels), (_, value)) in b.extra.iter_mut().zip(&row.extra) {
            let text = column_text(value);
            levels.push(i16::from(text.is_some()));
            values.extend(text.map(|t| ByteArray::from(t.into_bytes())));
        }
        b.rows += 1;
        if b.rows >= ROW_GROUP_ROWS {
            self.flush_group()?;
        }
        Ok(())
    }

    /// Writes the buffered rows as one row group.
    fn flush_group(&mut self) -> Result<(), RowsError> {
        if self.buffers.rows == 0 {
            return Ok(());
        }
        let b = std::mem::replace(
            &mut self.buffers,
            Buffers {
                extra: vec![Default::default(); self.keep_columns.len()],
                ..Buffers::default()
            },
        );
        let mut group = self.writer.next_row_group().map_err(write_error)?;
        // Column order is the schema's: index, id, status, four counts,
        // nll_sum, four optional doubles, kept columns.
        let [index, bytes, words, tokens, scored] = &b.ints;
        let [id, status] = &b.strings;
        macro_rules! column {
            ($ty:ty, $values:expr, $levels:expr) => {{
                let mut column = group.next_column().map_err(write_error)?.ok_or_else(|| {
                    write_error(std::io::Error::other(
                        "the schema has fewer columns than the rows",
                    ))
                })?;
                column
                    .typed::<$ty>()
                    .write_batch($values, $levels, None)
                    .map_err(write_error)?;
                column.close().map_err(write_error)?;
            }};
        }
        column!(Int64Type, index, None);
        column!(ByteArrayType, id, None);
        column!(ByteArrayType, status, None);
        for counts in [bytes, words, tokens, scored] {
            column!(Int64Type, counts, None);
        }
        column!(DoubleType, &b.nll_sum, None);
        for (values, levels) in &b.optional {
            column!(DoubleType, values, Some(levels));
        }
        for (values, levels) in &b.extra {
            column!(ByteArrayType, values, Some(levels));
        }
        group.close().map_err(write_error)?;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the output.
    pub fn finish(mut self) -> Result<W, RowsError> {
        self.flush_group()?;
        self.writer.into_inner().map_err(write_error)
    }
}

/// Reads a row file lazily (see [`open_rows`]).
pub struct RowReader {
    path: String,
    metadata: Vec<(String, String)>,
    extra_columns: Vec<String>,
    inner: Inner,
    done: bool,
}

enum Inner {
    Jsonl {
        reader: BufReader<fs_err::File>,
        line: usize,
        first: Option<Box<ScoreRow>>,
    },
    Parquet(Box<ParquetRows>),
}

impl std::fmt::Debug for RowReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowReader")
            .field("path", &self.path)
            .field("extra_columns", &self.extra_columns)
            .finish_non_exhaustive()
    }
}

/// Opens a row file: the format from the extension, else the `PAR1` magic,
/// else JSONL. A Parquet file's schema is checked here; a JSONL file's first
/// row is read here (its keys name the kept columns).
pub fn open_rows(path: &Path) -> Result<RowReader, RowsError> {
    let name = path.display().to_string();
    let read_error = |source| RowsError::Read {
        path: name.clone(),
        source,
    };
    let mut file = fs_err::File::open(path).map_err(read_error)?;
    let format = match RowFormat::from_path(path) {
        Some(format) => format,
        None => {
            let mut magic = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                match file.read(&mut magic[got..]).map_err(read_error)? {
                    0 => break,
                    n => got += n,
                }
            }
            file = fs_err::File::open(path).map_err(read_error)?;
            if got == 4 && &magic == b"PAR1" {
                RowFormat::Parquet
            } else {
                RowFormat::Jsonl
            }
        }
    };
    match format {
        RowFormat::Jsonl => {
            let mut reader = RowReader {
                path: name,
                metadata: Vec::new(),
                extra_columns: Vec::new(),
                inner: Inner::Jsonl {
                    reader: BufReader::with_capacity(1 << 16, file),
                    line: 0,
                    first: None,
                },
                done: false,
            };
            if let Some(first) = reader.next_jsonl()? {
                reader.extra_columns = first.extra.iter().map(|(k, _)| k.clone()).collect();
                if let Inner::Jsonl { first: slot, .. } = &mut reader.inner {
                    *slot = Some(Box::new(first));
                }
            }
            Ok(reader)
        }
        RowFormat::Parquet => {
            let rows = ParquetRows::open(name.clone(), file.into_file())?;
            let metadata = rows
                .reader
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .map(|kv| {
                    kv.iter()
                        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            let extra_columns = rows.extra.iter().map(|(n, _)| n.clone()).collect();
            Ok(RowReader {
                path: name,
                metadata,
                extra_columns,
                inner: Inner::Parquet(Box::new(rows)),
                done: false,
            })
        }
    }
}

impl RowReader {
    /// The Parquet file's key-value metadata in file order (empty for JSONL).
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// The kept columns: the Parquet columns after the score columns, or the
    /// extra keys of a JSONL file's first row.
    pub fn extra_columns(&self) -> &[String] {
        &self.extra_columns
    }

    fn next_jsonl(&mut self) -> Result<Option<ScoreRow>, RowsError> {
        let Inner::Jsonl {
            reader,
            line,
            first,
        } = &mut self.inner
        else {
            return Ok(None);
        };
        if let Some(row) = first.take() {
            return Ok(Some(*row));
        }
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| RowsError::Read {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            *line += 1;
            let fault = |fault| RowsError::JsonlRow {
                path: Some(self.path.clone()),
                line: Some(*line),
                fault,
            };
            let text = std::str::from_utf8(&buf).map_err(|_| fault(RowFault::NotUtf8))?;
            if text.trim().is_empty() {
                continue;
            }
            return parse_row(text).map(Some).map_err(fault);
        }
    }
}

impl Iterator for RowReader {
    type Item = Result<ScoreRow, RowsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = match &mut self.inner {
            Inner::Jsonl { .. } => self.next_jsonl(),
            Inner::Parquet(rows) => rows.next_row(),
        };
        match next {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A Parquet row file read one row group at a time.
struct ParquetRows {
    path: String,
    reader: SerializedFileReader<std::fs::File>,
    /// Position of each score column in the file's columns.
    fixed: [usize; 12],
    /// Kept columns and their positions.
    extra: Vec<(String, usize)>,
    next_group: usize,
    buffered: VecDeque<ScoreRow>,
    rows: u64,
}

impl ParquetRows {
    fn open(path: String, file: std::fs::File) -> Result<Self, RowsError> {
        let parquet_error = |e: parquet::errors::ParquetError| RowsError::Parquet {
            path: path.clone(),
            source: Box::new(e),
        };
        let reader = SerializedFileReader::new(file).map_err(parquet_error)?;
        let fields = reader.metadata().file_metadata().schema().get_fields();
        let mut fixed = [0usize; 12];
        for (i, column) in SCORE_COLUMNS.iter().enumerate() {
            let schema = |problem: String| RowsError::Schema {
                path: path.clone(),
                problem,
            };
            let at = fields
                .iter()
                .position(|f| f.name() == *column)
                .ok_or_else(|| schema(format!("it has no column `{column}`")))?;
            let want = match i {
                1 | 2 => PhysicalType::BYTE_ARRAY,
                7..=11 => PhysicalType::DOUBLE,
                _ => PhysicalType::INT64,
            };
            let field = &fields[at];
            if !field.is_primitive() || field.get_physical_type() != want {
                let found = if field.is_primitive() {
                    format!("{:?}", field.get_physical_type())
                } else {
                    "a nested group".to_owned()
                };
                return Err(schema(format!(
                    "column `{column}` is {found}, not {want:?}"
                )));
            }
            fixed[i] = at;
        }
        let extra = fields
            .iter()
            .enumerate()
            .filter(|(_, f)| !SCORE_COLUMNS.contains(&f.name()))
            .map(|(i, f)| (f.name().to_owned(), i))
            .collect();
        Ok(ParquetRows {
            path,
            reader,
            fixed,
            extra,
            next_group: 0,
            buffered: VecDeque::new(),
            rows: 0,
        })
    }

    fn next_row(&mut self) -> Result<Option<ScoreRow>, RowsError> {
        while self.buffered.is_empty() {
            if self.next_group >= self.reader.num_row_groups() {
                return Ok(None);
            }
            self.read_group()?;
        }
        Ok(self.buffered.pop_front())
    }

    fn read_group(&mut self) -> Result<(), RowsError> {
        let parquet_error = |e: parquet::errors::ParquetError| RowsError::Parquet {
            path: self.path.clone(),
            source: Box::new(e),
        };
        let group = self
            .reader
            .get_row_group(self.next_group)
            .map_err(parquet_error)?;
        // pages the parquet crate would panic on are errors (see `pages`)
        let group = CheckedRowGroup(group);
        let rows = group.get_row_iter(None).map_err(parquet_error)?;
        let mut decoded = VecDeque::new();
        for row in rows {
            let row = row.map_err(parquet_error)?;
            let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
            let row_number = self.rows + decoded.len() as u64;
            let row = self
                .score_row(&fields)
                .map_err(|fault| RowsError::ParquetRow {
                    path: self.path.clone(),
                    row: row_number,
                    fault,
                })?;
            decoded.push_back(row);
        }
        self.next_group += 1;
        self.rows += decoded.len() as u64;
        self.buffered = decoded;
        Ok(())
    }

    fn score_row(&self, fields: &[&Field]) -> Result<ScoreRow, RowFault> {
        let get = |i: usize| fields.get(self.fixed[i]).copied().unwrap_or(&Field::Null);
        let wrong = |i: usize, field: &Field, expected| RowFault::WrongType {
            column: SCORE_COLUMNS[i],
            found: crate::stream::field_display(field),
            expected,
        };
        let count = |i: usize| match get(i) {
            Field::Null => Err(RowFault::Null(SCORE_COLUMNS[i])),
            Field::Long(v) => u64::try_from(*v).map_err(|_| wrong(i, get(i), "a count")),
            Field::ULong(v) => Ok(*v),
            other => Err(wrong(i, other, "a count")),
        };
        let string = |i: usize| match get(i) {
            Field::Null => Err(RowFault::Null(SCORE_COLUMNS[i])),
            Field::Str(s) => Ok(s.clone()),
            other => Err(wrong(i, other, "a string")),
        };
        let double = |i: usize| match get(i) {
            Field::Null => Ok(None),
            Field::Double(v) => Ok(Some(*v)),
            other => Err(wrong(i, other, "a number")),
        };
        let status = string(2)?;
        let status = parse_status(&status).ok_or(RowFault::Status(status))?;
        let extra = self
            .extra
            .iter()
            .map(|(name, i)| {
                let value = fields
                    .get(*i)
                    .and_then(|f| field_column_value(f))
                    .unwrap_or(ColumnValue::Null);
                (name.clone(), value)
            })
            .collect();
        Ok(ScoreRow {
            index: count(0)?,
            id: string(1)?,
            status,
            bytes: count(3)?,
            words: count(4)?,
            tokens: count(5)?,
            scored_tokens: count(6)?,
            nll_sum: double(7)?.ok_or(RowFault::Null("nll_sum"))?,
            mean_nll: double(8)?,
            perplexity: double(9)?,
            bits_per_byte: double(10)?,
            token_accuracy: double(11)?,
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of f64s of every magnitude (xorshift64*).
    struct Bits(u64);
    impl Bits {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn finite(&mut self) -> f64 {
            loop {
                let f = f64::from_bits(self.next());
                if f.is_finite() {
                    return f;
                }
            }
        }
    }

    fn row(i: u64, bits: &mut Bits, extra: &[&str]) -> ScoreRow {
        let status = [
            DocumentStatus::Scored,
            DocumentStatus::Empty,
            DocumentStatus::TooShort,
            DocumentStatus::BeyondTokenLimit,
        ][(i % 4) as usize];
        let maybe = |bits: &mut Bits| (!bits.next().is_multiple_of(3)).then(|| bits.finite());
        let values = [
            ColumnValue::Text(format!("t\"{i}\n")),
            ColumnValue::Int(-(i as i64)),
            ColumnValue::Float(i as f64 / 3.0),
            ColumnValue::Bool(i.is_multiple_of(2)),
            ColumnValue::Null,
        ];
        ScoreRow {
            index: i,
            id: format!("doc é {i}"),
            status,
            bytes: i * 7,
            words: i * 2,
            tokens: i * 3,
            scored_tokens: i * 3 / 2,
            nll_sum: bits.finite(),
            mean_nll: maybe(bits),
            perplexity: maybe(bits),
            bits_per_byte: maybe(bits),
            token_accuracy: maybe(bits),
            extra: extra
                .iter()
                .enumerate()
                .map(|(k, name)| {
                    (
                        name.to_string(),
                        values[(i as usize + k) % values.len()].clone(),
                    )
                })
                .collect(),
        }
    }

    fn rows(n: u64, extra: &[&str]) -> Vec<ScoreRow> {
        let mut bits = Bits(0x9E37_79B9_7F4A_7C15);
        (0..n).map(|i| row(i, &mut bits, extra)).collect()
    }

    fn write_parquet(rows: &[ScoreRow], keep: &[String], metadata: &[(String, String)]) -> Vec<u8> {
        let mut writer = ParquetRowWriter::new(Vec::new(), keep, metadata).unwrap();
        for row in rows {
            writer.write(row).unwrap();
        }
        writer.finish().unwrap()
    }

    /// `row` as Parquet reads it back: kept values as text.
    fn as_text(mut row: ScoreRow) -> ScoreRow {
        for (_, value) in &mut row.extra {
            *value = match column_text(value) {
                Some(t) => ColumnValue::Text(t),
                None => ColumnValue::Null,
            };
        }
        row
    }

    #[test]
    fn jsonl_rows_round_trip_exactly() {
        for row in rows(5000, &["lang", "n", "score", "flag", "none"]) {
            let line = jsonl_row(&row);
            assert!(!line.contains('\n'));
            assert_eq!(parse_jsonl_row(&line).unwrap(), row, "{line}");
        }
    }

    #[test]
    fn a_jsonl_row_has_a_fixed_key_order() {
        let mut row = rows(2, &["lang"]).pop().unwrap();
        row.nll_sum = 1.5;
        row.mean_nll = Some(0.1);
        row.perplexity = None;
        row.bits_per_byte = Some(2.0);
        row.token_accuracy = Some(1.0 / 3.0);
        row.extra = vec![
            ("lang".into(), ColumnValue::Text("en".into())),
            ("n".into(), ColumnValue::Int(4)),
            ("x".into(), ColumnValue::Float(3.0)),
            ("b".into(), ColumnValue::Bool(false)),
            ("z".into(), ColumnValue::Null),
        ];
        assert_eq!(
            jsonl_row(&row),
            "{\"index\":1,\"id\":\"doc é 1\",\"status\":\"empty\",\"bytes\":7,\"words\":2,\
             \"tokens\":3,\"scored_tokens\":1,\"nll_sum\":1.5,\"mean_nll\":0.1,\
             \"perplexity\":null,\"bits_per_byte\":2.0,\"token_accuracy\":0.3333333333333333,\
             \"lang\":\"en\",\"n\":4,\"x\":3.0,\"b\":false,\"z\":null}"
        );
        assert_eq!(parse_jsonl_row(&jsonl_row(&row)).unwrap(), row);
    }

    #[test]
    fn bad_jsonl_rows_say_what_is_wrong() {
        let line = jsonl_row(&rows(1, &[])[0]);
        let fault = |text: &str| match parse_jsonl_row(text).unwrap_err() {
            RowsError::JsonlRow { fault, .. } => fault.to_string(),
            other => panic!("{other}"),
        };
        assert_eq!(
            fault(&line.replace(",\"words\":0", "")),
            "it has no `words`"
        );
        assert_eq!(
            fault(
                &line
                    .replace("\"empty\"", "\"done\"")
                    .replace("\"scored\"", "\"done\"")
            ),
            "status `done` is not one of `scored`, `empty`, `too-short`, `beyond-token-limit`"
        );
        assert_eq!(
            fault(&line.replace("\"bytes\":0", "\"bytes\":-1")),
            "`bytes` is a number, not a non-negative integer"
        );
        assert_eq!(
            fault(&line.replace("}", ",\"id\":\"b\"}")),
            "`id` appears twice"
        );
        assert_eq!(fault("[1]"), "it is not one JSON object");
        let e = parse_jsonl_row("").unwrap_err();
        assert_eq!(e.to_string(), "the line is not a score row");
    }

    #[test]
    fn parquet_rows_round_trip_over_several_row_groups() {
        let keep: Vec<String> = ["lang", "n", "score", "flag", "none"]
            .map(String::from)
            .to_vec();
        let names: Vec<&str> = keep.iter().map(String::as_str).collect();
        let written = rows(20_000, &names);
        let metadata = vec![
            ("perplex.schema_version".to_string(), "1".to_string()),
            ("a".to_string(), "{\"x\": 1}".to_string()),
        ];
        let bytes = write_parquet(&written, &keep, &metadata);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        std::fs::write(&path, &bytes).unwrap();

        let check = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let groups: Vec<i64> = check
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [8192, 8192, 3616]);
        assert!(!check
            .metadata()
            .file_metadata()
            .created_by()
            .unwrap_or("")
            .is_empty());

        let reader = open_rows(&path).unwrap();
        assert_eq!(reader.metadata(), &metadata[..]);
        assert_eq!(reader.extra_columns(), &keep[..]);
        let read: Vec<ScoreRow> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(read.len(), written.len());
        for (got, want) in read.into_iter().zip(written) {
            assert_eq!(got, as_text(want));
        }
    }

    #[test]
    fn the_same_rows_give_the_same_bytes() {
        let keep = vec!["lang".to_string()];
        let written = rows(9000, &["lang"]);
        let meta = [("k".to_string(), "v".to_string())];
        let (a, b) = (
            write_parquet(&written, &keep, &meta),
            write_parquet(&written, &keep, &meta),
        );
        assert_eq!(a, b);
        assert_eq!(&a[..4], b"PAR1");
        let lines: Vec<String> = written.iter().map(jsonl_row).collect();
        assert_eq!(lines, written.iter().map(jsonl_row).collect::<Vec<_>>());
    }

    #[test]
    fn jsonl_files_read_lazily_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let written = rows(3, &["lang"]);
        let mut text: String = written.iter().map(|r| jsonl_row(r) + "\n").collect();
        text.insert(0, '\n');
        let path = dir.path().join("rows.jsonl");
        std::fs::write(&path, &text).unwrap();
        let reader = open_rows(&path).unwrap();
        assert_eq!(reader.extra_columns(), ["lang".to_string()]);
        assert!(reader.metadata().is_empty());
        assert_eq!(reader.collect::<Result<Vec<_>, _>>().unwrap(), written);

        // A run killed mid-line leaves a partial last line.
        text.push_str("{\"index\":3,\"id\":");
        std::fs::write(&path, &text).unwrap();
        let e = open_rows(&path).unwrap().find_map(Result::err).unwrap();
        assert_eq!(
            e.to_string(),
            format!("`{}:5` is not a score row", path.display())
        );
        assert!(e.hint().unwrap().contains("partial last line"));

        let e = open_rows(&dir.path().join("none.jsonl")).unwrap_err();
        assert!(
            matches!(&e, RowsError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        );
        assert_eq!(e.hint().unwrap(), "check the path");
    }

    #[test]
    fn the_format_comes_from_the_extension_or_the_magic() {
        assert_eq!(
            RowFormat::from_path(Path::new("a/b.JSONL")),
            Some(RowFormat::Jsonl)
        );
        assert_eq!(
            RowFormat::from_path(Path::new("b.json")),
            Some(RowFormat::Jsonl)
        );
        assert_eq!(
            RowFormat::from_path(Path::new("b.pq")),
            Some(RowFormat::Parquet)
        );
        assert_eq!(
            RowFormat::from_path(Path::new("b.parquet")),
            Some(RowFormat::Parquet)
        );
        assert_eq!(RowFormat::from_path(Path::new("b")), None);
        assert_eq!(RowFormat::Parquet.name(), "parquet");

        let dir = tempfile::tempdir().unwrap();
        let written = rows(10, &[]);
        let path = dir.path().join("rows");
        std::fs::write(&path, write_parquet(&written, &[], &[])).unwrap();
        assert_eq!(
            open_rows(&path)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            written
        );
        let text: String = written.iter().map(|r| jsonl_row(r) + "\n").collect();
        std::fs::write(&path, text).unwrap();
        assert_eq!(
            open_rows(&path)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            written
        );
        // An empty file is an empty JSONL file.
        std::fs::write(&path, "").unwrap();
        assert_eq!(open_rows(&path).unwrap().count(), 0);
    }

    #[test]
    fn an_empty_parquet_file_has_no_rows_but_its_columns() {
        let keep = vec!["lang".to_string()];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.parquet");
        std::fs::write(&path, write_parquet(&[], &keep, &[])).unwrap();
        let reader = open_rows(&path).unwrap();
        assert_eq!(reader.extra_columns(), &keep[..]);
        assert_eq!(reader.count(), 0);
    }

    #[test]
    fn a_parquet_file_that_is_not_a_row_file_is_refused() {
        // A Parquet file with only an `index` column.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.parquet");
        let schema =
            parquet::schema::parser::parse_message_type("message m { required int64 index; }")
                .unwrap();
        let file = std::fs::File::create(&path).unwrap();
        let writer = SerializedFileWriter::new(
            file,
            Arc::new(schema),
            Arc::new(WriterProperties::builder().build()),
        )
        .unwrap();
        writer.close().unwrap();
        let e = open_rows(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "`{}` is not a score row file: it has no column `id`",
                path.display()
            )
        );
    }

    #[test]
    fn readers_and_writers_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<RowReader>();
        send::<ParquetRowWriter<std::fs::File>>();
    }

    #[test]
    fn kept_columns_are_checked() {
        let e = ParquetRowWriter::new(Vec::new(), &["id".to_string()], &[])
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "kept column `id` has the name of a score column"
        );
        let twice = ["a".to_string(), "a".to_string()];
        let e = check_extra_columns(&twice).unwrap_err();
        assert_eq!(e.to_string(), "kept column `a` is named twice");

        let mut writer = ParquetRowWriter::new(Vec::new(), &["lang".to_string()], &[]).unwrap();
        let e = writer.write(&rows(1, &[])[0]).unwrap_err();
        assert_eq!(e.to_string(), "row 0 has kept columns none, not `lang`");
    }
}
