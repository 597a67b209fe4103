//! Replays the saved fuzz corpora (`fuzz/corpus/<target>/`) and crash
//! reproducers (`fuzz/regressions/<target>/`) through the fuzz targets'
//! bodies on stable: every file must be read without a panic or an
//! oversized allocation. Fast (seconds): it runs what the fuzzers found,
//! not the fuzzers.

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use perplex_fuzz::{CappedAlloc, TARGETS};

// an allocation over the cap aborts the test binary, as it would a fuzzer
#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none when it is missing).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable folder").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, body) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a target");
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} has no inputs");
    let mut failures = Vec::new();
    let mut accepted = 0;
    for path in corpus.iter().chain(&inputs("regressions", target)) {
        let data = std::fs::read(path).expect("a readable input");
        match std::panic::catch_unwind(|| body(&data)) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => failures.push(path.display().to_string()),
        }
    }
    assert!(failures.is_empty(), "{target} panicked on {failures:#?}");
    eprintln!(
        "{target}: {accepted} of {} corpus inputs accepted",
        corpus.len()
    );
    // the corpus must reach past the reader's first checks
    assert!(accepted > 0, "{target} accepted no corpus input");
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        #[test]
        fn every_target_is_replayed() {
            let replayed = [$(stringify!($target)),*];
            let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
            assert_eq!(names, replayed);
            for kind in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else {
                    continue;
                };
                for entry in entries {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    assert!(names.contains(&name.as_str()), "fuzz/{kind}/{name} names no target");
                }
            }
        }
    };
}

replay_tests!(
    gguf,
    gguf_vocab,
    safetensors,
    hf_config,
    adapter_config,
    tokenizer_json,
    corpus,
    trainer_state,
    parquet_documents,
    score_rows,
    score_journal,
);
