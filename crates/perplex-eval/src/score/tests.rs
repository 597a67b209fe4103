//! The score pipeline against the eval engine, and its commits, resumes,
//! shards and merges, on the deterministic hash mock.

use std::path::{Path, PathBuf};

use perplex_core::mock::HashLm;
use perplex_core::plan::{BosPolicy, Protocol, ResolvedBos};
use perplex_core::report::ModelIdentity;
use perplex_core::score::{ScoreRow, Shard};
use perplex_core::NullSink;
use perplex_data::corpus::Split;
use perplex_data::rows::{open_rows, RowFormat};
use perplex_data::stream::StreamInputs;
use perplex_data::tokenizer::TextTokenizer;

use super::*;
use crate::engine::tests::settings as engine_settings;

const WORDS: usize = 40;

fn tokenizer(dir: &Path) -> TextTokenizer {
    let vocab: Vec<String> = std::iter::once("\"<unk>\":0".to_string())
        .chain((1..WORDS).map(|i| format!("\"w{i}\":{i}")))
        .collect();
    let json = format!(
        r#"{{"version":"1.0","model":{{"type":"WordLevel","vocab":{{{}}},"unk_token":"<unk>"}},"pre_tokenizer":{{"type":"Whitespace"}}}}"#,
        vocab.join(",")
    );
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    TextTokenizer::from_tokenizer_json(&path).unwrap()
}

fn model(dir: &Path) -> Model {
    Model {
        lm: Box::new(HashLm::new(WORDS, Some(4096))),
        tokenizer: tokenizer(dir),
        identity: ModelIdentity::in_memory("mock:hash", "mock"),
        checks: Vec::new(),
        threads: 1,
        needs_bos: None,
    }
}

