//! Writers for `perplex sweep`: a table of the curve, the versioned JSON,
//! and CSV (one row per checkpoint).

use std::io::{self, Write};

use perplex_core::report::SweepReport;

use crate::Format;

/// Writes `report` in `format`.
pub fn write_sweep(report: &SweepReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => write_sweep_table(report, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        Format::Csv => write_sweep_csv(report, out),
    }
}

fn cell(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn signed(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:+.2} %"))
}

/// The curve, one line per checkpoint, with the base first when there is one.
pub fn write_sweep_table(r: &SweepReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "run   {}", r.run)?;
    writeln!(
        out,
        "text  {} ({})",
        r.corpus.sources.join(", "),
        r.protocol.description
    )?;
    if let Some((model, summary)) = &r.base {
        writeln!(
            out,
            "base  {}: perplexity {}",
            model.spec,
            cell(summary.perplexity, 4)
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:>8} {:>12} {:>24} {:>10} {:>10} {:>10} {:>10} {:>12}{}",
        "step",
        "perplexity",
        "95% interval",
        "vs prev",
        "vs base",
        "train loss",
        "eval loss",
        "exp(eval)",
        if r.points.iter().any(|p| p.label.is_some()) {
            "  label"
        } else {
            ""
        }
    )?;
    for p in &r.points {
        let ci = p
            .perplexity_ci95
            .map_or_else(|| "-".into(), |[lo, hi]| format!("[{lo:.4}, {hi:.4}]"));
        writeln!(
            out,
            "{:>8} {:>12} {:>24} {:>10} {:>10} {:>10} {:>10} {:>12}{}",
            p.step,
            cell(p.perplexity, 4),
            ci,
            signed(p.change_from_previous_percent),
            signed(p.change_from_base_percent),
            cell(p.train_loss, 4),
            cell(p.eval_loss, 4),
            cell(p.eval_loss_perplexity, 4),
            p.label
                .as_ref()
                .map_or_else(String::new, |l| format!("  {l}"))
        )?;
    }
    if r.points.iter().any(|p| p.label.is_some()) {
        writeln!(out, "labels: {}", perplex_core::bands::CAVEAT)?;
    }
    writeln!(out)?;
    if r.diagnoses.is_empty() {
        writeln!(out, "diagnosis: nothing unusual")?;
    }
    for d in &r.diagnoses {
        writeln!(out, "diagnosis: {} [{}]", d.message, d.code)?;
        for c in &d.checks {
            writeln!(out, "  check: {c}")?;
        }
    }
    Ok(())
}

/// CSV columns, in order.
pub const SWEEP_CSV_COLUMNS: &[&str] = &[
    "step",
    "spec",
    "perplexity",
    "perplexity_ci95_low",
    "perplexity_ci95_high",
    "mean_nll",
    "mean_nll_stderr",
    "scored_tokens",
    "change_from_previous_percent",
    "change_from_base_percent",
    "train_loss",
    "eval_loss",
    "eval_loss_perplexity",
    "label",
];

/// One row per checkpoint.
pub fn write_sweep_csv(r: &SweepReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", SWEEP_CSV_COLUMNS.join(","))?;
    let num = |x: Option<f64>| x.map_or_else(String::new, |x| x.to_string());
    for p in &r.points {
        let spec = if p.spec.contains([',', '"']) {
            format!("\"{}\"", p.spec.replace('"', "\"\""))
        } else {
            p.spec.clone()
        };
        let row = [
            p.step.to_string(),
            spec,
            num(p.perplexity),
            num(p.perplexity_ci95.map(|c| c[0])),
            num(p.perplexity_ci95.map(|c| c[1])),
            num(p.mean_nll),
            num(p.mean_nll_stderr),
            p.scored_tokens.to_string(),
            num(p.change_from_previous_percent),
            num(p.change_from_base_percent),
            num(p.train_loss),
            num(p.eval_loss),
            num(p.eval_loss_perplexity),
            p.label.clone().unwrap_or_default(),
        ];
        writeln!(out, "{}", row.join(","))?;
    }
    Ok(())
}
