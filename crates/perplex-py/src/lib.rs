//! `perplex._perplex`: the native module of the Python package (the
//! `perplex-lm` distribution, import name `perplex`).
//!
//! A thin binding over the `perplex` library: models are loaded by
//! [`perplex::load`], inputs read by [`perplex::Inputs::read`], runs made
//! by [`perplex_eval`] (evaluate, compare, sweep), and every report leaves
//! as the CLI's JSON text (`perplex_report`'s writers), which the Python
//! side parses; per-token columns leave as little-endian bytes for numpy.
//! The GIL is released while a run goes; Ctrl-C and progress callbacks are
//! served between batches (`sink`); errors and panics become exceptions
//! (`errors`). The Python API, its defaults and checks of Python types
//! are in `python/perplex/`.

mod errors;
mod sink;

/// The Rust side's allocator, as in the `perplex` binary: glibc's malloc lets
/// the memory of a long scoring run creep up with its corpus.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Mutex;

use perplex::core::plan::{BosPolicy, Protocol};
use perplex::core::report::DocumentStatus;
use perplex::core::score::ScoreRow;
use perplex::eval::score::ScoreOptions;
use perplex::{CompareOptions, Corpus, EvalOptions, Inputs};
use perplex_data::corpus::Split;
use perplex_data::stream::SourceDocument;
use perplex_model::{Compute, LoadOptions};
use perplex_report::Format;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use errors::{detached, usage, with_sink, Failure};
use sink::{PerToken, PySink};

/// Where the text comes from, as `perplex/_api.py` passes it (a dict).
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct InputSpec {
    texts: Vec<String>,
    files: Vec<PathBuf>,
    split: String,
    jsonl: Vec<PathBuf>,
    field: String,
}

impl InputSpec {
    fn inputs(self, py: Python<'_>) -> PyResult<Inputs> {
        let split = match self.split.as_str() {
            "whole" => Split::Whole,
            "lines" => Split::Lines,
            "paragraphs" => Split::Paragraphs,
            other => {
                return Err(usage(
                    py,
                    format!("split={other:?} is not a way to split files"),
                    "use split=\"whole\", \"lines\" or \"paragraphs\"",
                ))
            }
        };
        Ok(Inputs {
            texts: self.texts,
            files: self.files,
            split,
            jsonl: self.jsonl,
            field: self.field,
        })
    }
}

/// How windows are planned and run, as `perplex/_api.py` passes it (a
/// dict with the CLI's flags as keys).
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct Settings {
    protocol: String,
    context: usize,
    stride: Option<usize>,
    max_length: usize,
    max_tokens: Option<usize>,
    bos: String,
    batch_size: Option<usize>,
    join: Option<String>,
}

impl Settings {
    /// The options, checked by the library's builder (the CLI's mapping of
    /// its flags, with the names of the Python keywords).
    fn options(&self, py: Python<'_>) -> PyResult<EvalOptions> {
        let protocol = protocol(
            py,
            &self.protocol,
            self.context,
            self.stride,
            self.max_length,
        )?;
        let bos = bos_policy(py, &self.bos)?;
        EvalOptions::builder(protocol)
            .bos(bos)
            .batch_size(self.batch_size)
            .max_tokens(self.max_tokens)
            .join(self.join.clone())
            .build()
            .map_err(|e| errors::to_py(py, &perplex::Error::from(e)))
    }
}

/// The protocol named by the Python keywords, with its lengths.
fn protocol(
    py: Python<'_>,
    name: &str,
    context: usize,
    stride: Option<usize>,
    max_length: usize,
) -> PyResult<Protocol> {
    let protocol = match name {
        "truncate" => Protocol::Truncate { max_length },
        "chunks" => Protocol::Chunks { context },
        "sliding" => Protocol::Sliding {
            context,
            stride: stride.unwrap_or((context / 2).max(1)),
        },
        "llama-cpp" => Protocol::LlamaCpp { context },
        other => {
            return Err(usage(
                py,
                format!("protocol={other:?} is not a protocol"),
                "use protocol=\"chunks\", \"sliding\", \"truncate\" or \"llama-cpp\"",
            ))
        }
    };
    if stride.is_some() && !matches!(protocol, Protocol::Sliding { .. }) {
        return Err(usage(
            py,
            "stride applies only to protocol=\"sliding\"".into(),
            "add protocol=\"sliding\", or leave stride out",
        ));
    }
    Ok(protocol)
}

/// The BOS policy named by the Python keyword.
fn bos_policy(py: Python<'_>, name: &str) -> PyResult<BosPolicy> {
    serde_json::from_value(name.into()).map_err(|_| {
        usage(
            py,
            format!("bos={name:?} is not a BOS policy"),
            "use bos=\"auto\", \"none\", \"document\" or \"window\"",
        )
    })
}

/// How `perplex.Scorer` scores, as `perplex/_api.py` passes it (a dict).
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct ScoreSettings {
    protocol: String,
    context: usize,
    stride: Option<usize>,
    max_length: usize,
    bos: String,
    batch_size: Option<usize>,
}

