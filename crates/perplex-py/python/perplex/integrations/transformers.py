"""A ``transformers.TrainerCallback`` that measures perplexity at every
checkpoint, in the background, with perplex.

::

    from perplex.integrations.transformers import PerplexityCallback

    callback = PerplexityCallback(eval_texts, threads=1, context=512)
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[callback])
    callback.attach(trainer)       # optional: also report to TensorBoard, W&B, … (trainer.log)
    trainer.train()
    callback.points                # [{"step": 100, "eval_perplexity": ..., ...}, ...]
    callback.curve                 # the perplex sweep report of the run, with its diagnoses

On each save (``on_save``), the checkpoint just written
(``output_dir/checkpoint-N``: full weights, or a PEFT adapter applied to its
base), or, with ``every=N``, the model at each evaluation whose step is a
multiple of N (``on_evaluate``: written to ``output_dir/.perplex/step-N``
for the run and removed after it), is loaded by perplex on
``threads`` CPU threads and scored on the evaluation text in a background
thread, so training goes on: the GIL is released while perplex runs, and one
checkpoint is scored at a time (one model in memory, no logits kept). Each
result is added to the trainer's ``log_history`` as ``{"eval_perplexity": …,
"eval_perplexity_ci95": [low, high], "eval_scored_tokens": …, "step": N}``
(so ``trainer_state.json`` has it; at the end of training the run's
``trainer_state.json`` is rewritten with every point) and, when attached, is
also logged through ``trainer.log`` for the reporting integrations. The
number is exactly ``perplex sweep``'s for the same checkpoint and options
(token-weighted, over the same tokens).

At the end of training (``diagnose=True``), ``perplex sweep`` runs over the
run folder with the same text and options, in the same background thread:
:attr:`curve` is its report, and its diagnoses (perplexity not decreasing,
rising while the loss falls, an untrained adapter) are issued as
``perplex.PerplexWarning``.

``eval_dataset`` may be given instead of texts: a sequence of dicts (or a
``datasets.Dataset``) whose ``text_field`` holds the text.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from transformers import TrainerCallback

from .. import _api
from .._report import SweepReport
from ..errors import PerplexWarning, UsageError

__all__ = ["PerplexityCallback"]


def _base_of(checkpoint: Path, output_dir: Path, base: Optional[str]) -> Optional[str]:
    """The base model of an adapter checkpoint, found as ``perplex sweep``
    finds it: ``base``, else ``adapter_config.json``'s
    ``base_model_name_or_path`` (from here, then from the run folder and each
    folder above it; else a hub id)."""
    if base is not None:
        return base
    name = json.loads((checkpoint / "adapter_config.json").read_text())["base_model_name_or_path"]
    for candidate in [Path(name), *(a / name for a in [output_dir, *output_dir.parents])]:
        if (candidate / "config.json").is_file() or candidate.is_file():
            return str(candidate)
    return name


class PerplexityCallback(TrainerCallback):
    """See the module docs. ``options`` are :meth:`perplex.Model.evaluate`'s
    (``protocol``, ``context``, ``bos``, …)."""

    def __init__(
        self,
        eval_texts: Optional[Iterable[str]] = None,
        *,
        eval_dataset: Any = None,
        text_field: str = "text",
        every: Optional[int] = None,
        threads: int = 1,
        base: Optional[str] = None,
        fast: bool = False,
        diagnose: bool = True,
        **options: Any,
    ) -> None:
        if (eval_texts is None) == (eval_dataset is None):
            raise UsageError(
                "give either eval_texts or eval_dataset",
                hint="PerplexityCallback(eval_texts=[...]) or PerplexityCallback(eval_dataset=ds, text_field=\"text\")",
            )
        texts = list(eval_texts) if eval_texts is not None else [row[text_field] for row in eval_dataset]
        # the same checks as an evaluate call, now rather than in the first checkpoint
        _api._inputs(texts, None, None, "text", "whole")
        _api._settings(options)
        if every is not None and (not isinstance(every, int) or every < 1):
            raise UsageError(f"every={every!r} is not a number of steps", hint="use every=N (N >= 1), or None to score every save")
        self.texts = texts
        self.every = every
        self.threads = _api._threads(threads)
        self.base = base
        self.fast = fast
        self.diagnose = diagnose
        self.options = options
        self.points: List[Dict[str, Any]] = []
        self.curve: Optional[SweepReport] = None
        self._trainer = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perplex")
        self._pending: List[Future] = []
        self._lock = threading.Lock()
        self._scored: set = set()

    def attach(self, trainer: Any) -> "PerplexityCallback":
        """Adds the callback to ``trainer`` (if it is not there yet) and logs
        results through ``trainer.log``, so reporting integrations get them."""
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        self._trainer = trainer
        return self

    # --- scoring, in the background thread --------------------------------

    def _score(self, step: int, checkpoint: Path, output_dir: Path) -> Dict[str, Any]:
        spec = str(checkpoint)
        if (checkpoint / "adapter_config.json").is_file():
            spec = f"{_base_of(checkpoint, output_dir, self.base)}+{checkpoint}"
        model = _api.load(spec, fast=self.fast, threads=self.threads)
        report = model.evaluate(self.texts, **self.options)
        del model  # one model in memory at a time
        s = report.summary
        return {
            "eval_perplexity": s.perplexity,
            "eval_perplexity_ci95": list(s.perplexity_ci95) if s.perplexity_ci95 else None,
            "eval_scored_tokens": s.scored_tokens,
            "step": step,
        }

    def _submit(self, args: Any, state: Any) -> None:
        step = state.global_step
        checkpoint = Path(args.output_dir) / f"checkpoint-{step}"
        if step in self._scored or not checkpoint.is_dir():
            return
        self._scored.add(step)
        self._pending.append(self._pool.submit(self._score, step, checkpoint, Path(args.output_dir)))

    def _collect(self, state: Any, wait: bool = False) -> None:
        """Moves finished results into the log history (the training thread
        only: the trainer's state is not shared with the worker)."""
        still = []
        for future in self._pending:
            if not wait and not future.done():
                still.append(future)
                continue
            point = future.result()  # an error in scoring is raised here, in training's thread
            self.points.append(point)
            state.log_history.append(dict(point))
            if self._trainer is not None:
                logs = {k: v for k, v in point.items() if k in ("eval_perplexity", "eval_scored_tokens")}
                self._trainer.callback_handler.on_log(self._trainer.args, state, self._trainer.control, logs)
        self._pending = still

    # --- Trainer events ----------------------------------------------------

    def on_save(self, args, state, control, **kwargs):
        if self.every is None and state.is_world_process_zero:
            self._submit(args, state)

    def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
        # Trainer evaluates before it saves: the model as it is now is written
        # to a folder of its own, scored, then removed
        step = state.global_step
        if self.every is None or step % self.every or not state.is_world_process_zero or model is None:
            return
        if step in self._scored:
            return
        folder = Path(args.output_dir) / ".perplex" / f"step-{step}"
        model.save_pretrained(folder)
        if processing_class is not None and hasattr(processing_class, "save_pretrained"):
            processing_class.save_pretrained(folder)
        self._scored.add(step)
        self._pending.append(self._pool.submit(self._score_and_remove, step, folder, Path(args.output_dir)))

    def _score_and_remove(self, step: int, folder: Path, output_dir: Path) -> Dict[str, Any]:
        try:
            return self._score(step, folder, output_dir)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def on_step_end(self, args, state, control, **kwargs):
        self._collect(state)

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self._collect(state, wait=True)
        self.points.sort(key=lambda p: p["step"])
        state.save_to_json(os.path.join(args.output_dir, "trainer_state.json"))
        if self.diagnose and self.points:
            self.curve = self._pool.submit(
                _api.sweep, args.output_dir, self.texts, base=self.base, fast=self.fast,
                threads=self.threads, **self.options,
            ).result()
            for d in self.curve.to_dict().get("diagnoses", []):
                text = d.get("message") or json.dumps(d)
                warnings.warn(f"perplexity curve: {text}", PerplexWarning, stacklevel=2)
