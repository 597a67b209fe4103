//! `perplex eval`, and the steps every command shares: options and inputs
//! from the arguments, early checks of outputs, threads, writing.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use perplex::{Corpus, EvalOptions, Evaluator, Inputs};
use perplex_core::bands::Bands;
use perplex_core::plan::{BosPolicy, Protocol};
use perplex_data::corpus::Split;
use perplex_eval::{NullSink, Sink};
use perplex_report::{write_report, PerTokenJsonl};

use super::args::{
    BosArg, EvalArgs, InputArgs, LabelArgs, OutputArgs, ProtocolArg, RunArgs, SplitArg,
};
use super::error::CliError;
use super::progress::ProgressSink;

/// Runs `perplex eval`.
pub fn run(args: EvalArgs) -> Result<(), CliError> {
    let EvalArgs {
        model,
        texts,
        input,
        run,
        output,
        per_token,
        labels,
    } = args;
    let bands = bands(&labels)?;
    let options = eval_options(&run, &input)?;
    // Read every input and open every output before loading the model, so a
    // typo fails in milliseconds rather than after a long run.
    let corpus = read_corpus(texts, &input)?;
    if let Some(report_path) = output.output.as_deref().filter(|p| resumable(p)) {
        if let Some(path) = &per_token {
            check_writable(path)?;
        }
        check_writable(report_path)?;
        set_threads(run.threads);
        let evaluator = Evaluator::load_with(&model, &run.load_options())?;
        note(output.quiet, &format!("loaded {model}"));
        for warning in evaluator.warnings(&options) {
            super::error::render_warning(&warning);
        }
        let format = output.format.into();
        return evaluate_resumably(
            evaluator.into_model(),
            &corpus,
            &options,
            report_path,
            per_token.as_deref(),
            output.quiet,
            |report, out| {
                let mut report = report.clone();
                if let (Some(b), Some(ppl)) = (&bands, report.summary.perplexity) {
                    report.interpretation = Some(b.label(ppl));
                }
                write_report(&report, format, out)
            },
        );
    }
    let per_token_file = per_token
        .as_deref()
        .map(|path| create(path).map(|f| (path.to_path_buf(), f)))
        .transpose()?;
    if let Some(path) = &output.output {
        check_writable(path)?;
    }
    set_threads(run.threads);
    let mut evaluator = Evaluator::load_with(&model, &run.load_options())?;
    note(output.quiet, &format!("loaded {model}"));
    // before the run, so a long evaluation of the wrong thing can be stopped
    for warning in evaluator.warnings(&options) {
        super::error::render_warning(&warning);
    }

    let mut report = match per_token_file {
        Some((path, file)) => {
            let tokenizer = evaluator.model().tokenizer.clone();
            let mut sink =
                PerTokenJsonl::new(BufWriter::new(file), move |id| tokenizer.token_text(id));
            let report = evaluate(&mut evaluator, &corpus, &options, &mut sink, output.quiet)
                .and_then(|report| {
                    sink.finish()
                        .map_err(|source| CliError::Output {
                            path: path.clone(),
                            source,
                        })
                        .map(|_| report)
                });
            // a failed or interrupted run leaves no partial per-token file
            // (a device or pipe given as the path is left alone)
            if report.is_err() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                let _ = std::fs::remove_file(&path);
            }
            report.map_err(|e| match e {
                CliError::Perplex(perplex::Error::Eval(perplex_eval::EvalError::Sink(source))) => {
                    CliError::Output { path, source }
                }
                other => other,
            })?
        }
        None => evaluate(
            &mut evaluator,
            &corpus,
            &options,
            &mut NullSink,
            output.quiet,
        )?,
    };
    if let (Some(b), Some(ppl)) = (&bands, report.summary.perplexity) {
        report.interpretation = Some(b.label(ppl));
    }
    let format = output.format.into();
    write_output(&output, |out| write_report(&report, format, out))
}

/// Whether a report path is a regular file (or not yet there), so that the
/// run's progress can be saved beside it; a device or pipe is not.
fn resumable(path: &Path) -> bool {
    std::fs::metadata(path).map_or(true, |m| m.is_file())
}

