//! `perplex sweep`.

use perplex_model::LoadOptions;
use perplex_report::{write_sweep, Format};

use super::args::{FormatArg, SweepArgs};
use super::error::CliError;
use super::eval::{
    check_writable, eval_options, plot_paths, read_corpus, set_threads, write_output, write_plots,
};
use super::progress::ProgressSink;

/// Runs `perplex sweep`: inputs first, then one checkpoint after another.
pub fn run(args: SweepArgs) -> Result<(), CliError> {
    let SweepArgs {
        run_dir,
        base,
        plot,
        texts,
        input,
        run,
        output,
        labels,
    } = args;
    let bands = super::eval::bands(&labels)?;
    let options = eval_options(&run, &input)?;
    let corpus = read_corpus(texts, &input)?;
    if let Some(path) = &output.output {
        check_writable(path)?;
    }
    let plots = plot_paths(plot, output.output.as_deref());
    for path in &plots {
        check_writable(path)?;
    }
    set_threads(run.threads);
    let report = {
        let mut null = perplex_eval::NullSink;
        let mut progress = ProgressSink::new(&mut null, output.quiet);
        let report = perplex::sweep::sweep(
            &run_dir,
            base.as_deref(),
            &corpus,
            &options,
            &LoadOptions::default(),
            &mut progress,
        );
        progress.finish();
        report?
    };
    let mut report = report;
    if let Some(b) = &bands {
        for p in &mut report.points {
            p.label = p.perplexity.map(|x| b.label(x).label);
        }
    }
    for warning in &report.warnings {
        super::error::render_warning(warning);
    }
    let format = match output.format {
        FormatArg::Table => Format::Table,
        FormatArg::Json => Format::Json,
        FormatArg::Csv => Format::Csv,
    };
    write_plots(&report, &plots)?;
    write_output(&output, |out| write_sweep(&report, format, out))
}
