//! `perplex sweep` on the real (tiny) training runs of
//! `scripts/make_training_run_fixture.py` (`tests/fixtures/runs/`): each
//! checkpoint's perplexity matches transformers' (peft's for adapters) in
//! `tests/fixtures/runs.json` within 1e-4 relative, beside the trainer's
//! logged losses.

mod common;

use common::{fixture, json_of, perplex, render};
use serde_json::Value;

fn runs_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("runs.json")).unwrap()).unwrap()
}

fn sweep(run: &str, text: &str) -> Value {
    let out = perplex()
        .args([
            "sweep",
            &format!("tests/fixtures/runs/{run}"),
            "--text",
            text,
            "--context",
            "64",
            "--format",
            "json",
            "--quiet",
        ])
        .output()
        .unwrap();
    json_of(&out)
}

#[test]
fn every_checkpoint_matches_transformers() {
    let goldens = runs_json();
    let text = goldens["corpus"]["text"].as_str().unwrap();
    let close = |a: f64, b: f64, what: &str| {
        assert!((a - b).abs() <= 1e-4 * b, "{what}: {a} vs transformers {b}");
    };
    for run in ["lora-run", "full-run"] {
        let report = sweep(run, text);
        let expected = goldens["runs"][run]["checkpoints"].as_array().unwrap();
        let points = report["points"].as_array().unwrap();
        assert_eq!(points.len(), expected.len(), "{run}");
        for (p, e) in points.iter().zip(expected) {
            assert_eq!(p["step"], e["step"]);
            assert_eq!(p["scored_tokens"], e["scored_tokens"]);
            close(
                p["perplexity"].as_f64().unwrap(),
                e["perplexity"].as_f64().unwrap(),
                &format!("{run} step {}", e["step"]),
            );
            // the trainer's own numbers ride along
            assert_eq!(p["train_loss"], e["loss"]);
            assert_eq!(p["eval_loss"], e["eval_loss"]);
        }
        if run == "lora-run" {
            // adapters: the base from adapter_config.json is evaluated too
            let base = &report["base"][1];
            close(
                base["perplexity"].as_f64().unwrap(),
                goldens["base"]["perplexity"].as_f64().unwrap(),
                "base",
            );
        } else {
            assert!(report["base"].is_null());
        }
    }
}

#[test]
fn a_folder_without_checkpoints_is_an_input_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = perplex()
        .args(["sweep", tmp.path().to_str().unwrap(), "--text", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no checkpoints"));
}

#[test]
fn the_curve_is_plotted_beside_the_report() {
    let goldens = runs_json();
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("curve.json");
    let out = perplex()
        .args([
            "sweep",
            "tests/fixtures/runs/lora-run",
            "--text",
            goldens["corpus"]["text"].as_str().unwrap(),
            "--context",
            "64",
            "--format",
            "json",
            "--output",
            report.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", render(&out));
    let svg = std::fs::read_to_string(tmp.path().join("curve.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    // five checkpoints on the curve, the 95 % band, the base line, the loss axis
    assert_eq!(svg.matches("<circle").count(), 5);
    assert_eq!(svg.matches("<polygon").count(), 1);
    assert!(svg.contains(">base 1311<"), "base line");
    assert!(svg.contains(">training loss<"));
    assert!(svg.trim_end().ends_with("</svg>"));
    // and its PNG rendering, at twice the SVG's 760 x 440
    let png = std::fs::read(tmp.path().join("curve.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1520, 880));
}

#[test]
fn bands_label_the_curve_when_asked() {
    let goldens = runs_json();
    let out = perplex()
        .args([
            "sweep",
            "tests/fixtures/runs/full-run",
            "--text",
            goldens["corpus"]["text"].as_str().unwrap(),
            "--context",
            "64",
            "--bands=great:700,ok",
            "--format",
            "json",
            "--quiet",
        ])
        .output()
        .unwrap();
    let report = json_of(&out);
    let labels: Vec<&str> = report["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["ok", "great", "great"]);
    let bad = perplex()
        .args([
            "sweep",
            "tests/fixtures/runs/full-run",
            "--text",
            "x",
            "--bands",
            "a:5,b:4,c",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
