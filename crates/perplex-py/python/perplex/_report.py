"""Reports as Python objects: read-only views of the JSON the ``perplex``
command writes, with attribute and item access.

``report.summary.perplexity`` and ``report["summary"]["perplexity"]`` are the
same number; :meth:`Report.to_json` is the command's ``--format json`` text
byte for byte and :meth:`Report.to_dict` its parsed form (the schemas are in
the repository's docs/).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, Iterator, Mapping, Optional

__all__ = ["Record", "Report", "CompareReport", "SweepReport"]


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Record(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class Record(Mapping[str, Any]):
    """A read-only view of a JSON object: ``r.key`` or ``r["key"]``; nested
    objects are records too, lists are lists."""

    __slots__ = ("_data",)

    def __init__(self, data: Dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key])

    def __getattr__(self, key: str) -> Any:
        try:
            return _wrap(self._data[key])
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("reports are read-only; use to_dict() for a copy")

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __dir__(self):
        return list(self._data) + ["to_dict"]

    def __repr__(self) -> str:
        return f"Record({self._data!r})"

    def to_dict(self) -> Dict[str, Any]:
        """A deep copy as plain dicts and lists."""
        return copy.deepcopy(self._data)


class _Document(Record):
    """A report with its JSON text kept."""

    __slots__ = ("_json",)

    def __init__(self, text: str) -> None:
        super().__init__(json.loads(text))
        object.__setattr__(self, "_json", text)

    def to_json(self) -> str:
        """The report as ``perplex … --format json`` writes it."""
        return self._json

    def __dir__(self):
        return super().__dir__() + ["to_json"]


class Report(_Document):
    """The report of one model on one corpus (``perplex eval``): ``model``,
    ``tokenizer``, ``corpus``, ``protocol``, ``summary`` (corpus perplexity,
    its 95 % interval, bits per byte, word perplexity, …), ``documents``,
    ``timing``, ``warnings``; and ``per_token`` when asked."""

    __slots__ = ("_per_token",)

    def __init__(self, text: str, per_token: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(text)
        object.__setattr__(self, "_per_token", per_token)

    @property
    def per_token(self) -> Optional[Dict[str, Any]]:
        """Every scored token as numpy arrays of equal length (``document``,
        ``position`` among the document's text tokens, ``token`` id,
        ``argmax`` id, ``nll`` in nats), when ``per_token=True`` was asked;
        else ``None``. Not part of ``to_dict()``, as in the command, where
        ``--per-token`` writes its own file."""
        return self._per_token

    @property
    def perplexity(self) -> Optional[float]:
        """The token-weighted corpus perplexity (``summary.perplexity``)."""
        return self._data["summary"]["perplexity"]

    def __repr__(self) -> str:
        s = self._data["summary"]
        return (
            f"Report(model={self._data['model']['spec']!r}, perplexity={s['perplexity']}, "
            f"scored_tokens={s['scored_tokens']}, documents={self._data['corpus']['documents']})"
        )


class CompareReport(_Document):
    """The report of ``perplex compare``: ``models`` (each with its summary
    and documents), ``pairs`` (improvement, paired interval, KL divergence,
    top-1 agreement, verdict), ``warnings``."""

    def __repr__(self) -> str:
        specs = [m["model"]["spec"] for m in self._data["models"]]
        return f"CompareReport(models={specs!r})"


class SweepReport(_Document):
    """The report of ``perplex sweep``: ``points`` (one per checkpoint, by
    step, with the trainer's losses), ``base``, ``diagnoses``, ``warnings``."""

    def __repr__(self) -> str:
        points = [(p["step"], p["perplexity"]) for p in self._data["points"]]
        return f"SweepReport(run={self._data['run']!r}, points={points!r})"
