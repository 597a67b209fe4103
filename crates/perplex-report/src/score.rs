//! The summary of `perplex score` and `perplex merge`: a table for people,
//! or the [`ScoreSummary`] as JSON (the same object written beside the rows
//! as `<rows>.summary.json`; `docs/score-schema.md`).

use std::io::{self, Write};

use perplex_core::score::ScoreSummary;

use crate::table::{group, model_line, sig};
use crate::Format;

/// Writes `summary` as a table or JSON (`Format::Csv` is not offered for
/// summaries: the rows are the per-document data).
pub fn write_score_summary(
    summary: &ScoreSummary,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Json | Format::Csv => {
            serde_json::to_writer_pretty(&mut *out, summary)?;
            writeln!(out)
        }
        Format::Table => write_table(summary, out),
    }
}

fn write_table(s: &ScoreSummary, out: &mut dyn Write) -> io::Result<()> {
    let t = &s.totals;
    let f = &s.figures;
    let plural = |n: u64, one: &str| format!("{} {one}{}", group(n), if n == 1 { "" } else { "s" });
    model_line(&s.model, out)?;
    writeln!(
        out,
        "protocol   {}, BOS {}, {}",
        s.protocol.description,
        s.protocol.bos.name(),
        plural(s.protocol.threads as u64, "thread")
    )?;
    writeln!(
        out,
        "corpus     {} ({}), blake3 {}",
        plural(s.corpus.documents, "document"),
        s.corpus.text,
        &s.corpus.hash.value[..s.corpus.hash.value.len().min(16)]
    )?;
    let shards: Vec<String> = s.shards.iter().map(|sh| sh.to_string()).collect();
    let count = s.shards.first().map_or(1, |sh| sh.count);
    if count > 1 {
        writeln!(
            out,
            "shards     {} of {count}",
            if s.shards.len() == count as usize {
                "all".to_string()
            } else {
                shards.join(", ")
            }
        )?;
    }
    writeln!(out)?;
    let row = |out: &mut dyn Write, name: &str, value: String| writeln!(out, "  {name:<24}{value}");
    let mut docs = format!("{} scored", group(t.scored_documents));
    if t.empty_documents > 0 {
        docs.push_str(&format!(", {} empty", group(t.empty_documents)));
    }
    if t.too_short_documents > 0 {
        docs.push_str(&format!(", {} too short", group(t.too_short_documents)));
    }
    row(out, "documents", format!("{} ({docs})", group(t.documents)))?;
    match f.perplexity {
        Some(ppl) => {
            let ci = f
                .perplexity_ci95
                .map(|[lo, hi]| format!("   95% CI [{}, {}]", sig(lo), sig(hi)))
                .unwrap_or_default();
            row(out, "perplexity", format!("{}{ci}", sig(ppl)))?;
        }
        None => row(out, "perplexity", "n/a: no token could be scored".into())?,
    }
    if let Some(mean) = f.mean_nll {
        row(out, "mean NLL", format!("{mean:.5} nats"))?;
    }
    row(
        out,
        "scored tokens",
        format!("{} of {}", group(t.stats.count), group(t.tokens)),
    )?;
    if let Some(acc) = f.token_accuracy {
        row(out, "top-1 accuracy", format!("{:.2} %", acc * 100.0))?;
    }
    row(
        out,
        "bits per byte",
        f.bits_per_byte.map_or_else(
            || "n/a: this protocol does not score whole documents".into(),
            |b| format!("{b:.5}"),
        ),
    )?;
    if let Some(p) = f.padding_fraction {
        row(
            out,
            "padding",
            format!(
                "{:.1} % of {} forward-pass token slots",
                p * 100.0,
                group(t.padded_tokens)
            ),
        )?;
    }
    let r = &s.resumption;
    if r.runs > 0 {
        row(
            out,
            "resumed",
            format!(
                "{} committed by {} earlier; {} redone",
                plural(r.committed_rows, "row"),
                plural(u64::from(r.runs), "run"),
                plural(r.redone_documents, "document"),
            ),
        )?;
    }
    row(
        out,
        "time",
        format!(
            "{:.1} s, {} tokens/s",
            s.timing.seconds,
            group(s.timing.tokens_per_second.round() as u64)
        ),
    )
}
