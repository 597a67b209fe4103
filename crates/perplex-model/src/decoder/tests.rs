//! Whole-model tests of the decoder: tiling, batching and padding never
//! change scores; logit tiles, sliding windows, dynamic NTK, biases and
//! tied heads, and the checks before any work.

use super::*;
use crate::test_util::tiny_hf_folder;
use crate::{load_model, LoadOptions};

fn load_dir(dir: &std::path::Path) -> Decoder {
    load_model(dir.to_str().unwrap(), &LoadOptions::default())
        .unwrap()
        .0
}

fn tokens(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 7 + seed * 13 + 3) % 50)
        .collect()
}

fn score(m: &mut Decoder, windows: &[(&[u32], usize)]) -> Vec<Vec<TokenScore>> {
    let refs: Vec<WindowRef<'_>> = windows
        .iter()
        .map(|&(tokens, score_from)| WindowRef { tokens, score_from })
        .collect();
    m.score_batch(&refs).unwrap()
}

fn assert_close(a: &[Vec<TokenScore>], b: &[Vec<TokenScore>], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        for (s, t) in x.iter().zip(y) {
            assert!((s.nll - t.nll).abs() <= tol, "{} vs {}", s.nll, t.nll);
            assert_eq!(s.argmax, t.argmax);
        }
    }
}

#[test]
fn tiling_and_batching_do_not_change_scores() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_hf_folder(tmp.path(), 2, serde_json::json!({}), &[]);
    let mut m = load_dir(tmp.path());
    let (a, b, c) = (tokens(70, 1), tokens(9, 2), tokens(41, 3));
    let windows = [(&a[..], 1), (&b[..], 4), (&c[..], 20)];
    let reference: Vec<Vec<TokenScore>> = windows
        .iter()
        .flat_map(|w| score(&mut m, std::slice::from_ref(w)))
        .collect();
    assert_close(&score(&mut m, &windows), &reference, 1e-5);
    // many query blocks, MLP row chunks, head tiles and position chunks
    m.tiling = Tiling {
        attention_score_elems: 1,
        max_query_block: 7,
        mlp_activation_elems: 48 * 13,
        head: HeadTiling {
            weight_elems: 32 * 9,
            logit_elems: 9 * 5,
        },
    };
    assert_close(&score(&mut m, &windows), &reference, 1e-5);
    // a one-thread pool
    m.set_pool(Some(Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    )));
    assert_close(&score(&mut m, &windows), &reference, 1e-5);
}

#[test]
fn logit_tiles_reduce_to_the_scores() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_hf_folder(tmp.path(), 2, serde_json::json!({}), &[]);
    let mut m = load_dir(tmp.path());
    let (a, b) = (tokens(30, 1), tokens(12, 2));
    let windows = [(&a[..], 3), (&b[..], 1)];
    let scores: Vec<TokenScore> = score(&mut m, &windows).concat();
    let refs: Vec<WindowRef<'_>> = windows
        .iter()
        .map(|&(tokens, score_from)| WindowRef { tokens, score_from })
        .collect();
    let targets: Vec<u32> = windows
        .iter()
        .flat_map(|&(t, from)| t[from..].to_vec())
        .collect();
    let vocab = m.info().vocab_size;
    let tiles = m.logits(&refs).unwrap();
    assert_eq!(tiles.positions(), scores.len());
    // read in uneven tiles, then reduce each full row in f64
    let mut rows = vec![Vec::new(); scores.len()];
    let mut buf = Vec::new();
    for first in (0..vocab).step_by(17) {
        let len = 17.min(vocab - first);
        tiles.tile(first, len, &mut buf).unwrap();
        for (p, row) in rows.iter_mut().enumerate() {
            row.extend_from_slice(&buf[p * len..(p + 1) * len]);
        }
    }
    for ((row, s), &t) in rows.iter().zip(&scores).zip(&targets) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let lse = f64::from(max)
            + row
                .iter()
                .map(|&l| f64::from(l - max).exp())
                .sum::<f64>()
                .ln();
        let nll = lse - f64::from(row[t as usize]);
        // the fused head takes each exp in f32
        assert!((nll - s.nll).abs() < 1e-6, "{nll} vs {}", s.nll);
        let argmax = row
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &l)| if l > b.1 { (i, l) } else { b },
            )
            .0;
        assert_eq!(argmax as u32, s.argmax);
    }
}

#[test]
fn sliding_window_attention_sees_only_the_window() {
    // With one layer, the last position under a window of w keys sees
    // exactly what a fresh window of those w tokens sees.
    let tmp = tempfile::tempdir().unwrap();
    let extra = serde_json::json!({"architectures": ["MistralForCausalLM"], "sliding_window": 4});
    tiny_hf_folder(tmp.path(), 1, extra, &[]);
    let mut m = load_dir(tmp.path());
    assert_eq!(m.config().sliding_windows(), vec![4]);
    let t = tokens(12, 5);
    let full = score(&mut m, &[(&t, 11)]);
    let short = score(&mut m, &[(&t[7..], 4)]);
    assert_close(&full, &short, 1e-5);

    // without the window the long context matters
    let tmp = tempfile::tempdir().unwrap();
    tiny_hf_folder(tmp.path(), 1, serde_json::json!({}), &[]);
    let mut plain = load_dir(tmp.path());
    let full = score(&mut plain, &[(&t, 11)]);
    let short = score(&mut plain, &[(&t[7..], 4)]);
    assert!((full[0][0].nll - short[0][0].nll).abs() > 1e-4);
}

