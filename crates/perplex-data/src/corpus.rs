//! Corpora: command-line texts, files, stdin and JSONL fields read into
//! [`Document`]s.
//!
//! Every document remembers where it came from (`arg:1`, `stdin`,
//! `data.txt`, `data.txt:12`, `data.jsonl:3`) so reports and errors can
//! point at it. Text is kept exactly as read: no trimming, no Unicode
//! normalisation, no byte-order-mark removal (except before JSON, which
//! cannot start with one). Empty documents are kept, so that callers can
//! count them before skipping them.
//!
//! ```
//! use perplex_data::corpus::{split_text, Split};
//!
//! let docs = split_text("first\r\n\nthird\n", "notes.txt", Split::Lines);
//! let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
//! assert_eq!(texts, ["first", "", "third"]);
//! assert_eq!(docs[2].source, "notes.txt:3");
//! ```

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// One unit of evaluation: a text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Where the text came from: `arg:1`, `stdin`, `stdin:4`, `path`, `path:LINE`.
    pub source: String,
    /// The text, exactly as read.
    pub text: String,
}

impl Document {
    /// A document from its source label and text.
    pub fn new(source: impl Into<String>, text: impl Into<String>) -> Self {
        Document {
            source: source.into(),
            text: text.into(),
        }
    }

    /// Whether the document has no text at all (whitespace is text).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// How a text file (or stdin) is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Split {
    /// The whole input is one document.
    #[default]
    Whole,
    /// One document per line; the line ending (`\n` or `\r\n`) is removed and
    /// empty lines are kept as empty documents. A final line ending does not
    /// start another line.
    Lines,
    /// One document per paragraph: runs of lines separated by blank (empty or
    /// whitespace-only) lines. The paragraph keeps its inner line endings and
    /// loses the one after its last line; blank lines are dropped.
    Paragraphs,
}

impl Split {
    /// The name used on the command line and in reports: `whole`, `lines`, `paragraphs`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Whole => "whole",
            Split::Lines => "lines",
            Split::Paragraphs => "paragraphs",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = UnknownSplit;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "whole" => Ok(Split::Whole),
            "lines" => Ok(Split::Lines),
            "paragraphs" => Ok(Split::Paragraphs),
            _ => Err(UnknownSplit(s.to_owned())),
        }
    }
}

/// A split name that is not `whole`, `lines` or `paragraphs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown split `{0}` (expected `whole`, `lines` or `paragraphs`)")]
pub struct UnknownSplit(pub String);

