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

use perplex_core::{CausalLm, WindowRef};
use perplex_data::corpus::{self, Split};
use perplex_data::tokenizer::TextTokenizer;
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
