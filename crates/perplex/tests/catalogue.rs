//! The catalogue of bad input and hostile requests: corrupt, truncated and
//! inconsistent model files of every format, tokenizer/model and adapter
//! mismatches, broken corpora, absurd or inconsistent flags, unwritable
//! outputs, signals. Every case runs the real binary (with
//! `RUST_BACKTRACE=1`, so a leaked backtrace would show) and must:
//!
//! - exit with its documented code (README, "Exit codes");
//! - print exactly one `error:` line, holding the case's expected text, and
//!   at least one `  hint:` line;
//! - never panic, never print a backtrace;
//! - never print NaN or inf as a number on stdout;
//! - end within [`TIMEOUT`] (it is killed and fails otherwise: no hang).
//!
//! The user-facing table `docs/errors.md` is rendered from these cases and
//! the error and hint lines they actually print (paths replaced by
//! placeholders); after the cases, the test compares it with the committed
//! file. `PERPLEX_UPDATE_DOCS=1 cargo test -p perplex --test catalogue`
//! rewrites the file instead. The comparison runs only when every case ran
//! (no filter); a case that cannot run here (a file mode that root ignores)
//! shows as ignored, with the reason, and keeps its committed row.
//!
//! A `harness = false` test (each case is a test of its own, so cargo's
//! filters and `--list` work).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::{json, Value};

/// How long a case may run before it counts as a hang.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The adapter most adapter cases start from.
const LORA: &str = "lora/tiny-llama-lora";

/// The docs file the catalogue renders, relative to the workspace root.
const DOCS: &str = "docs/errors.md";

/// A step that prepares a case's temp folder.
type Step = Box<dyn Fn(&Path) + Send + Sync>;

/// Why a case cannot run here, when it cannot (decided at run time).
type Precondition = fn(&Path) -> Option<String>;

/// One bad input: what it is, how to make it, what perplex must answer.
struct Case {
    /// Short, unique, kebab-case.
    id: &'static str,
    /// The input, in one line, for the docs.
    input: &'static str,
    /// The exit code.
    code: i32,
    /// A part of the `error:` line.
    expect: &'static str,
    /// The arguments, with placeholders (see [`expand`]).
    args: Vec<String>,
    /// Files to make in the temp folder, in order.
    steps: Vec<Step>,
    /// What stdin holds.
    stdin: Vec<u8>,
    /// stdout is `/dev/full`.
    stdout_full: bool,
    /// A signal (`-INT`, `-TERM`) sent once stderr shows the marker.
    signal: Option<(&'static str, &'static str)>,
    /// A file (in the temp folder) whose OS lock the test holds meanwhile.
    hold_lock: Option<&'static str>,
    /// Checked after the steps: a reason to ignore the case here.
    precondition: Option<Precondition>,
    /// Run perplex as an unprivileged user when the test runs as root
    /// (for whom file modes deny nothing).
    unprivileged: bool,
    /// Environment variables set for the run.
    env: Vec<(&'static str, &'static str)>,
}

fn case(id: &'static str, input: &'static str, code: i32, expect: &'static str) -> Case {
    Case {
        id,
        input,
        code,
        expect,
        args: Vec::new(),
        steps: Vec::new(),
        stdin: Vec::new(),
        stdout_full: false,
        signal: None,
        hold_lock: None,
        precondition: None,
        unprivileged: false,
        env: Vec::new(),
    }
}

impl Case {
    fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// `perplex eval -m MODEL -c 32 <text>`.
    fn eval(self, model: &str) -> Self {
        self.args(&["eval", "-m", model, "-c", "32", "The cat sat on the mat."])
    }

    /// `perplex eval -m {uniform} EXTRA…`.
    fn uniform(self, extra: &[&str]) -> Self {
        let mut args = vec!["eval", "-m", "{uniform}"];
        args.extend(extra);
        self.args(&args)
    }

    fn env(mut self, name: &'static str, value: &'static str) -> Self {
        self.env.push((name, value));
        self
    }

    fn step(mut self, step: impl Fn(&Path) + Send + Sync + 'static) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// Writes `bytes` to `name`.
    fn file(self, name: &'static str, bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> Self {
        self.step(move |dir| write(&dir.join(name), bytes.as_ref()))
    }

    /// Copies the fixture `rel` (a file or folder) to `name`.
    fn fixture(self, rel: &'static str, name: &'static str) -> Self {
        self.step(move |dir| copy(&common::fixture(rel), &dir.join(name)))
    }

    /// A copy of tiny-llama as `m/`.
    fn llama(self) -> Self {
        self.fixture("tiny-llama", "m")
    }

    /// Edits the JSON file `name`.
    fn json(self, name: &'static str, edit: fn(&mut Value)) -> Self {
        self.step(move |dir| {
            let path = dir.join(name);
            let mut value: Value = serde_json::from_slice(&read(&path)).unwrap();
            edit(&mut value);
            write(&path, &serde_json::to_vec_pretty(&value).unwrap());
        })
    }

    /// Removes the file `name`.
    fn remove(self, name: &'static str) -> Self {
        self.step(move |dir| std::fs::remove_file(dir.join(name)).unwrap())
    }

    /// Rewrites the file `name` through `edit`.
    fn bytes(self, name: &'static str, edit: fn(&mut Vec<u8>)) -> Self {
        self.step(move |dir| {
            let path = dir.join(name);
            let mut bytes = read(&path);
            edit(&mut bytes);
            write(&path, &bytes);
        })
    }

    /// Rewrites the safetensors file `name`: its header and data.
    fn safetensors(self, name: &'static str, edit: fn(&mut Value, &mut Vec<u8>)) -> Self {
        self.step(move |dir| {
            let path = dir.join(name);
            let (mut header, mut data) = Safetensors::split(&read(&path));
            edit(&mut header, &mut data);
            write(&path, &Safetensors::join(&header, &data));
        })
    }

    /// `m.gguf`: the q8_0 tiny-llama GGUF, patched by `edit`.
    fn gguf(self, edit: fn(&mut Gguf)) -> Self {
        self.step(move |dir| {
            let mut gguf = Gguf::parse(read(&common::fixture("tiny-llama-q8_0.gguf")));
            edit(&mut gguf);
            write(&dir.join("m.gguf"), &gguf.bytes);
        })
        .eval("m.gguf")
    }

    fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = bytes.to_vec();
        self
    }

    fn stdout_full(mut self) -> Self {
        self.stdout_full = true;
        self
    }

    fn signal(mut self, signal: &'static str, marker: &'static str) -> Self {
        self.signal = Some((signal, marker));
        self
    }

    fn hold_lock(mut self, name: &'static str) -> Self {
        self.hold_lock = Some(name);
        self
    }

    fn precondition(mut self, check: Precondition) -> Self {
        self.precondition = Some(check);
        self
    }

    fn unprivileged(mut self) -> Self {
        self.unprivileged = true;
        self
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Copies a file, or a folder's files (one level, as the fixtures are;
/// deeper folders recursively).
fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

/// A safetensors file as its JSON header and its data section.
struct Safetensors;

impl Safetensors {
    fn split(bytes: &[u8]) -> (Value, Vec<u8>) {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        (header, bytes[8 + n..].to_vec())
    }

    fn join(header: &Value, data: &[u8]) -> Vec<u8> {
        let mut header = serde_json::to_vec(header).unwrap();
        // the data section stays 8-byte aligned, as writers keep it
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header);
        out.extend(data);
        out
    }

    /// The data range of tensor `name`.
    fn range(header: &Value, name: &str) -> std::ops::Range<usize> {
        let offsets = &header[name]["data_offsets"];
        offsets[0].as_u64().unwrap() as usize..offsets[1].as_u64().unwrap() as usize
    }

    /// Fills tensor `name` (f32) with `value`.
    fn fill(header: &Value, data: &mut [u8], name: &str, value: f32) {
        for chunk in data[Self::range(header, name)].chunks_exact_mut(4) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
    }
}

/// A GGUF file with the byte positions of its fields, for patching.
struct Gguf {
    bytes: Vec<u8>,
    /// Metadata key → (position of its value type, position of its value).
    kv: BTreeMap<String, (usize, usize)>,
    /// Tensor name → position of its n_dims, its type, its offset.
    tensors: BTreeMap<String, (usize, usize, usize)>,
}

impl Gguf {
    fn parse(bytes: Vec<u8>) -> Gguf {
        let u32_at = |p: usize| u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap());
        let u64_at = |p: usize| u64::from_le_bytes(bytes[p..p + 8].try_into().unwrap()) as usize;
        fn skip(bytes: &[u8], p: usize, ty: u32) -> usize {
            let u64_at = |p: usize| u64::from_le_bytes(bytes[p..p + 8].try_into().unwrap());
            match ty {
                0 | 1 | 7 => p + 1,
                2 | 3 => p + 2,
                4..=6 => p + 4,
                8 => p + 8 + u64_at(p) as usize,
                9 => {
                    let item = u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap());
                    let n = u64_at(p + 4);
                    (0..n).fold(p + 12, |q, _| skip(bytes, q, item))
                }
                10..=12 => p + 8,
                other => panic!("gguf value type {other}"),
            }
        }
        assert_eq!(&bytes[..4], b"GGUF");
        let (n_tensors, n_kv) = (u64_at(8), u64_at(16));
        let mut p = 24;
        let string = |p: usize| {
            let n = u64_at(p);
            (
                String::from_utf8(bytes[p + 8..p + 8 + n].to_vec()).unwrap(),
                p + 8 + n,
            )
        };
        let mut kv = BTreeMap::new();
        for _ in 0..n_kv {
            let (key, q) = string(p);
            kv.insert(key, (q, q + 4));
            p = skip(&bytes, q + 4, u32_at(q));
        }
        let mut tensors = BTreeMap::new();
        for _ in 0..n_tensors {
            let (name, q) = string(p);
            let dims = u32_at(q) as usize;
            let ty = q + 4 + 8 * dims;
            tensors.insert(name, (q, ty, ty + 4));
            p = ty + 12;
        }
        Gguf { bytes, kv, tensors }
    }

    fn put_u32(&mut self, at: usize, v: u32) {
        self.bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put_u64(&mut self, at: usize, v: u64) {
        self.bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets the u32 metadata value `key`.
    fn set_u32(&mut self, key: &str, v: u32) {
        let at = self.kv[key].1;
        self.put_u32(at, v);
    }

    /// Overwrites the bytes of the string value `key` (same length).
    fn set_string(&mut self, key: &str, v: &str) {
        let at = self.kv[key].1;
        assert_eq!(self.bytes[at] as usize, v.len());
        self.bytes[at + 8..at + 8 + v.len()].copy_from_slice(v.as_bytes());
    }

    /// Renames the metadata key `key` (same length).
    fn rename_key(&mut self, key: &str, to: &str) {
        assert_eq!(key.len(), to.len());
        let at = self.kv[key].0 - key.len();
        self.bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
    }

    fn tensor(&self, name: &str) -> (usize, usize, usize) {
        self.tensors[name]
    }
}

/// Whether the test runs as root (the owner of `/proc/self` is the
/// process's effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The user perplex runs as in [`Case::unprivileged`] cases under root.
const NOBODY: u32 = 65534;

/// Ignores a case where a file mode does not deny reading (a file system
/// that ignores modes); as root, perplex runs as [`NOBODY`] instead.
fn unreadable_denies(dir: &Path) -> Option<String> {
    (!is_root() && std::fs::read(dir.join("locked.txt")).is_ok())
        .then(|| "a file of mode 000 is readable here".into())
}

/// Every case. Ids are unique; the docs table lists them in this order.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for group in [
        model_cases,
        config_cases,
        architecture_cases,
        weight_cases,
        gguf_cases,
        tokenizer_cases,
        adapter_cases,
        mock_and_compare_cases,
        corpus_cases,
        encoding_cases,
        jsonl_cases,
        flag_cases,
        parse_cases,
        output_cases,
        score_cases,
        sweep_cases,
        watch_and_signal_cases,
    ] {
        cases.extend(group());
    }
    cases
}

