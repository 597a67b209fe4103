//! Writers for `perplex inspect`: a readable table and the versioned JSON.

use std::io::{self, Write};

use perplex_core::inspect::{Inspection, Level};

/// Writes `inspection` as pretty JSON followed by a newline.
pub fn write_inspection_json(inspection: &Inspection, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, inspection)?;
    writeln!(out)
}

/// Writes `inspection` as aligned `key  value` lines in three sections, then
/// the findings.
pub fn write_inspection_table(i: &Inspection, out: &mut dyn Write) -> io::Result<()> {
    let m = &i.model;
    let a = &i.architecture;
    let t = &i.tokenizer;
    let opt = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{x}"));
    let storage = m
        .storage
        .iter()
        .map(|s| {
            format!(
                "{} ({} tensors, {} params)",
                s.dtype, s.tensors, s.parameters
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
    let files = if m.files.len() == 1 {
        "1 file".to_string()
    } else {
        format!("{} files", m.files.len())
    };
    let special = |id: Option<u32>, text: &Option<String>| match (id, text) {
        (Some(id), Some(text)) => format!("{id} {text:?}"),
        (Some(id), None) => id.to_string(),
        _ => "-".into(),
    };
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mib = |b: u64| format!("{} MiB", b.div_ceil(1 << 20));
    let memory = match &i.memory {
        None => Vec::new(),
        Some(e) => vec![
            (
                "weights",
                format!("{} as held in memory", mib(e.weights_bytes)),
            ),
            (
                "one batch",
                format!(
                    "{} windows of {} tokens: {} working set, {} more per window",
                    e.batch,
                    e.context,
                    mib(e.working_bytes),
                    mib(e.working_bytes_per_window)
                ),
            ),
            (
                "peak",
                format!("{} (an estimate that errs high)", mib(e.peak_bytes)),
            ),
        ],
    };
    let sections: [(&str, Vec<(&str, String)>); 4] = [
        (
            "model",
            vec![
                ("path", m.path.clone()),
                ("format", m.format.clone()),
                ("size", format!("{bytes} bytes in {files}")),
                ("parameters", m.parameters.to_string()),
                ("storage", storage),
                (
                    "adapters",
                    if m.adapters.is_empty() {
                        "-".into()
                    } else {
                        m.adapters.join("; ")
                    },
                ),
            ],
        ),
        (
            "architecture",
            vec![
                ("name", a.name.clone()),
                ("family", a.family.clone()),
                ("layers", a.layers.to_string()),
                ("hidden size", a.hidden_size.to_string()),
                ("mlp size", a.intermediate_size.to_string()),
                (
                    "heads",
                    format!(
                        "{} query, {} key/value, {} wide",
                        a.heads, a.kv_heads, a.head_dim
                    ),
                ),
                ("vocabulary", format!("{} embedding rows", a.vocab_size)),
                (
                    "context",
                    a.context_length
                        .map_or_else(|| "no fixed limit".into(), |c| c.to_string()),
                ),
                ("positions", a.positions.clone()),
                (
                    "rope",
                    match (a.rope_theta, a.local_rope_theta) {
                        (None, _) => "-".into(),
                        (Some(g), None) => format!("theta {g}, scaling {}", a.rope_scaling),
                        (Some(g), Some(l)) => {
                            format!("theta {g} (local layers {l}), scaling {}", a.rope_scaling)
                        }
                    },
                ),
                ("attention", a.attention.clone()),
                ("norm", a.norm.clone()),
                ("activation", a.activation.clone()),
                ("tied embeddings", yes(a.tied_embeddings)),
                (
                    "soft-capping",
                    format!(
                        "attention {}, logits {}",
                        opt(a.attn_softcap),
                        opt(a.final_softcap)
                    ),
                ),
                ("needs BOS", yes(a.needs_bos)),
            ],
        ),
        (
            "tokenizer",
            vec![
                ("source", t.identity.source.clone()),
                ("kind", t.identity.kind.clone()),
                ("vocabulary", format!("{} tokens", t.identity.vocab_size)),
                ("BOS", special(t.identity.bos_id, &t.bos_token)),
                ("EOS", special(t.identity.eos_id, &t.eos_token)),
                ("adds BOS", yes(t.identity.adds_bos)),
                ("chat template", yes(t.chat_template)),
            ],
        ),
        ("memory", memory),
    ];
    let width = sections
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|(k, _)| k.len()))
        .max()
        .unwrap_or(0);
    let sections = sections.iter().filter(|(_, rows)| !rows.is_empty());
    for (n, (title, rows)) in sections.enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{title}")?;
        for (k, v) in rows {
            writeln!(out, "  {k:<width$}  {v}")?;
        }
    }
    writeln!(out)?;
    if i.checks.is_empty() {
        writeln!(out, "checks: all passed")?;
    } else {
        writeln!(out, "checks")?;
        for c in &i.checks {
            let level = match c.level {
                Level::Error => "error",
                Level::Warning => "warning",
                Level::Note => "note",
            };
            writeln!(out, "  {level}: {} [{}]", c.message, c.code)?;
            if let Some(hint) = &c.hint {
                writeln!(out, "    hint: {hint}")?;
            }
        }
    }
    Ok(())
}
