//! Writers for perplex reports. Every output is a function of
//! [`Report`]: the table for people, JSON and CSV for programs, and a
//! per-token JSONL stream written as the run goes.
//!
//! Contracts (documented in `docs/report-schema.md`):
//! - JSON: the [`Report`] serialised, one object, `schema_version` first;
//! - CSV: a header, one `corpus` row, then one `document` row per input document;
//! - per-token JSONL: one object per scored token, in scoring order.

use std::io::{self, Write};

use perplex_core::report::{DocumentReport, DocumentStatus, Report};
use perplex_core::sink::{Sink, TokenEvent};

mod compare;
mod inspect;
mod plot;
mod score;
mod sweep;
mod table;

pub use compare::{verdict_line, write_compare, COMPARE_CSV_COLUMNS};
pub use inspect::{write_inspection_json, write_inspection_table};
pub use plot::{sweep_png, sweep_svg};
pub use score::write_score_summary;
pub use sweep::{write_sweep, SWEEP_CSV_COLUMNS};
pub use table::write_table;

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A readable table.
    Table,
    /// The versioned JSON report.
    Json,
    /// One CSV row for the corpus and one per document.
    Csv,
}

/// Writes `report` in `format`.
pub fn write_report(report: &Report, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => write_table(report, out),
        Format::Json => write_json(report, out),
        Format::Csv => write_csv(report, out),
    }
}

/// Writes the report as pretty JSON followed by a newline.
pub fn write_json(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "kind",
    "index",
    "source",
    "status",
    "tokens",
    "scored_tokens",
    "nll_sum",
    "mean_nll",
    "perplexity",
    "token_accuracy",
    "bytes",
    "words",
    "protocol",
    "bos",
    "model",
];

/// Writes the CSV form: header, the corpus row, then one row per document.
pub fn write_csv(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    let s = &report.summary;
    let context = [
        report.protocol.description.clone(),
        report.protocol.bos.name().to_string(),
        report.model.spec.clone(),
    ];
    // The corpus row is the summary seen as one document, so both kinds of
    // row are rendered by the same function.
    let corpus = DocumentReport {
        index: 0,
        source: report.corpus.sources.join(" "),
        status: if s.scored_tokens > 0 {
            DocumentStatus::Scored
        } else {
            DocumentStatus::TooShort
        },
        tokens: s.tokens,
        scored_tokens: s.scored_tokens,
        nll_sum: s.nll_sum,
        mean_nll: s.mean_nll,
        perplexity: s.perplexity,
        token_accuracy: s.token_accuracy,
        bytes: s.bytes,
        words: s.words,
    };
    write_row(out, row("corpus", None, &corpus).iter().chain(&context))?;
    for d in &report.documents {
        write_row(
            out,
            row("document", Some(d.index), d).iter().chain(&context),
        )?;
    }
    Ok(())
}

fn row(kind: &str, index: Option<usize>, d: &DocumentReport) -> [String; 12] {
    [
        kind.to_string(),
        index.map(|i| i.to_string()).unwrap_or_default(),
        d.source.clone(),
        status_name(d.status).to_string(),
        d.tokens.to_string(),
        d.scored_tokens.to_string(),
        d.nll_sum.to_string(),
        opt(d.mean_nll),
        opt(d.perplexity),
        opt(d.token_accuracy),
        d.bytes.to_string(),
        d.words.to_string(),
    ]
}

/// The status as written in reports.
pub fn status_name(status: DocumentStatus) -> &'static str {
    match status {
        DocumentStatus::Scored => "scored",
        DocumentStatus::Empty => "empty",
        DocumentStatus::TooShort => "too-short",
        DocumentStatus::BeyondTokenLimit => "beyond-token-limit",
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

fn write_row<'a>(out: &mut dyn Write, fields: impl Iterator<Item = &'a String>) -> io::Result<()> {
    let line: Vec<String> = fields.map(|f| csv_field(f)).collect();
    writeln!(out, "{}", line.join(","))
}

/// Quotes a CSV field when it holds a comma, quote or line break (RFC 4180).
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// A [`Sink`] writing one JSON object per scored token:
/// `{"doc":0,"position":5,"token":1234,"text":" the","nll":2.31,"argmax":1234}`.
pub struct PerTokenJsonl<W: Write, F: Fn(u32) -> String> {
    out: W,
    token_text: F,
}

impl<W: Write, F: Fn(u32) -> String> PerTokenJsonl<W, F> {
    /// Writes to `out`, rendering token text with `token_text`.
    pub fn new(out: W, token_text: F) -> Self {
        Self { out, token_text }
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write, F: Fn(u32) -> String> Sink for PerTokenJsonl<W, F> {
    fn token(&mut self, e: &TokenEvent) -> io::Result<()> {
        let line = serde_json::json!({
            "doc": e.doc,
            "position": e.position,
            "token": e.token,
            "text": (self.token_text)(e.token),
            "nll": e.score.nll,
            "argmax": e.score.argmax,
        });
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perplex_core::lm::TokenScore;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn per_token_lines_are_json_objects() {
        let mut sink = PerTokenJsonl::new(Vec::new(), |id| format!("<{id}>"));
        sink.token(&TokenEvent {
            doc: 1,
            position: 4,
            token: 7,
            score: TokenScore {
                nll: 0.5,
                argmax: 3,
            },
        })
        .unwrap();
        let text = String::from_utf8(sink.finish().unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["text"], "<7>");
        assert_eq!(v["nll"], 0.5);
        assert_eq!(v["position"], 4);
    }
}