impl ScoreSettings {
    fn options(&self, py: Python<'_>) -> PyResult<ScoreOptions> {
        let protocol = protocol(
            py,
            &self.protocol,
            self.context,
            self.stride,
            self.max_length,
        )?;
        let bos = bos_policy(py, &self.bos)?;
        let to_py = |e| errors::to_py(py, &perplex::Error::from(e));
        ScoreOptions::new(protocol)
            .map_err(to_py)?
            .bos(bos)
            .batch_size(self.batch_size)
            .map_err(to_py)
    }
}

/// The rows as columns (name → list), in the order of `perplex score`'s
/// row files.
fn row_columns(py: Python<'_>, rows: &[ScoreRow]) -> PyResult<Py<PyDict>> {
    let dict = PyDict::new(py);
    macro_rules! column {
        ($name:literal, $f:expr) => {
            dict.set_item($name, PyList::new(py, rows.iter().map($f))?)?;
        };
    }
    column!("index", |r| r.index);
    column!("id", |r| r.id.as_str());
    column!("status", |r| status_name(r.status));
    column!("bytes", |r| r.bytes);
    column!("words", |r| r.words);
    column!("tokens", |r| r.tokens);
    column!("scored_tokens", |r| r.scored_tokens);
    column!("nll_sum", |r| r.nll_sum);
    column!("mean_nll", |r| r.mean_nll);
    column!("perplexity", |r| r.perplexity);
    column!("bits_per_byte", |r| r.bits_per_byte);
    column!("token_accuracy", |r| r.token_accuracy);
    Ok(dict.unbind())
}

/// The status as the row files write it (`scored`, `empty`, `too-short`).
fn status_name(status: DocumentStatus) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{status:?}"),
    }
}

fn load_options(fast: bool, threads: Option<usize>) -> LoadOptions {
    LoadOptions {
        threads,
        compute: if fast { Compute::Fast } else { Compute::Exact },
    }
}

