//! Documents streamed from text, JSONL and Parquet files with bounded memory,
//! for scoring corpora too large to hold.
//!
//! # Contract
//!
//! - **Order.** Text files, then JSONL files, then Parquet files, each group
//!   in the order given; [`SourceDocument::index`] counts documents over the
//!   whole stream from 0.
//! - **Failing early.** [`StreamInputs::open`] opens every file, and reads
//!   every Parquet footer to check that the text, id and kept columns exist
//!   and have usable types, before anything is yielded. Files are then
//!   closed and opened again in turn, so a corpus of many shards holds one
//!   file open at a time.
//! - **Memory.** Text files split by `lines` or `paragraphs` and JSONL files
//!   are read a line at a time; a `whole` text file is one document and is
//!   read at once; a Parquet file is decoded one row group at a time, only
//!   the columns asked for.
//! - **Text.** Text files are cut as [`crate::corpus::split_text`] cuts them
//!   (same lines, same paragraphs, texts kept exactly). A JSONL record's
//!   text is its string field `text_column` (blank lines skipped, a leading
//!   byte-order mark ignored, a file that is one JSON array refused, as
//!   [`crate::corpus::parse_jsonl`] does); a Parquet text column must hold
//!   strings (`BYTE_ARRAY`, plain or annotated UTF8, ENUM or JSON). A null
//!   text is an empty document; a JSONL record without the field, or with a
//!   value that is not a string, is an error.
//! - **Ids.** The id column's value, a string or an integer (written in
//!   decimal); a missing or null id is an error naming the file and the
//!   JSONL line (from 1) or Parquet row (from 0). Without an id column a
//!   document's id is `<source>:<n>`, `n` its position in its source from 0.
//! - **Kept columns** ([`SourceDocument::extra`], in the order asked for):
//!   JSON integers become [`ColumnValue::Int`] (beyond `i64`: their decimal
//!   text), other numbers `Float`, booleans `Bool`, strings `Text`, objects
//!   and arrays the `Text` of their JSON, missing or null fields `Null`.
//!   Parquet integers, floats and booleans map likewise (`f32` through its
//!   shortest decimal, so `0.1f32` is `0.1`); dates, times, timestamps and
//!   decimals become the `Text` the parquet crate renders them as (a date
//!   or timestamp it cannot render, over about 262,000 years from 1970,
//!   its number as an `Int`); nested
//!   groups, lists and maps the `Text` of a JSON rendering; byte arrays
//!   their `Text` when UTF-8, else an error.
//! - **Errors** end the stream: after an `Err` the iterator yields nothing.
//!
//! A path `-` among the text or JSONL files is stdin, named `stdin`.
//!
//! ```
//! use perplex_data::stream::StreamInputs;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("notes.txt");
//! std::fs::write(&path, "first\nsecond\n")?;
//! let inputs = StreamInputs {
//!     files: vec![path.clone()],
//!     split: perplex_data::corpus::Split::Lines,
//!     ..StreamInputs::default()
//! };
//! let docs: Vec<_> = inputs.open()?.collect::<Result<_, _>>()?;
//! assert_eq!(docs[1].text, "second");
//! assert_eq!(docs[1].id, format!("{}:1", path.display()));
//! assert_eq!(inputs.text_description(), "lines");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use parquet::basic::{ConvertedType, Repetition, Type as PhysicalType};
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::{Field, Row};
use parquet::schema::types::Type;
use perplex_core::score::ColumnValue;

use crate::corpus::{decode_utf8, json_kind, ColumnRole, CorpusError, Position, Split};
use crate::pages::CheckedRowGroup;

/// The files of a stream and the columns to read from them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamInputs {
    /// Text files (`-` is stdin), cut by `split`.
    pub files: Vec<PathBuf>,
    /// How text files become documents.
    pub split: Split,
    /// JSON Lines files (`-` is stdin).
    pub jsonl: Vec<PathBuf>,
    /// Parquet files.
    pub parquet: Vec<PathBuf>,
    /// The JSONL field or Parquet column holding the text.
    pub text_column: String,
    /// The JSONL field or Parquet column holding the id, if any.
    pub id_column: Option<String>,
    /// JSONL fields or Parquet columns copied into [`SourceDocument::extra`].
    pub keep_columns: Vec<String>,
}

/// One document of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDocument {
    /// Position in the whole stream, from 0.
    pub index: u64,
    /// The id column's value, else `<source>:<n>`.
    pub id: String,
    /// The text, exactly as read.
    pub text: String,
    /// The kept columns, in the order asked for.
    pub extra: Vec<(String, ColumnValue)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text(Split),
    Jsonl,
    Parquet,
}

#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    name: String,
    kind: Kind,
}

/// The columns every record is read for.
#[derive(Debug, Clone)]
struct Columns {
    text: String,
    id: Option<String>,
    keep: Vec<String>,
}

impl StreamInputs {
    fn source_list(&self) -> Vec<Source> {
        let named = |path: &PathBuf, kind| Source {
            name: display_name(path),
            path: path.clone(),
            kind,
        };
        let mut out: Vec<Source> = Vec::new();
        out.extend(self.files.iter().map(|p| named(p, Kind::Text(self.split))));
        out.extend(self.jsonl.iter().map(|p| named(p, Kind::Jsonl)));
        out.extend(self.parquet.iter().map(|p| named(p, Kind::Parquet)));
        out
    }

    fn columns(&self) -> Columns {
        Columns {
            text: self.text_column.clone(),
            id: self.id_column.clone(),
            keep: self.keep_columns.clone(),
        }
    }

