//! Writers for `perplex compare`: a readable table, the versioned JSON, and
//! CSV (one row per pair, then one per pair and document).

use std::io::{self, Write};

use perplex_core::compare::{Outcome, PairSummary, Percentile};
use perplex_core::report::{CompareReport, PairReport};

use crate::Format;

/// Writes `report` in `format`.
pub fn write_compare(
    report: &CompareReport,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Table => write_compare_table(report, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        Format::Csv => write_compare_csv(report, out),
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn percentiles(p: &[Percentile], scale: f64, digits: usize) -> String {
    p.iter()
        .map(|p| format!("p{} {:.digits$}", p.percent, p.value * scale))
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcome_words(o: Outcome) -> &'static str {
    match o {
        Outcome::Better => "better than the base",
        Outcome::Worse => "worse than the base",
        Outcome::NoSignificantDifference => "not significantly different from the base",
    }
}

/// A sentence a person can act on.
pub fn verdict_line(report: &CompareReport, pair: &PairReport) -> String {
    let other = &report.models[pair.other].model.spec;
    if let Some(b) = &pair.bits_per_byte {
        return format!(
            "{other} is {} (bits per byte {:.5} -> {:.5}, {:+.2} %; {} at {} %)",
            outcome_words(b.verdict.outcome),
            b.base_bits_per_byte,
            b.other_bits_per_byte,
            -b.improvement_percent + 0.0,
            b.verdict.basis,
            b.verdict.confidence * 100.0
        );
    }
    let Some(s) = &pair.stats else {
        return format!("{other}: no token was scored");
    };
    let what = outcome_words(s.verdict.outcome);
    format!(
        "{other} is {what} (perplexity {:.4} -> {:.4}, {:+.2} %; {} at {} %)",
        s.base_perplexity,
        s.other_perplexity,
        -s.improvement_percent + 0.0, // no "-0.00"
        s.verdict.basis,
        s.verdict.confidence * 100.0
    )
}

/// The table: the models, then one block per pair.
pub fn write_compare_table(report: &CompareReport, out: &mut dyn Write) -> io::Result<()> {
    let width = report
        .models
        .iter()
        .map(|m| m.model.spec.chars().count() + " (base)".len())
        .max()
        .unwrap_or(0)
        .max("model".len());
    writeln!(
        out,
        "{:<3} {:<width$} {:>9} {:>12} {:>24}",
        "#", "model", "tokens", "perplexity", "95% interval"
    )?;
    for (i, m) in report.models.iter().enumerate() {
        let s = &m.summary;
        let ci = s
            .perplexity_ci95
            .map_or_else(|| "-".into(), |[lo, hi]| format!("[{lo:.4}, {hi:.4}]"));
        let role = if i == 0 { " (base)" } else { "" };
        writeln!(
            out,
            "{:<3} {:<width$} {:>9} {:>12} {:>24}",
            i,
            format!("{}{role}", m.model.spec),
            s.scored_tokens,
            opt(s.perplexity, 4),
            ci
        )?;
    }
    for pair in &report.pairs {
        writeln!(out)?;
        writeln!(out, "{} vs {}", pair.other, pair.base)?;
        writeln!(out, "  verdict          {}", verdict_line(report, pair))?;
        let Some(s) = &pair.stats else { continue };
        pair_lines(s, out)?;
        let show = |d: &perplex_core::report::DocumentDelta| {
            format!("#{} {:+.4}", d.index, d.mean_nll_difference)
        };
        if pair.documents.len() > 1 {
            let n = pair.documents.len().min(3);
            let best: Vec<String> = pair.documents[..n].iter().map(show).collect();
            let worst: Vec<String> = pair.documents.iter().rev().take(n).map(show).collect();
            writeln!(
                out,
                "  documents        most improved {}; least {} (mean Δnll)",
                best.join(", "),
                worst.join(", ")
            )?;
        }
    }
    Ok(())
}

fn pair_lines(s: &PairSummary, out: &mut dyn Write) -> io::Result<()> {
    let d = &s.mean_nll_difference;
    let ci =
        |c: Option<[f64; 2]>| c.map_or_else(|| "-".into(), |[a, b]| format!("[{a:+.5}, {b:+.5}]"));
    writeln!(out, "  improvement      {:.3} %", s.improvement_percent)?;
    writeln!(
        out,
        "  mean Δnll        {:+.5} nats, se {} {} (tokens independent)",
        d.value,
        opt(d.stderr, 5),
        ci(d.ci)
    )?;
    if let Some(b) = &s.bootstrap {
        writeln!(
            out,
            "  bootstrap        {} over {} {}s ({} resamples), se {:.5}",
            ci(Some(b.ci)),
            b.units,
            match b.unit {
                perplex_core::compare::BootstrapUnit::Document => "document",
                perplex_core::compare::BootstrapUnit::Window => "window",
            },
            b.resamples,
            b.stderr
        )?;
    }
    writeln!(out, "  nll correlation  {}", opt(s.nll_correlation, 4))?;
    let kl = &s.kl_divergence;
    writeln!(
        out,
        "  KL divergence    mean {:.6}, se {}, max {:.6}",
        kl.mean,
        opt(kl.stderr, 6),
        kl.max
    )?;
    writeln!(
        out,
        "                   {}",
        percentiles(&kl.percentiles, 1.0, 6)
    )?;
    let a = &s.top1_agreement;
    writeln!(
        out,
        "  top-1 agreement  {:.3} %, se {}",
        a.value * 100.0,
        opt(a.stderr.map(|x| x * 100.0), 3)
    )?;
    let dp = &s.delta_p;
    writeln!(
        out,
        "  Δp (correct)     mean {:+.4} %, RMS {:.4} %",
        dp.mean * 100.0,
        dp.rms * 100.0
    )?;
    writeln!(
        out,
        "                   {}",
        percentiles(&dp.percentiles, 100.0, 3)
    )
}

/// CSV columns, in order.
pub const COMPARE_CSV_COLUMNS: &[&str] = &[
    "kind",
    "base",
    "other",
    "document",
    "source",
    "tokens",
    "base_perplexity",
    "other_perplexity",
    "improvement_percent",
    "mean_nll_difference",
    "mean_nll_difference_stderr",
    "bootstrap_ci_low",
    "bootstrap_ci_high",
    "nll_correlation",
    "kl_mean",
    "kl_stderr",
    "kl_p99",
    "kl_max",
    "top1_agreement",
    "delta_p_mean",
    "delta_p_rms",
    "base_bits_per_byte",
    "other_bits_per_byte",
    "verdict",
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV: a `pair` row per pair, then a `document` row per pair and document.
pub fn write_compare_csv(report: &CompareReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", COMPARE_CSV_COLUMNS.join(","))?;
    let num = |x: Option<f64>| x.map_or_else(String::new, |x| x.to_string());
    for pair in &report.pairs {
        let base = csv_field(&report.models[pair.base].model.spec);
        let other = csv_field(&report.models[pair.other].model.spec);
        let s = pair.stats.as_ref();
        let bpb = pair.bits_per_byte.as_ref();
        // the bootstrap of the mean NLL difference, or of the bits per byte
        let boot = s
            .and_then(|s| s.bootstrap.as_ref())
            .or(bpb.and_then(|b| b.bootstrap.as_ref()));
        let p99 = s.and_then(|s| {
            s.kl_divergence
                .percentiles
                .iter()
                .find(|p| p.percent == 99.0)
                .map(|p| p.value)
        });
        let row = [
            "pair".to_string(),
            base.clone(),
            other.clone(),
            String::new(),
            String::new(),
            num(s.map(|s| s.tokens as f64)),
            num(s.map(|s| s.base_perplexity)),
            num(s.map(|s| s.other_perplexity)),
            num(s
                .map(|s| s.improvement_percent)
                .or(bpb.map(|b| b.improvement_percent))),
            num(s.map(|s| s.mean_nll_difference.value)),
            num(s.and_then(|s| s.mean_nll_difference.stderr)),
            num(boot.map(|b| b.ci[0])),
            num(boot.map(|b| b.ci[1])),
            num(s.and_then(|s| s.nll_correlation)),
            num(s.map(|s| s.kl_divergence.mean)),
            num(s.and_then(|s| s.kl_divergence.stderr)),
            num(p99),
            num(s.map(|s| s.kl_divergence.max)),
            num(s.map(|s| s.top1_agreement.value)),
            num(s.map(|s| s.delta_p.mean)),
            num(s.map(|s| s.delta_p.rms)),
            num(bpb.map(|b| b.base_bits_per_byte)),
            num(bpb.map(|b| b.other_bits_per_byte)),
            s.map(|s| s.verdict.outcome)
                .or(bpb.map(|b| b.verdict.outcome))
                .map_or_else(String::new, |o| {
                    match o {
                        Outcome::Better => "better",
                        Outcome::Worse => "worse",
                        Outcome::NoSignificantDifference => "no-significant-difference",
                    }
                    .to_string()
                }),
        ];
        writeln!(out, "{}", row.join(","))?;
        for d in &pair.documents {
            let mut row = vec![
                "document".to_string(),
                base.clone(),
                other.clone(),
                d.index.to_string(),
                csv_field(&d.source),
                d.tokens.to_string(),
                d.base_perplexity.to_string(),
                d.other_perplexity.to_string(),
                d.improvement_percent.to_string(),
                d.mean_nll_difference.to_string(),
            ];
            row.resize(COMPARE_CSV_COLUMNS.len(), String::new());
            writeln!(out, "{}", row.join(","))?;
        }
    }
    Ok(())
}