/// Why a corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The file or stdin could not be read.
    #[error("could not read `{name}`")]
    Read {
        /// The file, or `stdin`.
        name: String,
        /// The I/O error (from `fs-err`, so it names the file too).
        #[source]
        source: std::io::Error,
    },
    /// The input is not UTF-8.
    #[error(
        "`{name}` is not valid UTF-8: byte 0x{byte:02x} at byte offset {offset} (line {line})"
    )]
    InvalidUtf8 {
        /// The file, or `stdin`.
        name: String,
        /// Offset of the first byte that is not part of a valid UTF-8 sequence.
        offset: usize,
        /// That byte.
        byte: u8,
        /// 1-based line of that byte.
        line: usize,
    },
    /// A JSON document was given where JSON Lines were expected.
    #[error("`{name}` is a JSON array, not JSON Lines (one JSON object per line)")]
    JsonArray {
        /// The file, or `stdin`.
        name: String,
    },
    /// A JSONL line is not valid JSON.
    #[error("`{name}:{line}` is not valid JSON")]
    JsonlSyntax {
        /// The file, or `stdin`.
        name: String,
        /// 1-based line.
        line: usize,
        /// The parser's error (its line and column are within this line).
        #[source]
        source: serde_json::Error,
    },
    /// A JSONL line is JSON but not an object.
    #[error("`{name}:{line}` is {found}, not a JSON object with a field `{field}`")]
    JsonlNotObject {
        /// The file, or `stdin`.
        name: String,
        /// 1-based line.
        line: usize,
        /// The wanted field.
        field: String,
        /// What the line holds, e.g. `an array`.
        found: &'static str,
    },
    /// A JSONL record lacks the wanted field.
    #[error("`{name}:{line}` has no field `{field}`")]
    JsonlMissingField {
        /// The file, or `stdin`.
        name: String,
        /// 1-based line.
        line: usize,
        /// The wanted field.
        field: String,
        /// The fields the record does have.
        keys: Vec<String>,
    },
    /// A JSONL record's field is not a string.
    #[error("`{name}:{line}`: field `{field}` is {found}, not a string")]
    JsonlNotString {
        /// The file, or `stdin`.
        name: String,
        /// 1-based line.
        line: usize,
        /// The wanted field.
        field: String,
        /// What the field holds, e.g. `a number`.
        found: &'static str,
    },
    /// A Parquet file could not be opened or decoded.
    #[error("could not read `{name}` as parquet")]
    Parquet {
        /// The file.
        name: String,
        /// The decoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A Parquet file lacks a column the stream was asked to read.
    #[error(
        "`{name}` has no {role} column `{column}`; its columns are {}",
        quoted(columns)
    )]
    MissingColumn {
        /// The file.
        name: String,
        /// The column asked for.
        column: String,
        /// What the column was asked for.
        role: ColumnRole,
        /// The file's top-level columns, in schema order.
        columns: Vec<String>,
    },
    /// A Parquet column holds values that cannot serve its role.
    #[error("`{name}`: the {role} column `{column}` holds {found}, not {expected}")]
    ColumnType {
        /// The file.
        name: String,
        /// The column.
        column: String,
        /// What the column was asked for.
        role: ColumnRole,
        /// Its type, e.g. `INT64` or `a nested group`.
        found: String,
        /// What the role needs, e.g. `strings`.
        expected: &'static str,
    },
    /// A record's id is missing or null.
    #[error("`{name}` {at} has no id: `{column}` is {found}")]
    MissingId {
        /// The file.
        name: String,
        /// The JSONL line or Parquet row.
        at: Position,
        /// The id field or column.
        column: String,
        /// `missing` or `null`.
        found: &'static str,
    },
    /// A record's id is neither a string nor an integer.
    #[error("`{name}` {at}: id `{column}` is {found}, not a string or an integer")]
    IdType {
        /// The file.
        name: String,
        /// The JSONL line or Parquet row.
        at: Position,
        /// The id field or column.
        column: String,
        /// What it holds, e.g. `a number` (not an integer).
        found: &'static str,
    },
    /// A Parquet value that should be text is not UTF-8.
    #[error("`{name}` {at}: column `{column}` holds bytes that are not UTF-8 text")]
    ParquetNotUtf8 {
        /// The file.
        name: String,
        /// The row.
        at: Position,
        /// The column.
        column: String,
    },
}

/// What a column or field of the input was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// The document text.
    Text,
    /// The document id.
    Id,
    /// A column copied into the score rows.
    Kept,
}

impl ColumnRole {
    /// The flag that names a column in this role.
    pub fn flag(self) -> &'static str {
        match self {
            ColumnRole::Text => "--text-column",
            ColumnRole::Id => "--id-column",
            ColumnRole::Kept => "--keep-columns",
        }
    }
}

impl std::fmt::Display for ColumnRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColumnRole::Text => "text",
            ColumnRole::Id => "id",
            ColumnRole::Kept => "kept",
        })
    }
}

/// Where in a file a record is: a JSONL line (from 1) or a Parquet row
/// (from 0, the record's position in its file, as in its default id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of a JSONL file.
    Line(usize),
    /// 0-based row of a Parquet file.
    Row(u64),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Line(line) => write!(f, "line {line}"),
            Position::Row(row) => write!(f, "row {row}"),
        }
    }
}

/// `a`, `b` → "`a`, `b`"; nothing → "none".
fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    let names: Vec<String> = names.iter().map(|k| format!("`{k}`")).collect();
    names.join(", ")
}

