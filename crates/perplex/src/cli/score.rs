//! `perplex score` and `perplex merge`: the arguments turned into the
//! library's score and merge calls, the shard taken from the job scheduler's
//! environment when not given, the summary on stdout.

use std::io::IsTerminal;
use std::path::PathBuf;

use perplex::score::{ScoreOptions, ScoreOutput, ScoreProgress, Scored};
use perplex::Evaluator;
use perplex_core::score::Shard;
use perplex_data::corpus::Split;
use perplex_data::stream::StreamInputs;
use perplex_report::{write_score_summary, Format};

use super::args::{MergeArgs, ScoreArgs, SplitArg, SummaryFormatArg};
use super::error::CliError;
use super::eval::{note, set_threads, stdout_error, window_options};

/// Runs `perplex score`.
pub fn run(args: ScoreArgs) -> Result<(), CliError> {
    if args.run.max_tokens.is_some() {
        return Err(CliError::usage(
            "--max-tokens does not apply to `perplex score`",
            "every document is scored whole (as the protocol allows); to score part of a \
             corpus, give part of it, or use --shard",
        ));
    }
    if args.parquet.is_empty() && args.jsonl.is_empty() && args.files.is_empty() {
        return Err(CliError::usage(
            "no input: give --parquet PATH, --jsonl PATH or --file PATH",
            "e.g. `perplex score -m MODEL --parquet corpus.parquet -o scores.parquet`",
        ));
    }
    let shard = shard(args.shard.as_deref(), &|name| std::env::var(name).ok())?;
    let (protocol, bos) = window_options(&args.run)?;
    let options = ScoreOptions::new(protocol)
        .and_then(|o| o.batch_size(args.run.batch_size))
        .and_then(|o| o.block_documents(args.block))
        .map_err(perplex::Error::from)?
        .bos(bos)
        .shard(shard);
    let inputs = StreamInputs {
        files: args.files,
        split: match args.split {
            SplitArg::Whole => Split::Whole,
            SplitArg::Lines => Split::Lines,
            SplitArg::Paragraphs => Split::Paragraphs,
        },
        jsonl: args.jsonl,
        parquet: args.parquet,
        text_column: args.text_column,
        id_column: args.id_column,
        keep_columns: args.keep_columns,
    };
    // inputs checked (files, columns, the first document) before the model loads
    if let Some(Err(e)) = inputs.open().map_err(perplex::Error::from)?.next() {
        return Err(perplex::Error::from(e).into());
    }
    let path = output_path(&args.output, shard);
    let output = ScoreOutput::new(path, args.output_format.map(Into::into))
        .map_err(|e| perplex::Error::Eval(e.into()))?;
    super::eval::check_writable(&output.path)?;
    if std::fs::metadata(&output.path).is_ok_and(|m| !m.is_file()) {
        return Err(CliError::usage(
            format!("{} is not a file", output.path.display()),
            "score writes its rows, its summary and its progress beside them as files: give \
             a file path",
        ));
    }
    set_threads(args.run.threads);
    let mut evaluator = Evaluator::load_with(&args.model, &args.run.load_options())?;
    note(args.quiet, &format!("loaded {}", args.model));
    let mut progress = Progress::new(args.quiet, shard);
    let scored = evaluator.score(&inputs, &options, &output, &mut progress);
    progress.finish();
    let scored = scored?;
    match &scored {
        Scored::AlreadyDone(_) => note(
            args.quiet,
            &format!(
                "{} is already complete; its summary:",
                output.path.display()
            ),
        ),
        Scored::Done(_) => note(
            args.quiet,
            &format!("rows written to {}", output.path.display()),
        ),
    }
    print_summary(scored.summary(), args.format)
}

/// Runs `perplex merge`.
pub fn merge(args: MergeArgs) -> Result<(), CliError> {
    let output = args
        .output
        .map(|path| ScoreOutput::new(path, args.output_format.map(Into::into)))
        .transpose()
        .map_err(|e| perplex::Error::Eval(e.into()))?;
    if let Some(output) = &output {
        super::eval::check_writable(&output.path)?;
    }
    let summary = perplex::score::merge(&args.shards, output.as_ref())?;
    print_summary(&summary, args.format)
}

fn print_summary(
    summary: &perplex_core::score::ScoreSummary,
    format: SummaryFormatArg,
) -> Result<(), CliError> {
    let format = match format {
        SummaryFormatArg::Table => Format::Table,
        SummaryFormatArg::Json => Format::Json,
    };
    let mut stdout = std::io::stdout().lock();
    write_score_summary(summary, format, &mut stdout).map_err(stdout_error)
}

/// `{shard}` in the output name, replaced by the shard's label.
fn output_path(path: &std::path::Path, shard: Shard) -> PathBuf {
    match path.to_str() {
        Some(s) if s.contains("{shard}") => PathBuf::from(s.replace("{shard}", &shard.label())),
        _ => path.to_path_buf(),
    }
}

