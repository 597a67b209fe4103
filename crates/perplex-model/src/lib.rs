//! Model loading and forward passes for perplex: the only crate that names
//! the ML framework (candle).
//!
//! [`load`] turns a model spec into a [`LoadedModel`]: a [`CausalLm`] that
//! scores windows exactly (f32 on the CPU, matching transformers' f32
//! forward pass), the model's tokenizer, and a [`ModelIdentity`] for the
//! report. A spec is a Hugging Face model folder or a `.gguf` file,
//! optionally `+ADAPTER` folders (see [`source`]); [`load_spec`] loads a
//! spec whose base was resolved elsewhere (the facade resolves
//! `org/name[@revision]` hub ids with `perplex-hub`: this crate never
//! touches the network).
//!
//! Supported families ([`Family`]): GPT-2, the Llama family (Llama 2/3,
//! Mistral, SmolLM, TinyLlama), Qwen2/2.5/3, Gemma 1/2/3 and Phi-3, from
//! `config.json` `architectures` or GGUF `general.architecture` (see
//! [`config::SUPPORTED_HF_ARCHITECTURES`] and
//! [`config::SUPPORTED_GGUF_ARCHITECTURES`]). Safetensors weights
//! in F32/F16/BF16 are converted to f32 at load; GGUF weights stay in their
//! stored type (F32, F16, BF16, Q4_0 … Q8_0, Q2_K … Q8_K) and are
//! dequantized into scratch just before use: one layer's matrices, and the
//! output head in tiles of rows, never a whole f32 copy of the model.
//! Matmuls are always `dequantized weights × activations`, never a
//! quantized dot product. The output head is fused with log-softmax: logits
//! are reduced to scores tile by tile and only for scored positions.
//!
//! # Kernels and compute modes
//!
//! Where the CPU has AVX2 and FMA (or AVX-512), the linear layers, the head
//! and attention run on `perplex-kernels` (dense weights packed once at
//! load, quantized ones dequantized into packed panels per use); elsewhere
//! on candle's f32 ops. [`Compute::Exact`] (the default) is f32 throughout;
//! [`Compute::Fast`] multiplies bf16-rounded weights and activations with
//! f32 sums where the CPU has AVX-512 BF16, else 12-bit weights × 16-bit
//! activations (each quantized in blocks of 32 with one f32 scale, exact
//! integer dots, f32 sums) where it has AVX-512 VNNI or AVX2 and FMA, else
//! fails with [`ModelError::FastModeUnsupported`]. The environment variable
//! `PERPLEX_KERNELS=candle` forces candle's ops in exact mode, and
//! [`FAST_PRODUCTS_VAR`]`=`[`INT16`] the int16 products in the
//! fast mode (to compare the paths).
//!
//! ```no_run
//! use perplex_core::{CausalLm, WindowRef};
//! use perplex_model::{load, LoadOptions};
//!
//! let mut loaded = load("models/SmolLM2-135M-Instruct.Q4_1.gguf", &LoadOptions::default())?;
//! let ids = loaded.tokenizer.encode("The quick brown fox jumps over the lazy dog.")?;
//! let scores = loaded.model.score_batch(&[WindowRef { tokens: &ids, score_from: 1 }])?;
//! println!("{} tokens scored", scores[0].len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Threads
//!
//! Forward passes run inside a rayon pool of [`LoadOptions::threads`]
//! threads, or of the process-wide [`set_threads`] count when that is unset:
//! candle's matmuls (gemm), softmax and norms, and perplex's own kernels
//! (products, attention, norms, `SiLU·up`, residual adds), head reduction
//! and dequantization run there. candle's element-wise kernels use
//! a separate pool that candle sizes once per process from
//! `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS` (default: physical cores), and
//! gemm splits its work into that many tasks. A binary that must stay within
//! N cores therefore also sets `RAYON_NUM_THREADS=N` in its environment
//! before any thread starts (a library cannot do that soundly).

