//! The sink a Python call's run pushes into: per-token columns when asked,
//! the caller's progress callback, and Ctrl-C.
//!
//! The run holds no GIL; between batches the sink takes it briefly to call
//! the progress callback and `PyErr_CheckSignals` (which runs Python's
//! signal handlers when the call came from the main thread: Ctrl-C raises
//! `KeyboardInterrupt` there). An exception from either is kept, the run is
//! asked to stop ([`Sink::should_stop`]), and the call raises it once the
//! engine has returned: nothing keeps running after the exception.

use std::cell::RefCell;

use perplex_eval::{Sink, TokenEvent};
use pyo3::prelude::*;

/// Every scored token, as columns.
#[derive(Debug, Default)]
pub struct PerToken {
    /// Document index.
    pub doc: Vec<u32>,
    /// Position among the document's text tokens.
    pub position: Vec<u32>,
    /// Target token id.
    pub token: Vec<u32>,
    /// The most probable token id.
    pub argmax: Vec<u32>,
    /// NLL, nats.
    pub nll: Vec<f64>,
}

/// See the module docs.
pub struct PySink<'a> {
    per_token: Option<&'a mut PerToken>,
    progress: Option<&'a Py<PyAny>>,
    /// The exception that stopped the run.
    error: RefCell<Option<PyErr>>,
}

impl<'a> PySink<'a> {
    /// A sink filling `per_token` when given and calling `progress(processed, total)`.
    pub fn new(per_token: Option<&'a mut PerToken>, progress: Option<&'a Py<PyAny>>) -> Self {
        PySink {
            per_token,
            progress,
            error: RefCell::new(None),
        }
    }

    /// The exception that stopped the run, if one did.
    pub fn into_error(self) -> Option<PyErr> {
        self.error.into_inner()
    }

    fn keep(&self, error: PyErr) {
        self.error.borrow_mut().get_or_insert(error);
    }
}

impl Sink for PySink<'_> {
    fn token(&mut self, e: &TokenEvent) -> std::io::Result<()> {
        if let Some(t) = self.per_token.as_deref_mut() {
            // documents and positions beyond u32 would need a 16 GiB corpus
            // held as per-token columns: saturate rather than wrap
            t.doc.push(u32::try_from(e.doc).unwrap_or(u32::MAX));
            t.position
                .push(u32::try_from(e.position).unwrap_or(u32::MAX));
            t.token.push(e.token);
            t.argmax.push(e.score.argmax);
            t.nll.push(e.score.nll);
        }
        Ok(())
    }

    fn progress(&mut self, processed: u64, total: u64) {
        if let Some(callback) = self.progress {
            if self.error.borrow().is_none() {
                let result = Python::attach(|py| callback.call1(py, (processed, total)).map(drop));
                if let Err(e) = result {
                    self.keep(e);
                }
            }
        }
    }

    fn should_stop(&self) -> bool {
        if self.error.borrow().is_some() {
            return true;
        }
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            self.keep(e);
            return true;
        }
        false
    }
}
