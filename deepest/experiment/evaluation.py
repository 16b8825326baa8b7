"""A trained field under other discretisations: train at (solver, h), test at (solver′, h′).

The field f_θ a net learned does not depend on the solver it was trained with, so it can be
integrated again with any other solver and step count. A net whose accuracy survives the
change behaves like the ODE y′ = f_θ(t, y); one whose accuracy does not (a ResNet, Euler with
few steps, typically) has learned its discretisation as much as its field.
"""

import dataclasses
import itertools

from .. import train
from ..data import Dataset
from ..fields import AbstractSeparableField
from ..network import SolverNet
from ..solvers import PARTITIONED, supports_adaptive


@dataclasses.dataclass(frozen=True)
class DiscretisationEvaluation:
    """Test loss and accuracy of a trained field integrated with `solver` in `num_steps` steps
    (0: adaptive, with the net's tolerances). Both None where the pair cannot integrate the
    field or the solver failed on some test sample (`note` says which); NaN where the net
    diverged."""

    solver: str
    num_steps: int
    test_loss: float | None
    test_accuracy: float | None
    note: str | None = None

    def to_dict(self) -> dict:
        """The entry of a run's summary.json (under "evaluation")."""
        entry = {"solver": self.solver, "num_steps": self.num_steps, "test_loss": self.test_loss, "test_accuracy": self.test_accuracy}
        return entry if self.note is None else {**entry, "note": self.note}


def evaluate_discretisations(net: SolverNet, dataset: Dataset, *, solvers, num_steps) -> list[DiscretisationEvaluation]:
    """The trained `net`'s field on `dataset`'s test split under every solver × step count.

    Each pair integrates the same field, encoder and readout (`SolverNet.with_solver`) and
    evaluates it as training does (`deepest.train.make_evaluate`: one compiled program per
    task, shared with `fit`'s own test evaluations). Pairs that do not apply give None with a
    note: adaptive steps (0) with a solver that has no error estimate, a partitioned solver on a
    field that is not separable.

    Args:
        net: a trained `SolverNet` (one model, not a stack of replicas).
        dataset: the `deepest.data.Dataset` whose test split is evaluated.
        solvers: solver names (`deepest.SOLVERS`).
        num_steps: step counts; 0 integrates adaptively.

    Returns:
        One `DiscretisationEvaluation` per (solver, num_steps), solvers outermost.

    Example:
        >>> results = evaluate_discretisations(trained, data, solvers=["euler", "rk4"], num_steps=[4, 16])
        >>> [(r.solver, r.num_steps, r.test_accuracy) for r in results]
    """
    return [_evaluate(net, dataset, solver, steps) for solver, steps in itertools.product(solvers, num_steps)]


def _evaluate(net: SolverNet, dataset: Dataset, solver: str, num_steps: int) -> DiscretisationEvaluation:
    separable = isinstance(net.field, AbstractSeparableField)
    if (num_steps == 0 and not supports_adaptive(solver)) or (solver in PARTITIONED and not separable):
        return DiscretisationEvaluation(solver, num_steps, None, None, "not applicable to this field/solver")
    variant = net.with_solver(solver, num_steps=num_steps or None, throw=False)
    loss, diagnostics = train.make_evaluate(dataset.task)(variant, dataset.x_test, dataset.y_test)
    failures = int(diagnostics["solver_failures"])
    if failures:
        reason = train.failure_reason(failures, diagnostics["solver_result"], len(dataset.x_test))
        return DiscretisationEvaluation(solver, num_steps, None, None, reason)
    return DiscretisationEvaluation(solver, num_steps, float(loss), float(diagnostics["accuracy"]))