    /// Opens every file and checks every Parquet schema, then streams the
    /// documents (see the [module contract](self)).
    pub fn open(&self) -> Result<DocumentStream, CorpusError> {
        let sources = self.source_list();
        let columns = self.columns();
        for source in &sources {
            match source.kind {
                Kind::Parquet => {
                    ParquetSource::open(source, &columns)?;
                }
                _ if source.path == Path::new("-") => {}
                _ => {
                    fs_err::File::open(&source.path).map_err(|e| read_error(&source.name, e))?;
                }
            }
        }
        Ok(DocumentStream {
            sources: sources.into(),
            columns,
            current: None,
            index: 0,
            done: false,
        })
    }

    /// The input files in stream order (`stdin` for `-`).
    pub fn sources(&self) -> Vec<String> {
        self.source_list().into_iter().map(|s| s.name).collect()
    }

    /// Where the text comes from: `lines`, `paragraphs` or `whole` for text
    /// files, `jsonl:<field>`, `parquet:<column>`; several kinds in stream
    /// order joined by `+` (`lines+parquet:text`); `none` without inputs.
    pub fn text_description(&self) -> String {
        let mut parts = Vec::new();
        if !self.files.is_empty() {
            parts.push(self.split.name().to_owned());
        }
        if !self.jsonl.is_empty() {
            parts.push(format!("jsonl:{}", self.text_column));
        }
        if !self.parquet.is_empty() {
            parts.push(format!("parquet:{}", self.text_column));
        }
        if parts.is_empty() {
            return "none".to_owned();
        }
        parts.join("+")
    }
}

fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

fn read_error(name: &str, source: std::io::Error) -> CorpusError {
    CorpusError::Read {
        name: name.to_owned(),
        source,
    }
}

fn parquet_error(name: &str, e: parquet::errors::ParquetError) -> CorpusError {
    CorpusError::Parquet {
        name: name.to_owned(),
        source: Box::new(e),
    }
}

/// The documents of a [`StreamInputs`], in order; `Send`, so a reader
/// thread can feed the scorer.
pub struct DocumentStream {
    sources: VecDeque<Source>,
    columns: Columns,
    current: Option<Reader>,
    index: u64,
    done: bool,
}

impl std::fmt::Debug for DocumentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentStream")
            .field("next_index", &self.index)
            .field("sources_left", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl Iterator for DocumentStream {
    type Item = Result<SourceDocument, CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(record)) => {
                let index = self.index;
                self.index += 1;
                Some(Ok(SourceDocument {
                    index,
                    id: record.id,
                    text: record.text,
                    extra: record.extra,
                }))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                self.current = None;
                Some(Err(e))
            }
        }
    }
}

impl DocumentStream {
    fn advance(&mut self) -> Result<Option<Record>, CorpusError> {
        loop {
            if let Some(reader) = &mut self.current {
                if let Some(record) = reader.next_record(&self.columns)? {
                    return Ok(Some(record));
                }
                self.current = None;
            }
            let Some(source) = self.sources.pop_front() else {
                return Ok(None);
            };
            self.current = Some(Reader::open(&source, &self.columns)?);
        }
    }
}

/// A document before its stream index is known.
struct Record {
    id: String,
    text: String,
    extra: Vec<(String, ColumnValue)>,
}

enum Reader {
    Whole(Option<(String, String)>),
    Lines {
        lines: LineReader,
        count: u64,
    },
    Paragraphs {
        lines: LineReader,
        count: u64,
    },
    Jsonl {
        lines: LineReader,
        count: u64,
        started: bool,
    },
    Parquet(Box<ParquetSource>),
}

