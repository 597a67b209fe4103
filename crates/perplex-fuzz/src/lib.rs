//! The bodies of perplex's fuzz targets: each feeds arbitrary bytes to one
//! reader of untrusted input through the project's public API, the way the
//! command line reaches it (a file in a folder, read by path), and returns
//! whether the reader accepted them.
//!
//! The contract every reader must keep, whatever the bytes: return `Ok` or a
//! typed error; never panic, abort, hang, or allocate more than the input's
//! size justifies. The targets assert nothing else but cheap invariants of an
//! accepted input (a configuration's own derived values, a tokenizer's ids
//! within its vocabulary, losses sorted by step). When a reader accepts its
//! input the target goes on to what a run does next (load the model, apply
//! the adapter, score a few tokens, encode a few texts), so that a value that
//! passes the reader's checks but breaks its users is found too.
//!
//! cargo-fuzz runs them from `fuzz/` (`scripts/fuzz`); the `replay` test runs
//! every saved corpus entry and crash reproducer through them on stable.
//! See `docs/fuzzing.md`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use perplex_core::accum::NllStats;
use perplex_core::plan::{Protocol, ResolvedBos};
use perplex_core::report::Hash;
use perplex_core::score::{DocumentCounts, ScoreRow, Shard};
use perplex_core::{CausalLm, WindowRef};
use perplex_data::corpus::{self, Split};
use perplex_data::rows::{jsonl_row, open_rows, parse_jsonl_row};
use perplex_data::stream::StreamInputs;
use perplex_data::tokenizer::TextTokenizer;
use perplex_eval::checkpoint::{EvalIdentity, EvalJournal};
use perplex_eval::score::journal::{Journal, Opened, RunIdentity};
use perplex_eval::score::ScoreOutput;
use perplex_model::lora::LoraAdapter;
use perplex_model::{LoadOptions, ModelConfig};

mod alloc;
mod tiny;

pub use alloc::{CappedAlloc, MAX_ALLOCATION};
pub use tiny::{tiny_adapter_weights, tiny_weights, TINY_ADAPTER_CONFIG, TINY_CONFIG};

/// A fuzz target's body.
pub type Target = fn(&[u8]) -> bool;

/// Every target by name (the name of its `fuzz/fuzz_targets/` file and of
/// its `fuzz/corpus/` folder).
pub const TARGETS: &[(&str, Target)] = &[
    ("gguf", gguf),
    ("gguf_vocab", gguf_vocab),
    ("safetensors", safetensors),
    ("hf_config", hf_config),
    ("adapter_config", adapter_config),
    ("tokenizer_json", tokenizer_json),
    ("corpus", corpus),
    ("trainer_state", trainer_state),
    ("parquet_documents", parquet_documents),
    ("score_rows", score_rows),
    ("score_journal", score_journal),
];

/// Texts every tokenizer built from fuzzed input encodes: ASCII, runs of
/// whitespace, multi-byte characters, special-token spellings.
const TEXTS: &[&str] = &[
    "",
    "Hello, world! The cat sat on the mat.",
    "  two  spaces\n\nand\ttabs\r\n",
    "naïve café – 日本語 🎉 \u{0}",
    "<s></s><unk><|endoftext|><|im_start|>user",
];

thread_local! {
    /// This thread's scratch folder (the replay test runs targets on
    /// several threads at once).
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// `name`, a folder of this thread's scratch space, created if needed.
fn scratch(name: &str) -> PathBuf {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let root = s.get_or_insert_with(|| {
            tempfile::Builder::new()
                .prefix("perplex-fuzz")
                .tempdir()
                .expect("a scratch folder")
        });
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    })
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("a scratch file");
}

fn spec(path: &Path) -> &str {
    path.to_str().expect("scratch paths are UTF-8")
}

/// Loads `spec` and scores one short window: what a run does with a model
/// whose files were accepted.
fn load_and_score(spec: &str) -> bool {
    let Ok((mut model, _identity)) = perplex_model::load_model(spec, &LoadOptions::default())
    else {
        return false;
    };
    let vocab = model.info().vocab_size;
    let tokens: Vec<u32> = (0..4u32).map(|i| i % vocab.max(1) as u32).collect();
    let window = WindowRef {
        tokens: &tokens,
        score_from: 1,
    };
    if let Ok(scores) = model.score_batch(&[window]) {
        assert_eq!(scores.len(), 1);
        assert_eq!(scores[0].len(), 3);
    }
    true
}