/// `perplex eval --output REPORT`: progress saved beside the report as the
/// run goes, a rerun resuming from the last save ([`perplex_eval::checkpoint`]).
fn evaluate_resumably(
    mut model: perplex::Model,
    corpus: &Corpus,
    options: &EvalOptions,
    report_path: &Path,
    per_token: Option<&Path>,
    quiet: bool,
    write: impl FnOnce(&perplex::EvalReport, &mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CliError> {
    use perplex_eval::checkpoint::EvalJournal;
    let evaluation = perplex_eval::Evaluation::new(&model.tokenizer, corpus, options)?;
    let identity =
        evaluation.resume_identity(&model.identity, &model.tokenizer, per_token.is_some());
    let mut journal = EvalJournal::open(report_path, &identity)?;
    if let Some(c) = journal.resumed() {
        note(
            quiet,
            &format!(
                "resuming: {} windows were scored by an earlier run",
                c.windows
            ),
        );
    }
    let tokenizer = model.tokenizer.clone();
    let mut tokens = journal
        .tokens_file()?
        .map(|file| PerTokenJsonl::new(BufWriter::new(file), move |id| tokenizer.token_text(id)));
    let mut null = NullSink;
    let sink: &mut dyn Sink = match tokens.as_mut() {
        Some(t) => t,
        None => &mut null,
    };
    let mut progress = ProgressSink::new(sink, quiet);
    let result = evaluation.run_saving(
        model.lm.as_mut(),
        &model.tokenizer,
        &model.identity,
        model.threads,
        &mut progress,
        Some(&mut journal),
    );
    progress.finish();
    let mut report = result?;
    report.warnings = model.warnings(options);
    if let Some(t) = tokens {
        t.finish().map_err(|source| CliError::Output {
            path: per_token.unwrap_or(report_path).to_path_buf(),
            source,
        })?;
    }
    journal.finish(report_path, |out| write(&report, out), per_token)?;
    Ok(())
}

/// The bands `--bands` asks for, checked.
pub(super) fn bands(labels: &LabelArgs) -> Result<Option<Bands>, CliError> {
    labels
        .bands
        .as_deref()
        .map(|spec| {
            Bands::parse(spec).map_err(|e| {
                CliError::usage(
                    format!("--bands {e}"),
                    "give ascending bounds, each band as name:bound and the last without one, \
                     e.g. --bands=good:30,fair:100,poor (or --bands alone for the rule of thumb)",
                )
            })
        })
        .transpose()
}

/// The evaluation options the arguments describe, checked by the library's
/// builder (flag combinations only the CLI can see are checked here).
pub(super) fn eval_options(run: &RunArgs, input: &InputArgs) -> Result<EvalOptions, CliError> {
    let (protocol, bos) = window_options(run)?;
    Ok(EvalOptions::builder(protocol)
        .bos(bos)
        .batch_size(run.batch_size)
        .max_tokens(run.max_tokens)
        .join(input.join.then(|| input.separator.clone()))
        .build()
        .map_err(perplex::Error::from)?)
}

/// The protocol and BOS policy the arguments describe (and a check of
/// `--threads`, which every command that runs a model takes).
pub(super) fn window_options(run: &RunArgs) -> Result<(Protocol, BosPolicy), CliError> {
    if run.threads == Some(0) {
        return Err(CliError::usage(
            "--threads must be at least 1",
            "use --threads 1 or more, or leave it out to use the physical cores",
        ));
    }
    let context = run.context;
    let protocol = match run.protocol {
        ProtocolArg::Truncate => Protocol::Truncate {
            max_length: run.max_length,
        },
        ProtocolArg::Chunks => Protocol::Chunks { context },
        ProtocolArg::Sliding => Protocol::Sliding {
            context,
            stride: run.stride.unwrap_or((context / 2).max(1)),
        },
        ProtocolArg::LlamaCpp => Protocol::LlamaCpp { context },
    };
    if run.stride.is_some() && !matches!(protocol, Protocol::Sliding { .. }) {
        return Err(CliError::usage(
            "--stride applies only to --protocol sliding",
            "add --protocol sliding, or leave --stride out",
        ));
    }
    let bos = match run.bos {
        BosArg::Auto => BosPolicy::Auto,
        BosArg::None => BosPolicy::None,
        BosArg::Document => BosPolicy::Document,
        BosArg::Window => BosPolicy::Window,
    };
    Ok((protocol, bos))
}

/// Applies `--threads` before any compute thread starts.
/// A request beyond the machine's hardware threads is capped there, with a
/// warning, before any thread starts.
pub(super) fn set_threads(threads: Option<usize>) {
    if let Some(asked) = threads {
        let n = asked.min(perplex_model::max_threads());
        if n < asked {
            super::error::render_warning(&perplex_core::inspect::Check {
                level: perplex_core::inspect::Level::Warning,
                code: "threads-capped".into(),
                message: format!(
                    "--threads {asked} is more than this machine's {n} hardware threads: using {n}"
                ),
                hint: None,
            });
        }
        perplex_model::set_threads(n);
        // candle sizes its element-wise pool once, from the environment; no
        // compute thread has started yet, so setting it here is sound.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Writes the report to `--output` (atomically) or stdout.
pub(super) fn write_output(
    output: &OutputArgs,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CliError> {
    match &output.output {
        Some(path) => write_atomically(path, write),
        None => {
            let mut stdout = std::io::stdout().lock();
            write(&mut stdout)
                .and_then(|()| stdout.flush())
                .map_err(stdout_error)
        }
    }
}

fn evaluate(
    evaluator: &mut Evaluator,
    corpus: &Corpus,
    options: &EvalOptions,
    sink: &mut dyn Sink,
    quiet: bool,
) -> Result<perplex::EvalReport, CliError> {
    let mut progress = ProgressSink::new(sink, quiet);
    let report = evaluator.evaluate_into(corpus, options, &mut progress);
    progress.finish();
    Ok(report?)
}

/// Reads the texts, files, JSONL and stdin the arguments name.
pub(super) fn read_corpus(texts: Vec<String>, input: &InputArgs) -> Result<Corpus, CliError> {
    let inputs = Inputs {
        texts,
        files: input.files.clone(),
        split: match input.split {
            SplitArg::Whole => Split::Whole,
            SplitArg::Lines => Split::Lines,
            SplitArg::Paragraphs => Split::Paragraphs,
        },
        jsonl: input.jsonl.clone(),
        field: input.field.clone(),
    };
    if inputs.is_empty() && std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "no input: give TEXT arguments, --file PATH, --jsonl PATH, or pipe text to stdin",
            "e.g. `perplex eval -m MODEL --file text.txt`, or `cat text.txt | perplex eval -m MODEL`",
        ));
    }
    Ok(inputs.read()?)
}

fn create(path: &Path) -> Result<std::fs::File, CliError> {
    std::fs::File::create(path).map_err(|source| CliError::Output {
        path: path.to_path_buf(),
        source,
    })
}

/// Fails early when the report could not be written at the end.
pub(super) fn check_writable(path: &Path) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if path.is_dir() {
        Err(CliError::Output {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a folder"),
        })
    } else if dir.is_dir() {
        Ok(())
    } else {
        Err(CliError::Output {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "its folder does not exist"),
        })
    }
}