fn open_read(source: &Source) -> Result<Box<dyn Read + Send>, CorpusError> {
    if source.path == Path::new("-") {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = fs_err::File::open(&source.path).map_err(|e| read_error(&source.name, e))?;
    Ok(Box::new(file))
}

impl Reader {
    fn open(source: &Source, columns: &Columns) -> Result<Reader, CorpusError> {
        Ok(match source.kind {
            Kind::Text(Split::Whole) => {
                let mut bytes = Vec::new();
                open_read(source)?
                    .read_to_end(&mut bytes)
                    .map_err(|e| read_error(&source.name, e))?;
                let text = decode_utf8(bytes, &source.name)?;
                Reader::Whole(Some((format!("{}:0", source.name), text)))
            }
            Kind::Text(Split::Lines) => Reader::Lines {
                lines: LineReader::new(source, open_read(source)?),
                count: 0,
            },
            Kind::Text(Split::Paragraphs) => Reader::Paragraphs {
                lines: LineReader::new(source, open_read(source)?),
                count: 0,
            },
            Kind::Jsonl => Reader::Jsonl {
                lines: LineReader::new(source, open_read(source)?),
                count: 0,
                started: false,
            },
            Kind::Parquet => Reader::Parquet(Box::new(ParquetSource::open(source, columns)?)),
        })
    }

    fn next_record(&mut self, columns: &Columns) -> Result<Option<Record>, CorpusError> {
        match self {
            Reader::Whole(doc) => Ok(doc.take().map(|(id, text)| Record {
                id,
                text,
                extra: Vec::new(),
            })),
            Reader::Lines { lines, count } => {
                let Some(line) = lines.next_line()? else {
                    return Ok(None);
                };
                Ok(Some(text_record(&lines.name, count, line.content)))
            }
            Reader::Paragraphs { lines, count } => {
                // Blank lines before the paragraph are dropped; the paragraph
                // keeps its inner line endings, not the one after its last line.
                let mut text = String::new();
                let mut pending_ending = String::new();
                let mut any = false;
                while let Some(line) = lines.next_line()? {
                    if line.content.trim().is_empty() {
                        if any {
                            break;
                        }
                        continue;
                    }
                    text.push_str(&pending_ending);
                    text.push_str(&line.content);
                    pending_ending = line.ending;
                    any = true;
                }
                Ok(any.then(|| text_record(&lines.name, count, text)))
            }
            Reader::Jsonl {
                lines,
                count,
                started,
            } => loop {
                let Some(mut line) = lines.next_line()? else {
                    return Ok(None);
                };
                if !*started && line.number == 1 {
                    // JSON cannot start with a byte-order mark, but editors write one.
                    if let Some(rest) = line.content.strip_prefix('\u{FEFF}') {
                        line.content = rest.to_owned();
                    }
                }
                if line.content.trim().is_empty() {
                    continue;
                }
                if !*started {
                    *started = true;
                    if line.content.trim_start().starts_with('[') {
                        return Err(CorpusError::JsonArray {
                            name: lines.name.clone(),
                        });
                    }
                }
                let record =
                    jsonl_record(&lines.name, line.number, &line.content, *count, columns)?;
                *count += 1;
                return Ok(Some(record));
            },
            Reader::Parquet(source) => source.next_record(columns),
        }
    }
}

fn text_record(name: &str, count: &mut u64, text: String) -> Record {
    let id = format!("{name}:{count}");
    *count += 1;
    Record {
        id,
        text,
        extra: Vec::new(),
    }
}

/// One line of a file: its 1-based number, its content without the line
/// ending, and the ending (`\n`, `\r\n`, or `\r` / nothing at the end).
struct Line {
    number: usize,
    content: String,
    ending: String,
}

/// Reads a file a line at a time with the line semantics of
/// [`crate::corpus::split_text`]: `\n` or `\r\n` ends a line, a final line
/// ending does not start another line.
struct LineReader {
    name: String,
    reader: BufReader<Box<dyn Read + Send>>,
    /// The last line's number.
    number: usize,
    /// Byte offset of the next line's start.
    offset: usize,
    buf: Vec<u8>,
}

impl LineReader {
    fn new(source: &Source, read: Box<dyn Read + Send>) -> Self {
        LineReader {
            name: source.name.clone(),
            reader: BufReader::with_capacity(1 << 16, read),
            number: 0,
            offset: 0,
            buf: Vec::new(),
        }
    }

    fn next_line(&mut self) -> Result<Option<Line>, CorpusError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| read_error(&self.name, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        let start = self.offset;
        self.offset += n;
        let mut bytes = std::mem::take(&mut self.buf);
        let mut ending = String::new();
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            ending.push('\n');
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
            ending.insert(0, '\r');
        }
        let content = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            CorpusError::InvalidUtf8 {
                name: self.name.clone(),
                offset: start + valid,
                byte: e.as_bytes()[valid],
                line: self.number,
            }
        })?;
        Ok(Some(Line {
            number: self.number,
            content,
            ending,
        }))
    }
}

fn jsonl_record(
    name: &str,
    line: usize,
    content: &str,
    count: u64,
    columns: &Columns,
) -> Result<Record, CorpusError> {
    let value: serde_json::Value =
        serde_json::from_str(content).map_err(|source| CorpusError::JsonlSyntax {
            name: name.to_owned(),
            line,
            source,
        })?;
    let serde_json::Value::Object(mut record) = value else {
        return Err(CorpusError::JsonlNotObject {
            name: name.to_owned(),
            line,
            field: columns.text.clone(),
            found: json_kind(&value),
        });
    };
    let text = match record.get(&columns.text) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) => String::new(),
        Some(other) => {
            return Err(CorpusError::JsonlNotString {
                name: name.to_owned(),
                line,
                field: columns.text.clone(),
                found: json_kind(other),
            })
        }
        None => {
            return Err(CorpusError::JsonlMissingField {
                name: name.to_owned(),
                line,
                field: columns.text.clone(),
                keys: record.keys().cloned().collect(),
            })
        }
    };
    let id = match &columns.id {
        None => format!("{name}:{count}"),
        Some(column) => {
            let at = Position::Line(line);
            let missing = |found| CorpusError::MissingId {
                name: name.to_owned(),
                at,
                column: column.clone(),
                found,
            };
            match record.get(column) {
                None => return Err(missing("missing")),
                Some(serde_json::Value::Null) => return Err(missing("null")),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
                Some(other) => {
                    return Err(CorpusError::IdType {
                        name: name.to_owned(),
                        at,
                        column: column.clone(),
                        found: match other {
                            serde_json::Value::Number(_) => "a number with a fraction",
                            other => json_kind(other),
                        },
                    })
                }
            }
        }
    };
    let extra = columns
        .keep
        .iter()
        .map(|k| {
            let value = record
                .remove(k)
                .map_or(ColumnValue::Null, json_column_value);
            (k.clone(), value)
        })
        .collect();
    Ok(Record { id, text, extra })
}

/// A JSON value as a kept column (see the module contract).
pub(crate) fn json_column_value(value: serde_json::Value) -> ColumnValue {
    match value {
        serde_json::Value::Null => ColumnValue::Null,
        serde_json::Value::Bool(b) => ColumnValue::Bool(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ColumnValue::Int(i)
            } else if n.is_u64() {
                ColumnValue::Text(n.to_string())
            } else {
                n.as_f64()
                    .map_or_else(|| ColumnValue::Text(n.to_string()), ColumnValue::Float)
            }
        }
        serde_json::Value::String(s) => ColumnValue::Text(s),
        other => ColumnValue::Text(other.to_string()),
    }
}

/// Positions of the needed columns within the projected rows.
#[derive(Debug, Clone)]
struct Layout {
    text: usize,
    id: Option<usize>,
    keep: Vec<usize>,
}