/// Encodes [`TEXTS`] and reads back their tokens' text.
fn exercise(tokenizer: &TextTokenizer) {
    let vocab = tokenizer.vocab_size();
    for text in TEXTS {
        if let Ok(ids) = tokenizer.encode(text) {
            for &id in &ids {
                assert!(
                    (id as usize) < vocab,
                    "id {id} outside a vocabulary of {vocab}"
                );
                tokenizer.token_text(id);
            }
        }
    }
    for id in [
        tokenizer.bos_id(),
        tokenizer.eos_id(),
        Some(0),
        Some(u32::MAX),
    ]
    .into_iter()
    .flatten()
    {
        tokenizer.token_text(id);
    }
    let _ = tokenizer.identity();
}

/// A `.gguf` file: header, metadata, tensor table, the configuration and
/// the vocabulary (`perplex inspect`), then the weights (`load`).
pub fn gguf(data: &[u8]) -> bool {
    let path = scratch("gguf").join("model.gguf");
    write(&path, data);
    if perplex_model::inspect(spec(&path)).is_err() {
        return false;
    }
    load_and_score(spec(&path));
    true
}

/// A GGUF header alone (no tensors needed): its `tokenizer.ggml.*`
/// metadata made into a tokenizer, which then encodes a few texts.
pub fn gguf_vocab(data: &[u8]) -> bool {
    let path = scratch("gguf-vocab").join("vocab.gguf");
    write(&path, data);
    let Ok(tokenizer) = perplex_model::gguf_tokenizer(&path) else {
        return false;
    };
    exercise(&tokenizer);
    let _ = tokenizer.to_tokenizer_json(false);
    true
}

/// A `model.safetensors` (header, tensor table, data) beside a fixed tiny
/// `config.json`, loaded; and the same bytes as an adapter's
/// `adapter_model.safetensors`, opened and applied to the tiny model.
pub fn safetensors(data: &[u8]) -> bool {
    let model = scratch("safetensors-model");
    write(&model.join("config.json"), TINY_CONFIG.as_bytes());
    write(&model.join("model.safetensors"), data);
    let as_model = load_and_score(spec(&model));

    let adapter = scratch("safetensors-adapter");
    write(
        &adapter.join("adapter_config.json"),
        TINY_ADAPTER_CONFIG.as_bytes(),
    );
    write(&adapter.join("adapter_model.safetensors"), data);
    as_model | open_and_apply(&adapter)
}

/// A `config.json` read into a model configuration, then loaded with fixed
/// tiny weights (most configurations disagree with them: an error).
pub fn hf_config(data: &[u8]) -> bool {
    let dir = scratch("hf-config");
    let path = dir.join("config.json");
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(config) = ModelConfig::from_hf_json(text, &path) else {
        return false;
    };
    config_invariants(&config);
    write(&path, data);
    write(&dir.join("model.safetensors"), &tiny_weights());
    load_and_score(spec(&dir));
    true
}

/// What every accepted configuration must answer without panicking.
fn config_invariants(config: &ModelConfig) {
    let _ = config.max_context();
    let windows = config.sliding_windows();
    assert!(windows.iter().all(|&w| w > 0), "a zero sliding window");
}

/// An `adapter_config.json` beside fixed tiny adapter weights, opened and
/// applied to the tiny model.
pub fn adapter_config(data: &[u8]) -> bool {
    let dir = scratch("adapter-config");
    write(&dir.join("adapter_config.json"), data);
    write(
        &dir.join("adapter_model.safetensors"),
        &tiny_adapter_weights(),
    );
    open_and_apply(&dir)
}

