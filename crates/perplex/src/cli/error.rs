//! CLI errors: classified for the exit code, rendered once as
//! `error:` / `caused by:` / `hint:` on stderr.

use std::io::Write;
use std::path::PathBuf;

use perplex_data::corpus::CorpusError;

/// Everything `perplex` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Loading or evaluating failed.
    #[error(transparent)]
    Perplex(#[from] perplex::Error),
    /// An input could not be read.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// Arguments that parse but do not make sense together.
    #[error("{message}")]
    Usage {
        /// What is wrong, naming the flag and value.
        message: String,
        /// What to give instead.
        hint: String,
    },
    /// An output file could not be written.
    #[error("could not write {}", path.display())]
    Output {
        /// The output path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `perplex inspect` found problems that `eval` would refuse.
    #[error("{model} failed {errors} consistency check(s); see the checks above")]
    FailedChecks {
        /// The model spec.
        model: String,
        /// Error-level findings.
        errors: usize,
    },
    /// stdout was closed by the reader (e.g. `| head`): not a failure.
    #[error("broken pipe")]
    BrokenPipe,
}

impl From<perplex_eval::EvalError> for CliError {
    fn from(e: perplex_eval::EvalError) -> Self {
        CliError::Perplex(e.into())
    }
}

impl CliError {
    /// A usage error: `message` names the flag and value, `hint` says what
    /// to give instead.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// The process exit code for this error (the library's [`perplex::ErrorKind`]).
    pub fn exit_code(&self) -> u8 {
        use perplex::ErrorKind;
        match self {
            CliError::BrokenPipe => 0,
            CliError::Usage { .. } => ErrorKind::Usage.exit_code(),
            CliError::Corpus(_) | CliError::Output { .. } => ErrorKind::Input.exit_code(),
            CliError::FailedChecks { .. } => ErrorKind::Model.exit_code(),
            CliError::Perplex(e) => match e.kind() {
                ErrorKind::Interrupted => super::signals::requested().map_or(1, |s| s.exit_code()),
                kind => kind.exit_code(),
            },
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CliError::Perplex(e) => e.hint(),
            CliError::Corpus(e) => e.hint(),
            CliError::Output { .. } => Some(
                "check that the folder exists and is writable, that the path is not a folder, \
                 and that the disk has room"
                    .into(),
            ),
            CliError::Usage { hint, .. } => Some(hint.clone()),
            CliError::FailedChecks { model, .. } => Some(format!(
                "the checks marked as errors say what does not fit; `perplex eval` refuses \
                 {model} until they are fixed (a tokenizer from another model?)"
            )),
            CliError::BrokenPipe => None,
        }
    }
}

/// Writes `error: …`, one `caused by: …` per source, and `hint: …`.
pub fn render(e: &CliError) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    for cause in perplex::causes(e) {
        let _ = writeln!(err, "  caused by: {cause}");
    }
    if let Some(hint) = e.hint() {
        let _ = writeln!(err, "  hint: {hint}");
    }
}

/// Writes clap's message for arguments that do not parse, in the same
/// shape: its `error:` line and details, then a `hint:` line naming the
/// command's help (in place of clap's closing "For more information" line).
pub fn render_clap(e: &clap::Error, help: &str) {
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("For more information, try"))
        .collect();
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    let mut err = std::io::stderr().lock();
    for line in &lines[..end] {
        let _ = writeln!(err, "{line}");
    }
    let _ = writeln!(err, "  hint: see `{help}` for the arguments it takes");
}

/// Writes `warning: …` and its `hint: …`.
pub fn render_warning(check: &perplex_core::inspect::Check) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "warning: {}", check.message);
    if let Some(hint) = &check.hint {
        let _ = writeln!(err, "  hint: {hint}");
    }
}