/// The shard `--shard` names, else the one the job scheduler's environment
/// names (Slurm job arrays, Kubernetes Indexed Jobs), else the whole corpus.
fn shard(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, CliError> {
    if let Some(flag) = flag {
        return flag.parse().map_err(|e: perplex_core::score::ShardError| {
            CliError::usage(
                format!("--shard {e}"),
                "give --shard I/N with 0 <= I < N, e.g. --shard 0/4 for the first of 4",
            )
        });
    }
    let number = |name: &str| -> Result<Option<u32>, CliError> {
        env(name)
            .map(|v| {
                v.trim().parse::<u32>().map_err(|_| {
                    CliError::usage(
                        format!("{name}={v:?} is not a shard number"),
                        "unset it, or give --shard I/N",
                    )
                })
            })
            .transpose()
    };
    let from = |index: u32, count: u32, names: &str| {
        Shard::new(index, count).map_err(|e| {
            CliError::usage(
                format!("{names}: {e}"),
                "give --shard I/N, which takes precedence over the environment",
            )
        })
    };
    if let (Some(id), Some(count)) = (
        number("SLURM_ARRAY_TASK_ID")?,
        number("SLURM_ARRAY_TASK_COUNT")?,
    ) {
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        return from(
            id.saturating_sub(min),
            count,
            "SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT",
        );
    }
    if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let Some(count) = number("PERPLEX_SHARD_COUNT")? else {
            return Err(CliError::usage(
                "JOB_COMPLETION_INDEX is set but PERPLEX_SHARD_COUNT is not",
                "set PERPLEX_SHARD_COUNT to the Job's completions (see the Indexed Job in \
                 docs/distributed.md), or give --shard I/N",
            ));
        };
        return from(index, count, "JOB_COMPLETION_INDEX and PERPLEX_SHARD_COUNT");
    }
    Ok(Shard::WHOLE)
}

/// Progress on stderr: a line per committed block on a terminal, nothing
/// with `--quiet`; asks the run to stop on SIGINT/SIGTERM.
struct Progress {
    show: bool,
    shard: Shard,
    last: u64,
}

impl Progress {
    fn new(quiet: bool, shard: Shard) -> Self {
        Progress {
            show: !quiet && std::io::stderr().is_terminal(),
            shard,
            last: 0,
        }
    }

    fn finish(&self) {
        if self.show && self.last > 0 {
            #[allow(clippy::print_stderr)]
            {
                eprintln!();
            }
        }
    }
}

impl ScoreProgress for Progress {
    fn scored(&mut self, committed: u64, processed: u64) {
        if self.show && committed != self.last {
            self.last = committed;
            #[allow(clippy::print_stderr)]
            {
                eprint!(
                    "\rshard {}: {committed} documents committed, {processed} tokens this run",
                    self.shard
                );
            }
        }
    }

    fn should_stop(&self) -> bool {
        super::signals::requested().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_shard_comes_from_the_flag_then_slurm_then_kubernetes() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("JOB_COMPLETION_INDEX", "0"),
        ];
        assert_eq!(
            shard(Some("2/4"), &env(&slurm)).unwrap(),
            Shard::new(2, 4).unwrap()
        );
        assert_eq!(
            shard(None, &env(&slurm)).unwrap(),
            Shard::new(1, 3).unwrap()
        );
        let k8s = [("JOB_COMPLETION_INDEX", "7"), ("PERPLEX_SHARD_COUNT", "8")];
        assert_eq!(shard(None, &env(&k8s)).unwrap(), Shard::new(7, 8).unwrap());
        assert_eq!(shard(None, &env(&[])).unwrap(), Shard::WHOLE);
    }

    #[test]
    fn a_bad_shard_is_a_usage_error_naming_its_source() {
        let e = shard(Some("4/4"), &env(&[])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--shard shard 4/4 does not exist"),
            "{e}"
        );
        let e = shard(None, &env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err();
        assert!(e.to_string().contains("PERPLEX_SHARD_COUNT"), "{e}");
        let e = shard(
            None,
            &env(&[
                ("SLURM_ARRAY_TASK_ID", "x"),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "SLURM_ARRAY_TASK_ID=\"x\" is not a shard number"
        );
    }

    #[test]
    fn the_shard_goes_into_the_output_name() {
        let s = Shard::new(1, 3).unwrap();
        assert_eq!(
            output_path(std::path::Path::new("out/scores-{shard}.parquet"), s),
            PathBuf::from("out/scores-00001-of-00003.parquet")
        );
        assert_eq!(
            output_path(std::path::Path::new("scores.jsonl"), s),
            PathBuf::from("scores.jsonl")
        );
    }
}