/// Opens the adapter in `dir` and, when it opens, loads the tiny model with it.
fn open_and_apply(dir: &Path) -> bool {
    let Ok(adapter) = LoraAdapter::open(dir) else {
        return false;
    };
    let _ = (adapter.describe(), adapter.is_untrained());
    let base = scratch("tiny-base");
    write(&base.join("config.json"), TINY_CONFIG.as_bytes());
    write(&base.join("model.safetensors"), &tiny_weights());
    load_and_score(&format!("{}+{}", spec(&base), spec(dir)));
    true
}

/// A `tokenizer.json`, alone and as a model folder's tokenizer, encoding a
/// few texts.
pub fn tokenizer_json(data: &[u8]) -> bool {
    let dir = scratch("tokenizer-json");
    let path = dir.join("tokenizer.json");
    write(&path, data);
    let mut accepted = false;
    if let Ok(tokenizer) = TextTokenizer::from_tokenizer_json(&path) {
        exercise(&tokenizer);
        accepted = true;
    }
    if let Ok(tokenizer) = TextTokenizer::from_hf_folder(&dir) {
        exercise(&tokenizer);
        accepted = true;
    }
    accepted
}

/// A corpus file; the first byte picks the reader: text split whole, by
/// lines or by paragraphs, or JSON Lines (field `text`).
pub fn corpus(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let path = scratch("corpus").join("corpus.txt");
    write(&path, rest);
    let read = match mode % 4 {
        0 => corpus::read_file(&path, Split::Whole),
        1 => corpus::read_file(&path, Split::Lines),
        2 => corpus::read_file(&path, Split::Paragraphs),
        _ => corpus::read_jsonl(&path, "text"),
    };
    let Ok(docs) = read else {
        return false;
    };
    let total: usize = docs.iter().map(|d| d.text.len()).sum();
    assert!(total <= rest.len(), "documents longer than their file");
    if mode % 4 == 0 {
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].text.as_bytes(), rest);
    }
    true
}

/// A run's `trainer_state.json`, read for the trainer's losses by step.
pub fn trainer_state(data: &[u8]) -> bool {
    let run = scratch("trainer-state");
    write(&run.join("trainer_state.json"), data);
    let Ok(losses) = perplex_eval::sweep::trainer_losses(&run, &[]) else {
        return false;
    };
    assert!(
        losses.windows(2).all(|w| w[0].step < w[1].step),
        "losses not strictly ordered by step"
    );
    assert!(losses
        .iter()
        .all(|l| l.loss.is_some() || l.eval_loss.is_some()));
    true
}

/// The most documents or rows a target takes from one file: a small file
/// can hold millions of rows (a run of nulls is a few bytes), and taking
/// them all would test the fuzzer's patience, not the reader.
const MAX_RECORDS: usize = 10_000;

/// The columns `parquet_documents` reads in each configuration: a document
/// file's (`text`, `id`, a kept `meta`), and a score row file's (the id as
/// the text, `index` as the id, a kept `status`).
pub const PARQUET_DOCUMENT_COLUMNS: [(&str, &str, &str); 2] =
    [("text", "id", "meta"), ("id", "index", "status")];

/// A Parquet corpus after one byte whose parity picks the columns (see
/// [`PARQUET_DOCUMENT_COLUMNS`]), opened with `StreamInputs::open` and read
/// a document at a time: indexes count from 0, every document has its kept
/// column, the stream ends after an error, and in a file without
/// compression no text is longer than the file.
pub fn parquet_documents(data: &[u8]) -> bool {
    let Some((&mode, file)) = data.split_first() else {
        return false;
    };
    let path = scratch("parquet-documents").join("corpus.parquet");
    write(&path, file);
    let (text, id, keep) = PARQUET_DOCUMENT_COLUMNS[usize::from(mode % 2)];
    let inputs = StreamInputs {
        parquet: vec![path.clone()],
        text_column: text.into(),
        id_column: Some(id.into()),
        keep_columns: vec![keep.into()],
        ..StreamInputs::default()
    };
    let Ok(mut stream) = inputs.open() else {
        return false;
    };
    // decompression can make a text of any length from a few bytes
    let longest = uncompressed(&path).then_some(file.len());
    let mut n = 0u64;
    while let Some(document) = stream.next() {
        let Ok(document) = document else {
            assert!(stream.next().is_none(), "the stream went on after an error");
            break;
        };
        assert_eq!(document.index, n, "document indexes must count from 0");
        assert_eq!(document.extra.len(), 1);
        assert_eq!(document.extra[0].0, keep);
        if let Some(longest) = longest {
            assert!(
                document.text.len() <= longest,
                "a text of {} bytes from an uncompressed file of {longest}",
                document.text.len()
            );
        }
        n += 1;
        if n as usize == MAX_RECORDS {
            break;
        }
    }
    true
}