#[test]
fn dynamic_ntk_windows_are_scored_independently() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = serde_json::json!({
        "rope_scaling": {"rope_type": "dynamic", "factor": 2.0},
        "max_position_embeddings": 16
    });
    tiny_hf_folder(tmp.path(), 2, extra, &[]);
    let mut m = load_dir(tmp.path());
    assert_eq!(m.info().max_context, None);
    let (long, short) = (tokens(40, 1), tokens(10, 2));
    let both = score(&mut m, &[(&long, 1), (&short, 1)]);
    let alone = [score(&mut m, &[(&long, 1)]), score(&mut m, &[(&short, 1)])].concat();
    assert_close(&both, &alone, 1e-5);
    // past the context the base grows: a plain-RoPE model scores differently
    let tmp = tempfile::tempdir().unwrap();
    tiny_hf_folder(
        tmp.path(),
        2,
        serde_json::json!({"max_position_embeddings": 64}),
        &[],
    );
    let plain = score(&mut load_dir(tmp.path()), &[(&long, 1), (&short, 1)]);
    assert_close(&plain[1..], &both[1..], 1e-5);
    assert!((plain[0][30].nll - both[0][30].nll).abs() > 1e-4);
}

#[test]
fn biases_and_tied_heads_load() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = serde_json::json!({
        "attention_bias": true, "mlp_bias": true, "tie_word_embeddings": true
    });
    tiny_hf_folder(tmp.path(), 1, extra.clone(), &[]);
    let (mut m, id) = load_model(tmp.path().to_str().unwrap(), &LoadOptions::default()).unwrap();
    // embedding, 3 norms, 7 matrices, 7 biases; the head is the embedding
    assert_eq!(id.weights, "f32: 18");
    let t = tokens(6, 1);
    assert!(score(&mut m, &[(&t, 1)])[0]
        .iter()
        .all(|s| s.nll.is_finite()));

    // a missing bias is named, with its file
    let tmp = tempfile::tempdir().unwrap();
    tiny_hf_folder(tmp.path(), 1, extra, &["model.layers.0.mlp.up_proj.bias"]);
    let err = load_model(tmp.path().to_str().unwrap(), &LoadOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "tensor `model.layers.0.mlp.up_proj.bias` is missing from {}",
            tmp.path().join("model.safetensors").display()
        )
    );
}

#[test]
fn a_tokenizer_larger_than_the_embedding_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_hf_folder(tmp.path(), 1, serde_json::json!({}), &[]);
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(f), tmp.path().join(f)).unwrap();
    }
    let err = crate::load(tmp.path().to_str().unwrap(), &LoadOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the tokenizer has 384 tokens but the model's embedding has only 50 rows"
    );
    assert!(err.hint().is_some());
}

#[test]
fn invalid_windows_are_rejected_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_hf_folder(tmp.path(), 1, serde_json::json!({}), &[]);
    let mut m = load_dir(tmp.path());
    let err = m
        .score_batch(&[WindowRef {
            tokens: &[1, 50],
            score_from: 1,
        }])
        .unwrap_err();
    assert!(
        matches!(err, LmError::TokenOutOfRange { id: 50, .. }),
        "{err}"
    );
    assert!(m.score_batch(&[]).unwrap().is_empty());
}

#[test]
fn half_precision_weights_stay_in_their_two_bytes() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let f32 = load_dir(&fixtures.join("tiny-llama")).weight_bytes();
    for half in ["tiny-llama-bf16", "tiny-llama-f16"] {
        let bytes = load_dir(&fixtures.join(half)).weight_bytes();
        // the same matrices in 2 bytes an element instead of 4
        assert_eq!(2 * bytes, f32, "{half}");
    }
}

#[test]
fn a_fused_gate_and_up_in_chunks_of_one_row_scores_as_in_one_chunk() {
    // Phi-3 keeps gate and up in one matrix; a chunk of one row is where a
    // view of the gate half would share the product's storage
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut m = load_dir(&fixtures.join("tiny-phi3"));
    let t = tokens(9, 4);
    let whole = score(&mut m, &[(&t[..], 1)]);
    m.tiling = Tiling {
        mlp_activation_elems: 2 * m.config.intermediate_size,
        ..m.tiling
    };
    assert_close(&score(&mut m, &[(&t[..], 1)]), &whole, 1e-6);
}

#[test]
fn the_working_memory_counts_the_models_own_threads() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_hf_folder(tmp.path(), 2, serde_json::json!({}), &[]);
    let mut m = load_dir(tmp.path());
    let mut on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        m.set_pool(Some(Arc::new(pool)));
        m.working_memory(1, 16).unwrap()
    };
    let (one, three) = (on(1), on(3));
    let c = &m.config;
    match m.kernels {
        // each thread packs a group of 8 panels of 32 rows (and 32 rows of
        // scratch) of the widest matrix
        Kernels::Packed(_) => {
            let widest = c
                .hidden_size
                .max(c.num_heads * c.head_dim)
                .max(c.intermediate_size);
            assert_eq!(three - one, 2 * 9 * 32 * widest as u64 * 4);
        }
        Kernels::Candle => assert_eq!(three, one),
    }
}
