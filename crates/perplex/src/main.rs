//! The `perplex` binary: parse, run, render errors once, exit with a fixed code.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
