//! The progress bar: tokens, tokens/s and ETA on stderr, only on a terminal
//! and never with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use perplex_eval::{Sink, TokenEvent};

/// Wraps a sink and drives a progress bar from the engine's progress calls.
pub struct ProgressSink<'a> {
    inner: &'a mut dyn Sink,
    bar: ProgressBar,
}

impl<'a> ProgressSink<'a> {
    /// A progress sink in front of `inner`; hidden when `quiet` or stderr is not a terminal.
    pub fn new(inner: &'a mut dyn Sink, quiet: bool) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {bar:30} {human_pos}/{human_len} tokens  {per_sec}  ETA {eta}",
                )
                .expect("the progress template is valid")
                .progress_chars("=> "),
            );
            bar
        };
        Self { inner, bar }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Sink for ProgressSink<'_> {
    fn token(&mut self, event: &TokenEvent) -> std::io::Result<()> {
        self.inner.token(event)
    }

    fn progress(&mut self, processed: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(processed);
        self.inner.progress(processed, total);
    }

    fn should_stop(&self) -> bool {
        super::signals::requested().is_some() || self.inner.should_stop()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