pub mod config;
mod decoder;
pub mod error;
mod fused;
mod gguf;
pub mod gguf_vocab;
mod head;
pub mod inspect;
pub mod lora;
mod mapped;
mod matmul;
pub mod memory;
pub mod rope;
mod safetensors;
pub mod source;
#[cfg(test)]
mod test_util;
mod weights;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use perplex_core::inspect::{Check, Level};
use perplex_core::report::{Hash, ModelIdentity};
use perplex_core::CausalLm;
use perplex_data::tokenizer::TextTokenizer;

pub use config::{Family, ModelConfig, RopeScaling};
pub use decoder::Decoder;
pub use error::ModelError;
pub use inspect::{consistency_checks, inspect, inspect_spec};
pub use matmul::{FAST_PRODUCTS_VAR, INT16};
pub use source::{ModelSource, ModelSpec};

/// The process-wide thread count set by [`set_threads`]; 0: unset.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The most compute threads a model's pool gets: this machine's hardware
/// threads (more never speeds up compute-bound work, and a request of
/// thousands would stall the machine starting them).
pub fn max_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Sets the number of compute threads for models loaded afterwards without
/// an explicit [`LoadOptions::threads`] (at most [`max_threads`] are
/// started). See the crate docs, "Threads".
pub fn set_threads(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// The number of compute threads models loaded now use by default: the
/// [`set_threads`] count, else candle's (`RAYON_NUM_THREADS`, else the
/// physical cores).
pub fn threads() -> usize {
    threads_for(&LoadOptions::default())
}

/// The compute threads a model loaded with `opts` runs on.
pub fn threads_for(opts: &LoadOptions) -> usize {
    pool_threads(opts).unwrap_or_else(candle_core::utils::get_num_threads)
}

/// The size of the pool a model loaded with `opts` gets, capped at
/// [`max_threads`]; `None`: no pool of its own (candle's defaults).
fn pool_threads(opts: &LoadOptions) -> Option<usize> {
    opts.threads
        .or_else(|| Some(THREADS.load(Ordering::Relaxed)).filter(|&n| n > 0))
        .map(|n| n.min(max_threads()))
}

/// How to load a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Compute threads for forward passes; `None`: the [`set_threads`]
    /// count, else candle's defaults (see the crate docs, "Threads").
    pub threads: Option<usize>,
    /// The arithmetic of the forward pass.
    pub compute: Compute,
}

/// The arithmetic of the forward pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Compute {
    /// f32 activations and products throughout: transformers' f32 results
    /// within float noise (the golden tests' tolerances).
    #[default]
    Exact,
    /// The linear layers and the output head multiply bf16-rounded weights
    /// and activations with f32 accumulation (AVX-512 BF16 dot products),
    /// or where the CPU lacks AVX-512 BF16, 12-bit weights × 16-bit
    /// activations (AVX-512 VNNI or AVX2 integer dot products per block of
    /// 32, f32 sums); norms,
    /// attention, softmax and the log-sum-exp stay f32. Needs a CPU with
    /// AVX2 and FMA.
    Fast,
}

impl Compute {
    /// Whether this CPU can run the mode.
    pub fn supported(self) -> bool {
        match self {
            Compute::Exact => true,
            Compute::Fast => matmul::fast_precision().is_some(),
        }
    }

    /// The report's `compute_dtype`: the precision of the matrix products
    /// on this CPU (`f32`, or in the fast mode `bf16` or [`INT16`]:
    /// 12-bit weights × 16-bit activations).
    pub fn dtype(self) -> &'static str {
        match self {
            Compute::Exact => "f32",
            Compute::Fast => match matmul::fast_precision() {
                Some(perplex_kernels::Precision::Int16) => INT16,
                _ => "bf16",
            },
        }
    }
}

