//! The command-line front end: settings from arguments, inputs opened before
//! the first forward pass, data on stdout, progress and errors on stderr.
//!
//! Exit codes (fixed, documented in the README):
//! 0 success · 1 evaluation failed · 2 usage error · 3 bad input (corpus,
//! output path) · 4 the model could not be loaded · 130 / 143 stopped by
//! SIGINT / SIGTERM.

mod args;
mod compare;
mod error;
mod eval;
mod inspect;
mod progress;
mod score;
mod signals;
mod sweep;
mod watch;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;
use error::CliError;

/// `perplex COMMAND --help` for the command the arguments name, else
/// `perplex --help`.
fn help_command() -> String {
    use clap::CommandFactory;
    let named = std::env::args_os()
        .nth(1)
        .and_then(|a| a.into_string().ok())
        .filter(|a| Cli::command().find_subcommand(a).is_some());
    match named {
        Some(command) => format!("perplex {command} --help"),
        None => "perplex --help".into(),
    }
}

/// Runs the CLI and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            error::render_clap(&e, &help_command());
            return ExitCode::from(2);
        }
        Err(e) => {
            // help and version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    signals::install();
    let result = match cli.command {
        args::Command::Eval(args) => eval::run(*args),
        args::Command::Compare(args) => compare::run(*args),
        args::Command::Inspect(args) => inspect::run(args),
        args::Command::Score(args) => score::run(*args),
        args::Command::Merge(args) => score::merge(args),
        args::Command::Sweep(args) => sweep::run(*args),
        args::Command::Watch(args) => watch::run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(e) => {
            error::render(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