/// Model specs and folders that hold no model.
fn model_cases() -> Vec<Case> {
    vec![
        case(
            "model-missing",
            "a model path that does not exist",
            4,
            "model `missing-model` not found",
        )
        .eval("missing-model"),
        case(
            "hub-id-offline",
            "a hub id that is not in the hub cache, offline",
            4,
            "not found in the hub cache and could not be downloaded",
        )
        .eval("no/such-model"),
        case(
            "spec-empty-part",
            "`BASE+` (an adapter spec with nothing after the `+`)",
            4,
            "has an empty part",
        )
        .llama()
        .eval("m+"),
        case(
            "model-device",
            "a device (`/dev/null`) as the model",
            4,
            "it is neither a file nor a folder",
        )
        .eval("/dev/null"),
        case(
            "folder-empty",
            "an empty folder as the model",
            4,
            "holds no model: no config.json and no .gguf file",
        )
        .step(|dir| std::fs::create_dir(dir.join("m")).unwrap())
        .eval("m"),
        case(
            "folder-no-weights",
            "a model folder without model.safetensors",
            4,
            "holds no model: no model.safetensors",
        )
        .llama()
        .remove("m/model.safetensors")
        .eval("m"),
        case(
            "folder-pytorch-only",
            "a model folder with only pytorch_model.bin",
            4,
            "holds no model",
        )
        .llama()
        .step(|dir| {
            std::fs::rename(
                dir.join("m/model.safetensors"),
                dir.join("m/pytorch_model.bin"),
            )
            .unwrap()
        })
        .eval("m"),
    ]
}

/// config.json: broken, contradictory, unsupported.
fn config_cases() -> Vec<Case> {
    vec![
        case(
            "config-bad-json",
            "config.json cut off mid-object",
            4,
            "cannot parse m/config.json",
        )
        .llama()
        .file("m/config.json", "{\"hidden_size\": 64,")
        .eval("m"),
        case(
            "config-not-object",
            "config.json that is a JSON array",
            4,
            "cannot parse m/config.json",
        )
        .llama()
        .file("m/config.json", "[]")
        .eval("m"),
        case(
            "config-wrong-type",
            "config.json with `hidden_size` a string",
            4,
            "cannot parse m/config.json",
        )
        .llama()
        .json("m/config.json", |c| c["hidden_size"] = json!("big"))
        .eval("m"),
        case(
            "config-missing-field",
            "config.json without `hidden_size`",
            4,
            "`hidden_size` is missing",
        )
        .llama()
        .json("m/config.json", |c| {
            c.as_object_mut().unwrap().remove("hidden_size");
        })
        .eval("m"),
        case(
            "config-zero-heads",
            "config.json with `num_attention_heads: 0`",
            4,
            "num_attention_heads is 0",
        )
        .llama()
        .json("m/config.json", |c| c["num_attention_heads"] = json!(0))
        .eval("m"),
        case(
            "config-kv-heads",
            "attention heads not a multiple of the KV heads",
            4,
            "is not a multiple of num_key_value_heads 3",
        )
        .llama()
        .json("m/config.json", |c| c["num_key_value_heads"] = json!(3))
        .eval("m"),
        case(
            "config-zero-layers",
            "config.json with `num_hidden_layers: 0`",
            4,
            "num_hidden_layers is 0",
        )
        .llama()
        .json("m/config.json", |c| c["num_hidden_layers"] = json!(0))
        .eval("m"),
        case(
            "config-zero-context",
            "config.json with `max_position_embeddings: 0`",
            4,
            "max_position_embeddings is 0",
        )
        .llama()
        .json("m/config.json", |c| c["max_position_embeddings"] = json!(0))
        .eval("m"),
        case(
            "config-rope-theta",
            "config.json with `rope_theta: 0`",
            4,
            "rope_theta 0 is not positive",
        )
        .llama()
        .json("m/config.json", |c| {
            c["rope_parameters"]["rope_theta"] = json!(0.0)
        })
        .eval("m"),
        case(
            "config-norm-eps",
            "config.json with a negative `rms_norm_eps`",
            4,
            "norm epsilon -1 is not positive",
        )
        .llama()
        .json("m/config.json", |c| c["rms_norm_eps"] = json!(-1.0))
        .eval("m"),
        case(
            "config-head-dim",
            "config.json with `head_dim: 0`",
            4,
            "head_dim is 0",
        )
        .llama()
        .json("m/config.json", |c| c["head_dim"] = json!(0))
        .eval("m"),
        case(
            "config-activation",
            "config.json with an unknown `hidden_act`",
            4,
            "activation `swish_unknown`",
        )
        .llama()
        .json("m/config.json", |c| {
            c["hidden_act"] = json!("swish_unknown")
        })
        .eval("m"),
    ]
}

/// Architectures and layouts perplex does not implement, and weights that do not fit.
fn architecture_cases() -> Vec<Case> {
    vec![
        case(
            "config-architecture",
            "an architecture perplex does not implement",
            4,
            "unsupported architecture `FalconForCausalLM`",
        )
        .llama()
        .json("m/config.json", |c| {
            c["architectures"] = json!(["FalconForCausalLM"])
        })
        .eval("m"),
        case(
            "config-no-architecture",
            "config.json declaring no architecture",
            4,
            "unsupported architecture `(none declared)`",
        )
        .llama()
        .json("m/config.json", |c| {
            let c = c.as_object_mut().unwrap();
            c.remove("architectures");
            c.remove("model_type");
        })
        .eval("m"),
        case(
            "config-rope-scaling",
            "a RoPE scaling perplex does not implement (`yarn`)",
            4,
            "unsupported rope scaling `yarn`",
        )
        .llama()
        .json(
            "m/config.json",
            |c| {
                c["rope_parameters"] =
                    json!({"rope_theta": 10000.0, "rope_type": "yarn", "factor": 2.0})
            },
        )
        .eval("m"),
        case(
            "config-more-layers",
            "config.json with more layers than the weights",
            4,
            "tensor `model.layers.2.self_attn.q_proj.weight` is missing",
        )
        .llama()
        .json("m/config.json", |c| c["num_hidden_layers"] = json!(3))
        .eval("m"),
        case(
            "config-wrong-size",
            "config.json whose `intermediate_size` the weights do not have",
            4,
            "has shape [96, 64], expected [128, 64]",
        )
        .llama()
        .json("m/config.json", |c| c["intermediate_size"] = json!(128))
        .eval("m"),
        case(
            "config-smaller-vocab",
            "config.json with a smaller `vocab_size` than the embedding",
            4,
            "has shape [384, 64], expected [100, 64]",
        )
        .llama()
        .json("m/config.json", |c| c["vocab_size"] = json!(100))
        .eval("m"),
    ]
}

