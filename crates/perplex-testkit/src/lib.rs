//! Test support for the integration tests of `perplex`, `perplex-model` and
//! `perplex-hub` (a dev-dependency; never published).
//!
//! - Where things are: [`workspace`], [`fixtures`], [`shared_dir`] (the one
//!   place that reads the `PERPLEX_SHARED` override).
//! - Tests that need resources a checkout may lack (the demo model, the real
//!   tokenizers, the shared reference data) or a CPU feature: [`SlowTest`],
//!   [`Resource`], and [`run_tests`], the `main` of a `harness = false` test
//!   binary. Such a test is never reported as passed without having run:
//!   when it cannot run it shows as `ignored` in cargo's summary with the
//!   reason, or fails where the run must have the resource (see [`tier`]).
//! - The NumPy files the reference figures come in: [`npy`].
//! - A fake Hugging Face hub on 127.0.0.1 that hub ids download from:
//!   [`fake_hub`].
//!
//! Everything here panics on failure, naming the path or value: it runs
//! inside tests, where a panic is a failed test with its message.

use std::path::{Path, PathBuf};

pub mod fake_hub;
pub mod npy;
mod slow;
pub mod tier;

pub use slow::{run_tests, Origin, Resource, SlowTest};

/// Environment variable naming the folder that stands for `../shared`
/// beside the checkout (it holds `reference/`).
pub const SHARED_VAR: &str = "PERPLEX_SHARED";

/// The workspace root (canonical, so that it matches paths the CLI prints).
pub fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("workspace root {}: {e}", root.display()))
}

/// The committed fixtures, `tests/fixtures/`.
pub fn fixtures() -> PathBuf {
    workspace().join("tests/fixtures")
}

/// The shared data folder: `$PERPLEX_SHARED` when set, else `../shared`
/// beside the checkout.
pub fn shared_dir() -> PathBuf {
    std::env::var_os(SHARED_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_holds_the_fixtures() {
        assert!(workspace().join("Cargo.toml").is_file());
        assert!(fixtures().join("README.md").is_file());
    }
}