/// A model ready to score, its tokenizer, and what to record about it.
pub struct LoadedModel {
    /// The model's family (`None` for models from outside this crate, such
    /// as mocks).
    pub family: Option<Family>,
    /// Non-fatal findings of [`consistency_checks`] (warnings, notes).
    pub checks: Vec<Check>,
    /// The model behind the scoring seam.
    pub model: Box<dyn CausalLm + Send>,
    /// The model's tokenizer (from `tokenizer.json` or the GGUF vocabulary).
    pub tokenizer: TextTokenizer,
    /// Identity for the report.
    pub identity: ModelIdentity,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Where the tokenizer of a loaded model comes from.
enum TokenizerSource {
    HfFolder(PathBuf),
    Gguf(PathBuf, Box<candle_core::quantized::gguf_file::Content>),
}

/// Loads the model `spec` names by local paths ([`ModelSource::local`]):
/// the weights, the tokenizer, and the identity. Fails early: every file is
/// opened and checked before returning.
pub fn load(spec: &str, opts: &LoadOptions) -> Result<LoadedModel, ModelError> {
    let spec = ModelSpec::parse(spec)?;
    let source = ModelSource::local(&spec.base)?;
    load_spec(&spec, &source, opts)
}

/// Like [`load`], for a spec whose base is already resolved to `source`
/// (e.g. by a hub resolver).
pub fn load_spec(
    spec: &ModelSpec,
    source: &ModelSource,
    opts: &LoadOptions,
) -> Result<LoadedModel, ModelError> {
    let (model, identity, tokenizer_source) = load_parts(spec, source, opts)?;
    let tokenizer = load_tokenizer(&tokenizer_source)?;
    let mut checks = consistency_checks(model.config(), &tokenizer);
    checks.extend(model.untrained_adapters.iter().map(|p| untrained_check(p)));
    if let Some(check) = checks.iter().find(|c| c.level == Level::Error) {
        return Err(ModelError::Inconsistent {
            message: check.message.clone(),
            hint: check.hint.clone(),
        });
    }
    Ok(LoadedModel {
        family: Some(model.config().family),
        model: Box::new(model),
        tokenizer,
        identity,
        checks,
    })
}

/// The warning for an adapter whose every `lora_B` is zero.
pub(crate) fn untrained_check(path: &Path) -> Check {
    Check {
        level: Level::Warning,
        code: "untrained-lora".into(),
        message: format!(
            "adapter {} changes nothing: every lora_B matrix is zero, as PEFT initialises \
             them (an untrained LoRA)",
            path.display()
        ),
        hint: Some(
            "evaluate the adapter saved after training (e.g. the last checkpoint-N folder)".into(),
        ),
    }
}

/// The tokenizer a model folder or GGUF file carries.
fn load_tokenizer(source: &TokenizerSource) -> Result<TextTokenizer, ModelError> {
    match source {
        TokenizerSource::HfFolder(dir) => {
            TextTokenizer::from_hf_folder(dir).map_err(|source| ModelError::Tokenizer {
                path: dir.clone(),
                source: Box::new(source),
            })
        }
        TokenizerSource::Gguf(path, content) => {
            let vocab =
                gguf_vocab::vocab_from_gguf(content).map_err(|source| ModelError::GgufVocab {
                    path: path.clone(),
                    source: Box::new(source),
                })?;
            let source = format!("gguf:{}", path.display());
            TextTokenizer::from_gguf_vocab(&vocab, &source).map_err(|source| {
                ModelError::Tokenizer {
                    path: path.clone(),
                    source: Box::new(source),
                }
            })
        }
    }
}

/// The tokenizer a GGUF file's metadata describes, read without its
/// weights or its model configuration.
pub fn gguf_tokenizer(path: &Path) -> Result<TextTokenizer, ModelError> {
    let file = gguf::GgufFile::open(path)?;
    load_tokenizer(&TokenizerSource::Gguf(
        path.to_path_buf(),
        Box::new(file.content),
    ))
}

/// Like [`load`] without the tokenizer: the model and its identity.
pub fn load_model(spec: &str, opts: &LoadOptions) -> Result<(Decoder, ModelIdentity), ModelError> {
    let spec = ModelSpec::parse(spec)?;
    let source = ModelSource::local(&spec.base)?;
    let (model, identity, _) = load_parts(&spec, &source, opts)?;
    Ok((model, identity))
}

/// Splits `BASE+ADAPTER[+ADAPTER…]` into the base spec and the adapter
/// folders. A spec that exists as a path is never split, so a `+` in a file
/// name is fine.
pub fn split_spec(spec: &str) -> Result<(&str, Vec<PathBuf>), ModelError> {
    if spec.is_empty() {
        return Err(ModelError::EmptySpec {
            spec: String::new(),
        });
    }
    if Path::new(spec).exists() || !spec.contains('+') {
        return Ok((spec, Vec::new()));
    }
    if spec.split('+').any(str::is_empty) {
        return Err(ModelError::EmptySpec {
            spec: spec.to_string(),
        });
    }
    let mut parts = spec.split('+');
    let base = parts.next().unwrap_or_default();
    let adapters = parts
        .map(|a| {
            let path = PathBuf::from(a);
            if path.is_dir() {
                Ok(path)
            } else {
                Err(ModelError::InvalidAdapter {
                    path,
                    problem: "not found (an adapter is a PEFT folder: adapter_config.json and \
                              adapter_model.safetensors)"
                        .into(),
                })
            }
        })
        .collect::<Result<_, _>>()?;
    Ok((base, adapters))
}

fn load_parts(
    spec: &ModelSpec,
    source: &ModelSource,
    opts: &LoadOptions,
) -> Result<(Decoder, ModelIdentity, TokenizerSource), ModelError> {
    let adapters = &spec.adapters;
    let pool = match pool_threads(opts) {
        None => None,
        Some(threads) => Some(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|source| ModelError::ThreadPool { threads, source })?,
        )),
    };
    let (mut model, mut summary, mut hashed, tokenizer) = match source {
        ModelSource::HfFolder(dir) => {
            let config_path = dir.join("config.json");
            let text = fs_err::read_to_string(&config_path)?;
            let config = ModelConfig::from_hf_json(&text, &config_path)?;
            let mut set = safetensors::SafetensorsSet::open_folder(dir)?;
            let (model, summary) =
                decoder::build(config, decoder::Store::Hf(&mut set), adapters, opts.compute)?;
            let mut hashed = vec![config_path];
            hashed.extend(set.paths());
            (
                model,
                summary,
                hashed,
                TokenizerSource::HfFolder(dir.clone()),
            )
        }
        ModelSource::Gguf(path) => {
            let mut file = gguf::GgufFile::open(path)?;
            let config = gguf_config(&mut file)?;
            let (model, summary) = decoder::build(
                config,
                decoder::Store::Gguf(&mut file),
                adapters,
                opts.compute,
            )?;
            let content = Box::new(file.content);
            (
                model,
                summary,
                vec![path.clone()],
                TokenizerSource::Gguf(path.clone(), content),
            )
        }
    };
    model.set_pool(pool);
    for adapter in adapters {
        for (dtype, elems) in &adapter.storage {
            summary.add(dtype, *elems);
        }
        hashed.extend(adapter.files.iter().cloned());
    }
    let identity = ModelIdentity {
        spec: spec.spec.clone(),
        path: source.path().display().to_string(),
        format: source.format().to_string(),
        architecture: model.config().architecture.clone(),
        parameters: summary.parameters,
        weights: summary.describe(),
        compute_dtype: opts.compute.dtype().into(),
        device: "cpu".into(),
        kernels: Some(model.kernels_name().into()),
        family: Some(model.config().family.name().into()),
        adapters: adapters.iter().map(lora::LoraAdapter::describe).collect(),
        hash: Hash {
            algorithm: "blake3".into(),
            value: hash_files(&hashed)?,
        },
    };
    model.untrained_adapters = adapters
        .iter()
        .filter(|a| a.is_untrained())
        .map(|a| a.path.clone())
        .collect();
    Ok((model, identity, tokenizer))
}

