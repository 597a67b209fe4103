//! `perplex inspect` on every committed fixture model: the table is
//! snapshot-tested, and the JSON form once for its schema.

mod common;

use common::{json_of, perplex, render, snapshot};

/// The working set depends on the CPU's kernels (candle's attention path
/// needs masks the fused kernel does not): filtered from snapshots.
macro_rules! inspect_snapshot {
    ($name:expr, $value:expr) => {
        snapshot!(
            $name,
            $value,
            [
                (
                    r"\d+ MiB working set, \d+ MiB more per window",
                    "[W] MiB working set, [P] MiB more per window"
                ),
                (r"\d+ MiB \(an estimate", "[PEAK] MiB (an estimate"),
                (
                    r#""(working_bytes|working_bytes_per_window|peak_bytes)": \d+"#,
                    r#""$1": "[CPU-DEPENDENT]""#
                )
            ]
        )
    };
}

/// Every loadable fixture: folders with a `config.json`, and GGUF files.
fn fixture_models() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::fixture(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.json").is_file() || p.extension().is_some_and(|e| e == "gguf"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_fixture_is_inspected() {
    let models = fixture_models();
    assert!(models.len() >= 14, "{models:?}");
    for name in models {
        let out = perplex()
            .args(["inspect", &format!("tests/fixtures/{name}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", render(&out));
        inspect_snapshot!(format!("inspect_{name}"), render(&out));
    }
}

#[test]
fn json_inspection_is_versioned() {
    let out = perplex()
        .args(["inspect", "tests/fixtures/tiny-llama", "--format", "json"])
        .output()
        .unwrap();
    let value = json_of(&out);
    assert_eq!(value["schema_version"], 1);
    let memory = &value["memory"];
    assert!(memory["weights_bytes"].as_u64().unwrap() > 0, "{memory}");
    let (working, peak) = (&memory["working_bytes"], &memory["peak_bytes"]);
    assert!(
        peak.as_u64().unwrap() > working.as_u64().unwrap(),
        "{memory}"
    );
    inspect_snapshot!("inspect_json_tiny_llama", render(&out));
}

#[test]
fn a_tokenizer_beyond_the_embedding_fails_the_checks() {
    // tiny-llama's weights with a tokenizer of more tokens than embedding rows
    let tmp = tempfile::tempdir().unwrap();
    let src = common::fixture("tiny-llama");
    for f in ["config.json", "model.safetensors", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let mut tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer.json")).unwrap())
            .unwrap();
    let vocab = tokenizer["model"]["vocab"].as_object_mut().unwrap();
    for i in 0..20 {
        let id = vocab.len();
        vocab.insert(format!("extra{i}"), id.into());
    }
    std::fs::write(tmp.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let out = perplex()
        .args(["inspect", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("error: the tokenizer has 404 tokens but the model's embedding has only 384 rows [vocab-mismatch]"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
}

#[test]
fn an_adapter_is_described_and_an_untrained_one_warned_about() {
    let out = perplex()
        .args([
            "inspect",
            "tests/fixtures/tiny-llama+tests/fixtures/lora/tiny-llama-lora-untrained",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", render(&out));
    inspect_snapshot!("inspect_untrained_adapter", render(&out));
}
