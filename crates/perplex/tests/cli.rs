//! The real `perplex` binary against the deterministic mock models, with
//! volatile fields (timing, version, absolute paths) filtered from snapshots.
//! Bad input that only needs its exit code, message and hint checked is a
//! case of `catalogue.rs`; the tests here check more than that.

mod common;

use common::{json_of, perplex, render, snapshot};
use std::path::Path;

fn tokenizer() -> String {
    common::fixture("tiny-llama/tokenizer.json")
        .display()
        .to_string()
}

fn uniform() -> String {
    format!("mock:uniform:{}", tokenizer())
}

#[test]
fn table_for_two_texts_with_the_uniform_mock() {
    let out = perplex()
        .args([
            "eval",
            "-m",
            &uniform(),
            "The cat sat on the mat.",
            "Rust is fast.",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    snapshot!("table_uniform", render(&out));
}

#[test]
fn json_report_has_perplexity_exactly_v() {
    let out = perplex()
        .args([
            "eval",
            "-m",
            &uniform(),
            "--format",
            "json",
            "--quiet",
            "one two three four five",
        ])
        .output()
        .unwrap();
    let report = json_of(&out);
    let vocab = report["tokenizer"]["vocab_size"].as_f64().unwrap();
    let ppl = report["summary"]["perplexity"].as_f64().unwrap();
    assert!((ppl - vocab).abs() < 1e-9 * vocab, "{ppl} vs {vocab}");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["protocol"]["protocol"]["name"], "chunks");
    snapshot!(
        "json_uniform",
        String::from_utf8_lossy(&out.stdout).to_string()
    );
}

#[test]
fn csv_has_a_corpus_row_then_documents_and_counts_empty_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines.txt");
    std::fs::write(&file, "first line of text\n\nx\nthird, with a comma\n").unwrap();
    let out = perplex()
        .args([
            "eval",
            "-m",
            &uniform(),
            "--split",
            "lines",
            "--format",
            "csv",
            "-q",
        ])
        .arg("--file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", render(&out));
    snapshot!("csv_lines", render(&out));
}

#[test]
fn stdin_is_read_when_no_input_is_given() {
    let out = perplex()
        .args(["eval", "-m", &uniform(), "--format", "json", "-q"])
        .write_stdin("Paragraph one.\n\nParagraph two is longer.\n")
        .args(["--split", "paragraphs"])
        .output()
        .unwrap();
    let report = json_of(&out);
    assert_eq!(report["corpus"]["documents"], 2);
    assert_eq!(report["corpus"]["sources"][0], "stdin");
}

#[test]
fn per_token_file_has_one_line_per_scored_token() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.jsonl");
    let out = perplex()
        .args([
            "eval",
            "-m",
            &format!("mock:hash:{}", tokenizer()),
            "--format",
            "json",
            "-q",
        ])
        .arg("--per-token")
        .arg(&tokens)
        .args(["A first text.", "And a second, longer text for the model."])
        .output()
        .unwrap();
    let report = json_of(&out);
    let lines = std::fs::read_to_string(&tokens).unwrap();
    let events: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.len() as u64,
        report["summary"]["scored_tokens"].as_u64().unwrap()
    );
    let sum: f64 = events.iter().map(|e| e["nll"].as_f64().unwrap()).sum();
    let expected = report["summary"]["nll_sum"].as_f64().unwrap();
    assert!((sum - expected).abs() < 1e-9 * expected.abs());
    assert!(events.iter().all(|e| e["text"].is_string()));
}