/// Whether every column chunk of the Parquet file at `path` is stored
/// without compression (false when its footer cannot be read).
fn uncompressed(path: &Path) -> bool {
    use parquet::file::reader::FileReader;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(reader) = parquet::file::serialized_reader::SerializedFileReader::new(file) else {
        return false;
    };
    reader.metadata().row_groups().iter().all(|group| {
        group
            .columns()
            .iter()
            .all(|c| c.compression() == parquet::basic::Compression::UNCOMPRESSED)
    })
}

/// A score row file, as `rows.parquet` and as `rows.jsonl`, opened with
/// `open_rows` and read row by row; a row read from JSONL must come back
/// equal, and as the same line, from the line `jsonl_row` writes for it.
/// Accepted means a row was read (an empty file is a valid file of no rows).
pub fn score_rows(data: &[u8]) -> bool {
    let dir = scratch("score-rows");
    let parquet = read_rows(&dir.join("rows.parquet"), data);
    let jsonl = read_rows(&dir.join("rows.jsonl"), data);
    parquet | jsonl
}

fn read_rows(path: &Path, data: &[u8]) -> bool {
    write(path, data);
    let Ok(reader) = open_rows(path) else {
        return false;
    };
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let _ = reader.metadata();
    let extra_columns = reader.extra_columns().to_vec();
    let mut read = false;
    for (n, row) in reader.take(MAX_RECORDS).enumerate() {
        let Ok(row) = row else {
            break;
        };
        read = true;
        if n == 0 || !jsonl {
            let names: Vec<&String> = row.extra.iter().map(|(name, _)| name).collect();
            assert!(
                names
                    .iter()
                    .eq(extra_columns.iter().collect::<Vec<_>>().iter()),
                "row {n} has kept columns {names:?}, the file {extra_columns:?}"
            );
        }
        if jsonl {
            let line = jsonl_row(&row);
            let again = parse_jsonl_row(&line)
                .unwrap_or_else(|e| panic!("the line written for row {n} does not read: {e}"));
            assert_eq!(again, row, "row {n} changed through {line}");
            assert_eq!(jsonl_row(&again), line);
        }
    }
    read
}

/// The run `score_journal` resumes.
pub fn run_identity() -> RunIdentity {
    RunIdentity {
        model_spec: "tiny-llama".into(),
        model_hash: "7d1e2f".repeat(8),
        tokenizer_hash: Hash {
            algorithm: "blake3".into(),
            value: "0a1b2c".repeat(8),
        },
        protocol: Protocol::Chunks { context: 8 },
        bos: ResolvedBos::Document { id: 1 },
        shard: Shard::WHOLE,
        block_documents: 2,
        sources: vec!["corpus.jsonl".into()],
        text: "jsonl:text".into(),
        id_column: Some("id".into()),
        keep_columns: vec!["source".into()],
        format: "jsonl".into(),
    }
}

/// The eval run `score_journal` resumes.
pub fn eval_identity() -> EvalIdentity {
    EvalIdentity {
        model_hash: "7d1e2f".repeat(8),
        tokenizer_hash: "0a1b2c".repeat(8),
        sources: vec!["corpus.txt".into()],
        corpus_hash: Hash {
            algorithm: "blake3".into(),
            value: "5e6f70".repeat(8),
        },
        protocol: "chunks, context 8, BOS document".into(),
        per_token: true,
    }
}

/// The per-token file beside a fuzzed `checkpoint.json`.
const TOKENS: &[u8] = b"{\"doc\":0,\"position\":1,\"token\":3,\"nll\":2.5}\n";