impl CorpusError {
    /// A suggestion for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            CorpusError::Read { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Some("check the path".to_owned()),
                std::io::ErrorKind::IsADirectory => Some("pass a file, not a directory".to_owned()),
                std::io::ErrorKind::PermissionDenied => {
                    Some("check the file's permissions (perplex only reads it)".to_owned())
                }
                _ => Some("check that the file is readable".to_owned()),
            },
            CorpusError::InvalidUtf8 { name, .. } if name == "stdin" => Some(
                "perplex reads UTF-8 only; re-encode the text on its way in, e.g. \
                 `iconv -f LATIN1 -t UTF-8 < text.txt | perplex …` (use the text's real encoding)"
                    .to_owned(),
            ),
            CorpusError::InvalidUtf8 { name, .. } => Some(format!(
                "perplex reads UTF-8 only; re-encode the input, e.g. \
                 `iconv -f LATIN1 -t UTF-8 {name} > {name}.utf8` (use the file's real encoding)"
            )),
            CorpusError::JsonArray { name } => Some(format!(
                "write one object per line, e.g. `jq -c '.[]' {name} > data.jsonl`"
            )),
            CorpusError::JsonlSyntax { .. } => {
                Some("each non-blank line must be one complete JSON object".to_owned())
            }
            CorpusError::JsonlNotObject { .. } => Some(
                "each non-blank line must be one JSON object holding the text in a field, e.g. \
                 {\"text\": \"…\"}"
                    .to_owned(),
            ),
            CorpusError::JsonlMissingField { keys, .. } => Some(if keys.is_empty() {
                "this record has no fields at all".to_owned()
            } else {
                let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
                format!(
                    "this record's fields are {}; choose one with `--field`",
                    keys.join(", ")
                )
            }),
            CorpusError::JsonlNotString { .. } => {
                Some("choose a field that holds the text with `--field`".to_owned())
            }
            CorpusError::Parquet { .. } => Some(
                "check that the file is a complete Parquet file (it starts and ends with `PAR1`); \
                 a file still being written has no footer yet"
                    .to_owned(),
            ),
            CorpusError::MissingColumn { role, .. } => Some(format!(
                "choose one of the file's columns with `{}` (names are case-sensitive)",
                role.flag()
            )),
            CorpusError::ColumnType { role, .. } => Some(match role {
                ColumnRole::Text => "choose a column of strings with `--text-column`".to_owned(),
                ColumnRole::Id => {
                    "choose a column of strings or integers with `--id-column`, or leave it out \
                     to number documents `<file>:<n>`"
                        .to_owned()
                }
                ColumnRole::Kept => format!("leave the column out of `{}`", role.flag()),
            }),
            CorpusError::MissingId { .. } | CorpusError::IdType { .. } => Some(
                "every record needs a string or integer id; choose another column with \
                 `--id-column`, or leave it out to number documents `<file>:<n>`"
                    .to_owned(),
            ),
            CorpusError::ParquetNotUtf8 { .. } => Some(
                "perplex reads UTF-8 text only; re-encode the column when writing the file"
                    .to_owned(),
            ),
        }
    }
}

/// One document per command-line text, labelled `arg:1`, `arg:2`, … .
pub fn from_args<I, S>(texts: I) -> Vec<Document>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| Document::new(format!("arg:{}", i + 1), t))
        .collect()
}

/// Reads a text file and splits it into documents.
pub fn read_file(path: &Path, split: Split) -> Result<Vec<Document>, CorpusError> {
    let name = path.display().to_string();
    let text = read_utf8_file(path)?;
    Ok(split_text(&text, &name, split))
}

/// Reads all of stdin and splits it into documents labelled `stdin` / `stdin:LINE`.
pub fn read_stdin(split: Split) -> Result<Vec<Document>, CorpusError> {
    let text = read_utf8(std::io::stdin().lock(), "stdin")?;
    Ok(split_text(&text, "stdin", split))
}

/// Reads a JSON Lines file, one document per record from its string `field`;
/// documents are labelled `path:LINE`. Blank lines are skipped.
pub fn read_jsonl(path: &Path, field: &str) -> Result<Vec<Document>, CorpusError> {
    let name = path.display().to_string();
    let text = read_utf8_file(path)?;
    parse_jsonl(&text, &name, field)
}

/// [`read_jsonl`] from stdin.
pub fn read_jsonl_stdin(field: &str) -> Result<Vec<Document>, CorpusError> {
    let text = read_utf8(std::io::stdin().lock(), "stdin")?;
    parse_jsonl(&text, "stdin", field)
}

