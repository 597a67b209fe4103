//! Writes the fuzzers' seed inputs into `OUT/<target>/` from the test
//! fixtures (`tests/fixtures`) and the tiny model of `perplex-fuzz`:
//!
//! ```text
//! cargo run -p perplex-fuzz --example make-seeds -- fuzz/corpus
//! ```
//!
//! Large fixtures are cut down so that the fuzzers mutate headers, not
//! weights: GGUF files are kept up to the start of their tensor data (plus
//! one small model whole), the `gguf_vocab` seeds are GGUF headers with the
//! metadata only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Content};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: make-seeds OUT")?);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures = root.join("tests/fixtures");
    let mut files = Vec::new();
    walk(&fixtures, &mut files)?;
    files.sort();
    let named = |name: &'static str| {
        files
            .iter()
            .filter(move |p| p.file_name().is_some_and(|n| n == name))
    };
    let mut seeds = Seeds::new(&out);

    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
    {
        let bytes = std::fs::read(path)?;
        let content = Content::read(&mut std::io::Cursor::new(&bytes))?;
        let header = &bytes[..content.tensor_data_offset as usize];
        seeds.add("gguf", header)?;
        if bytes.len() <= 100_000 {
            seeds.add("gguf", &bytes)?;
        }
        let metadata: Vec<(&str, &gguf_file::Value)> = content
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let mut vocab_only = Vec::new();
        gguf_file::write(&mut std::io::Cursor::new(&mut vocab_only), &metadata, &[])?;
        seeds.add("gguf_vocab", &vocab_only)?;
    }

    seeds.add("safetensors", &perplex_fuzz::tiny_weights())?;
    seeds.add("safetensors", &perplex_fuzz::tiny_adapter_weights())?;
    for path in named("adapter_model.safetensors").take(2) {
        seeds.add("safetensors", &std::fs::read(path)?)?;
    }
    for path in named("model.safetensors").take(3) {
        // the header alone: its offsets then point past the end
        let bytes = std::fs::read(path)?;
        let len = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
        seeds.add("safetensors", &bytes[..8 + len])?;
    }

    seeds.add("hf_config", perplex_fuzz::TINY_CONFIG.as_bytes())?;
    for path in named("config.json") {
        seeds.add("hf_config", &std::fs::read(path)?)?;
    }
    seeds.add(
        "adapter_config",
        perplex_fuzz::TINY_ADAPTER_CONFIG.as_bytes(),
    )?;
    for path in named("adapter_config.json") {
        seeds.add("adapter_config", &std::fs::read(path)?)?;
    }
    for path in named("tokenizer.json") {
        seeds.add("tokenizer_json", &std::fs::read(path)?)?;
    }
    for path in named("trainer_state.json") {
        seeds.add("trainer_state", &std::fs::read(path)?)?;
    }

    let text = std::fs::read_to_string(fixtures.join("multilingual/udhr-article1.txt"))?;
    let sample: String = text.chars().take(1500).collect();
    let jsonl: String = sample
        .split("\n\n")
        .map(|p| format!("{}\n", serde_json::json!({ "text": p, "id": 1 })))
        .collect();
    for (mode, body) in [(0u8, &sample), (1, &sample), (2, &sample), (3, &jsonl)] {
        let mut input = vec![mode];
        input.extend_from_slice(body.as_bytes());
        seeds.add("corpus", &input)?;
    }
    seeds.report();
    Ok(())
}

/// Every file under `dir`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Seed files by target, written once per distinct content.
struct Seeds<'a> {
    out: &'a Path,
    seen: BTreeSet<(String, Vec<u8>)>,
}

impl<'a> Seeds<'a> {
    fn new(out: &'a Path) -> Self {
        Seeds {
            out,
            seen: BTreeSet::new(),
        }
    }

    fn add(&mut self, target: &str, bytes: &[u8]) -> std::io::Result<()> {
        if !self.seen.insert((target.to_string(), bytes.to_vec())) {
            return Ok(());
        }
        let dir = self.out.join(target);
        std::fs::create_dir_all(&dir)?;
        let n = self.seen.iter().filter(|(t, _)| t == target).count();
        std::fs::write(dir.join(format!("seed-{n:03}")), bytes)
    }

    #[allow(clippy::print_stdout)]
    fn report(&self) {
        let targets: BTreeSet<&String> = self.seen.iter().map(|(t, _)| t).collect();
        for target in targets {
            let (n, bytes) = self
                .seen
                .iter()
                .filter(|(t, _)| t == target)
                .fold((0, 0), |(n, b), (_, s)| (n + 1, b + s.len()));
            println!("{target}: {n} seeds, {bytes} bytes");
        }
    }
}