/// The hyperparameters of a GGUF file, with the facts only its tensors tell:
/// the vocabulary (embedding rows), tied output, and RoPE factor tensors.
fn gguf_config(file: &mut gguf::GgufFile) -> Result<ModelConfig, ModelError> {
    let vocab_rows = match file.info("token_embd.weight") {
        Some((dims, _)) => dims[0],
        None => {
            return Err(ModelError::MissingTensor {
                name: "token_embd.weight".into(),
                path: file.path.clone(),
            })
        }
    };
    let mut vector = |name: &str| -> Result<Option<Vec<f32>>, ModelError> {
        match file.read(name)? {
            None => Ok(None),
            Some(q) => q
                .dequantize(&candle_core::Device::Cpu)
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .map(Some)
                .map_err(|source| ModelError::Backend {
                    context: format!("reading `{name}`"),
                    source: crate::error::candle_source(source),
                }),
        }
    };
    let facts = config::GgufTensorFacts {
        vocab_rows,
        rope_freqs: vector("rope_freqs.weight")?,
        rope_short: vector("rope_factors_short.weight")?,
        rope_long: vector("rope_factors_long.weight")?,
        tied: file.info("output.weight").is_none(),
    };
    let mut config = ModelConfig::from_gguf(&file.content, &file.path, facts)?;
    if config.vocab_size != vocab_rows {
        return Err(ModelError::InvalidConfig {
            path: file.path.clone(),
            problem: format!(
                "{}.vocab_size is {} but token_embd.weight has {vocab_rows} rows",
                config.architecture, config.vocab_size
            ),
        });
    }
    config.vocab_size = vocab_rows;
    Ok(config)
}

