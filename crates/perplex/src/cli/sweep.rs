//! `perplex sweep`, and what it shares with `perplex watch`.

use std::path::PathBuf;

use perplex::report::SweepReport;
use perplex::{Corpus, EvalOptions};
use perplex_core::bands::Bands;
use perplex_report::{write_sweep, Format};

use super::args::{CurveArgs, SweepArgs};
use super::error::CliError;
use super::eval::{
    bands, check_writable, eval_options, plot_paths, read_corpus, set_threads, write_atomically,
    write_output, write_plots,
};
use super::progress::ProgressSink;

/// A curve command's inputs, read and checked before any model loads.
pub(super) struct Curve {
    pub(super) options: EvalOptions,
    pub(super) corpus: Corpus,
    pub(super) plots: Vec<PathBuf>,
    pub(super) bands: Option<Bands>,
    pub(super) format: Format,
}

impl Curve {
    /// Options, text, output and plot paths from `args`; sets the threads.
    pub(super) fn prepare(args: &mut CurveArgs) -> Result<Curve, CliError> {
        let bands = bands(&args.labels)?;
        let options = eval_options(&args.run, &args.input)?;
        let corpus = read_corpus(std::mem::take(&mut args.texts), &args.input)?;
        if let Some(path) = &args.output.output {
            check_writable(path)?;
        }
        let plots = plot_paths(args.plot.take(), args.output.output.as_deref());
        for path in &plots {
            check_writable(path)?;
        }
        set_threads(args.run.threads);
        let format = args.output.format.into();
        Ok(Curve {
            options,
            corpus,
            plots,
            bands,
            format,
        })
    }

    /// `report` with its points labelled when `--bands` asks.
    pub(super) fn labelled(&self, report: &SweepReport) -> SweepReport {
        let mut report = report.clone();
        if let Some(b) = &self.bands {
            for p in &mut report.points {
                p.label = p.perplexity.map(|x| b.label(x).label);
            }
        }
        report
    }

    /// Writes the plots and the `--output` file.
    pub(super) fn write_files(
        &self,
        args: &CurveArgs,
        report: &SweepReport,
    ) -> Result<(), CliError> {
        let report = &self.labelled(report);
        write_plots(report, &self.plots)?;
        if let Some(path) = &args.output.output {
            write_atomically(path, |out| write_sweep(report, self.format, out))?;
        }
        Ok(())
    }

    /// The final report: warnings on stderr, files written, and stdout when
    /// there is no `--output`.
    pub(super) fn finish(&self, args: &CurveArgs, report: &SweepReport) -> Result<(), CliError> {
        for warning in &report.warnings {
            super::error::render_warning(warning);
        }
        self.write_files(args, report)?;
        if args.output.output.is_none() {
            write_output(&args.output, |out| {
                write_sweep(&self.labelled(report), self.format, out)
            })?;
        }
        Ok(())
    }
}

/// Runs `perplex sweep`: inputs first, then one checkpoint after another.
pub fn run(args: SweepArgs) -> Result<(), CliError> {
    let SweepArgs { mut curve } = args;
    let prepared = Curve::prepare(&mut curve)?;
    let mut null = perplex_eval::NullSink;
    let mut progress = ProgressSink::new(&mut null, curve.output.quiet);
    let load = curve.run.load_options();
    let report = perplex::sweep::sweep(
        &curve.run_dir,
        curve.base.as_deref(),
        &prepared.corpus,
        &prepared.options,
        &mut |spec: &str| perplex::load(spec, &load),
        &mut progress,
    );
    progress.finish();
    prepared.finish(&curve, &report?)
}