/// A Parquet file read one row group at a time.
struct ParquetSource {
    name: String,
    reader: SerializedFileReader<std::fs::File>,
    projection: Type,
    layout: Layout,
    next_group: usize,
    /// Decoded records of the current row group.
    buffered: VecDeque<Record>,
    /// Records of this file decoded so far (the next row's number).
    rows: u64,
}

impl ParquetSource {
    /// Opens the file, reads its footer and checks the columns.
    fn open(source: &Source, columns: &Columns) -> Result<Self, CorpusError> {
        let name = source.name.clone();
        let file = fs_err::File::open(&source.path)
            .map_err(|e| read_error(&name, e))?
            .into_file();
        let reader = SerializedFileReader::new(file).map_err(|e| parquet_error(&name, e))?;
        let schema = reader.metadata().file_metadata().schema();
        let fields = schema.get_fields();
        let names: Vec<String> = fields.iter().map(|f| f.name().to_owned()).collect();
        let find = |column: &str, role: ColumnRole| -> Result<usize, CorpusError> {
            names
                .iter()
                .position(|n| n == column)
                .ok_or_else(|| CorpusError::MissingColumn {
                    name: name.clone(),
                    column: column.to_owned(),
                    role,
                    columns: names.clone(),
                })
        };
        let type_error = |column: &str, role, found: String, expected| CorpusError::ColumnType {
            name: name.clone(),
            column: column.to_owned(),
            role,
            found,
            expected,
        };

        let text = find(&columns.text, ColumnRole::Text)?;
        if !is_string(&fields[text]) {
            return Err(type_error(
                &columns.text,
                ColumnRole::Text,
                describe(&fields[text]),
                "strings",
            ));
        }
        let id = match &columns.id {
            Some(column) => {
                let i = find(column, ColumnRole::Id)?;
                if !is_string(&fields[i]) && !is_integer(&fields[i]) {
                    return Err(type_error(
                        column,
                        ColumnRole::Id,
                        describe(&fields[i]),
                        "strings or integers",
                    ));
                }
                Some(i)
            }
            None => None,
        };
        let mut keep = Vec::with_capacity(columns.keep.len());
        for column in &columns.keep {
            keep.push(find(column, ColumnRole::Kept)?);
        }

        // Project the needed columns in schema order (a projection must be
        // a sub-schema); each column once even when it serves several roles.
        let mut needed: Vec<usize> = std::iter::once(text)
            .chain(id)
            .chain(keep.iter().copied())
            .collect();
        needed.sort_unstable();
        needed.dedup();
        let at = |i: usize| needed.binary_search(&i).unwrap_or_default();
        let layout = Layout {
            text: at(text),
            id: id.map(at),
            keep: keep.iter().map(|&i| at(i)).collect(),
        };
        let projection = Type::group_type_builder(schema.name())
            .with_fields(needed.iter().map(|&i| Arc::clone(&fields[i])).collect())
            .build()
            .map_err(|e| parquet_error(&name, e))?;
        Ok(ParquetSource {
            name,
            reader,
            projection,
            layout,
            next_group: 0,
            buffered: VecDeque::new(),
            rows: 0,
        })
    }

    fn next_record(&mut self, columns: &Columns) -> Result<Option<Record>, CorpusError> {
        while self.buffered.is_empty() {
            if self.next_group >= self.reader.num_row_groups() {
                return Ok(None);
            }
            self.read_group(columns)?;
        }
        Ok(self.buffered.pop_front())
    }

    /// Decodes the next row group into `buffered`.
    fn read_group(&mut self, columns: &Columns) -> Result<(), CorpusError> {
        let name = self.name.clone();
        let group = self
            .reader
            .get_row_group(self.next_group)
            .map_err(|e| parquet_error(&name, e))?;
        // pages the parquet crate would panic on are errors (see `pages`)
        let group = CheckedRowGroup(group);
        self.next_group += 1;
        let rows = group
            .get_row_iter(Some(self.projection.clone()))
            .map_err(|e| parquet_error(&name, e))?;
        for row in rows {
            let row = row.map_err(|e| parquet_error(&name, e))?;
            let record = self.record(&row, columns)?;
            self.buffered.push_back(record);
            self.rows += 1;
        }
        Ok(())
    }

    fn record(&self, row: &Row, columns: &Columns) -> Result<Record, CorpusError> {
        let at = Position::Row(self.rows);
        let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let not_utf8 = |column: &str| CorpusError::ParquetNotUtf8 {
            name: self.name.clone(),
            at,
            column: column.to_owned(),
        };
        let text = match fields.get(self.layout.text) {
            Some(Field::Str(s)) => s.clone(),
            Some(Field::Bytes(b)) => {
                String::from_utf8(b.data().to_vec()).map_err(|_| not_utf8(&columns.text))?
            }
            // Null (the schema check leaves no other kind).
            _ => String::new(),
        };
        let id = match (&columns.id, self.layout.id) {
            (Some(column), Some(i)) => match fields.get(i) {
                None | Some(Field::Null) => {
                    return Err(CorpusError::MissingId {
                        name: self.name.clone(),
                        at,
                        column: column.clone(),
                        found: "null",
                    })
                }
                Some(Field::Str(s)) => s.clone(),
                Some(Field::Bytes(b)) => {
                    String::from_utf8(b.data().to_vec()).map_err(|_| not_utf8(column))?
                }
                Some(other) => integer_text(other).ok_or_else(|| CorpusError::IdType {
                    name: self.name.clone(),
                    at,
                    column: column.clone(),
                    found: "another kind of value",
                })?,
            },
            _ => format!("{}:{}", self.name, self.rows),
        };
        let mut extra = Vec::with_capacity(columns.keep.len());
        for (column, &i) in columns.keep.iter().zip(&self.layout.keep) {
            let value = match fields.get(i) {
                Some(field) => field_column_value(field).ok_or_else(|| not_utf8(column))?,
                None => ColumnValue::Null,
            };
            extra.push((column.clone(), value));
        }
        Ok(Record { id, text, extra })
    }
}

