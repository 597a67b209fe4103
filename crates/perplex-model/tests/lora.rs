//! PEFT LoRA adapters applied without merging (`BASE+ADAPTER`), against
//! transformers + peft in f32 (`scripts/make_lora_fixtures.py` →
//! `tests/fixtures/lora/`, `tests/fixtures/lora.json`).

mod common;

use common::{check_spec, fixtures, load_spec, score, windows_by_model};
use perplex_model::{load, LoadOptions, ModelError};
use serde_json::Value;

fn lora_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("lora.json")).unwrap()).unwrap()
}

/// The spec of a `lora.json` model: base folder `+` adapter folders.
fn spec(entry: &Value) -> String {
    let mut parts = vec![fixtures().join(entry["base"].as_str().unwrap())];
    parts.extend(
        entry["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| fixtures().join(a.as_str().unwrap())),
    );
    parts
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join("+")
}

#[test]
#[allow(clippy::print_stderr)] // the margins, for `--nocapture` readers
fn adapters_match_transformers_and_peft() {
    let goldens = lora_json();
    let by_model = windows_by_model("lora.json");
    let mut checked = 0;
    for (name, entry) in goldens["models"].as_object().unwrap() {
        let Some(windows) = by_model.get(name) else {
            continue; // the mismatch adapter has no windows: it must not load
        };
        let (worst, ties) = check_spec(name, &spec(entry), windows);
        eprintln!("{name}: largest |nll - peft| {worst:.2e}");
        assert!(ties.is_empty(), "{name}: {ties:?}");
        checked += 1;
    }
    assert!(checked >= 8, "{checked} models");
}

#[test]
fn an_adapter_equals_its_merged_weights() {
    let goldens = lora_json();
    let windows = &windows_by_model("lora.json")["tiny-llama+tiny-llama-lora"];
    let n = windows.len();
    let adapted = score(
        &mut load_spec(&spec(&goldens["models"]["tiny-llama+tiny-llama-lora"])),
        windows,
        n,
    );
    let merged = score(
        &mut load_spec(&spec(&goldens["models"]["tiny-llama-merged"])),
        windows,
        n,
    );
    for (a, m) in adapted.iter().flatten().zip(merged.iter().flatten()) {
        assert!((a.nll - m.nll).abs() < 2e-5, "{} vs {}", a.nll, m.nll);
        assert_eq!(a.argmax, m.argmax);
    }
}

#[test]
fn an_untrained_adapter_is_flagged_and_changes_nothing() {
    let goldens = lora_json();
    let loaded = load(
        &spec(&goldens["models"]["tiny-llama+tiny-llama-lora-untrained"]),
        &LoadOptions::default(),
    )
    .unwrap();
    let codes: Vec<&str> = loaded.checks.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["untrained-lora"]);
    assert!(loaded.checks[0]
        .message
        .contains("every lora_B matrix is zero"));
    let trained = load(
        &spec(&goldens["models"]["tiny-llama+tiny-llama-lora"]),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(trained.checks.is_empty(), "{:?}", trained.checks);
    assert_eq!(trained.identity.adapters.len(), 1);
    assert!(trained.identity.adapters[0].contains("LoRA r=4, alpha=8, 14 modules"));
}

#[test]
fn an_adapter_for_other_modules_is_refused() {
    let goldens = lora_json();
    let err = load(
        &spec(&goldens["models"]["tiny-llama+tiny-llama-lora-mismatch"]),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::AdapterMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("targets modules the base model does not have: transformer.h.0.attn.c_attn"),
        "{text}"
    );
    assert!(err.hint().unwrap().contains("base_model_name_or_path"));
}

#[test]
fn a_missing_adapter_folder_is_named() {
    let base = fixtures().join("tiny-llama");
    let err = load(
        &format!("{}+no/such/adapter", base.display()),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid adapter no/such/adapter: not found (an adapter is a PEFT folder: \
         adapter_config.json and adapter_model.safetensors)"
    );
}
