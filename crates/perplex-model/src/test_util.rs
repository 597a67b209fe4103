//! Tiny random models written into temp folders, for tests.

use std::path::Path;

/// Writes a safetensors file with the given f32 tensors.
pub(crate) fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let begin = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let mut header = serde_json::to_vec(&header).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

/// Deterministic values in `[-scale, scale)` (an LCG; no dependency).
pub(crate) fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A tiny random Llama-family HF folder: hidden 32, 4 heads of 8 (2 KV
/// heads), MLP 48, vocabulary 50. `extra` is merged into config.json;
/// `skip` names tensors to leave out.
pub(crate) fn tiny_hf_folder(dir: &Path, layers: usize, extra: serde_json::Value, skip: &[&str]) {
    let (h, heads, kv, d, ff, vocab) = (32usize, 4usize, 2usize, 8usize, 48usize, 50usize);
    let mut config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": h, "intermediate_size": ff, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": d,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 512,
        "tie_word_embeddings": false, "vocab_size": vocab
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let get = |k: &str| config[k].as_bool().unwrap_or(false);
    let (attention_bias, mlp_bias, tied) = (
        get("attention_bias"),
        get("mlp_bias"),
        get("tie_word_embeddings"),
    );
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut tensors = Vec::new();
    let mut seed = 0;
    let mut add = |name: String, shape: Vec<usize>, scale: f32| {
        seed += 1;
        let n = shape.iter().product();
        tensors.push((name, shape, values(n, seed, scale)));
    };
    add("model.embed_tokens.weight".into(), vec![vocab, h], 1.0);
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        add(format!("{p}.input_layernorm.weight"), vec![h], 1.5);
        add(format!("{p}.post_attention_layernorm.weight"), vec![h], 1.5);
        for (name, rows, cols, bias) in [
            ("self_attn.q_proj", heads * d, h, attention_bias),
            ("self_attn.k_proj", kv * d, h, attention_bias),
            ("self_attn.v_proj", kv * d, h, attention_bias),
            ("self_attn.o_proj", h, heads * d, attention_bias),
            ("mlp.gate_proj", ff, h, mlp_bias),
            ("mlp.up_proj", ff, h, mlp_bias),
            ("mlp.down_proj", h, ff, mlp_bias),
        ] {
            add(format!("{p}.{name}.weight"), vec![rows, cols], 0.4);
            if bias {
                add(format!("{p}.{name}.bias"), vec![rows], 0.2);
            }
        }
    }
    add("model.norm.weight".into(), vec![h], 1.5);
    if !tied {
        add("lm_head.weight".into(), vec![vocab, h], 1.0);
    }
    tensors.retain(|(name, _, _)| !skip.contains(&name.as_str()));
    write_safetensors(&dir.join("model.safetensors"), &tensors);
}
