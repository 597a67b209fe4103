//! Why a model could not be found or loaded.

use std::path::PathBuf;

use perplex_data::tokenizer::TokenizerError;

/// Everything that can go wrong between a model spec and a loaded model.
///
/// Messages are lowercase, quote the path or value at fault, and never repeat
/// their cause (which is the error's `source`). [`ModelError::hint`] suggests
/// what to do next where there is something useful to say.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The spec's base is no existing path (and no resolver, such as the
    /// facade's hub, claimed it).
    #[error("model `{spec}` not found; looked in: {}", display_paths(searched))]
    NotFound {
        /// What the user passed.
        spec: String,
        /// Every place that was tried, in order.
        searched: Vec<PathBuf>,
    },
    /// The spec is neither a path nor an `org/name[@revision]` hub id.
    #[error("model `{spec}` is neither an existing path nor an `org/name[@revision]` hub id")]
    InvalidSpec {
        /// What the user passed.
        spec: String,
    },
    /// A spec with nothing on one side of a `+` (or nothing at all).
    #[error(
        "{}",
        if spec.is_empty() {
            "the model spec is empty".to_string()
        } else {
            format!("model spec `{spec}` has an empty part (nothing on one side of a `+`)")
        }
    )]
    EmptySpec {
        /// What the user passed.
        spec: String,
    },
    /// A folder was found but holds no loadable model.
    #[error("{path} holds no model: {problem}")]
    NoModelFiles {
        /// The folder.
        path: PathBuf,
        /// What is missing, e.g. `no config.json`.
        problem: String,
    },
    /// A shard index names shard files that are not beside it.
    #[error(
        "{} names {} of its {listed} shard(s) that are not in its folder: {}",
        index.display(),
        missing.len(),
        missing.join(", ")
    )]
    MissingShards {
        /// `model.safetensors.index.json`.
        index: PathBuf,
        /// The missing shards' file names.
        missing: Vec<String>,
        /// Shards the index lists.
        listed: usize,
    },
    /// A shard index names a shard outside its folder (a path, not a file name).
    #[error("{} names the shard {shard:?}, which is not a file name beside it", index.display())]
    ShardOutsideFolder {
        /// `model.safetensors.index.json`.
        index: PathBuf,
        /// The shard as named.
        shard: String,
    },
    /// A file could not be read (the message of the cause names the file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A JSON file (config.json, a shard index) is not valid JSON of the expected shape.
    #[error("cannot parse {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A hyperparameter is missing or out of range.
    #[error("invalid model configuration in {path}: {problem}")]
    InvalidConfig {
        /// The config.json or GGUF file.
        path: PathBuf,
        /// Which value and why.
        problem: String,
    },
    /// The architecture is not one perplex implements.
    #[error("unsupported architecture `{architecture}` in {path} (supported: {supported})")]
    UnsupportedArchitecture {
        /// The config.json or GGUF file.
        path: PathBuf,
        /// What the file declares.
        architecture: String,
        /// The supported names, comma separated.
        supported: String,
    },
    /// A RoPE scaling variant perplex does not implement.
    #[error(
        "unsupported rope scaling `{kind}` in {path} (supported: none, linear, dynamic, llama3, longrope)"
    )]
    UnsupportedRopeScaling {
        /// The config.json or GGUF file.
        path: PathBuf,
        /// The declared scaling type.
        kind: String,
    },
    /// A tensor the architecture needs is not in the weight files.
    #[error("tensor `{name}` is missing from {path}")]
    MissingTensor {
        /// The tensor name.
        name: String,
        /// The weight file (or folder, for sharded checkpoints).
        path: PathBuf,
    },
    /// A tensor has a shape the configuration does not allow.
    #[error("tensor `{name}` in {path} has shape {actual:?}, expected {expected:?}")]
    TensorShape {
        /// The tensor name.
        name: String,
        /// The weight file.
        path: PathBuf,
        /// Shape in the file.
        actual: Vec<usize>,
        /// Shape the configuration implies.
        expected: Vec<usize>,
    },
    /// A safetensors file whose header or data is inconsistent.
    #[error("safetensors file {path} is truncated or corrupt: {problem}")]
    CorruptSafetensors {
        /// The file.
        path: PathBuf,
        /// What is inconsistent.
        problem: String,
        /// The JSON error, when the header does not parse.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// A safetensors tensor stored in a type perplex does not convert.
    #[error("tensor `{name}` in {path} has dtype {dtype} (supported: F32, F16, BF16)")]
    UnsupportedDtype {
        /// The tensor name.
        name: String,
        /// The file.
        path: PathBuf,
        /// The stored dtype.
        dtype: String,
    },
    /// A GGUF file that could not be parsed.
    #[error("cannot read gguf file {path}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: Box<candle_core::Error>,
    },
    /// A GGUF file whose header parses but describes impossible tensors.
    #[error("gguf file {path} is corrupt: {problem}")]
    CorruptGguf {
        /// The file.
        path: PathBuf,
        /// What is inconsistent.
        problem: String,
    },
    /// A GGUF tensor whose data could not be read (e.g. the file ends early).
    #[error("cannot read tensor `{name}` from gguf file {path}")]
    GgufTensor {
        /// The tensor name.
        name: String,
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: Box<candle_core::Error>,
    },
    /// A GGUF tensor in a quantization type perplex cannot dequantize.
    #[error(
        "tensor `{name}` in {path} uses quantization type {dtype}, which perplex cannot dequantize \
         (supported: {SUPPORTED_GGML_TYPES})"
    )]
    UnsupportedQuantization {
        /// The tensor name.
        name: String,
        /// The file.
        path: PathBuf,
        /// The type, e.g. `iq2_xxs (16)`.
        dtype: String,
    },
    /// The tokenizer could not be built.
    #[error("cannot load the tokenizer for {path}")]
    Tokenizer {
        /// The model folder or GGUF file.
        path: PathBuf,
        /// The tokenizer error.
        #[source]
        source: Box<TokenizerError>,
    },
    /// The tokenizer vocabulary of a GGUF file could not be read.
    #[error("cannot read the tokenizer vocabulary of gguf file {path}")]
    GgufVocab {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<crate::gguf_vocab::GgufVocabError>,
    },
    /// The tokenizer can produce ids the model has no embedding for.
    #[error(
        "the tokenizer has {tokenizer} tokens but the model's embedding has only {model} rows"
    )]
    VocabMismatch {
        /// Tokenizer vocabulary size.
        tokenizer: usize,
        /// Embedding rows.
        model: usize,
    },
    /// The tokenizer's BOS or EOS id is not a row of the embedding.
    #[error("the tokenizer's {token} id {id} is outside the model's {rows} embedding rows")]
    SpecialTokenOutOfRange {
        /// `BOS` or `EOS`.
        token: &'static str,
        /// The id.
        id: u32,
        /// Embedding rows.
        rows: usize,
    },
    /// A PEFT adapter folder that cannot be used.
    #[error("invalid adapter {path}: {problem}")]
    InvalidAdapter {
        /// The adapter folder.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// An adapter's low-rank matrices do not fit the module they adapt.
    #[error(
        "the adapter's `{module}` has lora_A {a:?} and lora_B {b:?}, which do not fit the base's \
         [{}, {}] weight",
        expected[0],
        expected[1]
    )]
    AdapterShape {
        /// The module.
        module: String,
        /// lora_A's shape.
        a: Vec<usize>,
        /// lora_B's shape.
        b: Vec<usize>,
        /// The base weight's `[out, in]`.
        expected: [usize; 2],
    },
    /// An adapter's modules do not exist in the base model.
    #[error(
        "adapter {path} targets modules the base model does not have: {}",
        modules.join(", ")
    )]
    AdapterMismatch {
        /// The adapter folder.
        path: PathBuf,
        /// The module or tensor names that found no place, sorted.
        modules: Vec<String>,
    },
    /// The tokenizer and the model disagree (see [`crate::consistency_checks`]).
    #[error("{message}")]
    Inconsistent {
        /// The finding.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The thread pool for the requested thread count could not be built.
    #[error("cannot start a pool of {threads} compute threads")]
    ThreadPool {
        /// Requested threads.
        threads: usize,
        /// The cause.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// The kernels' instruction-set cap in the environment names none.
    #[error(transparent)]
    CpuCap(#[from] perplex_kernels::CpuCapError),
    /// The fast mode was asked for on a CPU without the instructions it needs.
    #[error(
        "the fast compute mode needs a CPU with AVX-512 BF16, AVX-512 VNNI or AVX2 and FMA, \
         which this one lacks"
    )]
    FastModeUnsupported,
    /// The tensor library failed while preparing the model.
    #[error("the model backend failed while {context}")]
    Backend {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: Box<candle_core::Error>,
    },
}

