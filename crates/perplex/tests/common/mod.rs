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

/// A snapshot filter keeping six significant digits of numbers of four or
/// more integer digits (a perplexity of a random fixture, its interval):
/// their fourth decimal is the eighth digit, which the kernel paths' float
/// noise can change (seen: 1455.2871 on AVX-512, 1455.2872 on AVX2).
/// Put it before [`FOUR_DECIMALS`].
#[allow(dead_code)] // not every test binary snapshots real models
pub const LARGE_NUMBERS: (&str, &str) = (r"\b(\d{4,}\.\d{2})\d+", "$1…");

/// The protocol and BOS policy of a `goldens.json` "protocols" case, as
/// `scripts/make_fixtures.py` names them.
pub fn golden_protocol(
    case: &serde_json::Value,
) -> (perplex::core::Protocol, perplex::core::BosPolicy) {
    use perplex::core::{BosPolicy, Protocol};
    let p = &case["params"];
    let n = |k: &str| p[k].as_u64().unwrap() as usize;
    let protocol = match case["protocol"].as_str().unwrap() {
        "truncate" => Protocol::Truncate {
            max_length: n("max_length"),
        },
        "chunks" => Protocol::Chunks {
            context: n("context"),
        },
        "sliding" => Protocol::Sliding {
            context: n("max_length"),
            stride: n("stride"),
        },
        "llama-cpp" => Protocol::LlamaCpp {
            context: n("n_ctx"),
        },
        other => panic!("unknown protocol {other}"),
    };
    let bos = match case["bos"].as_str().unwrap() {
        "none" => BosPolicy::None,
        // llama.cpp's "BOS at the start, replacing each chunk's first token"
        // is what `document` resolves to under the llama-cpp protocol.
        "document" | "chunk" => BosPolicy::Document,
        other => panic!("unknown bos {other}"),
    };
    (protocol, bos)
}

/// Starts the `perplex` binary with `args`, all standard streams closed
/// (a run to kill or wait for).
pub fn spawn_quiet(args: &[String]) -> std::process::Child {
    use std::process::Stdio;
    std::process::Command::new(env!("CARGO_BIN_EXE_perplex"))
        .args(args)
        .current_dir(workspace())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