/// The report as the CLI's `--format json` writes it.
fn json(write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    write(&mut out).expect("writing JSON to memory does not fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// A loaded model, reusable across calls (`perplex.load`).
#[pyclass(frozen, module = "perplex._perplex")]
struct Model {
    spec: String,
    /// `None` only while `compare` has it.
    model: Mutex<Option<perplex::Model>>,
}

impl Model {
    /// The model, locked (with the GIL released: another thread's run may
    /// hold it and need the GIL between batches).
    fn with<T>(
        &self,
        f: impl FnOnce(&mut perplex::Model) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut guard = self.model.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(model) => f(model),
            None => Err(Failure::Perplex(
                perplex::EvalError::Compare(format!(
                    "{} is being compared in another call",
                    self.spec
                ))
                .into(),
            )),
        }
    }
}

#[pymethods]
impl Model {
    /// Loads a model folder, GGUF file, hub id or `BASE+ADAPTER`.
    #[staticmethod]
    #[pyo3(signature = (spec, fast = false, threads = None))]
    fn load(py: Python<'_>, spec: String, fast: bool, threads: Option<usize>) -> PyResult<Self> {
        let options = load_options(fast, threads);
        let model = detached(py, || Ok(perplex::load(&spec, &options)?))?;
        Ok(Model {
            spec,
            model: Mutex::new(Some(model)),
        })
    }

    /// The spec it was loaded from.
    #[getter]
    fn spec(&self) -> String {
        self.spec.clone()
    }

    /// The model's identity, as reports record it (JSON).
    fn identity_json(&self, py: Python<'_>) -> PyResult<String> {
        detached(py, || {
            self.with(|m| Ok(serde_json::to_string(&m.identity).expect("serialisable")))
        })
    }

    /// The longest window the model supports, when it declares one.
    #[getter]
    fn context_length(&self, py: Python<'_>) -> PyResult<Option<usize>> {
        detached(py, || self.with(|m| Ok(m.lm.info().max_context)))
    }

    /// The texts of token ids.
    fn token_texts(&self, py: Python<'_>, ids: Vec<u32>) -> PyResult<Vec<String>> {
        detached(py, || {
            self.with(|m| Ok(ids.iter().map(|&id| m.tokenizer.token_text(id)).collect()))
        })
    }

    /// Scores documents held in memory: `perplex score`'s rows for them, as
    /// columns. `texts`, `ids` and `indices` are of one length (checked
    /// by `perplex/_api.py`, and again here).
    fn score_rows(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        ids: Vec<String>,
        indices: Vec<u64>,
        settings: ScoreSettings,
    ) -> PyResult<Py<PyDict>> {
        if ids.len() != texts.len() || indices.len() != texts.len() {
            return Err(usage(
                py,
                format!(
                    "{} texts, {} ids and {} indices",
                    texts.len(),
                    ids.len(),
                    indices.len()
                ),
                "give one id and one index per text",
            ));
        }
        let options = settings.options(py)?;
        let documents = texts
            .into_iter()
            .zip(ids)
            .zip(indices)
            .map(|((text, id), index)| SourceDocument {
                index,
                id,
                text,
                extra: Vec::new(),
            })
            .collect();
        let rows = detached(py, || {
            self.with(|m| Ok(perplex_eval::score::score_texts(m, documents, &options)?))
        })?;
        row_columns(py, &rows)
    }

    /// Evaluates the inputs: the report's JSON, and the per-token columns
    /// (bytes) when asked.
    #[pyo3(signature = (inputs, settings, per_token = false, progress = None))]
    fn evaluate(
        &self,
        py: Python<'_>,
        inputs: InputSpec,
        settings: Settings,
        per_token: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(String, Option<Py<PyDict>>)> {
        let inputs = inputs.inputs(py)?;
        let options = settings.options(py)?;
        let (report, columns) = detached(py, || {
            let corpus = inputs.read()?;
            let mut columns = per_token.then(PerToken::default);
            let mut sink = PySink::new(columns.as_mut(), progress.as_ref());
            let report = self.with(|m| {
                with_sink(
                    perplex_eval::evaluate(m, &corpus, &options, &mut sink),
                    sink,
                )
            })?;
            Ok((
                json(|out| perplex_report::write_report(&report, Format::Json, out)),
                columns,
            ))
        })?;
        let columns = columns.map(|c| per_token_dict(py, &c)).transpose()?;
        Ok((report, columns))
    }
}

fn per_token_dict(py: Python<'_>, c: &PerToken) -> PyResult<Py<PyDict>> {
    let dict = PyDict::new(py);
    let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    dict.set_item("document", PyBytes::new(py, &u32s(&c.doc)))?;
    dict.set_item("position", PyBytes::new(py, &u32s(&c.position)))?;
    dict.set_item("token", PyBytes::new(py, &u32s(&c.token)))?;
    dict.set_item("argmax", PyBytes::new(py, &u32s(&c.argmax)))?;
    let nll: Vec<u8> = c.nll.iter().flat_map(|x| x.to_le_bytes()).collect();
    dict.set_item("nll", PyBytes::new(py, &nll))?;
    Ok(dict.unbind())
}

/// Compares a base model with others on the same tokens: the compare
/// report's JSON.
#[pyfunction]
#[pyo3(signature = (models, inputs, settings, confidence, bits_per_byte, progress = None))]
fn compare(
    py: Python<'_>,
    models: Vec<Bound<'_, Model>>,
    inputs: InputSpec,
    settings: Settings,
    confidence: f64,
    bits_per_byte: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let inputs = inputs.inputs(py)?;
    let options = CompareOptions::new(settings.options(py)?)
        .with_confidence(confidence)
        .map_err(|e| errors::to_py(py, &perplex::Error::from(e)))?
        .with_bits_per_byte(bits_per_byte);
    let handles: Vec<&Model> = models.iter().map(Bound::get).collect();
    for (i, a) in handles.iter().enumerate() {
        if handles[..i].iter().any(|b| std::ptr::eq(*a, *b)) {
            return Err(usage(
                py,
                format!("the model {} is given twice", a.spec),
                "compare different models, or load the same one again to compare it with itself",
            ));
        }
    }
    detached(py, || {
        let corpus: Corpus = inputs.read()?;
        // the engine takes the models side by side: borrow each out of its
        // handle for the run, and put it back whatever happens
        let mut taken = Vec::with_capacity(handles.len());
        for h in &handles {
            let model = h.model.lock().unwrap_or_else(|p| p.into_inner()).take();
            match model {
                Some(m) => taken.push(m),
                None => break,
            }
        }
        let result = if taken.len() == handles.len() {
            let mut sink = PySink::new(None, progress.as_ref());
            let report = perplex::compare(&mut taken, &corpus, &options, &mut sink);
            with_sink(report, sink)
        } else {
            Err(
                perplex::EvalError::Compare("a model is being compared in another call".into())
                    .into(),
            )
        };
        for (h, m) in handles.iter().zip(taken) {
            *h.model.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
        }
        let report = result?;
        Ok(json(|out| {
            perplex_report::write_compare(&report, Format::Json, out)
        }))
    })
}

/// Evaluates every checkpoint of a training run: the sweep report's JSON.
#[pyfunction]
#[pyo3(signature = (run_dir, base, inputs, settings, fast = false, threads = None, progress = None))]
#[allow(clippy::too_many_arguments)] // the Python keywords, one each
fn sweep(
    py: Python<'_>,
    run_dir: PathBuf,
    base: Option<String>,
    inputs: InputSpec,
    settings: Settings,
    fast: bool,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let inputs = inputs.inputs(py)?;
    let options = settings.options(py)?;
    let load = load_options(fast, threads);
    detached(py, || {
        let corpus = inputs.read()?;
        let mut sink = PySink::new(None, progress.as_ref());
        let report = perplex::sweep::sweep(
            &run_dir,
            base.as_deref(),
            &corpus,
            &options,
            &mut |spec: &str| perplex::load(spec, &load),
            &mut sink,
        );
        let report = with_sink(report, sink)?;
        Ok(json(|out| {
            perplex_report::write_sweep(&report, Format::Json, out)
        }))
    })
}

/// Panics on the Rust side, to test that no panic crosses the boundary.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    detached(py, || -> Result<(), Failure> {
        panic!("a deliberate panic")
    })
}

/// The native module.
#[pymodule]
fn _perplex(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