/// The GGUF tensor types perplex dequantizes, as listed in error messages.
pub(crate) const SUPPORTED_GGML_TYPES: &str =
    "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, q2_k, q3_k, q4_k, q5_k, q6_k, q8_k";

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ModelError {
    /// A suggestion for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            ModelError::NotFound { .. } | ModelError::InvalidSpec { .. } => Some(
                "pass the path of a Hugging Face model folder (with config.json), a .gguf file, \
                 or an `org/name[@revision]` Hugging Face hub id"
                    .into(),
            ),
            ModelError::NoModelFiles { .. } => Some(
                "a model folder needs config.json and model.safetensors (or \
                 model.safetensors.index.json with its shards); PyTorch .bin checkpoints are not \
                 read"
                    .into(),
            ),
            ModelError::ShardOutsideFolder { .. } => Some(
                "the index is corrupt or was made to point elsewhere: shards are plain file \
                 names beside it; download the model again"
                    .into(),
            ),
            ModelError::MissingShards { .. } => Some(
                "the download is incomplete: download the model again (or copy the missing \
                 shards beside the index)"
                    .into(),
            ),
            ModelError::CorruptSafetensors { .. }
            | ModelError::Gguf { .. }
            | ModelError::CorruptGguf { .. }
            | ModelError::GgufTensor { .. } => Some(
                "the file may be truncated or corrupt (an interrupted download?); download it again"
                    .into(),
            ),
            ModelError::UnsupportedArchitecture { .. } => Some(
                "perplex implements GPT-2, the Llama family (Llama 2/3, Mistral, SmolLM, \
                 TinyLlama), Qwen2/2.5/3, Gemma 1/2/3 and Phi-3; `perplex inspect MODEL` shows \
                 what a model declares"
                    .into(),
            ),
            ModelError::UnsupportedQuantization { .. } => Some(
                "use a GGUF with one of the supported types (e.g. q8_0 or q4_k_m), or the \
                 safetensors model folder"
                    .into(),
            ),
            ModelError::MissingTensor { .. } | ModelError::TensorShape { .. } => Some(
                "the weights do not match the configuration: a different model, or an incomplete \
                 download?"
                    .into(),
            ),
            ModelError::CpuCap(_) => Some(format!(
                "set {} to avx2 or portable, or unset it to use every instruction set this CPU has",
                perplex_kernels::CPU_CAP_VAR
            )),
            ModelError::FastModeUnsupported => {
                Some("leave out --fast: the exact mode runs on every CPU".into())
            }
            ModelError::Tokenizer { source, .. } => source.hint(),
            ModelError::GgufVocab { source, .. } => source.hint(),
            ModelError::Inconsistent { hint, .. } => hint.clone(),
            ModelError::AdapterMismatch { .. } | ModelError::AdapterShape { .. } => Some(
                "the adapter was trained on another model (see base_model_name_or_path in its \
                 adapter_config.json); give that model as the base"
                    .into(),
            ),
            ModelError::VocabMismatch { .. } | ModelError::SpecialTokenOutOfRange { .. } => Some(
                "the tokenizer and the weights seem to come from different models".into(),
            ),
            ModelError::EmptySpec { .. } => Some(
                "give a model path or hub id, and an adapter folder after each `+`: \
                 BASE+ADAPTER[+ADAPTER…]"
                    .into(),
            ),
            ModelError::Io(_) => Some("check that the model's files exist and are readable".into()),
            ModelError::Json { .. } => Some(
                "the file is not the JSON its name promises (cut off, or edited by hand?); \
                 download it again, or restore it from the model's original"
                    .into(),
            ),
            ModelError::InvalidConfig { .. } => Some(
                "the model's configuration is damaged or contradicts itself; download it again, \
                 or compare it with the original (`perplex inspect MODEL` shows what it declares)"
                    .into(),
            ),
            ModelError::UnsupportedRopeScaling { .. } => Some(
                "perplex cannot compute this model's positions exactly; evaluate a model with \
                 one of the supported scalings"
                    .into(),
            ),
            ModelError::UnsupportedDtype { .. } => Some(
                "save the weights as float32, float16 or bfloat16 (e.g. `model.half()` then \
                 `save_pretrained` in transformers), or use a GGUF file of the model"
                    .into(),
            ),
            ModelError::InvalidAdapter { .. } => Some(
                "an adapter is a PEFT LoRA folder as `save_pretrained` writes it \
                 (adapter_config.json and adapter_model.safetensors), given as BASE+ADAPTER; \
                 other adapters can be merged into the base with PEFT's `merge_and_unload()` \
                 and the merged model evaluated"
                    .into(),
            ),
            ModelError::ThreadPool { .. } => {
                Some("use fewer --threads, or leave --threads out".into())
            }
            ModelError::Backend { .. } => Some(
                "the model's files may be damaged; if they load elsewhere, report it with the \
                 model and the command"
                    .into(),
            ),
        }
    }
}