/// Safetensors files: truncated, corrupt, inconsistent, non-finite.
fn weight_cases() -> Vec<Case> {
    const ST: &str = "m/model.safetensors";
    vec![
        case(
            "st-empty",
            "an empty model.safetensors",
            4,
            "fewer than the 8-byte header length",
        )
        .llama()
        .file(ST, "")
        .eval("m"),
        case(
            "st-header-past-end",
            "a safetensors header length larger than the file",
            4,
            "the header claims 1000000000 bytes",
        )
        .llama()
        .bytes(ST, |b| {
            b[..8].copy_from_slice(&1_000_000_000u64.to_le_bytes())
        })
        .eval("m"),
        case(
            "st-header-bad-json",
            "a safetensors header that is not JSON",
            4,
            "the header is not valid JSON",
        )
        .llama()
        .bytes(ST, |b| b[8..16].copy_from_slice(b"not json"))
        .eval("m"),
        case(
            "st-unknown-dtype",
            "a safetensors tensor of an unknown dtype",
            4,
            "has dtype Q7",
        )
        .llama()
        .safetensors(ST, |h, _| h["lm_head.weight"]["dtype"] = json!("Q7"))
        .eval("m"),
        case(
            "st-integer-dtype",
            "a safetensors tensor stored as I32",
            4,
            "has dtype I32",
        )
        .llama()
        .safetensors(ST, |h, _| h["model.norm.weight"]["dtype"] = json!("I32"))
        .eval("m"),
        case(
            "st-shape-bytes",
            "a safetensors shape × dtype that does not match its byte range",
            4,
            "should have 99840 bytes, the header gives 98304",
        )
        .llama()
        .safetensors(ST, |h, _| h["lm_head.weight"]["shape"] = json!([384, 65]))
        .eval("m"),
        case(
            "st-offset-past-end",
            "a safetensors tensor whose data lies past the end",
            4,
            "tensor `model.norm.weight` needs bytes",
        )
        .llama()
        .safetensors(ST, |h, d| {
            let n = d.len() as u64;
            h["model.norm.weight"]["data_offsets"] = json!([n + 100, n + 356]);
        })
        .eval("m"),
        case(
            "st-offsets-reversed",
            "a safetensors tensor whose end offset precedes its start",
            4,
            "needs bytes 98304..0",
        )
        .llama()
        .safetensors(ST, |h, _| {
            h["lm_head.weight"]["data_offsets"] = json!([98304, 0])
        })
        .eval("m"),
        case(
            "st-truncated",
            "model.safetensors cut in half",
            4,
            "is truncated or corrupt",
        )
        .llama()
        .bytes(ST, |b| b.truncate(b.len() / 2))
        .eval("m"),
        case(
            "st-missing-tensor",
            "model.safetensors without a tensor the architecture needs",
            4,
            "tensor `model.norm.weight` is missing",
        )
        .llama()
        .safetensors(ST, |h, _| {
            h.as_object_mut().unwrap().remove("model.norm.weight");
        })
        .eval("m"),
        case(
            "weights-nan",
            "weights that are NaN",
            1,
            "the model failed on the window of document 0",
        )
        .llama()
        .safetensors(ST, |h, d| {
            Safetensors::fill(h, d, "model.norm.weight", f32::NAN)
        })
        .eval("m"),
        case(
            "weights-overflow",
            "weights so large that the forward pass overflows",
            1,
            "the model failed on the window of document 0",
        )
        .llama()
        .safetensors(ST, |h, d| {
            Safetensors::fill(h, d, "model.norm.weight", 3e38)
        })
        .eval("m"),
        case(
            "shard-missing",
            "a sharded model missing one shard",
            4,
            "names 1 of its 5 shard(s) that are not in its folder",
        )
        .fixture("tiny-llama-sharded", "m")
        .remove("m/model-00003-of-00005.safetensors")
        .eval("m"),
        case(
            "shard-index-bad-json",
            "a shard index cut off mid-object",
            4,
            "cannot parse m/model.safetensors.index.json",
        )
        .fixture("tiny-llama-sharded", "m")
        .file("m/model.safetensors.index.json", "{\"weight_map\": ")
        .eval("m"),
        case(
            "shard-index-wrong-map",
            "a shard index naming the wrong shard for a tensor",
            4,
            "tensor `lm_head.weight` is missing",
        )
        .fixture("tiny-llama-sharded", "m")
        .json("m/model.safetensors.index.json", |ix| {
            ix["weight_map"]["lm_head.weight"] = json!("model-00002-of-00005.safetensors")
        })
        .eval("m"),
        case(
            "shard-index-outside",
            "a shard index naming a file outside its folder (`../x`, `/dev/zero`)",
            4,
            "names the shard \"/dev/zero\", which is not a file name beside it",
        )
        .fixture("tiny-llama-sharded", "m")
        .json("m/model.safetensors.index.json", |ix| {
            ix["weight_map"]["lm_head.weight"] = json!("/dev/zero")
        })
        .eval("m"),
    ]
}

/// GGUF files: truncated, corrupt, inconsistent, unsupported.
fn gguf_cases() -> Vec<Case> {
    vec![
        case(
            "gguf-empty",
            "an empty .gguf file",
            4,
            "cannot read gguf file m.gguf",
        )
        .file("m.gguf", "")
        .eval("m.gguf"),
        case(
            "gguf-bad-magic",
            "a .gguf file whose magic is not `GGUF`",
            4,
            "cannot read gguf file m.gguf",
        )
        .gguf(|g| g.bytes[3] = b'X'),
        case(
            "gguf-bad-version",
            "a GGUF file of version 99",
            4,
            "cannot read gguf file m.gguf",
        )
        .gguf(|g| g.put_u32(4, 99)),
        case(
            "gguf-cut-header",
            "a GGUF file cut inside its header",
            4,
            "cannot read gguf file m.gguf",
        )
        .gguf(|g| g.bytes.truncate(16)),
        case(
            "gguf-cut-metadata",
            "a GGUF file cut inside its metadata",
            4,
            "cannot read gguf file m.gguf",
        )
        .gguf(|g| g.bytes.truncate(300)),
        case(
            "gguf-cut-data",
            "a GGUF file cut in half (inside its tensor data)",
            4,
            "from gguf file m.gguf",
        )
        .gguf(|g| g.bytes.truncate(g.bytes.len() / 2)),
        case(
            "gguf-last-byte",
            "a GGUF file missing its last byte",
            4,
            "cannot read tensor `output.weight` from gguf file m.gguf",
        )
        .gguf(|g| {
            g.bytes.pop();
        }),
        case(
            "gguf-offset-past-end",
            "a GGUF tensor whose offset lies past the end of the file",
            4,
            "cannot read tensor `output.weight` from gguf file m.gguf",
        )
        .gguf(|g| {
            let at = g.tensor("output.weight").2;
            g.put_u64(at, 1 << 40);
        }),
        case(
            "gguf-tensor-count",
            "a GGUF header claiming 2⁴⁰ tensors",
            4,
            "cannot read gguf file m.gguf",
        )
        .gguf(|g| g.put_u64(8, 1 << 40)),
        case(
            "gguf-metadata-count",
            "a GGUF header claiming 2⁴⁰ metadata entries",
            4,
            "cannot read gguf file m.gguf",
        )
        .gguf(|g| g.put_u64(16, 1 << 40)),
        case(
            "gguf-string-length",
            "a GGUF string claiming 2⁶⁰ bytes",
            4,
            "cannot read gguf file m.gguf",
        )
        .gguf(|g| {
            let at = g.kv["general.architecture"].1;
            g.put_u64(at, 1 << 60);
        }),
        case(
            "gguf-value-type",
            "a GGUF metadata value of an unknown type",
            4,
            "cannot read gguf file m.gguf",
        )
        .gguf(|g| {
            let at = g.kv["general.architecture"].0;
            g.put_u32(at, 77);
        }),
        case(
            "gguf-tensor-type",
            "a GGUF tensor of an unknown type",
            4,
            "uses quantization type unknown type (99)",
        )
        .gguf(|g| {
            let at = g.tensor("token_embd.weight").1;
            g.put_u32(at, 99);
        }),
        case(
            "gguf-unsupported-quant",
            "a GGUF tensor in a quantization perplex cannot dequantize (IQ2_XXS)",
            4,
            "uses quantization type iq2_xxs (16)",
        )
        .gguf(|g| {
            let at = g.tensor("blk.0.attn_q.weight").1;
            g.put_u32(at, 16);
        }),
        case(
            "gguf-tensor-shape",
            "a GGUF tensor with an absurd dimension",
            4,
            "tensor `token_embd.weight` in m.gguf has shape",
        )
        .gguf(|g| {
            let at = g.tensor("token_embd.weight").0 + 4;
            g.put_u64(at, 1 << 50);
        }),
        case(
            "gguf-architecture",
            "a GGUF architecture perplex does not implement",
            4,
            "unsupported architecture `falco` in m.gguf",
        )
        .gguf(|g| g.set_string("general.architecture", "falco")),
        case(
            "gguf-no-vocabulary",
            "a GGUF file without a tokenizer vocabulary",
            4,
            "cannot read the tokenizer vocabulary of gguf file m.gguf",
        )
        .gguf(|g| g.rename_key("tokenizer.ggml.tokens", "tokenizer.ggml.tokenz")),
        case(
            "gguf-more-blocks",
            "GGUF metadata with more blocks than tensors",
            4,
            "tensor `blk.2.attn_q.weight` is missing from m.gguf",
        )
        .gguf(|g| g.set_u32("llama.block_count", 3)),
        case(
            "gguf-zero-heads",
            "GGUF metadata with zero attention heads",
            4,
            "invalid model configuration in m.gguf",
        )
        .gguf(|g| g.set_u32("llama.attention.head_count", 0)),
    ]
}

/// Tokenizers that are missing, broken, or do not fit the weights.
fn tokenizer_cases() -> Vec<Case> {
    vec![
        case(
            "tokenizer-missing",
            "a model folder without tokenizer.json",
            4,
            "cannot load the tokenizer for m",
        )
        .llama()
        .remove("m/tokenizer.json")
        .eval("m"),
        case(
            "tokenizer-bad-json",
            "tokenizer.json cut off mid-object",
            4,
            "cannot load the tokenizer for m",
        )
        .llama()
        .file("m/tokenizer.json", "{\"model\": ")
        .eval("m"),
        case(
            "tokenizer-config-bad-json",
            "tokenizer_config.json cut off mid-object",
            4,
            "cannot load the tokenizer for m",
        )
        .llama()
        .file("m/tokenizer_config.json", "{\"add_bos_token\": ")
        .eval("m"),
        case(
            "tokenizer-bigger-vocab",
            "a tokenizer with more tokens than the model's embedding rows",
            4,
            "the tokenizer has 400 tokens but the model's embedding has only 384 rows",
        )
        .llama()
        .fixture("tiny-llama-spm-hf/tokenizer.json", "m/tokenizer.json")
        .fixture(
            "tiny-llama-spm-hf/tokenizer_config.json",
            "m/tokenizer_config.json",
        )
        .eval("m"),
        case(
            "inspect-mismatch",
            "`inspect` of a model whose tokenizer does not fit its weights",
            4,
            "m failed 1 consistency check(s)",
        )
        .llama()
        .fixture("tiny-llama-spm-hf/tokenizer.json", "m/tokenizer.json")
        .fixture(
            "tiny-llama-spm-hf/tokenizer_config.json",
            "m/tokenizer_config.json",
        )
        .args(&["inspect", "m"]),
    ]
}

