//! SIGINT and SIGTERM stop a run between batches: exit 130 / 143 within a
//! second or two, and every output file complete or absent (the report and
//! the per-token file of an interrupted run are not there).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn tokenizer() -> String {
    common::fixture("tiny-llama/tokenizer.json")
        .display()
        .to_string()
}

/// Starts `perplex args` in the background, stdin and stdout closed.
fn spawn(args: &[&str], stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_perplex"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Waits (at most 10 s) until `lock` names `child`'s process.
fn wait_for_lock(lock: &Path, child: &mut Child) {
    let started = Instant::now();
    while std::fs::read_to_string(lock).map_or(true, |s| s.trim() != child.id().to_string()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} never named process {}",
            lock.display(),
            child.id()
        );
        assert!(child.try_wait().unwrap().is_none(), "the watcher ended");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `perplex args` with stderr piped; returns once it printed a line
/// containing `ready` (so the signal reaches a run that is under way).
fn start(args: &[&str], ready: &str) -> Child {
    let mut child = spawn(args, Stdio::piped());
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let seen = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains(ready));
    assert!(seen, "`{ready}` never appeared on stderr");
    // keep draining stderr so the child never blocks on a full pipe
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Sends `signal` to `child` and waits (at most 10 s) for it to end.
fn stop(child: &mut Child, signal: &str) -> (ExitStatus, Duration) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let sent = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, sent.elapsed());
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_interrupted_eval_exits_130_and_leaves_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..400)
        .map(|i| format!("line {i} of the text.\n"))
        .collect();
    let corpus = dir.path().join("corpus.txt");
    std::fs::write(&corpus, text).unwrap();
    let (report, tokens) = (
        dir.path().join("report.json"),
        dir.path().join("tokens.jsonl"),
    );
    let model = format!("mock:slow:{}", tokenizer());
    let mut child = start(
        &[
            "eval",
            "-m",
            &model,
            "--file",
            corpus.to_str().unwrap(),
            "--split",
            "lines",
            "--batch-size",
            "1",
            "--output",
            report.to_str().unwrap(),
            "--per-token",
            tokens.to_str().unwrap(),
        ],
        "loaded",
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, took) = stop(&mut child, "-INT");
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(!report.exists(), "an interrupted run wrote its report");
    assert!(
        !tokens.exists(),
        "an interrupted run left a partial per-token file"
    );
    assert!(!Path::new(&report.with_extension("tmp")).exists());
}

/// `perplex watch` of `run` with the uniform mock as base, looking every
/// `interval` seconds.
fn watch_args(run: &Path, interval: &str) -> Vec<String> {
    let model = format!("mock:uniform:{}", tokenizer());
    let run = run.to_str().unwrap();
    [
        "watch",
        run,
        "--base",
        &model,
        "--text",
        "some text",
        "--interval",
        interval,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_terminated_watch_exits_143_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let args = watch_args(&dir.path().join("run"), "5");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = start(&args, "waiting for it");
    let (status, took) = stop(&mut child, "-TERM");
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_second_watcher_is_refused_naming_the_first_and_a_killed_one_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let mut args = watch_args(&run, "0.1");
    args.extend(["--exit-when-idle".to_string(), "30".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let watch = || {
        Command::new(env!("CARGO_BIN_EXE_perplex"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let mut first = spawn(&args, Stdio::null());
    let lock = run.join("perplex-watch.lock");
    wait_for_lock(&lock, &mut first);
    let second = watch();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: another perplex watch (process {}) owns the state file",
            first.id()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    // SIGKILL: the OS releases the lock, so the next watcher owns the file
    first.kill().unwrap();
    first.wait().unwrap();
    let mut third = spawn(&args, Stdio::null());
    wait_for_lock(&lock, &mut third);
    third.kill().unwrap();
    third.wait().unwrap();
}