/// A candle error as a cause: without the backtrace candle captures when
/// `RUST_BACKTRACE` is set (its `Display` would print tens of framework
/// frames into the user's `caused by:` line); the message and any path or
/// context it carries are kept.
pub(crate) fn candle_source(e: candle_core::Error) -> Box<candle_core::Error> {
    fn strip(e: candle_core::Error) -> candle_core::Error {
        match e {
            candle_core::Error::WithBacktrace { inner, .. } => strip(*inner),
            candle_core::Error::WithPath { inner, path } => candle_core::Error::WithPath {
                inner: Box::new(strip(*inner)),
                path,
            },
            candle_core::Error::Context { inner, context } => candle_core::Error::Context {
                inner: Box::new(strip(*inner)),
                context,
            },
            other => other,
        }
    }
    Box::new(strip(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_causes_lose_their_backtrace_and_keep_their_context() {
        let with_bt = |inner: candle_core::Error| candle_core::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let boom = with_bt(candle_core::Error::Msg("boom".into()));
        assert!(boom.to_string().lines().count() > 1);
        assert_eq!(candle_source(boom).to_string(), "boom");
        let nested = candle_core::Error::WithPath {
            inner: Box::new(with_bt(candle_core::Error::Msg("bad header".into()))),
            path: "model.safetensors".into(),
        };
        assert_eq!(
            candle_source(with_bt(nested)).to_string(),
            "path: \"model.safetensors\" bad header"
        );
    }
}
