//! The demo model, SmolLM2-135M-Instruct Q4_1 (`scripts/fetch-demo-model.sh`),
//! loads with the expected hyperparameters and scores a 512-token chunk of
//! WikiText-2 like transformers does on the same weights.
//!
//! Oracle: `../shared/reference/smollm2-transformers-per-token.npz`, array
//! `chunked`: transformers' f32 per-token NLLs for 80 chunks of 512 ids of
//! `wiki.test.smollm2-ids.npy`, every token after a chunk's first scored.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use perplex_core::{CausalLm, WindowRef};
use perplex_model::{load, LoadOptions};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("a workspace root two levels up")
        .to_path_buf()
}

fn demo_model() -> PathBuf {
    let path = workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "missing demo model {}: run scripts/fetch-demo-model.sh",
        path.display()
    );
    path
}

fn reference(name: &str) -> PathBuf {
    let path = workspace_root().join("../shared/reference").join(name);
    assert!(
        path.is_file(),
        "missing reference file {}: the shared reference folder must sit beside the checkout",
        path.display()
    );
    path
}

/// A 1-D little-endian `.npy` array of 4-byte elements (`<i4` or `<f4`), raw.
fn npy_words(bytes: &[u8], descr: &str) -> Vec<[u8; 4]> {
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let (len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        _ => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + len]).unwrap();
    assert!(header.contains(&format!("'descr': '{descr}'")), "{header}");
    bytes[start + len..]
        .chunks_exact(4)
        .map(|c| c.try_into().unwrap())
        .collect()
}

fn reference_ids() -> Vec<u32> {
    let bytes = std::fs::read(reference("wiki.test.smollm2-ids.npy")).unwrap();
    npy_words(&bytes, "<i4")
        .into_iter()
        .map(|w| u32::try_from(i32::from_le_bytes(w)).unwrap())
        .collect()
}

/// An entry of a `.npz` (a zip of deflated `.npy` files): found by its local
/// header, inflated from there (a deflate stream ends itself, so numpy's
/// zip64 sizes need not be read).
fn npz_entry(path: &Path, name: &str) -> Vec<u8> {
    let zip = std::fs::read(path).unwrap();
    let mut at = 0;
    loop {
        assert_eq!(
            &zip[at..at + 4],
            b"PK\x03\x04",
            "no entry {name} in {}",
            path.display()
        );
        let u16_at = |i: usize| usize::from(u16::from_le_bytes([zip[i], zip[i + 1]]));
        let (method, name_len, extra_len) = (u16_at(at + 8), u16_at(at + 26), u16_at(at + 28));
        let entry = &zip[at + 30..at + 30 + name_len];
        let data = at + 30 + name_len + extra_len;
        assert_eq!(method, 8, "entries are deflated");
        let mut decoder = flate2::read::DeflateDecoder::new(&zip[data..]);
        let mut bytes = Vec::new();
        decoder.read_to_end(&mut bytes).unwrap();
        if entry == name.as_bytes() {
            return bytes;
        }
        // skip the compressed data and an optional data descriptor
        at = data + decoder.total_in() as usize;
        while &zip[at..at + 4] != b"PK\x03\x04" {
            at += 1;
        }
    }
}

fn transformers_chunked_nll() -> Vec<f32> {
    let bytes = npz_entry(
        &reference("smollm2-transformers-per-token.npz"),
        "chunked.npy",
    );
    npy_words(&bytes, "<f4")
        .into_iter()
        .map(f32::from_le_bytes)
        .collect()
}

#[test]
#[allow(clippy::print_stderr)] // the timing is for people reading `--nocapture` output
fn smollm2_q4_1_scores_a_chunk_like_transformers() {
    let path = demo_model();
    let loaded = load(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let id = &loaded.identity;
    assert_eq!(id.format, "gguf");
    assert_eq!(id.architecture, "llama");
    assert_eq!(id.weights, "q4_1: 210, f32: 61, q8_0: 1");
    assert_eq!(id.parameters, 134_515_008);
    assert_eq!(loaded.tokenizer.vocab_size(), 49_152);

    let (mut model, _) =
        perplex_model::load_model(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let c = model.config();
    assert_eq!(
        (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads),
        (30, 576, 9, 3)
    );
    assert_eq!(
        (c.vocab_size, c.intermediate_size, c.head_dim),
        (49_152, 1536, 64)
    );
    assert_eq!(c.rope_theta, 100_000.0);
    assert!(c.tie_word_embeddings);
    assert_eq!(model.info().max_context, Some(8192));

    let ids = reference_ids();
    let window = WindowRef {
        tokens: &ids[..512],
        score_from: 1,
    };
    let start = Instant::now();
    let scores = model.score_batch(&[window]).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    eprintln!("smollm2 q4_1: one 512-token window in {seconds:.2} s");

    let scores = &scores[0];
    assert_eq!(scores.len(), 511);
    let mean = scores.iter().map(|s| s.nll).sum::<f64>() / scores.len() as f64;
    assert!((2.0..4.5).contains(&mean), "mean NLL {mean}");
    let oracle = transformers_chunked_nll();
    let worst = scores
        .iter()
        .zip(&oracle[..511])
        .map(|(s, &t)| (s.nll - f64::from(t)).abs())
        .fold(0.0f64, f64::max);
    eprintln!("smollm2 q4_1: mean NLL {mean:.5}, largest difference from transformers {worst:.2e}");
    assert!(worst <= 1e-4, "largest per-token difference {worst}");
}
