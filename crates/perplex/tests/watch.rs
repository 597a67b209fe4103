//! `perplex watch` while checkpoints appear one by one, one of them written
//! slowly, file by file: each is evaluated exactly once, only when complete,
//! with transformers' numbers (`tests/fixtures/runs.json`); killing and
//! restarting the watcher loses nothing and redoes nothing.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{fixture, workspace};
use serde_json::Value;

fn runs_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("runs.json")).unwrap()).unwrap()
}

fn watcher(run: &Path, extra: &[&str]) -> Child {
    let text = runs_json()["corpus"]["text"].as_str().unwrap().to_string();
    let mut args = vec![
        "watch".to_string(),
        run.display().to_string(),
        "--text".into(),
        text,
        "--context".into(),
        "64".into(),
        "--interval".into(),
        "0.05".into(),
        "--settle".into(),
        "0.4".into(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    std::process::Command::new(assert_cmd::cargo::cargo_bin("perplex"))
        .args(&args)
        .current_dir(workspace())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn copy_checkpoint(step: u64, run: &Path) {
    let src = fixture(&format!("runs/full-run/checkpoint-{step}"));
    let dst = run.join(format!("checkpoint-{step}"));
    std::fs::create_dir(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// Writes a checkpoint the slow way: the weights half first, a pause longer
/// than `--settle`, the rest, and `trainer_state.json` last (as Trainer does).
fn write_slowly(step: u64, run: &Path) {
    let src = fixture(&format!("runs/full-run/checkpoint-{step}"));
    let dst = run.join(format!("checkpoint-{step}"));
    std::fs::create_dir(&dst).unwrap();
    std::fs::copy(src.join("config.json"), dst.join("config.json")).unwrap();
    let weights = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(dst.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    std::fs::write(dst.join("model.safetensors"), &weights).unwrap();
    for f in [
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    std::fs::copy(
        src.join("trainer_state.json"),
        dst.join("trainer_state.json"),
    )
    .unwrap();
}

fn state_steps(run: &Path) -> Vec<u64> {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("perplex-watch.json")).unwrap())
            .unwrap();
    state["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_u64().unwrap())
        .collect()
}

fn finish(child: Child) -> (Value, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

#[test]
fn checkpoints_are_evaluated_once_when_complete_and_a_restart_resumes() {
    let goldens = runs_json();
    let expected: Vec<(u64, f64)> = goldens["runs"]["full-run"]["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["step"].as_u64().unwrap(),
                c["perplexity"].as_f64().unwrap(),
            )
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();

    // 1. a watcher that stops after step 4, then is started again while
    //    the rest of the run is written (one checkpoint slowly)
    let child = watcher(run, &["--until-step", "4"]);
    std::thread::sleep(Duration::from_millis(300));
    copy_checkpoint(4, run);
    let (_, stderr) = finish(child);
    assert_eq!(stderr.matches("evaluated step").count(), 1, "{stderr}");
    assert_eq!(state_steps(run), [4]);

    let child = watcher(run, &["--exit-when-idle", "2.5"]);
    write_slowly(8, run);
    copy_checkpoint(12, run);
    let (report, stderr) = finish(child);
    assert!(
        stderr.contains("resuming: 1 checkpoint(s) already evaluated"),
        "{stderr}"
    );
    assert!(!stderr.contains("evaluated step 4"), "{stderr}");
    for step in [8, 12] {
        assert_eq!(
            stderr.matches(&format!("evaluated step {step}:")).count(),
            1,
            "{stderr}"
        );
    }
    assert_eq!(state_steps(run), [4, 8, 12]);
    let points = report["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    for (p, (step, ppl)) in points.iter().zip(&expected) {
        assert_eq!(p["step"].as_u64().unwrap(), *step);
        let got = p["perplexity"].as_f64().unwrap();
        assert!(
            (got - ppl).abs() <= 1e-4 * ppl,
            "step {step}: {got} vs {ppl}"
        );
    }

    // 2. killed while waiting, restarted: nothing lost, nothing redone
    let mut child = watcher(run, &[]);
    let start = Instant::now();
    while !String::from_utf8_lossy(&std::fs::read(run.join("perplex-watch.json")).unwrap())
        .contains("\"step\": 12")
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(state_steps(run), [4, 8, 12]);
    let (report, stderr) = finish(watcher(run, &["--exit-when-idle", "0.5"]));
    assert!(!stderr.contains("evaluated step"), "{stderr}");
    assert_eq!(report["points"].as_array().unwrap().len(), 3);
}
