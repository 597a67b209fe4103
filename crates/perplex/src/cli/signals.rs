//! SIGINT and SIGTERM: the first asks the run to stop between batches (the
//! engine polls [`requested`] through the progress sink), so outputs are
//! left whole or absent and the process exits 130 or 143; a second one of
//! the same kind ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

/// The two flags, set by the handlers.
struct Flags {
    interrupt: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
}

static FLAGS: std::sync::OnceLock<Flags> = std::sync::OnceLock::new();

/// A stop signal that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Interrupt,
    /// `kill` (the default signal of `kill`, `timeout`, schedulers).
    Terminate,
}

impl Signal {
    /// The shell's exit code for a process ended by this signal.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// Installs the handlers. Without them (a registration that failed) the
/// signals keep their default: the process ends at once.
pub fn install() {
    let flags = FLAGS.get_or_init(|| Flags {
        interrupt: Arc::new(AtomicBool::new(false)),
        terminate: Arc::new(AtomicBool::new(false)),
    });
    for (signal, flag, code) in [
        (SIGINT, &flags.interrupt, 130),
        (SIGTERM, &flags.terminate, 143),
    ] {
        // the conditional exit first: it fires only once the flag is set,
        // i.e. on the second signal
        let _ = signal_hook::flag::register_conditional_shutdown(signal, code, Arc::clone(flag));
        let _ = signal_hook::flag::register(signal, Arc::clone(flag));
    }
}

/// The stop signal received so far, if any.
pub fn requested() -> Option<Signal> {
    let flags = FLAGS.get()?;
    if flags.interrupt.load(Ordering::Relaxed) {
        Some(Signal::Interrupt)
    } else if flags.terminate.load(Ordering::Relaxed) {
        Some(Signal::Terminate)
    } else {
        None
    }
}
