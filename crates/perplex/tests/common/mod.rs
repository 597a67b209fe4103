//! Shared helpers for the integration tests: where things are, and a reader
//! for the NumPy files the reference figures come in.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `../shared/reference` beside the checkout (`PERPLEX_SHARED` overrides `../shared`).
pub fn reference(file: &str) -> PathBuf {
    let shared = std::env::var_os("PERPLEX_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared"));
    let path = shared.join("reference").join(file);
    assert!(
        path.exists(),
        "{} is missing: the reference data lives in ../shared beside the checkout (or set PERPLEX_SHARED)",
        path.display()
    );
    path
}

/// The demo model, which `scripts/fetch-demo-model.sh` fetches (scripts/test runs it).
pub fn demo_model() -> PathBuf {
    let path = workspace().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-demo-model.sh (scripts/test does)",
        path.display()
    );
    path
}

/// A committed test fixture.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(rel)
}

/// A 1-D array from a `.npy` byte buffer (little-endian `<f4`, `<f8` or `<i4`), as f64.
pub fn parse_npy(bytes: &[u8]) -> Vec<f64> {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not a .npy file");
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let data = &bytes[start + header_len..];
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    match descr {
        "<f4" => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        "<f8" => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        "<i4" => data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("unsupported npy dtype {other}"),
    }
}

/// One array of a `.npz` archive.
pub fn read_npz(path: &Path, name: &str) -> Vec<f64> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut entry = archive.by_name(&format!("{name}.npy")).unwrap();
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).unwrap();
    parse_npy(&bytes)
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
