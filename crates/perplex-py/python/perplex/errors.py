"""The exceptions perplex raises.

Every error of the engine is a :class:`PerplexError`; its class says what
kind of failure it is (the same classes as the ``perplex`` command's exit
codes), its message is the command's error text with its ``caused by:`` and
``hint:`` lines, and the instance carries the parts:

- ``hint``: what to do about it (or ``None``),
- ``causes``: the underlying errors' messages, outermost first,
- ``exit_code``: the exit code the ``perplex`` command gives the same error.

A run stopped by Ctrl-C raises :class:`KeyboardInterrupt`, after the engine
has stopped.
"""

from __future__ import annotations

from typing import List, Optional

__all__ = [
    "PerplexError",
    "UsageError",
    "InputError",
    "ModelError",
    "EvaluationError",
    "InternalError",
    "PerplexWarning",
]


class PerplexError(Exception):
    """Base class of perplex's errors."""

    hint: Optional[str] = None
    causes: List[str] = []
    exit_code: int = 1

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        if hint is not None and "\n  hint: " not in message:
            message = f"{message}\n  hint: {hint}"
        super().__init__(message)
        self.hint = hint
        self.causes = []


class UsageError(PerplexError, ValueError):
    """Options that do not make sense (alone, together, or for this model)."""

    exit_code = 2


class InputError(PerplexError, ValueError):
    """Text that cannot be read or scored: a missing file, bad JSONL, texts
    that are not strings, nothing to score."""

    exit_code = 3


class ModelError(PerplexError):
    """The model could not be found, read or loaded."""

    exit_code = 4


class EvaluationError(PerplexError, RuntimeError):
    """The run failed (the model produced no valid probabilities, …)."""

    exit_code = 1


class InternalError(PerplexError, RuntimeError):
    """A bug in perplex: the engine panicked. The call is abandoned; the
    process and the other models are unaffected."""

    exit_code = 1


class PerplexWarning(UserWarning):
    """A finding the run went on despite (a model that needs BOS scored
    without it, an untrained adapter, …)."""
