"""The Python API: models loaded once and evaluated many times, compare and
sweep, per-document scores for data pipelines.

Every keyword mirrors a flag of the ``perplex`` command and has its default
(``protocol="chunks"``, ``context=512``, ``bos="auto"``, …); the numbers are
the command's, computed by the same engine. This module only checks Python
types and turns Python values into the engine's; options are checked by the
engine, which raises :mod:`perplex.errors` exceptions with a hint.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from . import _perplex
from ._report import CompareReport, Report, SweepReport
from .errors import InputError, PerplexWarning, UsageError

__all__ = ["Model", "Scorer", "load", "compare", "sweep"]

Texts = Union[str, "os.PathLike[str]", Iterable[str], None]
Progress = Union[None, bool, Callable[[int, int], Any]]

_SETTINGS_DEFAULTS: Dict[str, Any] = {
    "protocol": "chunks",
    "context": 512,
    "stride": None,
    "max_length": 512,
    "max_tokens": None,
    "bos": "auto",
    "batch_size": None,
    "join": False,
}


def _count(name: str, value: Any, minimum: int, optional: bool) -> Optional[int]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(
            f"{name}={value!r} is not an integer of at least {minimum}",
            hint=f"give {name} as an integer >= {minimum}"
            + (", or None for the default" if optional else ""),
        )
    return value


def _name(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{name}={value!r} is not a string", hint=f"give {name} as a string")
    return value


def _settings(options: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(options) - set(_SETTINGS_DEFAULTS))
    if unknown:
        raise UsageError(
            f"unknown option {unknown[0]}=",
            hint="the options are " + ", ".join(sorted(_SETTINGS_DEFAULTS)),
        )
    s = {**_SETTINGS_DEFAULTS, **options}
    join = s["join"]
    if join is True:
        join = "\n\n"
    elif join is False or join is None:
        join = None
    elif not isinstance(join, str):
        raise UsageError(
            f"join={join!r} is neither a bool nor a separator string",
            hint='use join=True (documents joined by "\\n\\n") or join="SEPARATOR"',
        )
    return {
        "protocol": _name("protocol", s["protocol"]),
        "context": _count("context", s["context"], 0, False),
        "stride": _count("stride", s["stride"], 0, True),
        "max_length": _count("max_length", s["max_length"], 0, False),
        "max_tokens": _count("max_tokens", s["max_tokens"], 0, True),
        "bos": _name("bos", s["bos"]),
        "batch_size": _count("batch_size", s["batch_size"], 0, True),
        "join": join,
    }


def _paths(name: str, value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    out = []
    for v in value:
        if not isinstance(v, (str, os.PathLike)):
            raise InputError(
                f"{name} holds {type(v).__name__} {v!r}, not a path",
                hint=f"give {name} as a path or a list of paths",
            )
        out.append(os.fspath(v))
    return out


def _inputs(texts: Texts, files: Any, jsonl: Any, field: str, split: str) -> Dict[str, Any]:
    files = _paths("files", files)
    if isinstance(texts, os.PathLike):
        files.insert(0, os.fspath(texts))
        texts = []
    elif isinstance(texts, str):
        texts = [texts]
    elif texts is None:
        texts = []
    elif isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise InputError(
            f"texts is {type(texts).__name__}, not a string, a path or a list of strings",
            hint="give a str (one document), a pathlib.Path (a file), or a list of str",
        )
    else:
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(
                    f"texts[{i}] is {type(t).__name__} {t!r:.60}, not a string",
                    hint="every text must be a str (decode bytes first; str(x) for other values)",
                )
    jsonl = _paths("jsonl", jsonl)
    if not texts and not files and not jsonl:
        raise InputError(
            "no input: no texts, files or jsonl were given",
            hint="give at least one text, e.g. model.evaluate([\"The cat sat.\"]), "
            "or files=PATH / jsonl=PATH",
        )
    return {
        "texts": texts,
        "files": files,
        "jsonl": jsonl,
        "field": _name("field", field),
        "split": _name("split", split),
    }


class _Tqdm:
    """A progress callback driving a tqdm bar over the run's tokens."""

    def __init__(self, desc: str) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise UsageError(
                "progress=True needs tqdm, which is not installed",
                hint="pip install tqdm, or pass progress=callable(processed, total)",
            ) from None
        self.bar = tqdm(total=None, unit="tok", unit_scale=True, desc=desc)

    def __call__(self, processed: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(processed - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _run(progress: Progress, desc: str, call: Callable[[Optional[Callable]], Any]) -> Any:
    if progress is None or progress is False:
        return call(None)
    if progress is True:
        bar = _Tqdm(desc)
        try:
            return call(bar)
        finally:
            bar.close()
    if not callable(progress):
        raise UsageError(
            f"progress={progress!r} is not a callable",
            hint="pass progress=True (a tqdm bar) or a callable(processed, total)",
        )
    return call(progress)


def _warn(report: Any) -> None:
    for w in report.get("warnings") or []:
        hint = f" ({w['hint']})" if w.get("hint") else ""
        warnings.warn(f"{w['message']}{hint}", PerplexWarning, stacklevel=3)


class Model:
    """A loaded model (see :func:`load`): evaluate it as many times as you
    like, with no reload. Calls release the GIL while they run."""

    __slots__ = ("_native",)

    def __init__(self, native: "_perplex.Model") -> None:
        self._native = native

    @property
    def spec(self) -> str:
        """What it was loaded from."""
        return self._native.spec

    @property
    def identity(self) -> Dict[str, Any]:
        """The model's identity as reports record it (path, format,
        architecture, parameters, weights, hash, adapters)."""
        import json

        return json.loads(self._native.identity_json())

    @property
    def context_length(self) -> Optional[int]:
        """The longest window the model supports, when it declares one."""
        return self._native.context_length

    def __repr__(self) -> str:
        return f"perplex.Model({self.spec!r})"

    def token_texts(self, ids: Sequence[int]) -> List[str]:
        """The text of each token id (for per-token results)."""
        return self._native.token_texts([int(i) for i in ids])

    def evaluate(
        self,
        texts: Texts = None,
        *,
        files: Any = None,
        jsonl: Any = None,
        field: str = "text",
        split: str = "whole",
        per_token: bool = False,
        progress: Progress = None,
        **options: Any,
    ) -> Report:
        """Evaluates text: ``perplex eval``.

        ``texts`` is a str (one document), a ``pathlib.Path`` (a file, cut by
        ``split``: ``"whole"``, ``"lines"`` or ``"paragraphs"``) or a list of
        str; ``files`` and ``jsonl`` (with ``field``) add files. Options:
        ``protocol`` (``"chunks"``, ``"sliding"``, ``"truncate"``,
        ``"llama-cpp"``), ``context``, ``stride``, ``max_length``,
        ``max_tokens``, ``bos`` (``"auto"``, ``"none"``, ``"document"``,
        ``"window"``), ``batch_size``, ``join`` (True or a separator).
        ``per_token=True`` adds :attr:`Report.per_token`; ``progress`` is True
        (a tqdm bar) or a callable(processed, total) called between batches.
        """
        inputs = _inputs(texts, files, jsonl, field, split)
        settings = _settings(options)
        text, columns = _run(
            progress,
            "perplex",
            lambda cb: self._native.evaluate(inputs, settings, bool(per_token), cb),
        )
        arrays = None
        if columns is not None:
            arrays = {
                k: np.frombuffer(v, dtype="<f8" if k == "nll" else "<u4")
                for k, v in columns.items()
            }
        report = Report(text, arrays)
        _warn(report)
        return report

    def score(self, texts: Texts = None, *, format: str = "auto", **kwargs: Any) -> Any:
        """Per-document scores, the call a data pipeline maps over batches.

        Takes :meth:`evaluate`'s arguments and returns one row per document:
        ``document`` (index), ``status``, ``tokens``, ``scored_tokens``,
        ``nll_sum`` (nats), ``perplexity``, ``bits_per_byte`` and ``bytes``
        (NaN where undefined: no scored token; bits per byte when the
        protocol does not score whole documents). A ``pyarrow.Table`` when
        pyarrow is installed (``format="auto"`` or ``"arrow"``), else (or
        with ``format="numpy"``) a dict of numpy arrays.
        """
        if format not in ("auto", "arrow", "numpy"):
            raise UsageError(
                f"format={format!r} is not a score format",
                hint='use format="auto", "arrow" or "numpy"',
            )
        report = self.evaluate(texts, **kwargs)
        columns = _score_columns(report)
        if format == "numpy":
            return columns
        try:
            import pyarrow as pa
        except ImportError:
            if format == "arrow":
                raise UsageError(
                    'format="arrow" needs pyarrow, which is not installed',
                    hint='pip install pyarrow, or use format="numpy"',
                ) from None
            return columns
        return pa.table(columns)


def _score_columns(report: Report) -> Dict[str, np.ndarray]:
    docs = report.to_dict()["documents"]
    whole = report.summary.bits_per_byte is not None
    nan = math.nan

    def bpb(d: Dict[str, Any]) -> float:
        if not whole or d["scored_tokens"] == 0 or d["bytes"] == 0:
            return nan
        return d["nll_sum"] / (d["bytes"] * math.log(2))

    return {
        "document": np.array([d["index"] for d in docs], dtype=np.int64),
        "status": np.array([d["status"] for d in docs], dtype=object),
        "tokens": np.array([d["tokens"] for d in docs], dtype=np.int64),
        "scored_tokens": np.array([d["scored_tokens"] for d in docs], dtype=np.int64),
        "nll_sum": np.array([d["nll_sum"] for d in docs], dtype=np.float64),
        "perplexity": np.array(
            [nan if d["perplexity"] is None else d["perplexity"] for d in docs],
            dtype=np.float64,
        ),
        "bits_per_byte": np.array([bpb(d) for d in docs], dtype=np.float64),
        "bytes": np.array([d["bytes"] for d in docs], dtype=np.int64),
    }


def _threads(threads: Any) -> Optional[int]:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UsageError(
            f"threads={threads!r} is not a number of threads",
            hint="use threads=1 or more, or leave it out to use the physical cores",
        )
    return threads


def load(model: Union[str, "os.PathLike[str]"], *, fast: bool = False, threads: Optional[int] = None) -> Model:
    """Loads a model: a Hugging Face folder, a GGUF file, a hub id
    ``org/name[@revision]`` (the local Hugging Face cache, else downloaded
    into it), or ``BASE+ADAPTER`` with PEFT LoRA adapter folders.

    ``fast=True`` runs the fast mode: bf16 products on CPUs with AVX-512
    BF16, else integer ones (12-bit weights by 16-bit activations) on
    AVX-512 VNNI or AVX2; perplexity within 0.1 % of the exact mode's.
    ``threads`` compute threads (default: the physical cores).
    """
    if not isinstance(model, (str, os.PathLike)):
        raise UsageError(
            f"model={model!r} is not a model path or id",
            hint="give a folder, a .gguf file, a hub id org/name, or BASE+ADAPTER",
        )
    return Model(_perplex.Model.load(os.fspath(model), bool(fast), _threads(threads)))


class Scorer:
    """Scores batches of documents held in memory, one row per document:
    ``perplex score``'s rows, for data pipelines that hand over batches
    (Ray Data's ``map_batches``, a dataframe's chunks)::

        scorer = perplex.Scorer("model.gguf", protocol="chunks", context=512)
        rows = scorer.score(["The cat sat.", "Rust is a language."], ids=["a", "b"])
        rows["perplexity"]                     # one value per document (None: not scored)

    ``model`` is a model spec (loaded once, with ``fast`` and ``threads`` as
    :func:`load` takes them) or a loaded :class:`Model`. The protocol
    keywords are ``perplex score``'s flags (``protocol``, ``context``,
    ``stride``, ``max_length``, ``bos``, ``batch_size``). A document is
    scored alone, exactly as ``perplex score`` and ``perplex eval`` score
    it, whatever else is in the batch: its ``nll_sum`` is the same number
    in any batch, process or machine.
    """

    def __init__(
        self,
        model: Union[str, "os.PathLike[str]", Model],
        protocol: str = "chunks",
        context: int = 512,
        bos: str = "auto",
        batch_size: Optional[int] = None,
        *,
        stride: Optional[int] = None,
        max_length: int = 512,
        fast: bool = False,
        threads: Optional[int] = None,
    ) -> None:
        self.model = model if isinstance(model, Model) else load(model, fast=fast, threads=threads)
        self._settings = {
            "protocol": _name("protocol", protocol),
            "context": _count("context", context, 0, False),
            "stride": _count("stride", stride, 0, True),
            "max_length": _count("max_length", max_length, 0, False),
            "bos": _name("bos", bos),
            "batch_size": _count("batch_size", batch_size, 0, True),
        }
        # the engine checks the options (an unknown protocol, a zero batch)
        # now rather than at the first batch
        self.model._native.score_rows([], [], [], self._settings)

    def __repr__(self) -> str:
        return f"Scorer({self.model.spec!r}, protocol={self._settings['protocol']!r})"

    def score(
        self,
        texts: Sequence[str],
        ids: Optional[Sequence[Any]] = None,
        indices: Optional[Sequence[int]] = None,
    ) -> Dict[str, List[Any]]:
        """One row per text, as columns: a dict of column name → list, the
        columns of ``perplex score``'s row files in their order (``index``,
        ``id``, ``status``, ``bytes``, ``words``, ``tokens``,
        ``scored_tokens``, ``nll_sum``, ``mean_nll``, ``perplexity``,
        ``bits_per_byte``, ``token_accuracy``; None where undefined).

        ``ids`` (strings; integers are written in decimal) default to the
        indices; ``indices`` (each document's position in the whole corpus)
        default to 0, 1, 2, … within this call. A ``None`` text is an empty
        document, as ``perplex score`` reads a null.
        """
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
            raise InputError(
                f"texts is {type(texts).__name__}, not a list of strings",
                hint="give the batch's texts as a list of str",
            )
        texts = ["" if t is None else t for t in texts]
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(
                    f"texts[{i}] is {type(t).__name__} {t!r:.60}, not a string",
                    hint="every text must be a str (decode bytes first; str(x) for other values)",
                )
        if indices is None:
            indices = list(range(len(texts)))
        else:
            indices = list(indices)
            for i, n in enumerate(indices):
                if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                    raise InputError(
                        f"indices[{i}] is {n!r}, not a corpus position",
                        hint="give each document's position as an integer >= 0",
                    )
            indices = [int(n) for n in indices]
        if ids is None:
            ids = [str(n) for n in indices]
        else:
            ids = list(ids)
            for i, d in enumerate(ids):
                if isinstance(d, (int, np.integer)) and not isinstance(d, bool):
                    ids[i] = str(int(d))
                elif not isinstance(d, str):
                    raise InputError(
                        f"ids[{i}] is {type(d).__name__} {d!r:.60}, not a string or an integer",
                        hint="give each document's id as a str (or an int)",
                    )
        if not len(ids) == len(indices) == len(texts):
            raise InputError(
                f"{len(texts)} texts, {len(ids)} ids and {len(indices)} indices",
                hint="give one id and one index per text, or leave them out",
            )
        return self.model._native.score_rows(texts, ids, indices, self._settings)


def compare(
    base: Union[str, "os.PathLike[str]", Model],
    *others: Union[str, "os.PathLike[str]", Model],
    texts: Texts = None,
    files: Any = None,
    jsonl: Any = None,
    field: str = "text",
    split: str = "whole",
    confidence: float = 0.95,
    bits_per_byte: bool = False,
    fast: bool = False,
    threads: Optional[int] = None,
    progress: Progress = None,
    **options: Any,
) -> CompareReport:
    """Compares ``base`` with each of ``others`` on the same tokens:
    ``perplex compare``. Models are :class:`Model` handles or specs (loaded
    with ``fast`` and ``threads``); the other arguments are
    :meth:`Model.evaluate`'s."""
    if not others:
        raise UsageError(
            "compare needs a base and at least one other model",
            hint="perplex.compare(base, other, ..., texts=[...])",
        )
    models = [m if isinstance(m, Model) else load(m, fast=fast, threads=threads) for m in (base, *others)]
    inputs = _inputs(texts, files, jsonl, field, split)
    settings = _settings(options)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise UsageError(f"confidence={confidence!r} is not a number", hint="use e.g. confidence=0.95")
    text = _run(
        progress,
        "perplex compare",
        lambda cb: _perplex.compare(
            [m._native for m in models], inputs, settings, float(confidence), bool(bits_per_byte), cb
        ),
    )
    report = CompareReport(text)
    _warn(report)
    return report


def sweep(
    run_dir: Union[str, "os.PathLike[str]"],
    texts: Texts = None,
    *,
    files: Any = None,
    jsonl: Any = None,
    field: str = "text",
    split: str = "whole",
    base: Optional[str] = None,
    fast: bool = False,
    threads: Optional[int] = None,
    progress: Progress = None,
    **options: Any,
) -> SweepReport:
    """Evaluates every checkpoint of a training run on the same tokens:
    ``perplex sweep``. ``base`` is the base model of adapter checkpoints
    (default: their ``adapter_config.json``'s); the other arguments are
    :meth:`Model.evaluate`'s."""
    inputs = _inputs(texts, files, jsonl, field, split)
    settings = _settings(options)
    if base is not None and not isinstance(base, (str, os.PathLike)):
        raise UsageError(f"base={base!r} is not a model path or id", hint="give base as a path or hub id")
    text = _run(
        progress,
        "perplex sweep",
        lambda cb: _perplex.sweep(
            os.fspath(run_dir),
            None if base is None else os.fspath(base),
            inputs,
            settings,
            bool(fast),
            _threads(threads),
            cb,
        ),
    )
    report = SweepReport(text)
    _warn(report)
    return report
