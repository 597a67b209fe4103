"""perplex: how well does a causal language model predict this text?

Perplexity and its relatives computed exactly (f32 activations) by the Rust
engine of the ``perplex`` command, with the same numbers and the same JSON
reports::

    import perplex

    model = perplex.load("path/to/hf-folder")          # or a .gguf, org/name, BASE+ADAPTER
    report = model.evaluate(["The cat sat on the mat.", "Rust is a language."])
    report.summary.perplexity                          # token-weighted corpus perplexity
    report.to_json()                                   # = perplex eval --format json

    model.score(texts)                                 # one row per document (pyarrow or numpy)
    perplex.Scorer("model.gguf").score(texts, ids=ids) # perplex score's rows, for batch pipelines
    perplex.compare("base", "base+adapter", texts=texts)
    perplex.sweep("output_dir", texts=texts)           # every checkpoint-N of a Trainer run

Integrations: :mod:`perplex.integrations.transformers` (a ``TrainerCallback``)
and :mod:`perplex.integrations.evaluate` (HF ``evaluate``'s perplexity metric).
Errors are :mod:`perplex.errors` exceptions carrying the command's hint.
"""

from . import errors
from ._api import Model, Scorer, compare, load, sweep
from ._perplex import __version__
from ._report import CompareReport, Record, Report, SweepReport
from .errors import (
    EvaluationError,
    InputError,
    InternalError,
    ModelError,
    PerplexError,
    PerplexWarning,
    UsageError,
)

__all__ = [
    "load",
    "compare",
    "sweep",
    "Model",
    "Scorer",
    "Report",
    "CompareReport",
    "SweepReport",
    "Record",
    "errors",
    "PerplexError",
    "UsageError",
    "InputError",
    "ModelError",
    "EvaluationError",
    "InternalError",
    "PerplexWarning",
    "__version__",
]
