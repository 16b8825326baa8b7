"""The metric records of a training run and its checkpoints."""

import math
import time
from collections.abc import Callable

import numpy as np

from .. import _array_leaves
from ._objective import failure_reason


def per_replica(values: dict, count: int) -> list[dict]:
    """Device metrics (scalars, or one value per replica) as one dict of floats per replica."""
    host = {name: np.asarray(value, dtype=float).reshape(count) for name, value in values.items()}
    return [{name: float(column[replica]) for name, column in host.items()} for replica in range(count)]


class Records:
    """Each replica's history of metric records, written every `log_every` steps and at
    `num_steps`, and the checkpoints, taken every `checkpoint_every` steps.

    A record is {"step", "wall_time", "replica" (when replicated), the step's training-batch
    metrics, "test_loss", "test_accuracy", "test_solver_failures"}, the last three from
    `evaluate` on the test split; each is passed to `on_record` as it is written. Where some
    test solves failed, the solver stopped short of t1 and its outputs are no prediction:
    test_loss and test_accuracy are NaN (null in metrics.jsonl, missing in the results table)
    and "test_failure" says why ("solver failed on 40 of 40 samples: the maximum number of
    solver steps was reached. Try increasing `max_steps`."). A failed training solve is a
    refused step, whose "reason" says the same (`divergence`). A checkpoint calls
    on_checkpoint(step, model, state). Model and state are rebuilt from the loop's array
    leaves (`layout`) only at the steps that need them, once for both.
    """

    def __init__(
        self,
        evaluate: Callable,
        test_split: tuple,
        layout: _array_leaves.TreeLayout,
        *,
        count: int,
        replicated: bool,
        log_every: int,
        num_steps: int,
        checkpoint_every: int | None,
        on_record: Callable[[dict], None] | None,
        on_checkpoint: Callable | None,
    ):
        self._evaluate, self._test_split, self._layout = evaluate, test_split, layout
        self._count, self._replicated = count, replicated
        self._log_every, self._num_steps = log_every, num_steps
        self._checkpoint_every = checkpoint_every
        self._on_record, self._on_checkpoint = on_record, on_checkpoint
        self.histories: list[list[dict]] = [[] for _ in range(count)]
        self._started = time.perf_counter()
        self._recorded_through: int | None = None  # the last step whose records and checkpoint are written

    def after_step(self, step: int, leaves: list, metrics: list[dict], alive: list[bool]) -> None:
        """Record the `alive` replicas' `metrics` and checkpoint (model and state from
        `leaves`), where `step`, the steps done, asks for either."""
        logging = step % self._log_every == 0 or step == self._num_steps
        on_checkpoint = self._on_checkpoint if self._checkpoint_every and step % self._checkpoint_every == 0 else None
        if logging or on_checkpoint is not None:
            model, state = self._layout.rebuild(leaves)
            if logging:
                self.record(step, metrics, [replica for replica in range(self._count) if alive[replica]], model)
            if on_checkpoint is not None:
                on_checkpoint(step, model, state)
        self._recorded_through = step

    def checkpoint_interrupted(self, step: int, leaves: list) -> None:
        """On an interrupt after `step` steps: checkpoint them (model and state from `leaves`),
        if there is a checkpoint to call and every record of `step` has been written (a
        checkpoint past a missing record would resume without it). Else the run resumes from
        its last regular checkpoint."""
        if self._on_checkpoint is not None and step == self._recorded_through:
            self._on_checkpoint(step, *self._layout.rebuild(leaves))

    def refused(self, step: int, metrics: list[dict], replicas: list[int], reasons: list, leaves: list) -> None:
        """Record the refused step of each of `replicas`, its metrics marked "diverged" with
        the reason, and the test metrics of the model it was refused from (`leaves`). A
        record of this step may already exist: the marks tell the two apart."""
        marked = [{**entry, "diverged": 1.0, "reason": reason} for entry, reason in zip(metrics, reasons)]
        self.record(step, marked, replicas, self._layout.rebuild(leaves)[0])

    def record(self, step: int, metrics: list[dict], replicas: list[int], model) -> None:
        """Append a record of `step` to the history of each of `replicas`: its `metrics` and
        the test-set metrics of `model`."""
        loss, diagnostics = self._evaluate(model, *self._test_split)
        tests = per_replica({"loss": loss, **{name: diagnostics[name] for name in ("accuracy", "solver_failures", "solver_result")}}, self._count)
        for replica in replicas:
            entry = {"step": step, "wall_time": time.perf_counter() - self._started}
            if self._replicated:
                entry["replica"] = replica
            # A failure's code is said in words where it matters: a refused step's reason.
            entry.update({name: value for name, value in metrics[replica].items() if name != "solver_result"})
            entry.update(_test_fields(tests[replica], len(self._test_split[0])))
            self.histories[replica].append(entry)
            if self._on_record is not None:
                self._on_record(entry)


def _test_fields(test: dict, samples: int) -> dict:
    """A record's fields from the test split's (host) loss and diagnostics over its `samples`:
    no loss or accuracy where some solve failed, but what failed."""
    failures = test["solver_failures"]
    fields = {"test_loss": test["loss"], "test_accuracy": test["accuracy"], "test_solver_failures": failures}
    if failures:
        fields.update(test_loss=math.nan, test_accuracy=math.nan, test_failure=failure_reason(failures, test["solver_result"], samples))
    return fields
