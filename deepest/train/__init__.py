"""Training a SolverNet: one compiled step, a Python loop, metrics, and divergence as data.

`fit` runs minibatch gradient descent with an optax optimiser: each step is `make_step`'s
on the minibatch `Minibatches` draws. Exploding networks are the subject of this project, so
a step whose loss is NaN/Inf, whose final states exceed `max_state_norm`, or whose solve
fails (diffrax's result code) does not raise: training stops there, the last good model is
kept, and the result says `status="diverged"`, when and why. Minibatches depend only on
(key, step), so a run resumed from a checkpoint at step s continues exactly as the
uninterrupted run would have. The loop keeps one step ahead: it dispatches step k + 1 before
it checks step k, so the checks, records and checkpoints (the `on_record` and
`on_checkpoint` callbacks) run while the next step computes.

Each minibatch is split over the local devices (data parallel, `deepest._devices`), and the
numbers equal those of one device up to float round-off. A CPU is one device unless JAX was
started with more (`deepest run --devices D`; in your own code `JAX_NUM_CPU_DEVICES` before
importing jax); on 2 cores two devices were at best level with one (`deepest._devices`).

The parts, one a file: the optimisers by name (`_optimisers`), the loss and its compiled
evaluation (`_objective`), the step (`_step`), the minibatches (`_minibatches`), divergence
and replica freezing (`_divergence`), records and checkpoints (`_records`), the loop one
step ahead (`_loop`), and `fit` putting them together (`_fit`). The compiled step, minibatch
and evaluation programs are kept per process; `deepest.clear_caches()` drops them.
"""

from ._fit import TrainingResult as TrainingResult
from ._fit import fit as fit
from ._fit import fit_replicas as fit_replicas
from ._fit import stack_models as stack_models
from ._minibatches import Minibatches as Minibatches
from ._objective import failure_reason as failure_reason
from ._objective import loss_fn_for as loss_fn_for
from ._objective import make_evaluate as make_evaluate
from ._objective import squared_error as squared_error
from ._optimisers import OPTIMISERS as OPTIMISERS
from ._optimisers import SCHEDULES as SCHEDULES
from ._optimisers import init_state as init_state
from ._optimisers import optimiser as optimiser
from ._step import TrainingStep as TrainingStep
from ._step import make_step as make_step
