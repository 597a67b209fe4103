//! The human-readable table.

use std::io::{self, Write};

use perplex_core::report::{DocumentStatus, Report};

use crate::status_name;

/// Documents listed in the table; the JSON and CSV forms list them all.
const MAX_TABLE_DOCUMENTS: usize = 20;

/// Writes the report as a table for people: what was evaluated, the
/// corpus metrics, then the first documents.
pub fn write_table(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    write_header(r, out)?;
    writeln!(out)?;
    if r.summary.perplexity.is_none() {
        writeln!(
            out,
            "no token could be scored: every document is empty or too short"
        )?;
        return Ok(());
    }
    write_metrics(r, out)?;
    if r.documents.len() > 1 {
        writeln!(out)?;
        write_documents(r, out)?;
    }
    Ok(())
}

/// Model, weights, tokenizer, protocol and corpus, a line each.
fn write_header(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let s = &r.summary;
    let m = &r.model;
    model_line(m, out)?;
    writeln!(
        out,
        "weights    {}; computed in {} on {}",
        m.weights, m.compute_dtype, m.device
    )?;
    writeln!(
        out,
        "tokenizer  {} ({})",
        r.tokenizer.kind, r.tokenizer.source
    )?;
    writeln!(
        out,
        "protocol   {}, BOS {}, batch {}, {} thread{}",
        r.protocol.description,
        r.protocol.bos.name(),
        r.protocol.batch_size,
        r.protocol.threads,
        if r.protocol.threads == 1 { "" } else { "s" }
    )?;
    let c = &r.corpus;
    let mut corpus = format!(
        "{} document{} ({} bytes, {} tokens",
        c.documents,
        if c.documents == 1 { "" } else { "s" },
        group(s.bytes),
        group(s.tokens)
    );
    if let Some(limit) = r.protocol.max_tokens {
        corpus.push_str(&format!(", limit {}", group(limit as u64)));
    }
    corpus.push(')');
    if c.empty_documents > 0 {
        corpus.push_str(&format!(", {} empty skipped", c.empty_documents));
    }
    if s.too_short_documents > 0 {
        corpus.push_str(&format!(", {} too short to score", s.too_short_documents));
    }
    if c.joined {
        corpus.push_str(", joined");
    }
    writeln!(out, "corpus     {corpus}")
}

/// `model      SPEC (FORMAT, ARCHITECTURE, N parameters)`.
pub(crate) fn model_line(
    m: &perplex_core::report::ModelIdentity,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(
        out,
        "model      {} ({}, {}, {} parameters)",
        m.spec,
        m.format,
        m.architecture,
        group(m.parameters)
    )
}

/// The corpus metrics, one labelled row each.
fn write_metrics(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let s = &r.summary;
    let Some(ppl) = s.perplexity else {
        return Ok(());
    };
    let row = |out: &mut dyn Write, name: &str, value: String| writeln!(out, "  {name:<24}{value}");
    let ci = s
        .perplexity_ci95
        .map(|[lo, hi]| format!("   95% CI [{}, {}]", sig(lo), sig(hi)))
        .unwrap_or_default();
    row(out, "perplexity", format!("{}{ci}", sig(ppl)))?;
    if let Some(i) = &r.interpretation {
        row(
            out,
            "interpretation",
            format!("{} ({}); {}", i.label, i.band, i.caveat),
        )?;
    }
    if let Some(mean) = s.mean_nll {
        let se = s
            .mean_nll_stderr
            .map(|se| format!(" ± {se:.5}"))
            .unwrap_or_default();
        let bits = s.mean_nll_bits.unwrap_or(f64::NAN);
        row(
            out,
            "mean NLL",
            format!("{mean:.5}{se} nats ({bits:.5} bits)"),
        )?;
    }
    row(
        out,
        "scored tokens",
        format!("{} of {}", group(s.scored_tokens), group(s.tokens)),
    )?;
    if let Some(acc) = s.token_accuracy {
        row(out, "top-1 accuracy", format!("{:.2} %", acc * 100.0))?;
    }
    match (s.bits_per_byte, s.byte_perplexity, s.word_perplexity) {
        (Some(bpb), Some(bppl), Some(wppl)) => {
            row(out, "bits per byte", format!("{bpb:.5}"))?;
            row(out, "byte perplexity", sig(bppl))?;
            row(
                out,
                "word perplexity",
                format!("{} ({} words)", sig(wppl), group(s.words)),
            )?;
        }
        _ => row(
            out,
            "bits per byte",
            "n/a: this protocol does not score whole documents".into(),
        )?,
    }
    if s.scored_documents > 1 {
        if let Some(mean_ppl) = s.mean_document_perplexity {
            row(
                out,
                "mean doc perplexity",
                format!(
                    "{}   (HF evaluate's mean_perplexity; not the corpus perplexity)",
                    sig(mean_ppl)
                ),
            )?;
        }
    }
    row(
        out,
        "processed",
        format!(
            "{} tokens in {} window{}, {:.1} s, {:.0} tok/s",
            group(s.processed_tokens),
            group(s.windows),
            if s.windows == 1 { "" } else { "s" },
            r.timing.seconds,
            r.timing.tokens_per_second
        ),
    )?;
    Ok(())
}

/// The first [`MAX_TABLE_DOCUMENTS`] documents' results.
fn write_documents(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "  {:>5}  {:<28} {:>8} {:>8} {:>12} {:>9}",
        "doc", "source", "tokens", "scored", "perplexity", "accuracy"
    )?;
    for d in r.documents.iter().take(MAX_TABLE_DOCUMENTS) {
        let (ppl, acc) = match d.status {
            DocumentStatus::Scored => (
                d.perplexity.map(sig).unwrap_or_default(),
                d.token_accuracy
                    .map(|a| format!("{:.1} %", a * 100.0))
                    .unwrap_or_default(),
            ),
            other => (status_name(other).to_string(), String::new()),
        };
        writeln!(
            out,
            "  {:>5}  {:<28} {:>8} {:>8} {:>12} {:>9}",
            d.index,
            ellipsize(&d.source, 28),
            group(d.tokens),
            group(d.scored_tokens),
            ppl,
            acc
        )?;
    }
    if r.documents.len() > MAX_TABLE_DOCUMENTS {
        writeln!(
            out,
            "  … {} more documents (--format json or csv lists them all)",
            r.documents.len() - MAX_TABLE_DOCUMENTS
        )?;
    }
    Ok(())
}

/// Six significant digits, the precision the numbers deserve in a table.
pub(crate) fn sig(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let digits = if x.abs() >= 1.0 {
        5 - (x.abs().log10().floor() as i32).min(5)
    } else {
        6
    };
    format!("{:.*}", digits.max(0) as usize, x)
}

/// `1234567` → `1,234,567`.
pub(crate) fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let tail: String = s
        .chars()
        .rev()
        .take(max - 1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_readable() {
        assert_eq!(group(0), "0");
        assert_eq!(group(40960), "40,960");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(sig(29.521957), "29.5220");
        assert_eq!(sig(49152.0), "49152.0");
        assert_eq!(sig(0.1234567), "0.123457");
        assert_eq!(ellipsize("abcdef", 4), "…def");
    }
}