/// Writes `path` atomically: a reader never sees half a report.
pub(super) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CliError> {
    perplex_eval::files::write_atomically(path, write).map_err(|source| CliError::Output {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn stdout_error(source: std::io::Error) -> CliError {
    if source.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::BrokenPipe
    } else {
        CliError::Output {
            path: "stdout".into(),
            source,
        }
    }
}

/// A note for the user on stderr, unless `--quiet`.
pub(super) fn note(quiet: bool, message: &str) {
    if !quiet {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{message}");
        }
    }
}

/// Where the curve goes: `--plot FILE` (`.png` for PNG, else SVG), or both
/// an SVG and a PNG beside `--output`.
pub(super) fn plot_paths(plot: Option<PathBuf>, output: Option<&Path>) -> Vec<PathBuf> {
    match (plot, output) {
        (Some(p), _) => vec![p],
        (None, Some(o)) => vec![o.with_extension("svg"), o.with_extension("png")],
        (None, None) => Vec::new(),
    }
}

/// Writes the curve to each of `paths`, in the format its extension names.
pub(super) fn write_plots(
    report: &perplex::report::SweepReport,
    paths: &[PathBuf],
) -> Result<(), CliError> {
    for path in paths {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            let png = perplex_report::sweep_png(report).map_err(|e| CliError::Output {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
            write_atomically(path, |out| out.write_all(&png))?;
        } else {
            let svg = perplex_report::sweep_svg(report);
            write_atomically(path, |out| out.write_all(svg.as_bytes()))?;
        }
    }
    Ok(())
}