/// Reads a whole file as UTF-8, naming the file and the first bad byte on error.
pub fn read_utf8_file(path: &Path) -> Result<String, CorpusError> {
    let name = path.display().to_string();
    let bytes = fs_err::read(path).map_err(|source| CorpusError::Read {
        name: name.clone(),
        source,
    })?;
    decode_utf8(bytes, &name)
}

/// Reads everything from `reader` as UTF-8; `name` labels errors.
pub fn read_utf8(mut reader: impl Read, name: &str) -> Result<String, CorpusError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| CorpusError::Read {
            name: name.to_owned(),
            source,
        })?;
    decode_utf8(bytes, name)
}

/// Checks that `bytes` are UTF-8; the error gives the offset and line of the
/// first invalid byte.
pub fn decode_utf8(bytes: Vec<u8>, name: &str) -> Result<String, CorpusError> {
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        CorpusError::InvalidUtf8 {
            name: name.to_owned(),
            offset,
            byte: bytes[offset],
            line: 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count(),
        }
    })
}

/// Splits `text` into documents; `name` is the source label (`path` or `stdin`).
pub fn split_text(text: &str, name: &str, split: Split) -> Vec<Document> {
    match split {
        Split::Whole => vec![Document::new(name, text)],
        Split::Lines => lines(text)
            .map(|(number, line)| Document::new(format!("{name}:{number}"), line))
            .collect(),
        Split::Paragraphs => paragraphs(text)
            .into_iter()
            .map(|(number, paragraph)| Document::new(format!("{name}:{number}"), paragraph))
            .collect(),
    }
}

/// Lines of `text` with their 1-based numbers, without `\n` / `\r\n`. A final
/// line ending does not start another (empty) line.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    line_spans(text).map(|(number, span)| (number, &text[span]))
}

/// Byte ranges of the lines of `text` (see [`lines`]).
fn line_spans(text: &str) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> + '_ {
    let mut start = 0;
    (1..).map_while(move |number| {
        if start >= text.len() {
            return None;
        }
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let content_end = if text[start..end].ends_with('\r') {
            end - 1
        } else {
            end
        };
        let span = start..content_end;
        start = end + 1;
        Some((number, span))
    })
}

/// Paragraphs of `text` with the 1-based number of their first line.
fn paragraphs(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    // The paragraph being built: its first line number and byte range.
    let mut current: Option<(usize, std::ops::Range<usize>)> = None;
    for (number, span) in line_spans(text) {
        if text[span.clone()].trim().is_empty() {
            if let Some((first, range)) = current.take() {
                out.push((first, &text[range]));
            }
        } else {
            match &mut current {
                Some((_, range)) => range.end = span.end,
                None => current = Some((number, span)),
            }
        }
    }
    if let Some((first, range)) = current {
        out.push((first, &text[range]));
    }
    out
}

/// Parses JSON Lines text: one document per non-blank line, from the string
/// `field` of the object on that line, labelled `name:LINE`.
pub fn parse_jsonl(text: &str, name: &str, field: &str) -> Result<Vec<Document>, CorpusError> {
    // JSON cannot start with a byte-order mark, but editors write one.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if text.trim_start().starts_with('[') {
        return Err(CorpusError::JsonArray {
            name: name.to_owned(),
        });
    }
    let mut docs = Vec::new();
    for (line_number, line) in lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|source| CorpusError::JsonlSyntax {
                name: name.to_owned(),
                line: line_number,
                source,
            })?;
        let serde_json::Value::Object(mut record) = value else {
            return Err(CorpusError::JsonlNotObject {
                name: name.to_owned(),
                line: line_number,
                field: field.to_owned(),
                found: json_kind(&value),
            });
        };
        match record.remove(field) {
            Some(serde_json::Value::String(s)) => {
                docs.push(Document::new(format!("{name}:{line_number}"), s));
            }
            Some(other) => {
                return Err(CorpusError::JsonlNotString {
                    name: name.to_owned(),
                    line: line_number,
                    field: field.to_owned(),
                    found: json_kind(&other),
                })
            }
            None => {
                return Err(CorpusError::JsonlMissingField {
                    name: name.to_owned(),
                    line: line_number,
                    field: field.to_owned(),
                    keys: record.keys().cloned().collect(),
                })
            }
        }
    }
    Ok(docs)
}

pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Joins documents into one, `separator` between consecutive texts (empty
/// documents included, so joining lines with `"\n"` rebuilds the file).
///
/// The source names the origins of the parts: `data.txt` when all parts come
/// from `data.txt:N`, `arg` for `arg:N`, several origins joined with ` + `.
///
/// ```
/// use perplex_data::corpus::{from_args, join};
///
/// let joined = join(&from_args(["a", "b"]), "\n\n");
/// assert_eq!(joined.text, "a\n\nb");
/// assert_eq!(joined.source, "arg");
/// ```
pub fn join(documents: &[Document], separator: &str) -> Document {
    let mut origins: Vec<&str> = Vec::new();
    for doc in documents {
        let origin = origin(&doc.source);
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    let texts: Vec<&str> = documents.iter().map(|d| d.text.as_str()).collect();
    Document::new(origins.join(" + "), texts.join(separator))
}

/// `data.txt:12` → `data.txt`; `arg:3` → `arg`; `stdin` → `stdin`.
fn origin(source: &str) -> &str {
    match source.rsplit_once(':') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(docs: &[Document]) -> Vec<&str> {
        docs.iter().map(|d| d.text.as_str()).collect()
    }

    fn sources(docs: &[Document]) -> Vec<&str> {
        docs.iter().map(|d| d.source.as_str()).collect()
    }

    #[test]
    fn args_are_numbered_from_one() {
        let docs = from_args(["x", ""]);
        assert_eq!(sources(&docs), ["arg:1", "arg:2"]);
        assert_eq!(texts(&docs), ["x", ""]);
    }

    #[test]
    fn whole_keeps_text_exactly() {
        let docs = split_text("\u{FEFF}a\r\n\n", "f", Split::Whole);
        assert_eq!(docs, [Document::new("f", "\u{FEFF}a\r\n\n")]);
        assert_eq!(split_text("", "f", Split::Whole).len(), 1);
    }

    #[test]
    fn lines_strip_endings_and_keep_empty_lines() {
        let docs = split_text("a\r\n\nb\r\n  \nc", "f", Split::Lines);
        assert_eq!(texts(&docs), ["a", "", "b", "  ", "c"]);
        assert_eq!(sources(&docs), ["f:1", "f:2", "f:3", "f:4", "f:5"]);
        // A final newline does not make another line; a final blank line does.
        assert_eq!(texts(&split_text("a\n", "f", Split::Lines)), ["a"]);
        assert_eq!(texts(&split_text("a\n\n", "f", Split::Lines)), ["a", ""]);
        assert_eq!(texts(&split_text("\n", "f", Split::Lines)), [""]);
        assert!(split_text("", "f", Split::Lines).is_empty());
        // A lone \r is not a line ending; \r before \n is.
        assert_eq!(texts(&split_text("a\rb\r\n", "f", Split::Lines)), ["a\rb"]);
    }

    #[test]
    fn paragraphs_are_separated_by_blank_lines() {
        let text = "\n \none\ntwo\r\n\n\t\r\n\nthree\n\nfour\n";
        let docs = split_text(text, "f", Split::Paragraphs);
        assert_eq!(texts(&docs), ["one\ntwo", "three", "four"]);
        assert_eq!(sources(&docs), ["f:3", "f:8", "f:10"]);
        assert_eq!(texts(&split_text("x", "f", Split::Paragraphs)), ["x"]);
        assert!(split_text(" \n\n", "f", Split::Paragraphs).is_empty());
        // Inner \r\n endings are kept; the last line's is not.
        assert_eq!(
            texts(&split_text("a\r\nb\r\n", "f", Split::Paragraphs)),
            ["a\r\nb"]
        );
    }

    #[test]
    fn invalid_utf8_names_offset_and_line() {
        let err = decode_utf8(b"ok\nfine\n\xffbad".to_vec(), "x.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`x.txt` is not valid UTF-8: byte 0xff at byte offset 8 (line 3)"
        );
        assert!(err.hint().unwrap().contains("iconv"));
        // stdin has no file name to re-encode
        let err = decode_utf8(b"caf\xe9".to_vec(), "stdin").unwrap_err();
        assert!(err.hint().unwrap().contains("< text.txt | perplex"));
        // A truncated multi-byte sequence at the end.
        let err = decode_utf8(b"ab\xe2\x82".to_vec(), "y").unwrap_err();
        assert!(matches!(
            err,
            CorpusError::InvalidUtf8 {
                offset: 2,
                byte: 0xe2,
                line: 1,
                ..
            }
        ));
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.txt");
        let err = read_file(&path, Split::Whole).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("nope.txt"), "{message}");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("nope.txt"), "{source}");
        assert_eq!(err.hint().as_deref(), Some("check the path"));
    }

    #[test]
    fn files_and_jsonl_read_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("a.txt");
        std::fs::write(&txt, "l1\nl2\n").unwrap();
        let docs = read_file(&txt, Split::Lines).unwrap();
        assert_eq!(texts(&docs), ["l1", "l2"]);
        assert!(docs[1].source.ends_with("a.txt:2"));

        let jsonl = dir.path().join("d.jsonl");
        std::fs::write(&jsonl, "{\"text\":\"x\"}\n").unwrap();
        let docs = read_jsonl(&jsonl, "text").unwrap();
        assert_eq!(texts(&docs), ["x"]);

        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, b"\x80").unwrap();
        assert!(matches!(
            read_file(&bad, Split::Whole),
            Err(CorpusError::InvalidUtf8 { offset: 0, .. })
        ));
    }

    #[test]
    fn jsonl_reads_the_field_and_skips_blank_lines() {
        let text = "\u{FEFF}{\"text\": \"a\\nb\", \"id\": 1}\r\n\n   \n{\"text\": \"\"}\n";
        let docs = parse_jsonl(text, "d.jsonl", "text").unwrap();
        assert_eq!(texts(&docs), ["a\nb", ""]);
        assert_eq!(sources(&docs), ["d.jsonl:1", "d.jsonl:4"]);
        assert!(parse_jsonl("", "d", "text").unwrap().is_empty());
    }

    #[test]
    fn jsonl_errors_name_file_line_and_field() {
        let err = parse_jsonl(
            "{\"text\":\"a\"}\n{\"body\":\"b\",\"id\":2}\n",
            "d.jsonl",
            "text",
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "`d.jsonl:2` has no field `text`");
        assert_eq!(
            err.hint().unwrap(),
            "this record's fields are `body`, `id`; choose one with `--field`"
        );

        let err = parse_jsonl("{\"text\": \"a\"}\n[1]", "d.jsonl", "text").unwrap_err();
        assert!(err.hint().unwrap().contains("one JSON object"));

        let err = parse_jsonl("{\"text\": 3}", "d.jsonl", "text").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`d.jsonl:1`: field `text` is a number, not a string"
        );

        let err = parse_jsonl("{\"text\": \"a\"}\n{\"text\": ", "d.jsonl", "text").unwrap_err();
        assert_eq!(err.to_string(), "`d.jsonl:2` is not valid JSON");
        assert!(std::error::Error::source(&err).is_some());

        let err = parse_jsonl("\"just a string\"", "d.jsonl", "text").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`d.jsonl:1` is a string, not a JSON object with a field `text`"
        );

        let err = parse_jsonl("  [{\"text\": \"a\"}]", "d.json", "text").unwrap_err();
        assert!(matches!(err, CorpusError::JsonArray { .. }));
        assert!(err.hint().unwrap().contains("jq -c"));
    }

    #[test]
    fn join_uses_separator_and_names_origins() {
        let docs = split_text("a\n\nb\n", "f.txt", Split::Lines);
        let joined = join(&docs, "\n");
        assert_eq!(joined, Document::new("f.txt", "a\n\nb"));

        let mut mixed = from_args(["x"]);
        mixed.push(Document::new("stdin", "y"));
        mixed.push(Document::new("c:\\data:7", "z"));
        let joined = join(&mixed, " ");
        assert_eq!(joined.text, "x y z");
        assert_eq!(joined.source, "arg + stdin + c:\\data");
        assert_eq!(join(&[], "\n"), Document::new("", ""));
    }

    #[test]
    fn split_names_round_trip() {
        for split in [Split::Whole, Split::Lines, Split::Paragraphs] {
            assert_eq!(split.name().parse::<Split>().unwrap(), split);
        }
        assert!("line".parse::<Split>().is_err());
    }
}
