//! Rust errors as Python exceptions, and the guard that keeps panics on
//! this side.
//!
//! A [`perplex::Error`] becomes the exception class of its
//! [`perplex::ErrorKind`] (the CLI's exit-code classes), defined in
//! `perplex/errors.py`: its message is the CLI's `error:` text with the
//! `caused by:` and `hint:` lines, and the instance carries `hint`, `causes`
//! and `exit_code`. A panic becomes `perplex.InternalError`; an interrupted
//! run, the `KeyboardInterrupt` its signal raised.

use std::panic::{catch_unwind, AssertUnwindSafe};

use perplex::ErrorKind;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

/// The exception class name for `kind`.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Usage => "UsageError",
        ErrorKind::Input => "InputError",
        ErrorKind::Model => "ModelError",
        ErrorKind::Evaluation => "EvaluationError",
        // raised as KeyboardInterrupt before a class is looked up
        ErrorKind::Interrupted => "EvaluationError",
    }
}

/// `perplex.errors.<class>(message)` with its attributes, as a `PyErr`.
fn raise(
    py: Python<'_>,
    class: &str,
    message: String,
    hint: Option<String>,
    causes: Vec<String>,
    exit_code: u8,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let class = py.import("perplex.errors")?.getattr(class)?;
        let error = class.call1((message.clone(),))?;
        error.setattr("hint", hint.clone())?;
        error.setattr("causes", causes.clone())?;
        error.setattr("exit_code", exit_code)?;
        Ok(PyErr::from_value(error))
    };
    // the package's own module missing is itself the error to show
    build().unwrap_or_else(|e| e)
}

/// The library's hints name the CLI's flags (`--batch-size 1`): in Python
/// they are keyword arguments (`batch_size=1`). Flags without a value are
/// switches (`fast=True`).
fn python_hint(hint: &str) -> String {
    const SWITCHES: [&str; 3] = ["fast", "bits-per-byte", "join"];
    let words: Vec<&str> = hint.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        let Some(rest) = word
            .strip_prefix("--")
            .filter(|r| r.starts_with(char::is_alphabetic))
        else {
            out.push(word.to_string());
            i += 1;
            continue;
        };
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        let (flag, tail) = rest.split_at(end);
        let name = flag.replace('-', "_");
        let value = words
            .get(i + 1)
            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()));
        match value {
            Some(v) if tail.is_empty() => {
                out.push(format!("{name}={v}"));
                i += 2;
                continue;
            }
            _ if SWITCHES.contains(&flag) => out.push(format!("{name}=True{tail}")),
            _ => out.push(format!("{name}=…{tail}")),
        }
        i += 1;
    }
    out.join(" ")
}

/// The exception for `error`.
pub fn to_py(py: Python<'_>, error: &perplex::Error) -> PyErr {
    let kind = error.kind();
    if kind == ErrorKind::Interrupted {
        return PyKeyboardInterrupt::new_err(error.to_string());
    }
    let causes = perplex::causes(error);
    let hint = error.hint().map(|h| python_hint(&h));
    let mut message = error.to_string();
    for cause in &causes {
        message.push_str(&format!("\n  caused by: {cause}"));
    }
    if let Some(hint) = &hint {
        message.push_str(&format!("\n  hint: {hint}"));
    }
    raise(
        py,
        class_name(kind),
        message,
        hint,
        causes,
        kind.exit_code(),
    )
}

/// A usage error found by the binding itself (an argument no option takes).
pub fn usage(py: Python<'_>, message: String, hint: &str) -> PyErr {
    let full = format!("{message}\n  hint: {hint}");
    raise(
        py,
        "UsageError",
        full,
        Some(hint.into()),
        Vec::new(),
        ErrorKind::Usage.exit_code(),
    )
}

/// Why a call failed: the library's error, or an exception raised on the
/// Python side during the run (Ctrl-C, a progress callback).
pub enum Failure {
    /// The library's error.
    Perplex(perplex::Error),
    /// An exception raised while the run went on.
    Python(PyErr),
}

impl From<perplex::Error> for Failure {
    fn from(e: perplex::Error) -> Self {
        Failure::Perplex(e)
    }
}

impl From<perplex_eval::EvalError> for Failure {
    fn from(e: perplex_eval::EvalError) -> Self {
        Failure::Perplex(e.into())
    }
}

impl From<perplex_data::corpus::CorpusError> for Failure {
    fn from(e: perplex_data::corpus::CorpusError) -> Self {
        Failure::Perplex(e.into())
    }
}

/// `result`, unless the sink kept an exception: that one stopped the run
/// (or came after it), so it is what the caller sees.
pub fn with_sink<T, E: Into<perplex::Error>>(
    result: Result<T, E>,
    sink: crate::sink::PySink<'_>,
) -> Result<T, Failure> {
    match sink.into_error() {
        Some(e) => Err(Failure::Python(e)),
        None => result.map_err(|e| Failure::Perplex(e.into())),
    }
}

/// Runs `f` with the GIL released, turning a panic into
/// `perplex.InternalError` and a failure into its exception.
pub fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> Result<T, Failure> + Send,
) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(Failure::Perplex(error))) => Err(to_py(py, &error)),
        Ok(Err(Failure::Python(error))) => Err(error),
        Err(payload) => Err(panicked(py, payload.as_ref())),
    }
}

/// The exception for a caught panic.
pub fn panicked(py: Python<'_>, payload: &(dyn std::any::Any + Send)) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    let hint = "this is a bug in perplex: please report it with the call that raised it";
    raise(
        py,
        "InternalError",
        format!("internal error: {what}\n  hint: {hint}"),
        Some(hint.into()),
        Vec::new(),
        ErrorKind::Evaluation.exit_code(),
    )
}

#[cfg(test)]
mod tests {
    use super::python_hint;

    #[test]
    fn hints_name_keyword_arguments_not_flags() {
        assert_eq!(
            python_hint("use --batch-size 1 or less (results do not depend on it)"),
            "use batch_size=1 or less (results do not depend on it)"
        );
        assert_eq!(
            python_hint("use --context (or --max-length) of at most 256"),
            "use context=… (or max_length=…) of at most 256"
        );
        assert_eq!(python_hint("add --bits-per-byte"), "add bits_per_byte=True");
        assert_eq!(
            python_hint("leave out --fast: it"),
            "leave out fast=True: it"
        );
        assert_eq!(
            python_hint("no flags here - at all"),
            "no flags here - at all"
        );
    }
}
