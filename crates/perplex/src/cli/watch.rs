//! `perplex watch`.

use std::time::Duration;

use perplex::watch::WatchOptions;
use perplex_model::LoadOptions;
use perplex_report::{write_sweep, Format};

use super::args::{FormatArg, WatchArgs};
use super::error::CliError;
use super::eval::{
    check_writable, eval_options, note, plot_paths, read_corpus, set_threads, write_atomically,
    write_output, write_plots,
};

fn seconds(name: &str, s: f64) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| CliError::Usage(format!("{name} {s} is not a number of seconds")))
}

/// Runs `perplex watch`: the report (and plot) are rewritten after every
/// checkpoint; the final report also goes to stdout without --output.
pub fn run(args: WatchArgs) -> Result<(), CliError> {
    let WatchArgs {
        run_dir,
        base,
        state,
        interval,
        settle,
        exit_when_idle,
        until_step,
        plot,
        texts,
        input,
        run,
        output,
        labels,
    } = args;
    let bands = super::eval::bands(&labels)?;
    let options = eval_options(&run, &input)?;
    let watch = WatchOptions {
        interval: seconds("--interval", interval)?,
        settle: seconds("--settle", settle)?,
        exit_when_idle: exit_when_idle
            .map(|s| seconds("--exit-when-idle", s))
            .transpose()?,
        until_step,
        state: state.unwrap_or_else(|| run_dir.join("perplex-watch.json")),
    };
    let corpus = read_corpus(texts, &input)?;
    if let Some(path) = &output.output {
        check_writable(path)?;
    }
    let plots = plot_paths(plot, output.output.as_deref());
    for path in &plots {
        check_writable(path)?;
    }
    let format = match output.format {
        FormatArg::Table => Format::Table,
        FormatArg::Json => Format::Json,
        FormatArg::Csv => Format::Csv,
    };
    set_threads(run.threads);
    let label = |report: &perplex::report::SweepReport| {
        let mut report = report.clone();
        if let Some(b) = &bands {
            for p in &mut report.points {
                p.label = p.perplexity.map(|x| b.label(x).label);
            }
        }
        report
    };
    let write_files = |report: &perplex::report::SweepReport| -> Result<(), CliError> {
        let report = &label(report);
        write_plots(report, &plots)?;
        if let Some(path) = &output.output {
            write_atomically(path, |out| write_sweep(report, format, out))?;
        }
        Ok(())
    };
    let mut failure = None;
    let report = perplex::watch::watch(
        &run_dir,
        base.as_deref(),
        &corpus,
        &options,
        &LoadOptions::default(),
        &watch,
        &mut |report| {
            if let Err(e) = write_files(report) {
                let message = e.to_string();
                failure = Some(e);
                return Err(perplex::Error::Sweep(message));
            }
            Ok(())
        },
        &mut |line| note(output.quiet, line),
        &mut perplex_eval::NullSink,
    );
    if let Some(e) = failure {
        return Err(e);
    }
    let report = report?;
    for warning in &report.warnings {
        super::error::render_warning(warning);
    }
    write_files(&report)?;
    if output.output.is_none() {
        write_output(&output, |out| write_sweep(&label(&report), format, out))?;
    }
    Ok(())
}