/// PEFT adapters that cannot be applied.
fn adapter_cases() -> Vec<Case> {
    vec![
        case(
            "adapter-missing",
            "`BASE+ADAPTER` with an adapter folder that does not exist",
            4,
            "invalid adapter no-such-adapter: not found",
        )
        .llama()
        .eval("m+no-such-adapter"),
        case(
            "adapter-no-config",
            "an adapter folder without adapter_config.json",
            4,
            "no adapter_config.json",
        )
        .llama()
        .fixture(LORA, "a")
        .remove("a/adapter_config.json")
        .eval("m+a"),
        case(
            "adapter-no-weights",
            "an adapter folder without adapter_model.safetensors",
            4,
            "no adapter_model.safetensors",
        )
        .llama()
        .fixture(LORA, "a")
        .remove("a/adapter_model.safetensors")
        .eval("m+a"),
        case(
            "adapter-pickle",
            "an adapter folder with only adapter_model.bin",
            4,
            "only adapter_model.bin",
        )
        .llama()
        .fixture(LORA, "a")
        .step(|dir| {
            std::fs::rename(
                dir.join("a/adapter_model.safetensors"),
                dir.join("a/adapter_model.bin"),
            )
            .unwrap()
        })
        .eval("m+a"),
        case(
            "adapter-config-bad-json",
            "adapter_config.json cut off mid-object",
            4,
            "cannot parse a/adapter_config.json",
        )
        .llama()
        .fixture(LORA, "a")
        .file("a/adapter_config.json", "{\"r\": 4,")
        .eval("m+a"),
        case(
            "adapter-rank",
            "an adapter whose config's rank does not match its matrices",
            4,
            "lora_A has rank 4, lora_B 4, the config says 8",
        )
        .llama()
        .fixture(LORA, "a")
        .json("a/adapter_config.json", |c| c["r"] = json!(8))
        .eval("m+a"),
        case(
            "adapter-other-base",
            "a GPT-2 adapter on a Llama base",
            4,
            "targets modules the base model does not have",
        )
        .llama()
        .fixture("lora/tiny-gpt2-lora", "a")
        .eval("m+a"),
        case(
            "adapter-foreign-modules",
            "an adapter whose target modules do not exist in the base",
            4,
            "targets modules the base model does not have: transformer.h.0.attn.c_attn",
        )
        .llama()
        .fixture("lora/tiny-llama-lora-mismatch", "a")
        .eval("m+a"),
        case(
            "adapter-not-lora",
            "a PEFT adapter that is not LoRA (IA3)",
            4,
            "peft_type `IA3`",
        )
        .llama()
        .fixture(LORA, "a")
        .json("a/adapter_config.json", |c| c["peft_type"] = json!("IA3"))
        .eval("m+a"),
        case(
            "adapter-dora",
            "a DoRA adapter",
            4,
            "DoRA adapters are not supported",
        )
        .llama()
        .fixture(LORA, "a")
        .json("a/adapter_config.json", |c| c["use_dora"] = json!(true))
        .eval("m+a"),
        case(
            "adapter-truncated",
            "adapter_model.safetensors cut short",
            4,
            "a/adapter_model.safetensors is truncated or corrupt",
        )
        .llama()
        .fixture(LORA, "a")
        .bytes("a/adapter_model.safetensors", |b| b.truncate(1000))
        .eval("m+a"),
        case(
            "adapter-is-a-model",
            "a model folder given as the adapter",
            4,
            "invalid adapter m2: no adapter_config.json",
        )
        .llama()
        .fixture("tiny-llama", "m2")
        .eval("m+m2"),
    ]
}

/// Mock models, and models that cannot be compared.
fn mock_and_compare_cases() -> Vec<Case> {
    vec![
        case(
            "mock-unknown",
            "a `mock:` model of an unknown kind",
            2,
            "unknown mock model `nope`",
        )
        .args(&["eval", "-m", "mock:nope:{tok}", "text"]),
        case(
            "mock-tokenizer-missing",
            "a mock model whose tokenizer file does not exist",
            3,
            "could not read the mock model's tokenizer missing.json",
        )
        .args(&["eval", "-m", "mock:uniform:missing.json", "text"]),
        case(
            "compare-tokenizers",
            "`compare` of models with different tokenizers",
            2,
            "tokenises the corpus differently from",
        )
        .args(&[
            "compare",
            "{uniform}",
            "mock:uniform:{fx}/tiny-llama-spm-hf/tokenizer.json",
            "--text",
            "some text",
        ]),
        case(
            "compare-vocab",
            "`compare` of models that tokenise alike but differ in vocabulary size",
            1,
            "the models' vocabularies differ (384 and 386 embedding rows)",
        )
        .fixture("tiny-llama/tokenizer.json", "tok.json")
        .json("tok.json", |t| {
            let added = t["added_tokens"].as_array_mut().unwrap();
            for (id, content) in [(384, "<extra_0>"), (385, "<extra_1>")] {
                let mut token = added[0].clone();
                token["id"] = json!(id);
                token["content"] = json!(content);
                added.push(token);
            }
        })
        .args(&[
            "compare",
            "{uniform}",
            "mock:uniform:tok.json",
            "--text",
            "some text",
        ]),
        case(
            "compare-bits-per-byte-limited",
            "`compare --bits-per-byte` with `--max-tokens`",
            2,
            "bits per byte needs every document scored whole",
        )
        .args(&[
            "compare",
            "{uniform}",
            "{uniform}",
            "--bits-per-byte",
            "--max-tokens",
            "5",
            "--text",
            "some text",
        ]),
        case(
            "zero-probability",
            "a model that gives a token of the text probability zero (a logit of -inf)",
            1,
            "gives probability zero to token 42 (\"H\") at position 4 of document 0",
        )
        .args(&["eval", "-m", "{zero}", "say (H) once"]),
        case(
            "compare-infinite-kl",
            "`compare` with a model that rules out a token the base allows",
            1,
            "which the base does not, at position 0 of document 0: the KL divergence is infinite",
        )
        .args(&["compare", "{hash}", "{zero}", "--text", "no such letter"]),
        case(
            "compare-bos",
            "`compare` of models of which only one scores with BOS",
            2,
            "one scores with BOS id 1 before each document, the other with no BOS",
        )
        .args(&[
            "compare",
            "{fx}/tiny-llama",
            "{fx}/tiny-gpt2",
            "--text",
            "hello",
            "-c",
            "16",
        ]),
    ]
}

/// Text files, stdin and TEXT arguments that cannot be read or hold nothing to score.
fn corpus_cases() -> Vec<Case> {
    vec![
        case(
            "file-missing",
            "a `--file` that does not exist",
            3,
            "could not read `missing.txt`",
        )
        .uniform(&["--file", "missing.txt"]),
        case(
            "file-directory",
            "a folder as `--file`",
            3,
            "could not read `d`",
        )
        .step(|dir| std::fs::create_dir(dir.join("d")).unwrap())
        .uniform(&["--file", "d"]),
        case(
            "file-unreadable",
            "a `--file` without read permission",
            3,
            "could not read `locked.txt`",
        )
        .file("locked.txt", "some text")
        .step(|dir| {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o000);
            std::fs::set_permissions(dir.join("locked.txt"), perms).unwrap();
        })
        .precondition(unreadable_denies)
        .unprivileged()
        .uniform(&["--file", "locked.txt"]),
    ]
}