#[test]
fn batch_sizes_give_identical_reports() {
    let run = |batch: &str| {
        let out = perplex()
            .args([
                "eval",
                "-m",
                &format!("mock:hash:{}", tokenizer()),
                "--format",
                "csv",
                "-q",
            ])
            .args([
                "--protocol",
                "sliding",
                "--context",
                "8",
                "--stride",
                "3",
                "--batch-size",
                batch,
            ])
            .args([
                "one two three four five six seven eight nine ten",
                "short",
                "a b c d e f g",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", render(&out));
        out.stdout
    };
    let one = run("1");
    assert_eq!(one, run("3"));
    assert_eq!(one, run("8"));
}

#[test]
fn missing_file_is_an_input_error_naming_it() {
    let out = perplex()
        .args(["eval", "-m", &uniform(), "--file", "no/such/file.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    snapshot!("missing_file", render(&out));
}

#[test]
fn missing_model_is_a_model_error_with_a_hint() {
    let out = perplex()
        .args(["eval", "-m", "no/such-model", "some text"])
        .env("HF_HUB_CACHE", Path::new("/nonexistent/hf-cache"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    snapshot!("missing_model", render(&out));
}

#[test]
fn bad_stride_is_a_usage_error() {
    let out = perplex()
        .args([
            "eval",
            "-m",
            &uniform(),
            "--protocol",
            "sliding",
            "--context",
            "8",
            "--stride",
            "9",
            "text",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    snapshot!("bad_stride", render(&out));
}

/// A file to create: name and text.
type File<'a> = Option<(&'a str, &'a str)>;

/// `perplex eval` with `args` in a temp dir holding `file`, empty stdin:
/// exit code and stderr.
fn nothing_to_score(args: &[&str], file: File<'_>) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    if let Some((name, text)) = file {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = perplex()
        .current_dir(dir.path())
        .args(["eval", "-m", &uniform()])
        .args(args)
        .write_stdin("")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn nothing_to_score_is_a_bad_input_naming_what_was_empty() {
    let cases: [(&[&str], File<'_>, &str); 6] = [
        (
            &["--file", "empty.txt"],
            Some(("empty.txt", "")),
            "`empty.txt`: every document is empty (1 document)",
        ),
        (
            &["--file", "blank.txt", "--split", "lines"],
            Some(("blank.txt", "\n\n")),
            "every document is empty (2 documents)",
        ),
        (
            &["--jsonl", "empty.jsonl"],
            Some(("empty.jsonl", "")),
            "`empty.jsonl`: it holds no documents",
        ),
        (&[], None, "`stdin`: every document is empty"),
        (&[""], None, "`arguments`: every document is empty"),
        (
            &["--max-tokens", "0", "some text to score"],
            None,
            "the token limit of 0 leaves no token to score",
        ),
    ];
    for (args, file, why) in cases {
        let (code, stderr) = nothing_to_score(args, file);
        assert_eq!(code, Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error: nothing to score in"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert!(stderr.contains("hint:"), "{args:?}: {stderr}");
    }
    // one token and no BOS: too short, said so with the policy that made it so
    let (code, stderr) = nothing_to_score(&["--bos", "none", "The"], None);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "no document is long enough to score (1 document; BOS none, chunks (context 512))"
        ),
        "{stderr}"
    );
    // compare goes through the same check
    let out = perplex()
        .args(["compare", &uniform(), &uniform(), "--text", ""])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("`arguments`: every document is empty"),
        "{stderr}"
    );
}

#[test]
fn too_short_and_empty_documents_are_reported_not_nan() {
    let out = perplex()
        .args([
            "eval",
            "-m",
            &uniform(),
            "--format",
            "json",
            "-q",
            "--bos",
            "none",
            "",
            "a",
            "a longer text",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", render(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("NaN"));
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let statuses: Vec<&str> = report["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["empty", "too-short", "scored"]);
    assert_eq!(report["corpus"]["empty_documents"], 1);
}

#[test]
fn a_gemma_model_scored_without_bos_is_warned_about() {
    let run = |bos: &str| {
        perplex()
            .args([
                "eval",
                "-m",
                "tests/fixtures/tiny-gemma",
                "--bos",
                bos,
                "--context",
                "64",
                "--format",
                "json",
                "--quiet",
                "The river freezes in winter.",
            ])
            .output()
            .unwrap()
    };
    let out = run("none");
    assert!(out.status.success(), "{}", render(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("warning: gemma models were trained with BOS"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: evaluate with `--bos document`"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["warnings"][0]["code"], "no-bos");
    assert_eq!(report["model"]["family"], "gemma");

    // the tokenizer adds BOS: no warning
    let out = run("auto");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["warnings"], serde_json::json!([]));
}

#[test]
fn the_rule_of_thumb_bands_label_a_perplexity_on_request() {
    let out = perplex()
        .args([
            "eval",
            "-m",
            &uniform(),
            "--format",
            "json",
            "--quiet",
            "--bands",
            "Rust is fast.",
        ])
        .output()
        .unwrap();
    let report = json_of(&out);
    // uniform over 384 tokens: perplexity 384
    assert_eq!(report["interpretation"]["label"], "poor");
    assert_eq!(report["interpretation"]["band"], "100+");
    assert!(report["interpretation"]["caveat"]
        .as_str()
        .unwrap()
        .contains("same tokenizer"));
}

#[test]
fn threads_beyond_the_machine_are_capped_with_a_warning() {
    let out = perplex()
        .args([
            "eval",
            "-m",
            &uniform(),
            "--threads",
            "100000",
            "--format",
            "json",
        ])
        .args(["The cat sat on the mat."])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let hardware = std::thread::available_parallelism().unwrap().get();
    assert!(
        stderr.contains(&format!(
            "warning: --threads 100000 is more than this machine's {hardware} hardware threads: using {hardware}"
        )),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["protocol"]["threads"], hardware);
}

/// Exit code and stderr of `perplex` with `args`.
fn failure(args: &[&str]) -> (Option<i32>, String) {
    let out = perplex().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_full_disk_is_an_output_error_naming_the_file_and_replaces_no_device() {
    for flag in ["--per-token", "--output"] {
        let (code, stderr) =
            failure(&["eval", "-m", &uniform(), flag, "/dev/full", "The cat sat."]);
        assert_eq!(code, Some(3), "{flag}: {stderr}");
        assert!(
            stderr.contains("error: could not write /dev/full"),
            "{flag}: {stderr}"
        );
        assert!(
            stderr.contains("No space left on device"),
            "{flag}: {stderr}"
        );
        assert!(stderr.contains("hint:"), "{flag}: {stderr}");
        let meta = std::fs::metadata("/dev/full").unwrap();
        assert!(!meta.is_file(), "{flag}: /dev/full was replaced by a file");
    }
}

fn zero_mock() -> String {
    // gives token 42, "H" in this tokenizer, probability zero
    format!("mock:zero:{}", tokenizer())
}

#[test]
fn probability_zero_is_named_not_an_infinite_perplexity() {
    let out = perplex()
        .args(["eval", "-m", &zero_mock(), "--format", "json"])
        .args(["no trouble here", "but (H) is ruled out"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "no report: {stderr}");
    assert!(
        stderr.contains("gives probability zero to token 42 (\"H\") at position")
            && stderr.contains("of document 1: the perplexity is infinite"),
        "{stderr}"
    );
    assert!(stderr.contains("`mock:zero:"), "names the model: {stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn compare_names_the_model_that_rules_a_token_out() {
    let hash = format!("mock:hash:{}", tokenizer());
    let compare = |base: &str, other: &str, text: &str| {
        perplex()
            .args(["compare", base, other, "--format", "json", "--text", text])
            .output()
            .unwrap()
    };
    // the target ruled out (by both: a model ruling out what the base allows
    // fails earlier, on the KL divergence)
    let out = compare(&zero_mock(), &zero_mock(), "say (H) once");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("mock:zero:") && stderr.contains("probability zero to token 42"),
        "{stderr}"
    );
    assert!(stderr.contains("the perplexity is infinite"), "{stderr}");
    // a token the base allows, ruled out by the other: KL(base ‖ other) is infinite
    let out = compare(&hash, &zero_mock(), "no such letter");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "which the base does not, at position 0 of document 0: the KL divergence is infinite"
        ),
        "{stderr}"
    );
    // the base ruling a token out that the other allows is finite
    let out = compare(&zero_mock(), &hash, "no such letter");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_of(&out);
    let kl = &report["pairs"][0]["stats"]["kl_divergence"]["mean"];
    assert!(kl.as_f64().unwrap() > 0.0, "{kl}");
}

#[test]
fn batches_that_do_not_fit_in_memory_are_lowered_or_refused() {
    use perplex_model::{memory::working_bytes, Compute, ModelConfig};
    let dir = common::fixture("tiny-llama");
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).unwrap();
    let config = ModelConfig::from_hf_json(&text, &config_path).unwrap();
    let need = |windows| working_bytes(&config, Compute::Exact, windows, 64);
    let corpus = "the quick brown fox jumps over the lazy dog. ".repeat(40);
    let run = |limit: Option<u64>, extra: &[&str]| {
        let mut cmd = perplex();
        if let Some(limit) = limit {
            cmd.env("PERPLEX_MAX_MEMORY", limit.to_string());
        }
        cmd.args(["eval", "-m", dir.to_str().unwrap(), "--context", "64"])
            .args(["--format", "json", "--quiet"])
            .args(extra)
            .arg(&corpus)
            .output()
            .unwrap()
    };
    let one_window = (need(1) + need(2)) / 2;
    // a default batch size is lowered to what fits: the same result
    let lowered = run(Some(one_window), &[]);
    assert!(
        lowered.status.success(),
        "{}",
        String::from_utf8_lossy(&lowered.stderr)
    );
    let alone = run(None, &["--batch-size", "1"]);
    let ppl = |out: &std::process::Output| json_of(out)["summary"]["perplexity"].clone();
    assert_eq!(ppl(&lowered), ppl(&alone));
    assert!(json_of(&alone)["summary"]["windows"].as_u64().unwrap() >= 4);
    // a batch size asked for is refused, saying what would fit
    let refused = run(Some(one_window), &["--batch-size", "4"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: a batch of 4 windows of 64 tokens needs about")
            && stderr.contains("(PERPLEX_MAX_MEMORY=")
            && stderr.contains("hint: use --batch-size 1 or less"),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty());
    // not even one window
    let refused = run(Some(need(1) - 1), &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("hint: not even one window of 64 tokens fits: free memory"),
        "{stderr}"
    );
    // a limit that is no size
    let mut cmd = perplex();
    let out = cmd
        .env("PERPLEX_MAX_MEMORY", "lots")
        .args([
            "eval",
            "-m",
            dir.to_str().unwrap(),
            "--context",
            "64",
            &corpus,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("PERPLEX_MAX_MEMORY=\"lots\" is not a size"),
        "{stderr}"
    );
}
