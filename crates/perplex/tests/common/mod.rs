//! Shared helpers for the CLI's integration tests: where the fixtures are,
//! running the `perplex` binary, and snapshots of its output.

#![allow(dead_code)]

use std::path::PathBuf;

/// The workspace root (`perplex_testkit` owns where things are).
pub fn workspace() -> PathBuf {
    perplex_testkit::workspace()
}

/// A committed test fixture.
pub fn fixture(rel: &str) -> PathBuf {
    perplex_testkit::fixtures().join(rel)
}

/// The `perplex` binary, run from the workspace root.
pub fn perplex() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("perplex").unwrap();
    cmd.current_dir(workspace());
    cmd
}

/// stdout, stderr and the exit code as one text, volatile parts replaced.
pub fn render(out: &std::process::Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON a successful run printed on stdout (fails the test, with the
/// run's output, when the run failed).
#[allow(dead_code)] // not every test binary reads JSON
pub fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", render(out));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[allow(unused_macros)] // not every test binary snapshots
/// `insta::assert_snapshot!` with the volatile parts (root, timing, version,
/// temp paths) filtered, and any extra `[(regex, replacement), …]`.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        snapshot!($name, $value, [])
    };
    ($name:expr, $value:expr, [$($filter:expr),*]) => {
        insta::with_settings!({
            filters => vec![
                ($crate::common::workspace().to_str().unwrap(), "[ROOT]"),
                (r"\d+\.\d s, \d+ tok/s", "[TIME]"),
                (r#""seconds": [0-9.e-]+"#, r#""seconds": "[TIME]""#),
                (r#""tokens_per_second": [0-9.e+-]+"#, r#""tokens_per_second": "[TIME]""#),
                (r#""version": "[0-9.]+""#, r#""version": "[VERSION]""#),
                (r#""threads": [0-9]+"#, r#""threads": "[THREADS]""#),
                (r"/tmp/[^ \n:,]+", "[TMP]"),
                $($filter),*
            ],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $value);
        });
    };
}
#[allow(unused_imports)]
pub(crate) use snapshot;

/// A snapshot filter keeping 4 decimals of every number: real forward
/// passes differ in the last float bits between kernel paths (AVX-512 or
/// not), which the golden tests bound; snapshots pin the layout.
#[allow(dead_code)] // not every test binary snapshots real models
pub const FOUR_DECIMALS: (&str, &str) = (r"(\d\.\d{4})\d+", "$1…");