/// Documents of mixed lengths (0 to about 90 words), one per line.
fn corpus_text(documents: usize) -> String {
    (0..documents)
        .map(|d| {
            let len = (d * 37 + 11) % 91;
            (0..len)
                .map(|i| format!("w{}", 1 + (d * 7 + i * i) % (WORDS - 1)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn inputs(dir: &Path, documents: usize) -> StreamInputs {
    let path = dir.join("corpus.txt");
    if !path.exists() {
        std::fs::write(&path, corpus_text(documents)).unwrap();
    }
    StreamInputs {
        files: vec![path],
        split: Split::Lines,
        jsonl: Vec::new(),
        parquet: Vec::new(),
        text_column: "text".into(),
        id_column: None,
        keep_columns: Vec::new(),
    }
}

fn options() -> ScoreOptions {
    ScoreOptions::new(Protocol::Chunks { context: 16 })
        .unwrap()
        .bos(BosPolicy::None)
        .block_documents(7)
        .unwrap()
}

fn rows_of(path: &Path) -> Vec<ScoreRow> {
    open_rows(path).unwrap().map(Result::unwrap).collect()
}

fn run(
    dir: &Path,
    name: &str,
    options: &ScoreOptions,
    progress: &mut dyn ScoreProgress,
) -> Result<Scored, EvalError> {
    let mut m = model(dir);
    let output = ScoreOutput::new(dir.join(name), None).unwrap();
    score(&mut m, &inputs(dir, 100), options, &output, progress)
}

/// Stops the run after `passes` forward passes.
struct StopAfter {
    passes: usize,
    seen: usize,
}

impl ScoreProgress for StopAfter {
    fn scored(&mut self, _: u64, _: u64) {
        self.seen += 1;
    }
    fn should_stop(&self) -> bool {
        self.seen >= self.passes
    }
}

#[test]
fn every_document_scores_as_the_eval_engine_scores_it() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer(dir.path());
    let docs: Vec<Vec<u32>> = corpus_text(60)
        .lines()
        .map(|l| tok.encode(l).unwrap())
        .collect();
    let protocols = [
        Protocol::Chunks { context: 16 },
        Protocol::Sliding {
            context: 12,
            stride: 5,
        },
        Protocol::Truncate { max_length: 20 },
        Protocol::LlamaCpp { context: 8 },
    ];
    for protocol in protocols {
        for bos in [ResolvedBos::None, ResolvedBos::Window { id: 0 }] {
            let eval = crate::engine::score(
                &mut HashLm::new(WORDS, None),
                &docs,
                &engine_settings(protocol, bos, 3),
                &mut NullSink,
            )
            .unwrap();
            let prepared: Vec<Prepared> = docs
                .iter()
                .enumerate()
                .map(|(i, t)| Prepared {
                    index: i as u64,
                    id: i.to_string(),
                    tokens: t.clone(),
                    counts: DocumentCounts::default(),
                    extra: Vec::new(),
                })
                .collect();
            for budget in [1, 40, 1000] {
                let mut totals = ScoreTotals::default();
                let stats = score_block(
                    &mut HashLm::new(WORDS, None),
                    &prepared,
                    &engine_settings(protocol, bos, 1),
                    budget,
                    &mut totals,
                    &mut |_| false,
                )
                .unwrap();
                // bit for bit: the same NLLs pushed in the same order
                assert_eq!(
                    stats, eval.per_document,
                    "{protocol}, {bos:?}, budget {budget}"
                );
                assert_eq!(totals.processed_tokens, eval.processed_tokens);
                assert_eq!(totals.windows, eval.windows);
            }
        }
    }
}

#[test]
fn batching_by_length_wastes_less_than_batching_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer(dir.path());
    let prepared: Vec<Prepared> = corpus_text(64)
        .lines()
        .enumerate()
        .map(|(i, l)| Prepared {
            index: i as u64,
            id: i.to_string(),
            tokens: tok.encode(l).unwrap(),
            counts: DocumentCounts::default(),
            extra: Vec::new(),
        })
        .collect();
    let settings = engine_settings(Protocol::Truncate { max_length: 128 }, ResolvedBos::None, 1);
    let mut totals = ScoreTotals::default();
    score_block(
        &mut HashLm::new(WORDS, None),
        &prepared,
        &settings,
        512,
        &mut totals,
        &mut |_| false,
    )
    .unwrap();
    let bucketed = totals.padding_fraction().unwrap();
    // the same budget filled in document order pads each pass to its longest
    let lens: Vec<usize> = prepared
        .iter()
        .filter(|p| p.tokens.len() > 1)
        .map(|p| p.tokens.len())
        .collect();
    let (mut slots, mut real, mut at) = (0usize, 0usize, 0usize);
    while at < lens.len() {
        let mut longest = lens[at];
        let mut n = 0;
        while at + n < lens.len() && (n + 1) * longest.max(lens[at + n]) <= 512 {
            longest = longest.max(lens[at + n]);
            n += 1;
        }
        let n = n.max(1);
        slots += n * longest;
        real += lens[at..at + n].iter().sum::<usize>();
        at += n;
    }
    let in_order = 1.0 - real as f64 / slots as f64;
    assert!(bucketed < in_order / 2.0, "{bucketed} vs {in_order}");
    assert_eq!(totals.processed_tokens as usize, real);
}

#[test]
fn an_interrupted_run_resumes_to_the_same_bytes_redoing_at_most_one_block() {
    let dir = tempfile::tempdir().unwrap();
    let whole = run(dir.path(), "whole.jsonl", &options(), &mut Quiet).unwrap();
    let expected = std::fs::read(dir.path().join("whole.jsonl")).unwrap();
    let Scored::Done(whole) = whole else {
        panic!("a fresh run")
    };
    assert_eq!(whole.totals.documents, 100);
    assert_eq!(whole.resumption, Default::default());
    for passes in [1, 5, 17] {
        let name = format!("resumed-{passes}.jsonl");
        let err = run(
            dir.path(),
            &name,
            &options(),
            &mut StopAfter { passes, seen: 0 },
        )
        .unwrap_err();
        assert!(matches!(err, EvalError::Interrupted), "{err:?}");
        assert!(!dir.path().join(&name).exists());
        let Scored::Done(resumed) = run(dir.path(), &name, &options(), &mut Quiet).unwrap() else {
            panic!("resumed")
        };
        assert_eq!(
            std::fs::read(dir.path().join(&name)).unwrap(),
            expected,
            "{passes}"
        );
        assert_eq!(resumed.totals, whole.totals);
        assert_eq!(resumed.resumption.runs, 1);
        assert!(resumed.resumption.redone_documents <= 7);
        assert!(!journal::partial_path(&dir.path().join(&name)).exists());
        // a finished run rerun is found finished
        let again = run(dir.path(), &name, &options(), &mut Quiet).unwrap();
        assert!(matches!(again, Scored::AlreadyDone(_)));
    }
}

#[test]
fn a_journal_cut_mid_line_resumes_from_its_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), "whole.jsonl", &options(), &mut Quiet).unwrap();
    let err = run(
        dir.path(),
        "cut.jsonl",
        &options(),
        &mut StopAfter { passes: 9, seen: 0 },
    );
    assert!(err.is_err());
    let partial = journal::partial_path(&dir.path().join("cut.jsonl"));
    // a kill during the write of a commit line, and rows past the last commit
    let mut journal = std::fs::OpenOptions::new()
        .append(true)
        .open(partial.join("journal.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut journal, b"{\"commit\":99,\"re").unwrap();
    let mut rows = std::fs::OpenOptions::new()
        .append(true)
        .open(partial.join("rows.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut rows, b"{\"index\":12345,").unwrap();
    run(dir.path(), "cut.jsonl", &options(), &mut Quiet).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("cut.jsonl")).unwrap(),
        std::fs::read(dir.path().join("whole.jsonl")).unwrap()
    );
}

#[test]
fn a_resume_with_other_options_or_another_corpus_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    run(
        dir.path(),
        "out.jsonl",
        &options(),
        &mut StopAfter { passes: 3, seen: 0 },
    )
    .unwrap_err();
    let other = ScoreOptions::new(Protocol::Chunks { context: 32 })
        .unwrap()
        .bos(BosPolicy::None)
        .block_documents(7)
        .unwrap();
    let err = run(dir.path(), "out.jsonl", &other, &mut Quiet).unwrap_err();
    assert!(
        matches!(
            &err,
            EvalError::Score(ScoreError::ResumeMismatch {
                what: "protocol",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}.partial holds the unfinished output of a run with another protocol: chunks \
             (context 16), BOS none, not chunks (context 32), BOS none",
            dir.path().join("out.jsonl").display()
        )
    );
    // the same file names with other text
    let text = corpus_text(100).replacen("w1", "w2", 1);
    std::fs::write(dir.path().join("corpus.txt"), text).unwrap();
    let err = run(dir.path(), "out.jsonl", &options(), &mut Quiet).unwrap_err();
    assert!(
        matches!(err, EvalError::Score(ScoreError::CorpusChanged { .. })),
        "{err:?}"
    );
}

#[test]
fn shards_merge_into_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let Scored::Done(whole) = run(dir.path(), "whole.parquet", &options(), &mut Quiet).unwrap()
    else {
        panic!()
    };
    let mut outputs: Vec<PathBuf> = Vec::new();
    for i in [2, 0, 1] {
        let name = format!("shard-{i}.parquet");
        let o = options().shard(Shard::new(i, 3).unwrap());
        run(dir.path(), &name, &o, &mut Quiet).unwrap();
        outputs.push(dir.path().join(name));
    }
    let out = ScoreOutput::new(dir.path().join("merged.parquet"), None).unwrap();
    let merged = merge(&outputs, Some(&out)).unwrap();
    assert_eq!(
        rows_of(&out.path),
        rows_of(&dir.path().join("whole.parquet"))
    );
    assert_eq!(merged.totals.documents, whole.totals.documents);
    assert_eq!(merged.totals.stats.count, whole.totals.stats.count);
    let (a, b) = (
        merged.figures.perplexity.unwrap(),
        whole.figures.perplexity.unwrap(),
    );
    assert!((a / b - 1.0).abs() <= 1e-12, "{a} vs {b}");
    assert_eq!(merged.corpus.hash, whole.corpus.hash);
    assert_eq!(out.format, RowFormat::Parquet);

    let err = merge(&outputs[..2], None).unwrap_err();
    assert_eq!(err.to_string(), "1 of 3 shards is missing: 1");
    let twice = [outputs[0].clone(), outputs[0].clone(), outputs[1].clone()];
    let err = merge(&twice, None).unwrap_err();
    assert!(
        matches!(err, EvalError::Score(ScoreError::DuplicateShard { .. })),
        "{err:?}"
    );
    let err = merge(
        &[outputs[0].clone(), dir.path().join("whole.parquet")],
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::Score(ScoreError::ShardsDiffer {
                what: "shard count",
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn rows_in_memory_are_the_rows_written() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), "whole.jsonl", &options(), &mut Quiet).unwrap();
    let written = rows_of(&dir.path().join("whole.jsonl"));
    let docs: Vec<SourceDocument> = inputs(dir.path(), 100)
        .open()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let rows = score_texts(&mut model(dir.path()), docs, &options()).unwrap();
    assert_eq!(rows, written);
}