/// `perplex score` and `perplex merge`: corpora, shards, resumes, merges.
fn score_cases() -> Vec<Case> {
    vec![
        case("score-no-input", "`perplex score` without an input", 2, "no input: give --parquet")
            .args(&["score", "-m", "{hash}", "-o", "o.jsonl"]),
        case(
            "score-output-format",
            "`perplex score -o scores.csv` (neither Parquet nor JSONL)",
            2,
            "cannot tell the format of scores.csv",
        )
        .file("c.txt", "a b c")
        .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "scores.csv"]),
        case(
            "score-max-tokens",
            "`perplex score --max-tokens`",
            2,
            "--max-tokens does not apply to `perplex score`",
        )
        .file("c.txt", "a b c")
        .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl", "--max-tokens", "5"]),
        case("score-block-zero", "`perplex score --block 0`", 2, "a block must hold at least 1 document")
            .file("c.txt", "a b c")
            .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl", "--block", "0"]),
        case("score-shard-out-of-range", "`--shard 3/3`", 2, "--shard shard 3/3 does not exist")
            .file("c.txt", "a b c")
            .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl", "--shard", "3/3"]),
        case("score-shard-syntax", "`--shard 2` (no count)", 2, "`2` is not a shard")
            .file("c.txt", "a b c")
            .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl", "--shard", "2"]),
        case(
            "score-slurm-env-bad",
            "a Slurm array task id that is not a number",
            2,
            "SLURM_ARRAY_TASK_ID=\"x\" is not a shard number",
        )
        .file("c.txt", "a b c")
        .env("SLURM_ARRAY_TASK_ID", "x")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl"]),
        case(
            "score-indexed-job-no-count",
            "a Kubernetes Indexed Job without PERPLEX_SHARD_COUNT",
            2,
            "JOB_COMPLETION_INDEX is set but PERPLEX_SHARD_COUNT is not",
        )
        .file("c.txt", "a b c")
        .env("JOB_COMPLETION_INDEX", "1")
        .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl"]),
        case(
            "score-parquet-not-parquet",
            "a `--parquet` file that is not Parquet",
            3,
            "x.parquet",
        )
        .file("x.parquet", "id,text\n1,hello\n")
        .args(&["score", "-m", "{hash}", "--parquet", "x.parquet", "-o", "o.jsonl"]),
        case(
            "score-parquet-truncated",
            "a Parquet file cut short",
            3,
            "c.parquet",
        )
        .step(|dir| {
            rows_parquet(&dir.join("c.parquet"));
            let bytes = read(&dir.join("c.parquet"));
            write(&dir.join("c.parquet"), &bytes[..bytes.len() / 2]);
        })
        .args(&["score", "-m", "{hash}", "--parquet", "c.parquet", "-o", "o.jsonl"]),
        case(
            "score-parquet-no-text-column",
            "a Parquet file without the `--text-column`",
            3,
            "has no text column `text`",
        )
        .step(|dir| rows_parquet(&dir.join("c.parquet")))
        .args(&["score", "-m", "{hash}", "--parquet", "c.parquet", "-o", "o.jsonl"]),
        case(
            "score-parquet-text-not-string",
            "a `--text-column` of integers",
            3,
            "c.parquet",
        )
        .step(|dir| rows_parquet(&dir.join("c.parquet")))
        .args(&[
            "score", "-m", "{hash}", "--parquet", "c.parquet", "--text-column", "bytes", "-o",
            "o.jsonl",
        ]),
        case(
            "score-parquet-no-id-column",
            "an `--id-column` the file does not have",
            3,
            "c.parquet",
        )
        .step(|dir| rows_parquet(&dir.join("c.parquet")))
        .args(&[
            "score", "-m", "{hash}", "--parquet", "c.parquet", "--text-column", "id",
            "--id-column", "doc", "-o", "o.jsonl",
        ]),
        case(
            "score-jsonl-no-field",
            "JSONL records without the `--text-column` field",
            3,
            "docs.jsonl",
        )
        .file("docs.jsonl", "{\"body\": \"a b c\"}\n")
        .args(&["score", "-m", "{hash}", "--jsonl", "docs.jsonl", "-o", "o.jsonl"]),
        case(
            "score-keep-column-clash",
            "`--keep-columns` naming a score column (`perplexity`)",
            3,
            "perplexity",
        )
        .file("docs.jsonl", "{\"text\": \"a b c\", \"perplexity\": 3}\n")
        .args(&[
            "score", "-m", "{hash}", "--jsonl", "docs.jsonl", "--keep-columns", "perplexity",
            "-o", "o.parquet",
        ]),
        case(
            "score-output-missing-folder",
            "`perplex score -o` into a folder that does not exist",
            3,
            "could not write no-such-dir/o.jsonl",
        )
        .file("c.txt", "a b c")
        .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "no-such-dir/o.jsonl"]),
        case(
            "score-output-device",
            "`perplex score -o /dev/null` (a device, not a file)",
            2,
            "/dev/null is not a file",
        )
        .file("c.txt", "a b c")
        .args(&[
            "score", "-m", "{hash}", "--file", "c.txt", "-o", "/dev/null", "--output-format",
            "jsonl",
        ]),
        case(
            "score-resume-other-model",
            "a rerun into an unfinished output made with another model",
            2,
            "holds the unfinished output of a run with another model",
        )
        .file("c.txt", "a b c")
        .step(|dir| {
            score_into(dir, &["--file", "c.txt", "-o", "o.jsonl"]);
            // as the killed run of another model would have left it
            let out = dir.join("o.jsonl");
            let summary = dir.join("o.jsonl.summary.json");
            let mut run: Value = serde_json::from_slice(&read(&summary)).unwrap();
            std::fs::remove_file(&out).unwrap();
            std::fs::remove_file(&summary).unwrap();
            std::fs::create_dir(dir.join("o.jsonl.partial")).unwrap();
            run = json!({
                "model_spec": "other.gguf", "model_hash": "0123456789abcdef0123", "tokenizer_hash": run["tokenizer_hash"],
                "protocol": run["protocol"]["protocol"], "bos": run["protocol"]["bos"],
                "shard": {"index": 0, "count": 1}, "block_documents": 256,
                "sources": run["corpus"]["sources"], "text": run["corpus"]["text"],
                "id_column": null, "keep_columns": [], "format": "jsonl"
            });
            write(&dir.join("o.jsonl.partial/run.json"), run.to_string().as_bytes());
        })
        .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl"]),
        case(
            "score-journal-damaged",
            "an unfinished output whose run.json is not JSON",
            3,
            "the journal",
        )
        .file("c.txt", "a b c")
        .step(|dir| std::fs::create_dir(dir.join("o.jsonl.partial")).unwrap())
        .file("o.jsonl.partial/run.json", "{\"model\": tru")
        .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl"]),
        case(
            "score-summary-damaged",
            "a finished output whose summary is not a summary",
            3,
            "is not a perplex score summary",
        )
        .file("c.txt", "a b c")
        .file("o.jsonl", "")
        .file("o.jsonl.summary.json", "[1, 2]")
        .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl"]),
        case(
            "score-corpus-changed",
            "a rerun after the committed part of the corpus changed",
            3,
            "the corpus changed since",
        )
        .file("c.txt", "a b c\nb c d\nc d e\nd e f")
        .step(|dir| {
            score_into(dir, &["--file", "c.txt", "-o", "o.jsonl", "--block", "1"]);
            // unfinish it: a run stopped after its first block
            let partial = dir.join("o.jsonl.partial");
            std::fs::create_dir(&partial).unwrap();
            let summary: Value =
                serde_json::from_slice(&read(&dir.join("o.jsonl.summary.json"))).unwrap();
            std::fs::remove_file(dir.join("o.jsonl.summary.json")).unwrap();
            let run = json!({
                "model_spec": summary["model"]["spec"], "model_hash": summary["model"]["hash"]["value"],
                "tokenizer_hash": summary["tokenizer_hash"], "protocol": summary["protocol"]["protocol"],
                "bos": summary["protocol"]["bos"], "shard": {"index": 0, "count": 1},
                "block_documents": 1, "sources": summary["corpus"]["sources"],
                "text": summary["corpus"]["text"], "id_column": null, "keep_columns": [],
                "format": "jsonl"
            });
            write(&partial.join("run.json"), run.to_string().as_bytes());
            let rows = String::from_utf8(read(&dir.join("o.jsonl"))).unwrap();
            let first = rows.lines().next().unwrap().to_string() + "\n";
            write(&partial.join("rows.jsonl"), first.as_bytes());
            let commit = json!({"commit": 0, "read": 1, "prefix": "00", "rows": 1,
                "rows_bytes": first.len(), "totals": summary["totals"]});
            write(&partial.join("journal.jsonl"), format!("{commit}\n").as_bytes());
            std::fs::remove_file(dir.join("o.jsonl")).unwrap();
        })
        .args(&["score", "-m", "{hash}", "--file", "c.txt", "-o", "o.jsonl", "--block", "1"]),
        case(
            "merge-no-summary",
            "`perplex merge` of a file without its .summary.json",
            3,
            "has no summary",
        )
        .file("s.jsonl", "")
        .args(&["merge", "s.jsonl"]),
        case(
            "merge-missing-shard",
            "`perplex merge` of 1 of 2 shards",
            3,
            "1 of 2 shards is missing: 1",
        )
        .file("c.txt", "a b c\nb c d\nc d e")
        .step(|dir| score_into(dir, &["--file", "c.txt", "-o", "s0.jsonl", "--shard", "0/2"]))
        .args(&["merge", "s0.jsonl"]),
        case(
            "merge-duplicate-shard",
            "`perplex merge` given the same shard twice",
            3,
            "shard 0/2 is given twice",
        )
        .file("c.txt", "a b c\nb c d\nc d e")
        .step(|dir| score_into(dir, &["--file", "c.txt", "-o", "s0.jsonl", "--shard", "0/2"]))
        .args(&["merge", "s0.jsonl", "s0.jsonl"]),
        case(
            "merge-different-runs",
            "`perplex merge` of shards scored with different protocols",
            3,
            "come from runs with another protocol",
        )
        .file("c.txt", "a b c\nb c d\nc d e")
        .step(|dir| {
            score_into(dir, &["--file", "c.txt", "-o", "s0.jsonl", "--shard", "0/2"]);
            score_into(dir, &["--file", "c.txt", "-o", "s1.jsonl", "--shard", "1/2", "-c", "8"]);
        })
        .args(&["merge", "s0.jsonl", "s1.jsonl"]),
        case(
            "merge-rows-cut",
            "`perplex merge -o` of a shard whose rows file lost a row",
            3,
            "holds 1 row, but its summary counts 2",
        )
        .file("c.txt", "a b c\nb c d\nc d e\nd e f")
        .step(|dir| {
            score_into(dir, &["--file", "c.txt", "-o", "s0.jsonl", "--shard", "0/2"]);
            score_into(dir, &["--file", "c.txt", "-o", "s1.jsonl", "--shard", "1/2"]);
            let rows = String::from_utf8(read(&dir.join("s1.jsonl"))).unwrap();
            let first = rows.lines().next().unwrap().to_string() + "\n";
            write(&dir.join("s1.jsonl"), first.as_bytes());
        })
        .args(&["merge", "s0.jsonl", "s1.jsonl", "-o", "all.jsonl"]),
    ]
}

/// A Parquet file with string and integer columns (a score row file:
/// `index`, `id`, `status`, `bytes`, …), and no `text` column.
fn rows_parquet(path: &Path) {
    use perplex::core::score::{DocumentCounts, ScoreRow};
    let file = std::fs::File::create(path).unwrap();
    let mut writer = perplex::data::rows::ParquetRowWriter::new(file, &[], &[]).unwrap();
    for i in 0..3u64 {
        let counts = DocumentCounts {
            bytes: 5,
            words: 1,
            tokens: 1,
        };
        let row = ScoreRow::new(i, format!("doc {i}"), counts, &Default::default(), true);
        writer.write(&row).unwrap();
    }
    writer.finish().unwrap();
}

