"""A drop-in for Hugging Face ``evaluate``'s perplexity metric.

::

    # before: import evaluate; metric = evaluate.load("perplexity", module_type="metric")
    from perplex.integrations import evaluate as perplex_evaluate
    metric = perplex_evaluate.load("perplexity")
    result = metric.compute(model_id="path/or/org-name", predictions=texts,
                            batch_size=16, add_start_token=True, max_length=None)
    result["perplexities"], result["mean_perplexity"]   # as evaluate's
    result["corpus_perplexity"]                          # token-weighted: what the mean hides

``compute`` takes the metric's arguments and returns its keys with the same
numbers where both are defined (per text: ``exp`` of the mean NLL of its
tokens, the first one predicted from BOS when ``add_start_token``; the mean:
the unweighted mean over texts), plus ``corpus_perplexity`` (``exp(ΣNLL /
Σtokens)`` over all texts: the figure to compare models with, which the mean
of per-text perplexities is not), ``scored_tokens``, and ``report`` (the full
:class:`perplex.Report`). It neither needs nor imports torch.

Differences, all where the metric is not well defined or silently changes the
question:

- the model is loaded once per ``(model_id, fast, threads)`` and kept for later
  calls (the metric reloads it on every call);
- ``max_length`` counts BOS, as the metric does (``max_length - 1`` text tokens
  after BOS); with ``max_length=None`` a text longer than the model's context
  is cut at the context length (the metric runs it past the model's positions);
- a text with nothing to predict (empty; a single token without BOS) gets
  ``nan`` and is left out of the mean (the metric raises);
- ``add_start_token=True`` with a tokenizer that has no BOS token raises
  :class:`perplex.UsageError` (the metric raises an assertion error);
- ``batch_size`` and ``device`` are accepted and change nothing: the engine
  batches by itself on the CPU, and results never depend on the batch.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, Dict, List, Optional, Tuple, Union

from .._api import Model, load as _load
from ..errors import UsageError

__all__ = ["Perplexity", "load", "compute"]

_models: Dict[Tuple[str, bool, Optional[int]], Model] = {}
_lock = threading.Lock()


def _model(model_id: str, fast: bool, threads: Optional[int]) -> Model:
    key = (model_id, fast, threads)
    with _lock:
        if key not in _models:
            _models[key] = _load(model_id, fast=fast, threads=threads)
        return _models[key]


class Perplexity:
    """The metric object :func:`load` returns; call :meth:`compute`."""

    name = "perplexity"

    def __init__(self, *, fast: bool = False, threads: Optional[int] = None) -> None:
        self.fast = fast
        self.threads = threads

    def compute(
        self,
        *,
        predictions: List[str],
        model_id: Union[str, "os.PathLike[str]", Model],
        batch_size: int = 16,
        add_start_token: bool = True,
        device: Optional[str] = None,
        max_length: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Perplexity of ``model_id`` on each text of ``predictions``; see the
        module docs for the keys and the differences from ``evaluate``."""
        del batch_size, device  # see the module docs
        model = model_id if isinstance(model_id, Model) else _model(os.fspath(model_id), self.fast, self.threads)
        if isinstance(predictions, str):
            raise UsageError(
                "predictions is one string, not a list of texts",
                hint="pass predictions=[text] for a single text",
            )
        if max_length is None:
            max_length = model.context_length or 1 << 30
        report = model.evaluate(
            predictions,
            protocol="truncate",
            max_length=max_length,
            bos="document" if add_start_token else "none",
        )
        perplexities = [math.nan if d.perplexity is None else d.perplexity for d in report.documents]
        mean = report.summary.mean_document_perplexity
        return {
            "perplexities": perplexities,
            "mean_perplexity": math.nan if mean is None else mean,
            "corpus_perplexity": report.summary.perplexity,
            "scored_tokens": report.summary.scored_tokens,
            "report": report,
        }


def load(path: str = "perplexity", *, fast: bool = False, threads: Optional[int] = None, **_: Any) -> Perplexity:
    """``evaluate.load("perplexity")``'s stand-in (other metrics are not here)."""
    if os.path.basename(str(path).rstrip("/")).removesuffix(".py") != "perplexity":
        raise UsageError(
            f"{path!r} is not a metric perplex provides",
            hint='use load("perplexity"); other metrics come from evaluate itself',
        )
    return Perplexity(fast=fast, threads=threads)


def compute(**kwargs: Any) -> Dict[str, Any]:
    """``load("perplexity").compute(**kwargs)``."""
    return Perplexity().compute(**kwargs)
