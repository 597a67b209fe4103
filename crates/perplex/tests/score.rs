//! `perplex score` and `perplex merge` end to end: per-document figures
//! against transformers on the tiny goldens, a kill -9 at several moments
//! then a rerun giving the uninterrupted run's bytes, shards from the job
//! scheduler's environment merged into the unsharded run, and the errors a
//! user meets first.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perplex::core::{BosPolicy, Protocol};
use perplex::data::stream::SourceDocument;
use perplex::score::ScoreOptions;
use perplex::Evaluator;
use serde_json::Value;

fn tokenizer() -> String {
    common::fixture("tiny-llama/tokenizer.json")
        .display()
        .to_string()
}

/// 60 documents of 1 to about 60 words, one per line, a few empty.
fn corpus(dir: &Path) -> PathBuf {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "looked", "at", "river", "boats", "quietly",
    ];
    let text: Vec<String> = (0..60usize)
        .map(|d| {
            let len = if d % 17 == 5 { 0 } else { 1 + (d * 29) % 60 };
            (0..len)
                .map(|i| words[(d * 5 + i * 7 + i * i) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

fn score_args(model: &str, corpus: &Path, out: &Path) -> Vec<String> {
    [
        "score",
        "-m",
        model,
        "--file",
        &corpus.display().to_string(),
        "-o",
        &out.display().to_string(),
        "--block",
        "6",
        "-c",
        "16",
        "--bos",
        "none",
        "--format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn summary(out: &std::process::Output) -> Value {
    common::json_of(out)
}

#[test]
fn per_document_figures_match_transformers() {
    let goldens: Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture("goldens.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for case in goldens["protocols"].as_array().unwrap() {
        let texts: Vec<&str> = case["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        // per document: `per_text` where the recipe scored several, else the one text's figures
        let expected: Vec<(f64, u64)> = match case.get("per_text") {
            Some(per) => per
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["perplexity"].as_f64().unwrap(),
                        d["scored_tokens"].as_u64().unwrap(),
                    )
                })
                .collect(),
            None if texts.len() == 1 => vec![(
                case["perplexity"].as_f64().unwrap(),
                case["scored_tokens"].as_u64().unwrap(),
            )],
            None => continue,
        };
        let (protocol, bos) = common::golden_protocol(case);
        let model = case["model"].as_str().unwrap();
        let mut evaluator = Evaluator::load(common::fixture(model).to_str().unwrap()).unwrap();
        let options = ScoreOptions::new(protocol).unwrap().bos(bos);
        let docs = texts
            .iter()
            .enumerate()
            .map(|(i, t)| SourceDocument {
                index: i as u64,
                id: i.to_string(),
                text: t.to_string(),
                extra: Vec::new(),
            })
            .collect();
        let rows = evaluator.score_texts(docs, &options).unwrap();
        assert_eq!(rows.len(), expected.len());
        for (row, (ppl, scored)) in rows.iter().zip(&expected) {
            assert_eq!(row.scored_tokens, *scored, "{model} {protocol}");
            let got = row.perplexity.unwrap();
            assert!(
                (got / ppl - 1.0).abs() <= 1e-4,
                "{model} {protocol} document {}: {got} vs transformers {ppl}",
                row.index
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked} documents checked");
}

/// Runs `perplex score` to completion (after any number of kills) and
/// returns its summary.
fn finish(args: &[String]) -> Value {
    summary(&common::perplex().args(args).output().unwrap())
}

#[test]
fn a_run_killed_at_any_moment_resumes_to_the_uninterrupted_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let model = format!("mock:slow:{}", tokenizer());
    let whole = dir.path().join("whole.jsonl");
    let reference = finish(&score_args(&model, &corpus, &whole));
    let expected = std::fs::read(&whole).unwrap();
    assert_eq!(reference["totals"]["documents"], 60);
    // kill -9 at moments spread over the run (about 6 s of 20 ms windows)
    for (k, delay) in [100u64, 1500, 3000, 4800].into_iter().enumerate() {
        let out = dir.path().join(format!("killed-{k}.jsonl"));
        let args = score_args(&model, &corpus, &out);
        let mut child = common::spawn_quiet(&args);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let partial = PathBuf::from(format!("{}.partial", out.display()));
        // the rows of the last commit line (rows written after it are redone)
        let committed = std::fs::read_to_string(partial.join("journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|r| r["rows"].as_u64().filter(|_| r.get("commit").is_some()))
            .next_back()
            .unwrap_or(0);
        let resumed = finish(&args);
        assert_eq!(
            std::fs::read(&out).unwrap(),
            expected,
            "killed after {delay} ms"
        );
        let r = &resumed["resumption"];
        assert!(r["redone_documents"].as_u64().unwrap() <= 6, "{r}");
        assert!(
            r["committed_rows"].as_u64().unwrap() >= committed as u64,
            "{r}"
        );
        assert_eq!(resumed["figures"], reference["figures"]);
        assert!(!partial.exists());
    }
}

#[test]
fn shards_from_a_slurm_array_merge_into_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let model = format!("mock:hash:{}", tokenizer());
    let whole = dir.path().join("whole.jsonl");
    let reference = finish(&score_args(&model, &corpus, &whole));
    let pattern = dir.path().join("scores-{shard}.jsonl");
    for task in 1..=3 {
        // an array submitted as --array=1-3
        let out = common::perplex()
            .args(score_args(&model, &corpus, &pattern))
            .env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .output()
            .unwrap();
        let s = summary(&out);
        assert_eq!(s["shards"][0]["index"], task - 1);
    }
    let shards: Vec<String> = (0..3)
        .map(|i| {
            dir.path()
                .join(format!("scores-{i:05}-of-00003.jsonl"))
                .display()
                .to_string()
        })
        .collect();
    let merged_path = dir.path().join("merged.jsonl");
    let out = common::perplex()
        .arg("merge")
        .args(&shards)
        .args(["-o", merged_path.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    let merged = summary(&out);
    assert_eq!(
        std::fs::read(&merged_path).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    let (a, b) = (
        merged["figures"]["perplexity"].as_f64().unwrap(),
        reference["figures"]["perplexity"].as_f64().unwrap(),
    );
    assert!((a / b - 1.0).abs() <= 1e-12, "{a} vs {b}");
    assert_eq!(
        merged["totals"]["stats"]["count"],
        reference["totals"]["stats"]["count"]
    );

    // a missing shard is refused, naming it
    let out = common::perplex()
        .arg("merge")
        .args(&shards[..2])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", common::render(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: 1 of 3 shards is missing: 2\n"),
        "{err}"
    );
}

#[test]
fn a_rerun_with_another_protocol_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let model = format!("mock:slow:{}", tokenizer());
    let out = dir.path().join("out.jsonl");
    let args = score_args(&model, &corpus, &out);
    let mut child = common::spawn_quiet(&args);
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let started = Instant::now();
    while !partial.join("run.json").exists() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut other = args.clone();
    let at = other.iter().position(|a| a == "16").unwrap();
    other[at] = "32".into();
    let run = common::perplex().args(&other).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", common::render(&run));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("holds the unfinished output of a run with another protocol: chunks (context 16), BOS none, not chunks (context 32), BOS none"),
        "{err}"
    );
    assert!(
        err.contains("hint: rerun with the earlier run's model"),
        "{err}"
    );
}

#[test]
fn a_missing_column_is_named_before_the_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("docs.jsonl");
    std::fs::write(&jsonl, "{\"body\": \"a b c\"}\n").unwrap();
    let out = common::perplex()
        .args([
            "score",
            "-m",
            "no-such-model",
            "--jsonl",
            jsonl.to_str().unwrap(),
            "-o",
        ])
        .arg(dir.path().join("o.jsonl"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("text"), "{err}");
}

#[test]
fn an_eval_killed_at_any_moment_resumes_to_the_same_report_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let model = format!("mock:slow:{}", tokenizer());
    let args = |name: &str| -> Vec<String> {
        let d = dir.path();
        [
            "eval",
            "-m",
            &model,
            "--file",
            corpus.to_str().unwrap(),
            "--split",
            "lines",
            "-c",
            "16",
            "--bos",
            "none",
            "--batch-size",
            "2",
            "--format",
            "json",
            "-o",
            d.join(format!("{name}.json")).to_str().unwrap(),
            "--per-token",
            d.join(format!("{name}.tokens.jsonl")).to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let read = |name: &str| {
        let mut report: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        report["timing"] = Value::Null;
        let tokens = std::fs::read(dir.path().join(format!("{name}.tokens.jsonl"))).unwrap();
        (report, tokens)
    };
    let out = common::perplex().args(args("whole")).output().unwrap();
    assert!(out.status.success(), "{}", common::render(&out));
    let (report, tokens) = read("whole");
    for (k, delay) in [300u64, 2500, 5000].into_iter().enumerate() {
        let name = format!("killed-{k}");
        let mut child = common::spawn_quiet(&args(&name));
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(!dir.path().join(format!("{name}.json")).exists());
        let out = common::perplex().args(args(&name)).output().unwrap();
        assert!(out.status.success(), "{}", common::render(&out));
        let (r, t) = read(&name);
        assert_eq!(r, report, "killed after {delay} ms");
        assert!(
            t == tokens,
            "killed after {delay} ms: the per-token files differ"
        );
        assert!(!dir.path().join(format!("{name}.json.partial")).exists());
    }
}

#[test]
fn documents_batched_together_score_as_each_alone() {
    let mut evaluator = Evaluator::load(common::fixture("tiny-llama").to_str().unwrap()).unwrap();
    let words = [
        "river", "boats", "drift", "under", "the", "old", "stone", "bridge", "at", "dusk",
    ];
    let docs: Vec<SourceDocument> = (0..24usize)
        .map(|d| SourceDocument {
            index: d as u64,
            id: d.to_string(),
            text: (0..1 + (d * 13) % 70)
                .map(|i| words[(d + i * 3) % words.len()])
                .collect::<Vec<_>>()
                .join(" "),
            extra: Vec::new(),
        })
        .collect();
    for protocol in [
        Protocol::Chunks { context: 32 },
        Protocol::Truncate { max_length: 48 },
    ] {
        let options = ScoreOptions::new(protocol)
            .unwrap()
            .bos(BosPolicy::Document);
        let together = evaluator.score_texts(docs.clone(), &options).unwrap();
        for (doc, row) in docs.iter().zip(&together) {
            let alone = evaluator.score_texts(vec![doc.clone()], &options).unwrap();
            let (a, b) = (alone[0].nll_sum, row.nll_sum);
            assert_eq!(alone[0].scored_tokens, row.scored_tokens);
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                "{protocol} document {}: {a} alone, {b} batched",
                doc.index
            );
        }
    }
}