/// blake3 of the concatenation of `paths`, streamed (`cat paths… | b3sum`).
fn hash_files(paths: &[PathBuf]) -> Result<String, ModelError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    for path in paths {
        let mut f = fs_err::File::open(Path::new(path))?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};

    #[test]
    fn specs_with_an_empty_part_are_refused_naming_the_spec() {
        for spec in ["", "base+", "+adapter", "base++adapter"] {
            let err = split_spec(spec).unwrap_err();
            assert!(matches!(err, ModelError::EmptySpec { .. }), "{spec}: {err}");
            assert!(err.hint().is_some());
        }
        assert_eq!(
            split_spec("base+").unwrap_err().to_string(),
            "model spec `base+` has an empty part (nothing on one side of a `+`)"
        );
        assert_eq!(
            split_spec("").unwrap_err().to_string(),
            "the model spec is empty"
        );
    }

    fn write_gguf(path: &Path, arch: &str) {
        let mut f = std::fs::File::create(path).unwrap();
        let arch = gguf_file::Value::String(arch.into());
        let embd =
            candle_core::Tensor::zeros((8, 32), candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap();
        let embd = QTensor::quantize(&embd, GgmlDType::F32).unwrap();
        gguf_file::write(
            &mut f,
            &[("general.architecture", &arch)],
            &[("token_embd.weight", &embd)],
        )
        .unwrap();
    }

    #[test]
    fn other_gguf_architectures_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.gguf");
        write_gguf(&path, "mamba");
        let err = load_model(path.to_str().unwrap(), &LoadOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "unsupported architecture `mamba` in {} (supported: {})",
                path.display(),
                config::SUPPORTED_GGUF_ARCHITECTURES.join(", ")
            )
        );
        // a llama file without its hyperparameters
        write_gguf(&path, "llama");
        let err = load_model(path.to_str().unwrap(), &LoadOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid model configuration in {}: `llama.embedding_length` is missing",
                path.display()
            )
        );
    }

    #[test]
    fn a_gguf_tokenizer_reads_alone() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama-q8_0.gguf");
        let tokenizer = gguf_tokenizer(&path).unwrap();
        assert_eq!(tokenizer.vocab_size(), 384);
        assert!(tokenizer.source().starts_with("gguf:"));
        let err = gguf_tokenizer(Path::new("no-such.gguf")).unwrap_err();
        assert!(err.to_string().contains("no-such.gguf"), "{err}");
    }

    #[test]
    fn hashes_are_of_the_concatenated_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::write(&a, b"hello ").unwrap();
        std::fs::write(&b, b"world").unwrap();
        assert_eq!(
            hash_files(&[a, b]).unwrap(),
            blake3::hash(b"hello world").to_hex().to_string()
        );
    }

    #[test]
    fn the_thread_setting_has_a_default() {
        assert!(threads() >= 1);
    }
}