/// Runs `perplex score -m {hash} ARGS` in `dir`, which must succeed.
fn score_into(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_perplex"))
        .args(["score", "-m", &expand("{hash}"), "-q"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Text in another encoding./// Text in another encoding.
fn encoding_cases() -> Vec<Case> {
    vec![
        case(
            "file-latin1",
            "a Latin-1 text file",
            3,
            "`latin1.txt` is not valid UTF-8: byte 0xe9 at byte offset 3",
        )
        .file("latin1.txt", b"caf\xe9 au lait")
        .uniform(&["--file", "latin1.txt"]),
        case(
            "file-cut-utf8",
            "a text file ending inside a UTF-8 sequence",
            3,
            "`cut.txt` is not valid UTF-8: byte 0xe2 at byte offset 2",
        )
        .file("cut.txt", b"ab\xe2\x82")
        .uniform(&["--file", "cut.txt"]),
        case(
            "file-utf16",
            "a UTF-16 text file",
            3,
            "`utf16.txt` is not valid UTF-8: byte 0xff at byte offset 0",
        )
        .file("utf16.txt", b"\xff\xfeh\x00i\x00")
        .uniform(&["--file", "utf16.txt"]),
        case(
            "file-empty",
            "an empty text file",
            3,
            "nothing to score in `empty.txt`: every document is empty (1 document)",
        )
        .file("empty.txt", "")
        .uniform(&["--file", "empty.txt"]),
        case(
            "file-blank-lines",
            "a file of blank lines with `--split lines`",
            3,
            "every document is empty (2 documents)",
        )
        .file("blank.txt", "\n\n")
        .uniform(&["--file", "blank.txt", "--split", "lines"]),
        case(
            "file-dev-null",
            "`/dev/null` as `--file`",
            3,
            "nothing to score in `/dev/null`",
        )
        .uniform(&["--file", "/dev/null"]),
        case(
            "stdin-empty",
            "nothing on stdin",
            3,
            "nothing to score in `stdin`",
        )
        .uniform(&[]),
        case(
            "stdin-latin1",
            "Latin-1 text on stdin",
            3,
            "`stdin` is not valid UTF-8",
        )
        .stdin(b"caf\xe9")
        .uniform(&[]),
    ]
}

/// Broken JSONL.
fn jsonl_cases() -> Vec<Case> {
    vec![
        case(
            "jsonl-missing",
            "a `--jsonl` that does not exist",
            3,
            "could not read `missing.jsonl`",
        )
        .uniform(&["--jsonl", "missing.jsonl"]),
        case(
            "jsonl-directory",
            "a folder as `--jsonl`",
            3,
            "could not read `d`",
        )
        .step(|dir| std::fs::create_dir(dir.join("d")).unwrap())
        .uniform(&["--jsonl", "d"]),
        case(
            "jsonl-bad-line",
            "JSONL whose second line is not JSON",
            3,
            "`data.jsonl:2` is not valid JSON",
        )
        .file("data.jsonl", "{\"text\": \"fine\"}\n{\"text\": oops}\n")
        .uniform(&["--jsonl", "data.jsonl"]),
        case(
            "jsonl-missing-field",
            "JSONL records without the `--field`",
            3,
            "`data.jsonl:1` has no field `text`",
        )
        .file("data.jsonl", "{\"body\": \"a\", \"id\": 1}\n")
        .uniform(&["--jsonl", "data.jsonl"]),
        case(
            "jsonl-field-type",
            "JSONL whose `--field` holds a number",
            3,
            "`data.jsonl:1`: field `text` is a number, not a string",
        )
        .file("data.jsonl", "{\"text\": 3}\n")
        .uniform(&["--jsonl", "data.jsonl"]),
        case(
            "jsonl-not-object",
            "a JSONL line that is an array",
            3,
            "`data.jsonl:2` is an array, not a JSON object",
        )
        .file("data.jsonl", "{\"text\": \"a\"}\n[1, 2]\n")
        .uniform(&["--jsonl", "data.jsonl"]),
        case(
            "jsonl-array",
            "a JSON array given as JSONL",
            3,
            "`data.jsonl` is a JSON array, not JSON Lines",
        )
        .file("data.jsonl", "[{\"text\": \"a\"}]")
        .uniform(&["--jsonl", "data.jsonl"]),
        case(
            "jsonl-empty",
            "an empty JSONL file",
            3,
            "`data.jsonl`: it holds no documents",
        )
        .file("data.jsonl", "")
        .uniform(&["--jsonl", "data.jsonl"]),
        case(
            "jsonl-latin1",
            "JSONL in Latin-1",
            3,
            "`data.jsonl` is not valid UTF-8",
        )
        .file("data.jsonl", b"{\"text\": \"caf\xe9\"}\n")
        .uniform(&["--jsonl", "data.jsonl"]),
        case(
            "text-empty",
            "an empty TEXT argument",
            3,
            "`arguments`: every document is empty",
        )
        .uniform(&[""]),
        case(
            "text-too-short",
            "a one-token text with `--bos none`",
            3,
            "no document is long enough to score",
        )
        .uniform(&["--bos", "none", "The"]),
        case(
            "max-tokens-zero",
            "`--max-tokens 0`",
            3,
            "the token limit of 0 leaves no token to score",
        )
        .uniform(&["--max-tokens", "0", "some text to score"]),
    ]
}

/// Flags that parse but make no sense.
fn flag_cases() -> Vec<Case> {
    vec![
        case(
            "context-zero",
            "`--context 0`",
            2,
            "a chunks window of 0 tokens is too short",
        )
        .uniform(&["--context", "0", "text"]),
        case(
            "context-negative",
            "`--context -5`",
            2,
            "invalid value '-5' for '--context <N>'",
        )
        .uniform(&["--context", "-5", "text"]),
        case(
            "context-too-long",
            "a `--context` longer than the model's",
            2,
            "is longer than the model's context of 4096 tokens",
        )
        .uniform(&["--context", "8192", "text"]),
        case(
            "llama-cpp-context",
            "`--protocol llama-cpp --context 3`",
            2,
            "a llama-cpp window of 3 tokens is too short",
        )
        .uniform(&["--protocol", "llama-cpp", "--context", "3", "text"]),
        case(
            "max-length-zero",
            "`--protocol truncate --max-length 0`",
            2,
            "a truncate window of 0 tokens is too short",
        )
        .uniform(&["--protocol", "truncate", "--max-length", "0", "text"]),
        case(
            "stride-beyond-context",
            "a `--stride` larger than `--context`",
            2,
            "stride 9 must be between 1 and the context (8)",
        )
        .uniform(&[
            "--protocol",
            "sliding",
            "--context",
            "8",
            "--stride",
            "9",
            "text",
        ]),
        case(
            "stride-zero",
            "`--stride 0`",
            2,
            "stride 0 must be between 1 and the context",
        )
        .uniform(&["--protocol", "sliding", "--stride", "0", "text"]),
        case(
            "stride-not-sliding",
            "`--stride` without `--protocol sliding`",
            2,
            "--stride applies only to --protocol sliding",
        )
        .uniform(&["--stride", "4", "text"]),
        case(
            "batch-size-zero",
            "`--batch-size 0`",
            2,
            "the batch size must be at least 1",
        )
        .uniform(&["--batch-size", "0", "text"]),
        case(
            "threads-zero",
            "`--threads 0`",
            2,
            "--threads must be at least 1",
        )
        .uniform(&["--threads", "0", "text"]),
        case(
            "max-tokens-overflow",
            "a `--max-tokens` beyond 64 bits",
            2,
            "invalid value '99999999999999999999999' for '--max-tokens <N>'",
        )
        .uniform(&["--max-tokens", "99999999999999999999999", "text"]),
        case(
            "confidence-above-one",
            "`--confidence 1.5`",
            2,
            "confidence 1.5 is not between 0 and 1",
        )
        .args(&[
            "compare",
            "{uniform}",
            "{uniform}",
            "--confidence",
            "1.5",
            "--text",
            "x",
        ]),
        case(
            "confidence-nan",
            "`--confidence NaN`",
            2,
            "confidence NaN is not between 0 and 1",
        )
        .args(&[
            "compare",
            "{uniform}",
            "{uniform}",
            "--confidence",
            "NaN",
            "--text",
            "x",
        ]),
    ]
}

/// Arguments that do not parse.
fn parse_cases() -> Vec<Case> {
    vec![
        case(
            "format-unknown",
            "an unknown `--format`",
            2,
            "invalid value 'yaml' for '--format <FORMAT>'",
        )
        .uniform(&["--format", "yaml", "text"]),
        case(
            "flag-unknown",
            "an unknown flag",
            2,
            "unexpected argument '--frobnicate' found",
        )
        .uniform(&["--frobnicate", "text"]),
        case(
            "model-flag-missing",
            "`eval` without `--model`",
            2,
            "the following required arguments were not provided",
        )
        .args(&["eval", "text"]),
        case(
            "command-unknown",
            "an unknown command",
            2,
            "unrecognized subcommand 'evaluate'",
        )
        .args(&["evaluate", "-m", "{uniform}", "text"]),
        case(
            "compare-one-model",
            "`compare` with a single model",
            2,
            "2 values required by '<MODEL> <MODEL>...'; only 1 was provided",
        )
        .args(&["compare", "{uniform}", "--text", "x"]),
        case(
            "separator-without-join",
            "`--separator` without `--join`",
            2,
            "the following required arguments were not provided",
        )
        .uniform(&["--separator", "x", "text"]),
        case(
            "bands-descending",
            "`--bands` with descending bounds",
            2,
            "--bands `a:50,b:20,c`: bounds must be positive and ascending",
        )
        .uniform(&["--bands=a:50,b:20,c", "text"]),
        case(
            "watch-interval-nan",
            "`watch --interval NaN`",
            2,
            "--interval NaN is not a number of seconds",
        )
        .args(&[
            "watch",
            "run",
            "--base",
            "{uniform}",
            "--text",
            "x",
            "--interval",
            "NaN",
        ]),
        case(
            "watch-settle-negative",
            "`watch --settle -1`",
            2,
            "--settle -1 is not a number of seconds",
        )
        .args(&[
            "watch",
            "run",
            "--base",
            "{uniform}",
            "--text",
            "x",
            "--settle",
            "-1",
        ]),
        case(
            "memory-batch",
            "`--batch-size 64` whose batches cannot fit in the memory left (here `PERPLEX_MAX_MEMORY=33M`)",
            2,
            "a batch of 64 windows of 32 tokens needs about",
        )
        .env("PERPLEX_MAX_MEMORY", "33M")
        .step(|dir| write(&dir.join("long.txt"), "The cat sat on the mat. ".repeat(300).as_bytes()))
        .args(&["eval", "-m", "{fx}/tiny-llama", "-c", "32", "--batch-size", "64", "--file", "long.txt"]),
        case(
            "memory-window",
            "a window that cannot fit alone in the memory left (here `PERPLEX_MAX_MEMORY=1M`)",
            2,
            "a batch of 1 window of 11 tokens needs about",
        )
        .env("PERPLEX_MAX_MEMORY", "1M")
        .eval("{fx}/tiny-llama"),
        case(
            "memory-limit-not-a-size",
            "`PERPLEX_MAX_MEMORY=lots`",
            2,
            "PERPLEX_MAX_MEMORY=\"lots\" is not a size",
        )
        .env("PERPLEX_MAX_MEMORY", "lots")
        .eval("{fx}/tiny-llama"),
    ]
}

/// Outputs that cannot be written.
fn output_cases() -> Vec<Case> {
    vec![
        case(
            "output-missing-folder",
            "`--output` into a folder that does not exist",
            3,
            "could not write no-such-dir/r.json",
        )
        .uniform(&["--output", "no-such-dir/r.json", "text"]),
        case(
            "output-is-folder",
            "`--output` naming an existing folder",
            3,
            "could not write d",
        )
        .step(|dir| std::fs::create_dir(dir.join("d")).unwrap())
        .uniform(&["--output", "d", "text"]),
        case(
            "output-disk-full",
            "`--output /dev/full` (a full disk)",
            3,
            "could not write /dev/full",
        )
        .uniform(&["--output", "/dev/full", "text"]),
        case(
            "per-token-missing-folder",
            "`--per-token` into a folder that does not exist",
            3,
            "could not write no-such-dir/t.jsonl",
        )
        .uniform(&["--per-token", "no-such-dir/t.jsonl", "text"]),
        case(
            "per-token-is-folder",
            "`--per-token` naming an existing folder",
            3,
            "could not write d",
        )
        .step(|dir| std::fs::create_dir(dir.join("d")).unwrap())
        .uniform(&["--per-token", "d", "text"]),
        case(
            "per-token-disk-full",
            "`--per-token /dev/full` (a full disk)",
            3,
            "could not write /dev/full",
        )
        .uniform(&["--per-token", "/dev/full", "text"]),
        case(
            "stdout-disk-full",
            "stdout on a full disk",
            3,
            "could not write stdout",
        )
        .stdout_full()
        .uniform(&["text"]),
        case(
            "plot-missing-folder",
            "`sweep --plot` into a folder that does not exist",
            3,
            "could not write no-such-dir/p.svg",
        )
        .args(&[
            "sweep",
            "{fx}/runs/full-run",
            "--text",
            "x",
            "-c",
            "64",
            "--plot",
            "no-such-dir/p.svg",
        ]),
    ]
}

/// Run folders that cannot be swept.
fn sweep_cases() -> Vec<Case> {
    vec![
        case(
            "sweep-missing",
            "`sweep` of a folder that does not exist",
            3,
            "run folder no-such-run does not exist",
        )
        .args(&["sweep", "no-such-run", "--text", "x"]),
        case(
            "sweep-file",
            "`sweep` of a file",
            3,
            "run folder f is not a folder",
        )
        .file("f", "x")
        .args(&["sweep", "f", "--text", "x"]),
        case(
            "sweep-no-checkpoints",
            "`sweep` of a folder without checkpoints",
            3,
            "run holds no checkpoints",
        )
        .step(|dir| std::fs::create_dir(dir.join("run")).unwrap())
        .args(&["sweep", "run", "--text", "x"]),
        case(
            "sweep-trainer-state",
            "a run whose trainer_state.json is cut off",
            3,
            "cannot parse run/trainer_state.json",
        )
        .fixture("runs/full-run", "run")
        .file("run/trainer_state.json", "{\"log_history\": [")
        .step(|dir| {
            for c in ["checkpoint-4", "checkpoint-8", "checkpoint-12"] {
                std::fs::remove_file(dir.join("run").join(c).join("trainer_state.json")).unwrap();
            }
        })
        .args(&["sweep", "run", "--text", "x", "-c", "64"]),
        case(
            "sweep-base-missing",
            "adapter checkpoints whose base model is nowhere",
            4,
            "model `/no/such/base` not found",
        )
        .fixture("runs/lora-run", "run")
        .step(|dir| {
            for step in [6, 12, 18, 24, 30] {
                let path = dir.join(format!("run/checkpoint-{step}/adapter_config.json"));
                let mut c: Value = serde_json::from_slice(&read(&path)).unwrap();
                c["base_model_name_or_path"] = json!("/no/such/base");
                write(&path, &serde_json::to_vec(&c).unwrap());
            }
        })
        .args(&["sweep", "run", "--text", "x", "-c", "64"]),
    ]
}

/// Watches, and signals during a run.
fn watch_and_signal_cases() -> Vec<Case> {
    vec![
        case(
            "watch-file",
            "`watch` of a file",
            3,
            "run folder f is not a folder",
        )
        .file("f", "x")
        .args(&[
            "watch",
            "f",
            "--base",
            "{uniform}",
            "--text",
            "x",
            "--exit-when-idle",
            "5",
        ]),
        case(
            "watch-idle",
            "`watch --exit-when-idle` of a run that writes no checkpoint",
            3,
            "no checkpoint of run was completed while watching",
        )
        .step(|dir| std::fs::create_dir(dir.join("run")).unwrap())
        .args(&[
            "watch",
            "run",
            "--base",
            "{uniform}",
            "--text",
            "x",
            "--interval",
            "0.1",
            "--exit-when-idle",
            "0.3",
        ]),
        case(
            "watch-state-corrupt",
            "a watch state file that is not JSON",
            3,
            "state file run/perplex-watch.json",
        )
        .step(|dir| std::fs::create_dir(dir.join("run")).unwrap())
        .file("run/perplex-watch.json", "garbage")
        .args(&[
            "watch",
            "run",
            "--base",
            "{uniform}",
            "--text",
            "x",
            "--exit-when-idle",
            "1",
        ]),
        case(
            "watch-state-other",
            "a watch state file made with other settings",
            3,
            "it was made with another text, protocol or base",
        )
        .step(|dir| std::fs::create_dir(dir.join("run")).unwrap())
        .file("run/perplex-watch.json", "{\"settings\": \"other\"}")
        .args(&[
            "watch",
            "run",
            "--base",
            "{uniform}",
            "--text",
            "x",
            "--exit-when-idle",
            "1",
        ]),
        case(
            "watch-locked",
            "a second `watch` of the same run",
            2,
            "another perplex watch (process",
        )
        .step(|dir| std::fs::create_dir(dir.join("run")).unwrap())
        .hold_lock("run/perplex-watch.lock")
        .args(&[
            "watch",
            "run",
            "--base",
            "{uniform}",
            "--text",
            "x",
            "--exit-when-idle",
            "1",
        ]),
        case(
            "sigint-eval",
            "Ctrl-C (SIGINT) during `eval`",
            130,
            "interrupted",
        )
        .file(
            "corpus.txt",
            (0..400)
                .map(|i| format!("line {i} of the text.\n"))
                .collect::<String>(),
        )
        .signal("-INT", "loaded")
        .args(&[
            "eval",
            "-m",
            "{slow}",
            "--file",
            "corpus.txt",
            "--split",
            "lines",
            "-b",
            "1",
        ]),
        case("sigterm-eval", "SIGTERM during `eval`", 143, "interrupted")
            .file(
                "corpus.txt",
                (0..400)
                    .map(|i| format!("line {i} of the text.\n"))
                    .collect::<String>(),
            )
            .signal("-TERM", "loaded")
            .args(&[
                "eval",
                "-m",
                "{slow}",
                "--file",
                "corpus.txt",
                "--split",
                "lines",
                "-b",
                "1",
            ]),
        case(
            "sigterm-compare",
            "SIGTERM during `compare`",
            143,
            "interrupted",
        )
        .file(
            "corpus.txt",
            (0..400)
                .map(|i| format!("line {i} of the text.\n"))
                .collect::<String>(),
        )
        .signal("-TERM", "loaded {slow}")
        .args(&[
            "compare",
            "{slow}",
            "{slow}",
            "--file",
            "corpus.txt",
            "--split",
            "lines",
            "-b",
            "1",
        ]),
        case(
            "sigint-watch",
            "Ctrl-C (SIGINT) during `watch`",
            130,
            "interrupted",
        )
        .args(&[
            "watch",
            "run",
            "--base",
            "{uniform}",
            "--text",
            "x",
            "--interval",
            "5",
        ])
        .signal("-INT", "waiting for it"),
        // a model giving probability zero to a target token (exit 1) belongs here
    ]
}

/// `arg` with its placeholders filled: `{fx}` the fixtures, `{tok}`
/// tiny-llama's tokenizer, `{uniform}` / `{slow}` the mock models on it.
fn expand(arg: &str) -> String {
    let fx = common::fixture("").display().to_string();
    let fx = fx.trim_end_matches('/');
    let tok = format!("{fx}/tiny-llama/tokenizer.json");
    arg.replace("{uniform}", "mock:uniform:{tok}")
        .replace("{slow}", "mock:slow:{tok}")
        .replace("{hash}", "mock:hash:{tok}")
        .replace("{zero}", "mock:zero:{tok}")
        .replace("{tok}", &tok)
        .replace("{fx}", fx)
}

/// What a case printed.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `case` in `dir`: waits for it (sending its signal), or kills it
/// after [`TIMEOUT`].
fn execute(case: &Case, dir: &Path) -> Result<Outcome, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_perplex"));
    cmd.args(case.args.iter().map(|a| expand(a)))
        .current_dir(dir)
        .env("RUST_BACKTRACE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", dir.join("hub-cache"))
        .env_remove("HF_TOKEN")
        .envs(case.env.iter().copied())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    if case.unprivileged && is_root() {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        cmd.uid(NOBODY).gid(NOBODY);
    }
    if case.stdout_full {
        cmd.stdout(std::fs::File::create("/dev/full").map_err(|e| e.to_string())?);
    } else {
        cmd.stdout(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start perplex: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = case.stdin.clone();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let stdout = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        })
    });
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let started = Instant::now();
    let mut signal = case.signal.map(|(s, marker)| (s, expand(marker)));
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {TIMEOUT:?}: killed (a hang)"));
        }
        if let Some((sig, marker)) = &signal {
            if lines.try_iter().any(|line| line.contains(marker.as_str())) {
                // the run is under way: let it go a little, then stop it
                std::thread::sleep(Duration::from_millis(200));
                let sent = Command::new("kill")
                    .arg(sig)
                    .arg(child.id().to_string())
                    .status()
                    .map_err(|e| e.to_string())?;
                if !sent.success() {
                    return Err(format!("kill {sig} failed"));
                }
                signal = None;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some((_, marker)) = signal {
        return Err(format!("ended before `{marker}` appeared on stderr"));
    }
    Ok(Outcome {
        code: status.code(),
        stdout: stdout.map(|t| t.join().unwrap()).unwrap_or_default(),
        stderr: stderr.join().unwrap(),
    })
}

/// A number printed as NaN or infinite.
fn non_finite_word(text: &str) -> Option<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| ["nan", "inf", "infinity"].contains(&w.to_ascii_lowercase().as_str()))
}