fn integer_text(field: &Field) -> Option<String> {
    Some(match *field {
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        _ => return None,
    })
}

/// A top-level, non-repeated column of strings.
fn is_string(field: &Type) -> bool {
    field.is_primitive()
        && field.get_basic_info().repetition() != Repetition::REPEATED
        && field.get_physical_type() == PhysicalType::BYTE_ARRAY
        && matches!(
            field.get_basic_info().converted_type(),
            ConvertedType::UTF8 | ConvertedType::ENUM | ConvertedType::JSON | ConvertedType::NONE
        )
}

/// A top-level, non-repeated column of integers.
fn is_integer(field: &Type) -> bool {
    field.is_primitive()
        && field.get_basic_info().repetition() != Repetition::REPEATED
        && matches!(
            field.get_physical_type(),
            PhysicalType::INT32 | PhysicalType::INT64
        )
        && matches!(
            field.get_basic_info().converted_type(),
            ConvertedType::NONE
                | ConvertedType::INT_8
                | ConvertedType::INT_16
                | ConvertedType::INT_32
                | ConvertedType::INT_64
                | ConvertedType::UINT_8
                | ConvertedType::UINT_16
                | ConvertedType::UINT_32
                | ConvertedType::UINT_64
        )
}

/// `INT64`, `INT32 (DATE)`, `repeated BYTE_ARRAY`, `a nested group`.
fn describe(field: &Type) -> String {
    if field.is_group() {
        return "a nested group".to_owned();
    }
    let info = field.get_basic_info();
    let mut out = String::new();
    if info.repetition() == Repetition::REPEATED {
        out.push_str("repeated ");
    }
    out.push_str(&format!("{:?}", field.get_physical_type()));
    match (info.logical_type_ref(), info.converted_type()) {
        (Some(logical), _) => out.push_str(&format!(" ({logical:?})")),
        (None, ConvertedType::NONE) => {}
        (None, converted) => out.push_str(&format!(" ({converted:?})")),
    }
    out
}

/// A Parquet value as a kept column (see the module contract); `None` for
/// bytes that are not UTF-8.
pub(crate) fn field_column_value(field: &Field) -> Option<ColumnValue> {
    Some(match field {
        Field::Null => ColumnValue::Null,
        Field::Bool(b) => ColumnValue::Bool(*b),
        Field::Byte(v) => ColumnValue::Int(i64::from(*v)),
        Field::Short(v) => ColumnValue::Int(i64::from(*v)),
        Field::Int(v) => ColumnValue::Int(i64::from(*v)),
        Field::Long(v) => ColumnValue::Int(*v),
        Field::UByte(v) => ColumnValue::Int(i64::from(*v)),
        Field::UShort(v) => ColumnValue::Int(i64::from(*v)),
        Field::UInt(v) => ColumnValue::Int(i64::from(*v)),
        Field::ULong(v) => {
            i64::try_from(*v).map_or_else(|_| ColumnValue::Text(v.to_string()), ColumnValue::Int)
        }
        Field::Float16(v) => ColumnValue::Float(f64::from(*v)),
        Field::Float(v) => ColumnValue::Float(f32_to_f64(*v)),
        Field::Double(v) => ColumnValue::Float(*v),
        Field::Str(s) => ColumnValue::Text(s.clone()),
        Field::Bytes(b) => ColumnValue::Text(String::from_utf8(b.data().to_vec()).ok()?),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => {
            ColumnValue::Text(field_json(field)?.to_string())
        }
        other => match unrenderable(other) {
            Some(n) => ColumnValue::Int(n),
            None => ColumnValue::Text(other.to_string()),
        },
    })
}

/// The number of a date or timestamp the parquet crate cannot render: it
/// renders them through chrono and panics on one out of its range (about
/// 262,000 years either side of 1970).
fn unrenderable(field: &Field) -> Option<i64> {
    match *field {
        Field::Date(days)
            if Utc
                .timestamp_opt(i64::from(days) * 86_400, 0)
                .single()
                .is_none() =>
        {
            Some(i64::from(days))
        }
        Field::TimestampMillis(ms) if Utc.timestamp_millis_opt(ms).single().is_none() => Some(ms),
        Field::TimestampMicros(us) if Utc.timestamp_micros(us).single().is_none() => Some(us),
        _ => None,
    }
}

/// `field` as the parquet crate renders it, or as its number where that
/// would panic (see [`unrenderable`]).
pub(crate) fn field_display(field: &Field) -> String {
    unrenderable(field).map_or_else(|| field.to_string(), |n| n.to_string())
}

/// `0.1f32` as `0.1`, not `0.10000000149011612`: through its shortest decimal.
fn f32_to_f64(v: f32) -> f64 {
    if v.is_finite() {
        v.to_string().parse().unwrap_or(f64::from(v))
    } else {
        f64::from(v)
    }
}