/// An unfinished output, after one byte that picks what is fuzzed (its
/// value modulo 3): 0, `journal.jsonl` of a score run (beside a fixed
/// `run.json`); 1, the same with the bytes after the first NUL as
/// `rows.jsonl`; 2, `checkpoint.json` of an eval run (beside a fixed
/// `run.json` and per-token file). `Journal::open` resumes the score run,
/// which must commit no more than its rows file holds, then commits one
/// more block; `EvalJournal::open` resumes the eval run and cuts its
/// per-token file back to the saved length.
pub fn score_journal(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    if mode % 3 == 2 {
        return eval_checkpoint(rest);
    }
    let dir = scratch("score-journal");
    let output = ScoreOutput {
        path: dir.join("out.jsonl"),
        format: perplex_data::rows::RowFormat::Jsonl,
    };
    let partial = dir.join("out.jsonl.partial");
    std::fs::create_dir_all(&partial).expect("a scratch folder");
    let identity = run_identity();
    let run = serde_json::to_string_pretty(&identity).expect("serialisable");
    write(&partial.join("run.json"), run.as_bytes());
    let (journal, rows) = match (mode % 3, rest.iter().position(|&b| b == 0)) {
        (1, Some(nul)) => (&rest[..nul], Some(&rest[nul + 1..])),
        (1, None) => (rest, Some(&b""[..])),
        _ => (rest, None),
    };
    write(&partial.join("journal.jsonl"), journal);
    let rows_path = partial.join("rows.jsonl");
    match rows {
        Some(rows) => write(&rows_path, rows),
        None => {
            let _ = std::fs::remove_file(&rows_path);
        }
    }
    let rows_len = rows.map_or(0, <[u8]>::len) as u64;
    let Ok(Opened::Journal(mut journal)) = Journal::open(&output, &identity) else {
        return false;
    };
    let committed = journal.committed().clone();
    assert!(
        committed.rows_bytes <= rows_len,
        "{} bytes committed of a rows file of {rows_len}",
        committed.rows_bytes
    );
    let _ = journal.resumption();
    // the next block, as a resumed run writes it
    let mut stats = NllStats::new();
    stats.push(1.5, true);
    let counts = DocumentCounts {
        bytes: 5,
        words: 1,
        tokens: 2,
    };
    let row = ScoreRow::new(committed.rows, "next".into(), counts, &stats, true);
    let mut totals = committed.totals;
    totals.add_row(&row, &stats);
    if journal.begin(1).is_ok()
        && journal
            .commit(&[row], committed.read.saturating_add(1), "next", &totals)
            .is_ok()
    {
        let now = journal.committed();
        assert_eq!(now.blocks, committed.blocks + 1);
        assert!(now.rows_bytes > committed.rows_bytes);
    }
    true
}

fn eval_checkpoint(data: &[u8]) -> bool {
    let dir = scratch("eval-journal");
    let report = dir.join("report.json");
    let partial = dir.join("report.json.partial");
    std::fs::create_dir_all(&partial).expect("a scratch folder");
    let identity = eval_identity();
    let run = serde_json::to_string_pretty(&identity).expect("serialisable");
    write(&partial.join("run.json"), run.as_bytes());
    write(&partial.join("checkpoint.json"), data);
    write(&partial.join("tokens.jsonl"), TOKENS);
    let Ok(journal) = EvalJournal::open(&report, &identity) else {
        return false;
    };
    let Some(resumed) = journal.resumed() else {
        return false;
    };
    let saved = resumed.token_bytes;
    let _ = (resumed.windows, resumed.outcome.per_document.len());
    if let Ok(Some(file)) = journal.tokens_file() {
        assert!(saved <= TOKENS.len() as u64);
        assert_eq!(file.metadata().expect("a scratch file").len(), saved);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiny_model_and_adapter_load() {
        assert!(hf_config(TINY_CONFIG.as_bytes()));
        assert!(safetensors(&tiny_weights()));
        assert!(adapter_config(TINY_ADAPTER_CONFIG.as_bytes()));
    }

    #[test]
    fn empty_input_is_an_error_everywhere() {
        for (name, target) in TARGETS {
            assert!(!target(b""), "{name} accepted nothing");
        }
    }
}