/// Everything a case's outcome must satisfy.
fn check(case: &Case, out: &Outcome) -> Result<(), String> {
    let mut problems = Vec::new();
    if out.code != Some(case.code) {
        problems.push(format!("exit code {:?}, expected {}", out.code, case.code));
    }
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    match errors.as_slice() {
        [line] if line.contains(case.expect) => {}
        [line] => problems.push(format!("the error line lacks `{}`: {line}", case.expect)),
        _ => problems.push(format!("{} `error:` lines, expected 1", errors.len())),
    }
    if !out.stderr.lines().any(|l| l.starts_with("  hint: ")) {
        problems.push("no `  hint:` line".into());
    }
    for text in [&out.stdout, &out.stderr] {
        for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
            if text.contains(bad) {
                problems.push(format!("the output contains `{bad}`"));
            }
        }
    }
    if let Some(word) = non_finite_word(&out.stdout) {
        problems.push(format!("stdout prints `{word}` as a number"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n--- stdout\n{}--- stderr\n{}",
            problems.join("\n"),
            out.stdout,
            out.stderr
        ))
    }
}

/// `s` with the memory figures that depend on the CPU's kernels (`12 MiB`,
/// `1.5 GiB`, the batch size that would fit) replaced by placeholders.
fn sizes(s: &str) -> String {
    let words: Vec<&str> = s.split(' ').collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let number = !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.');
        let unit = words
            .get(i + 1)
            .is_some_and(|u| u.starts_with("MiB") || u.starts_with("GiB"));
        let batch = i > 0 && words[i - 1] == "--batch-size" && words.get(i + 1) == Some(&"or");
        out.push(if number && unit {
            "<size>"
        } else if number && batch {
            "<n>"
        } else {
            w
        });
    }
    out.join(" ")
}