/// A JSON rendering of a (nested) Parquet value; `None` for non-UTF-8 bytes.
fn field_json(field: &Field) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match field {
        Field::Group(row) => {
            let mut map = serde_json::Map::new();
            for (k, v) in row.get_column_iter() {
                map.insert(k.clone(), field_json(v)?);
            }
            Value::Object(map)
        }
        Field::ListInternal(list) => Value::Array(
            list.elements()
                .iter()
                .map(field_json)
                .collect::<Option<Vec<_>>>()?,
        ),
        Field::MapInternal(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.entries() {
                let key = match field_json(k)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, field_json(v)?);
            }
            Value::Object(out)
        }
        scalar => match field_column_value(scalar)? {
            ColumnValue::Null => Value::Null,
            ColumnValue::Bool(b) => Value::Bool(b),
            ColumnValue::Int(i) => Value::from(i),
            ColumnValue::Float(f) => {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
            ColumnValue::Text(s) => Value::String(s),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::split_text;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    /// `(doc_id, text, score)`.
    type CorpusRow<'a> = (i64, Option<&'a str>, Option<f64>);

    /// A Parquet corpus with a required int64 `doc_id`, an optional string
    /// `text` and an optional double `score`, one row group per slice.
    fn write_corpus(path: &Path, groups: &[&[CorpusRow<'_>]]) {
        let schema = parse_message_type(
            "message corpus {
                required int64 doc_id;
                optional binary text (UTF8);
                optional double score;
            }",
        )
        .unwrap();
        let file = std::fs::File::create(path).unwrap();
        let props = Arc::new(WriterProperties::builder().build());
        let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
        for rows in groups {
            let mut group = writer.next_row_group().unwrap();
            let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let texts: Vec<ByteArray> = rows
                .iter()
                .filter_map(|r| r.1)
                .map(ByteArray::from)
                .collect();
            let text_levels: Vec<i16> = rows.iter().map(|r| i16::from(r.1.is_some())).collect();
            let scores: Vec<f64> = rows.iter().filter_map(|r| r.2).collect();
            let score_levels: Vec<i16> = rows.iter().map(|r| i16::from(r.2.is_some())).collect();
            let mut c = group.next_column().unwrap().unwrap();
            c.typed::<Int64Type>()
                .write_batch(&ids, None, None)
                .unwrap();
            c.close().unwrap();
            let mut c = group.next_column().unwrap().unwrap();
            c.typed::<ByteArrayType>()
                .write_batch(&texts, Some(&text_levels), None)
                .unwrap();
            c.close().unwrap();
            let mut c = group.next_column().unwrap().unwrap();
            c.typed::<DoubleType>()
                .write_batch(&scores, Some(&score_levels), None)
                .unwrap();
            c.close().unwrap();
            group.close().unwrap();
        }
        writer.close().unwrap();
    }

    fn parquet_inputs(paths: &[PathBuf]) -> StreamInputs {
        StreamInputs {
            parquet: paths.to_vec(),
            text_column: "text".into(),
            ..StreamInputs::default()
        }
    }

    fn collect(inputs: &StreamInputs) -> Vec<SourceDocument> {
        inputs.open().unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn the_stream_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<DocumentStream>();
    }

    #[test]
    fn parquet_row_groups_with_int_ids_null_text_and_a_kept_float() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        write_corpus(
            &path,
            &[
                &[(10, Some("alpha"), Some(0.5)), (11, None, Some(-2.25))],
                &[(12, Some("gamma"), None)],
                &[],
                &[(-7, Some("é\n"), Some(1e300))],
            ],
        );
        let inputs = StreamInputs {
            id_column: Some("doc_id".into()),
            keep_columns: vec!["score".into(), "doc_id".into()],
            ..parquet_inputs(std::slice::from_ref(&path))
        };
        let docs = collect(&inputs);
        let got: Vec<(u64, &str, &str)> = docs
            .iter()
            .map(|d| (d.index, d.id.as_str(), d.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, "10", "alpha"),
                (1, "11", ""),
                (2, "12", "gamma"),
                (3, "-7", "é\n")
            ]
        );
        let extras: Vec<&[(String, ColumnValue)]> = docs.iter().map(|d| &d.extra[..]).collect();
        let kept = |score, id| {
            vec![
                ("score".to_string(), score),
                ("doc_id".to_string(), ColumnValue::Int(id)),
            ]
        };
        assert_eq!(extras[0], kept(ColumnValue::Float(0.5), 10));
        assert_eq!(extras[1], kept(ColumnValue::Float(-2.25), 11));
        assert_eq!(extras[2], kept(ColumnValue::Null, 12));
        assert_eq!(extras[3], kept(ColumnValue::Float(1e300), -7));
        assert_eq!(inputs.text_description(), "parquet:text");

        // Without an id column: `<path>:<row>`.
        let docs = collect(&parquet_inputs(std::slice::from_ref(&path)));
        assert_eq!(docs[3].id, format!("{}:3", path.display()));
        assert!(docs.iter().all(|d| d.extra.is_empty()));
    }

    #[test]
    fn a_missing_parquet_column_names_the_file_the_column_and_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        write_corpus(&path, &[&[(1, Some("a"), None)]]);
        let inputs = StreamInputs {
            text_column: "body".into(),
            ..parquet_inputs(std::slice::from_ref(&path))
        };
        let e = inputs.open().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "`{}` has no text column `body`; its columns are `doc_id`, `text`, `score`",
                path.display()
            )
        );
        assert_eq!(
            e.hint().unwrap(),
            "choose one of the file's columns with `--text-column` (names are case-sensitive)"
        );
        let inputs = StreamInputs {
            keep_columns: vec!["Score".into()],
            ..parquet_inputs(std::slice::from_ref(&path))
        };
        let e = inputs.open().unwrap_err();
        assert!(e.to_string().contains("has no kept column `Score`"), "{e}");

        // A text column of integers.
        let inputs = StreamInputs {
            text_column: "doc_id".into(),
            ..parquet_inputs(std::slice::from_ref(&path))
        };
        let e = inputs.open().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "`{}`: the text column `doc_id` holds INT64, not strings",
                path.display()
            )
        );
        // An id column of doubles.
        let inputs = StreamInputs {
            id_column: Some("score".into()),
            ..parquet_inputs(std::slice::from_ref(&path))
        };
        let e = inputs.open().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "`{}`: the id column `score` holds DOUBLE, not strings or integers",
                path.display()
            )
        );
    }

    #[test]
    fn a_null_parquet_id_names_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        // `text` as the id: row 0 has one, row 1 (in the second group) is null.
        write_corpus(&path, &[&[(1, Some("a"), None)], &[(2, None, None)]]);
        let inputs = StreamInputs {
            id_column: Some("text".into()),
            ..parquet_inputs(std::slice::from_ref(&path))
        };
        let got: Vec<_> = inputs.open().unwrap().collect();
        assert_eq!(got.len(), 2, "the stream ends after its error");
        assert_eq!(got[0].as_ref().unwrap().id, "a");
        let e = got[1].as_ref().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("`{}` row 1 has no id: `text` is null", path.display())
        );
    }

    #[test]
    fn a_file_that_is_not_parquet_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        std::fs::write(&path, "{\"text\": \"a\"}\n").unwrap();
        let e = parquet_inputs(std::slice::from_ref(&path))
            .open()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("could not read `{}` as parquet", path.display())
        );
        assert!(e.hint().unwrap().contains("PAR1"));
    }

    #[test]
    fn jsonl_with_ids_kept_fields_blank_lines_and_a_bom() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            "\u{FEFF}{\"id\": \"a\", \"text\": \"x\", \"n\": 3, \"f\": 1.5, \"b\": true, \"o\": {\"k\": [1]}}\n\
             \n  \r\n\
             {\"id\": 7, \"text\": null, \"n\": 18446744073709551615}\r\n\
             {\"id\": -1, \"text\": \"z\", \"f\": null}",
        )
        .unwrap();
        let inputs = StreamInputs {
            jsonl: vec![path.clone()],
            text_column: "text".into(),
            id_column: Some("id".into()),
            keep_columns: vec!["n".into(), "f".into(), "b".into(), "o".into()],
            ..StreamInputs::default()
        };
        let docs = collect(&inputs);
        let got: Vec<(u64, &str, &str)> = docs
            .iter()
            .map(|d| (d.index, d.id.as_str(), d.text.as_str()))
            .collect();
        assert_eq!(got, [(0, "a", "x"), (1, "7", ""), (2, "-1", "z")]);
        let values = |i: usize| -> Vec<ColumnValue> {
            docs[i].extra.iter().map(|(_, v)| v.clone()).collect()
        };
        use ColumnValue::*;
        assert_eq!(
            values(0),
            [Int(3), Float(1.5), Bool(true), Text("{\"k\":[1]}".into())]
        );
        assert_eq!(
            values(1),
            [Text("18446744073709551615".into()), Null, Null, Null]
        );
        assert_eq!(docs[2].extra[1], ("f".to_string(), Null));
        assert_eq!(inputs.text_description(), "jsonl:text");
    }

    #[test]
    fn jsonl_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let run = |content: &[u8], id: Option<&str>| -> CorpusError {
            std::fs::write(&path, content).unwrap();
            let inputs = StreamInputs {
                jsonl: vec![path.clone()],
                text_column: "text".into(),
                id_column: id.map(Into::into),
                ..StreamInputs::default()
            };
            inputs.open().unwrap().find_map(Result::err).unwrap()
        };
        let p = path.display();
        assert_eq!(
            run(b"{\"text\": \"a\"}\n\n{\"text\": \"b\"\n", None).to_string(),
            format!("`{p}:3` is not valid JSON")
        );
        assert_eq!(
            run(b"{\"text\": \"a\"}\n{\"body\": \"b\"}\n", None).to_string(),
            format!("`{p}:2` has no field `text`")
        );
        assert_eq!(
            run(b"{\"text\": 5}\n", None).to_string(),
            format!("`{p}:1`: field `text` is a number, not a string")
        );
        assert_eq!(
            run(b"\n [{\"text\": \"a\"}]\n", None).to_string(),
            format!("`{p}` is a JSON array, not JSON Lines (one JSON object per line)")
        );
        assert_eq!(
            run(b"{\"text\": \"a\"}\n{\"text\": \"b\xff\"}\n", None).to_string(),
            format!("`{p}` is not valid UTF-8: byte 0xff at byte offset 25 (line 2)")
        );
        assert_eq!(
            run(
                b"{\"text\": \"a\", \"id\": 1}\n{\"text\": \"b\"}\n",
                Some("id")
            )
            .to_string(),
            format!("`{p}` line 2 has no id: `id` is missing")
        );
        assert_eq!(
            run(b"{\"text\": \"a\", \"id\": null}\n", Some("id")).to_string(),
            format!("`{p}` line 1 has no id: `id` is null")
        );
        assert_eq!(
            run(b"{\"text\": \"a\", \"id\": 1.5}\n", Some("id")).to_string(),
            format!(
                "`{p}` line 1: id `id` is a number with a fraction, not a string or an integer"
            )
        );
    }

    #[test]
    fn text_files_split_exactly_as_split_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let name = path.display().to_string();
        let cases = [
            "",
            "\n",
            "a",
            "a\n",
            "a\n\n",
            "a\r\n\nb\r\n  \nc",
            "\n\n first para\nline two\r\n\n\n\u{3000}\nsecond\r\n",
            "x\r",
            "trailing\n   ",
            "é\n\nü\r\n\r\n",
        ];
        for text in cases {
            std::fs::write(&path, text).unwrap();
            for split in [Split::Whole, Split::Lines, Split::Paragraphs] {
                let inputs = StreamInputs {
                    files: vec![path.clone()],
                    split,
                    ..StreamInputs::default()
                };
                let got: Vec<String> = collect(&inputs).into_iter().map(|d| d.text).collect();
                let want: Vec<String> = split_text(text, &name, split)
                    .into_iter()
                    .map(|d| d.text)
                    .collect();
                assert_eq!(got, want, "{split} of {text:?}");
            }
        }
    }

    #[test]
    fn lines_are_numbered_from_zero_and_bad_utf8_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        std::fs::write(&path, "one\n\nthree\n").unwrap();
        let inputs = StreamInputs {
            files: vec![path.clone()],
            split: Split::Lines,
            ..StreamInputs::default()
        };
        let ids: Vec<String> = collect(&inputs).into_iter().map(|d| d.id).collect();
        let p = path.display();
        assert_eq!(ids, [format!("{p}:0"), format!("{p}:1"), format!("{p}:2")]);
        std::fs::write(&path, b"one\ntw\xc3o\n").unwrap();
        let e = inputs.open().unwrap().find_map(Result::err).unwrap();
        assert_eq!(
            e.to_string(),
            format!("`{p}` is not valid UTF-8: byte 0xc3 at byte offset 6 (line 2)")
        );
    }

    #[test]
    fn a_missing_file_fails_open_before_any_document() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.txt");
        std::fs::write(&good, "text").unwrap();
        let missing = dir.path().join("missing.jsonl");
        let inputs = StreamInputs {
            files: vec![good],
            jsonl: vec![missing.clone()],
            text_column: "text".into(),
            ..StreamInputs::default()
        };
        let e = inputs.open().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("could not read `{}`", missing.display())
        );
        assert_eq!(e.hint().unwrap(), "check the path");
    }

    #[test]
    fn indexes_run_over_every_input_in_stream_order() {
        let dir = tempfile::tempdir().unwrap();
        let (t1, t2) = (dir.path().join("1.txt"), dir.path().join("2.txt"));
        std::fs::write(&t1, "a\nb\n").unwrap();
        std::fs::write(&t2, "c\n").unwrap();
        let j = dir.path().join("3.jsonl");
        std::fs::write(&j, "{\"text\": \"d\"}\n{\"text\": \"e\"}\n").unwrap();
        let p = dir.path().join("4.parquet");
        write_corpus(&p, &[&[(0, Some("f"), None)], &[(1, Some("g"), None)]]);
        // Given out of order on purpose: the stream orders by kind.
        let inputs = StreamInputs {
            parquet: vec![p.clone()],
            jsonl: vec![j.clone()],
            files: vec![t1.clone(), t2.clone()],
            split: Split::Lines,
            text_column: "text".into(),
            ..StreamInputs::default()
        };
        let docs = collect(&inputs);
        let got: Vec<(u64, String, String)> =
            docs.into_iter().map(|d| (d.index, d.id, d.text)).collect();
        let d = |i, path: &Path, n: u64, text: &str| {
            (i, format!("{}:{n}", path.display()), text.to_string())
        };
        assert_eq!(
            got,
            [
                d(0, &t1, 0, "a"),
                d(1, &t1, 1, "b"),
                d(2, &t2, 0, "c"),
                d(3, &j, 0, "d"),
                d(4, &j, 1, "e"),
                d(5, &p, 0, "f"),
                d(6, &p, 1, "g"),
            ]
        );
        let names: Vec<String> = [&t1, &t2, &j, &p]
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(inputs.sources(), names);
        assert_eq!(inputs.text_description(), "lines+jsonl:text+parquet:text");
        assert_eq!(StreamInputs::default().text_description(), "none");
    }

    #[test]
    fn whole_files_are_one_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.txt");
        std::fs::write(&path, "\u{FEFF}a\r\n\n").unwrap();
        let inputs = StreamInputs {
            files: vec![path.clone()],
            ..StreamInputs::default()
        };
        let docs = collect(&inputs);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].text, "\u{FEFF}a\r\n\n");
        assert_eq!(docs[0].id, format!("{}:0", path.display()));
        assert_eq!(inputs.text_description(), "whole");
    }

    #[test]
    fn parquet_values_map_to_column_values() {
        assert_eq!(
            field_column_value(&Field::Float(0.1)),
            Some(ColumnValue::Float(0.1))
        );
        assert_eq!(
            field_column_value(&Field::ULong(u64::MAX)),
            Some(ColumnValue::Text(u64::MAX.to_string()))
        );
        assert_eq!(
            field_column_value(&Field::UInt(7)),
            Some(ColumnValue::Int(7))
        );
        assert_eq!(
            field_column_value(&Field::Bytes(ByteArray::from(vec![0xff]))),
            None
        );
        assert_eq!(
            field_column_value(&Field::Bytes(ByteArray::from("ok"))),
            Some(ColumnValue::Text("ok".into()))
        );
    }

    #[test]
    fn dates_and_timestamps_out_of_range_are_their_numbers() {
        assert_eq!(
            field_column_value(&Field::TimestampMillis(86_400_000)),
            Some(ColumnValue::Text("1970-01-02 00:00:00.000 +00:00".into()))
        );
        assert_eq!(
            field_column_value(&Field::Date(1)),
            Some(ColumnValue::Text("1970-01-02".into()))
        );
        // found by parquet_documents: a TIMESTAMP_MILLIS of 2^62
        for (field, n) in [
            (Field::TimestampMillis(1 << 62), 1 << 62),
            (Field::TimestampMicros(i64::MIN), i64::MIN),
            (Field::Date(i32::MAX), i64::from(i32::MAX)),
        ] {
            assert_eq!(field_column_value(&field), Some(ColumnValue::Int(n)));
        }
    }
}
