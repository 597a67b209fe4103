//! A tiny Llama model (one layer, hidden size 8, vocabulary 16) and a LoRA
//! adapter for it: the fixed counterparts of a fuzzed file (the weights
//! beside a fuzzed `config.json`, and so on) and seeds for the corpora.
//! A few kilobytes, so that a loading target runs thousands of times a second.

/// `config.json` of the tiny model.
pub const TINY_CONFIG: &str = r#"{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": 8,
  "intermediate_size": 12,
  "num_hidden_layers": 1,
  "num_attention_heads": 2,
  "num_key_value_heads": 1,
  "head_dim": 4,
  "hidden_act": "silu",
  "max_position_embeddings": 64,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "vocab_size": 16,
  "bos_token_id": 1,
  "eos_token_id": 2
}
"#;

/// `adapter_config.json` of the tiny adapter (rank 2 on `q_proj` and `v_proj`).
pub const TINY_ADAPTER_CONFIG: &str = r#"{
  "peft_type": "LORA",
  "base_model_name_or_path": "tiny-llama",
  "r": 2,
  "lora_alpha": 4,
  "bias": "none",
  "use_rslora": false,
  "use_dora": false,
  "rank_pattern": {},
  "alpha_pattern": {},
  "target_modules": ["q_proj", "v_proj"]
}
"#;

/// The tiny model's `model.safetensors`.
pub fn tiny_weights() -> Vec<u8> {
    let layer = |name: &str| format!("model.layers.0.{name}");
    let tensors = [
        ("lm_head.weight".to_string(), vec![16, 8]),
        ("model.embed_tokens.weight".to_string(), vec![16, 8]),
        ("model.norm.weight".to_string(), vec![8]),
        (layer("input_layernorm.weight"), vec![8]),
        (layer("post_attention_layernorm.weight"), vec![8]),
        (layer("self_attn.q_proj.weight"), vec![8, 8]),
        (layer("self_attn.k_proj.weight"), vec![4, 8]),
        (layer("self_attn.v_proj.weight"), vec![4, 8]),
        (layer("self_attn.o_proj.weight"), vec![8, 8]),
        (layer("mlp.gate_proj.weight"), vec![12, 8]),
        (layer("mlp.up_proj.weight"), vec![12, 8]),
        (layer("mlp.down_proj.weight"), vec![8, 12]),
    ];
    safetensors_bytes(&tensors)
}

/// The tiny adapter's `adapter_model.safetensors`.
pub fn tiny_adapter_weights() -> Vec<u8> {
    let module = |name: &str| format!("base_model.model.model.layers.0.self_attn.{name}");
    let tensors = [
        (module("q_proj.lora_A.weight"), vec![2, 8]),
        (module("q_proj.lora_B.weight"), vec![8, 2]),
        (module("v_proj.lora_A.weight"), vec![2, 8]),
        (module("v_proj.lora_B.weight"), vec![4, 2]),
    ];
    safetensors_bytes(&tensors)
}

/// A safetensors file of F32 tensors with small deterministic values; norms
/// (1-D) are ones.
fn safetensors_bytes(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (i, (name, shape)) in tensors.iter().enumerate() {
        let n: usize = shape.iter().product();
        let begin = data.len();
        for j in 0..n {
            let v = if shape.len() == 1 {
                1.0
            } else {
                ((i * 31 + j * 7) % 13) as f32 / 13.0 - 0.5
            };
            data.extend_from_slice(&f32::to_le_bytes(v));
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let mut header = serde_json::Value::Object(header).to_string().into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    out
}