/// The docs row of a case that ran: its error and hint lines, with the
/// paths and process ids that differ between runs replaced.
fn row(case: &Case, dir: &Path, out: &Outcome) -> String {
    let fx = common::fixture("").display().to_string();
    let dir = dir.display().to_string();
    let clean = |s: &str| {
        let s = s
            .replace(fx.trim_end_matches('/'), "<fixtures>")
            .replace(&dir, "<dir>");
        // a process id
        let s = match s.find("(process ") {
            Some(i) => {
                let end = s[i + 9..].find(')').map_or(s.len(), |j| i + 9 + j);
                format!("{}(process <pid>{}", &s[..i], &s[end..])
            }
            None => s,
        };
        sizes(&s).replace('|', "\\|")
    };
    let lines = || out.stderr.lines();
    let error = lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or_default();
    let hints: Vec<String> = lines()
        .filter_map(|l| l.strip_prefix("  hint: "))
        .map(&clean)
        .collect();
    format!(
        "| `{}` | {} | {} | {} | {} |",
        case.id,
        case.input.replace('|', "\\|"),
        case.code,
        clean(error),
        hints.join("<br>")
    )
}

const DOCS_HEAD: &str = "\
<!-- Generated by crates/perplex/tests/catalogue.rs from its cases and what perplex prints for them:
     do not edit by hand. `PERPLEX_UPDATE_DOCS=1 cargo test -p perplex --test catalogue` rewrites it. -->

# What perplex does with bad input

Every input below makes perplex stop with the exit code shown (see the README's
[exit codes](../README.md#exit-codes)), one `error:` line on stderr (the message below; any
`caused by:` lines follow it) and at least one `hint:` line. None of them panics, hangs, or
reports NaN or infinity as a number. In the messages, `m` is the model folder (`m.gguf` the
GGUF file, `a` the adapter folder) that the input was made in, `<dir>` the folder perplex runs
in, and `<fixtures>` the small test models of `tests/fixtures` the inputs are made from; real
models fail the same way.

| case | input | exit code | message (`error:`) | hint |
|---|---|---|---|---|
";

/// The committed rows, by case id.
fn committed_rows(docs: &str) -> BTreeMap<String, String> {
    docs.lines()
        .filter_map(|l| {
            let id = l.strip_prefix("| `")?.split('`').next()?;
            Some((id.to_string(), l.to_string()))
        })
        .collect()
}

/// Compares the rendered table with docs/errors.md, or rewrites the file
/// when `PERPLEX_UPDATE_DOCS=1`.
fn check_docs(cases: &[Arc<Case>], rows: &BTreeMap<&'static str, String>) -> Result<(), String> {
    let path = common::workspace().join(DOCS);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let old = committed_rows(&committed);
    let mut docs = DOCS_HEAD.to_string();
    for case in cases {
        let row = match rows.get(case.id) {
            Some(row) => row.clone(),
            None => old.get(case.id).cloned().ok_or_else(|| {
                format!("case `{}` did not run and has no row in {DOCS}", case.id)
            })?,
        };
        docs.push_str(&row);
        docs.push('\n');
    }
    if std::env::var("PERPLEX_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &docs).map_err(|e| format!("{}: {e}", path.display()))?;
        #[allow(clippy::print_stdout)] // the harness reports on the terminal
        {
            println!("wrote {DOCS}");
        }
        return Ok(());
    }
    if docs == committed {
        return Ok(());
    }
    let new_rows = committed_rows(&docs);
    let changed: Vec<String> = new_rows
        .iter()
        .filter(|(id, row)| old.get(*id) != Some(row))
        .map(|(_, row)| format!("  now: {row}"))
        .chain(
            old.keys()
                .filter(|id| !new_rows.contains_key(*id))
                .map(|id| format!("  gone: {id}")),
        )
        .collect();
    Err(format!(
        "{DOCS} is out of date; run `PERPLEX_UPDATE_DOCS=1 cargo test -p perplex --test catalogue` \
         to rewrite it\n{}",
        changed.join("\n")
    ))
}

fn main() {
    let args = Arguments::from_args();
    let cases: Vec<Arc<Case>> = cases().into_iter().map(Arc::new).collect();
    let mut ids = std::collections::HashSet::new();
    for case in &cases {
        assert!(ids.insert(case.id), "two cases are called `{}`", case.id);
    }
    let rows: Arc<Mutex<BTreeMap<&'static str, String>>> = Arc::default();
    let trials = cases
        .iter()
        .map(|case| {
            let (case, rows) = (Arc::clone(case), Arc::clone(&rows));
            Trial::ignorable_test(case.id, move || {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                for step in &case.steps {
                    step(dir.path());
                }
                if let Some(reason) = case.precondition.and_then(|c| c(dir.path())) {
                    return Ok(Completion::ignored_with(reason));
                }
                let _lock = case.hold_lock.map(|name| {
                    let file = std::fs::File::create(dir.path().join(name)).unwrap();
                    file.try_lock().unwrap();
                    writeln!(&file, "{}", std::process::id()).unwrap();
                    file
                });
                let out = execute(&case, dir.path()).map_err(Failed::from)?;
                check(&case, &out).map_err(Failed::from)?;
                rows.lock()
                    .unwrap()
                    .insert(case.id, row(&case, dir.path(), &out));
                Ok(Completion::Completed)
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let everything = !args.list && args.filter.is_none() && args.skip.is_empty();
    if everything && !conclusion.has_failed() {
        let rows = rows.lock().unwrap();
        if let Err(e) = check_docs(&cases, &rows) {
            #[allow(clippy::print_stderr)] // the harness reports on the terminal
            {
                eprintln!("\n{e}");
            }
            std::process::exit(101);
        }
    }
    conclusion.exit()
}
