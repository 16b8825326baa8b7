"""The torchdiffeq baseline: the same field, weights, loss and optimiser in PyTorch.

Needs the `bench` extra (`pip install -e ".[bench]"`: torch and torchdiffeq); the training-step
benchmark leaves this baseline out when they are not installed.

Reference: Chen et al., "Neural ordinary differential equations" (2018, arXiv:1806.07366), whose
torchdiffeq library this is.
"""

import numpy as np
import torch
import torchdiffeq


class _Field(torch.nn.Module):
    """An `eqx.nn.MLP` with tanh hidden layers, copied weight for weight; f ignores t.

    Counts its solver steps through torchdiffeq's `callback_step`, which every solver calls once
    per attempted step (accepted or rejected), as diffrax's `stats["num_steps"]` counts them.
    """

    def __init__(self, mlp):
        super().__init__()
        self.layers = torch.nn.ModuleList()
        for linear in mlp.layers:
            layer = torch.nn.Linear(linear.in_features, linear.out_features)
            with torch.no_grad():
                layer.weight.copy_(torch.tensor(np.asarray(linear.weight), dtype=torch.float32))
                layer.bias.copy_(torch.tensor(np.asarray(linear.bias), dtype=torch.float32))
            self.layers.append(layer)
        self.steps = 0

    def forward(self, t, y):
        for layer in self.layers[:-1]:
            y = torch.tanh(layer(y))
        return self.layers[-1](y)

    def callback_step(self, t0, y0, dt):
        self.steps += 1


class TorchdiffeqStep:
    """One training step, called as `step()`: odeint, loss, backward, Adam; `loss` is the last.

    Fixed steps take the grid t_k = k/L of `num_steps` = L steps on [0, 1] (the grid diffrax's
    StepTo gets); `num_steps=None` is torchdiffeq's adaptive "dopri5" with rtol and atol.
    Backpropagation runs through the solver's operations (torchdiffeq's `odeint`, not
    `odeint_adjoint`): discretise-then-optimise, as SolverNet's default adjoint.

    Args:
        mlp: the `eqx.nn.MLP` of a `deepest.fields.MLP` (its weights are copied).
        xs: the input batch, (batch, state_dim), used as the initial states.
        method: torchdiffeq's method name ("euler", "rk4", "dopri5").
        num_steps: fixed step count, or None for adaptive.
        learning_rate, rtol, atol: Adam's rate and the adaptive tolerances.
    """

    def __init__(self, mlp, xs, *, method: str, num_steps: int | None, learning_rate: float, rtol: float, atol: float):
        self.field = _Field(mlp)
        self.xs = torch.tensor(np.asarray(xs), dtype=torch.float32)
        self.times = torch.tensor([0.0, 1.0])
        options = {}
        if num_steps is not None:
            grid = torch.linspace(0.0, 1.0, num_steps + 1)
            options["grid_constructor"] = lambda func, y0, t: grid
        self.solve_options = {"method": method, "options": options, "rtol": rtol, "atol": atol}
        self.optimiser = torch.optim.Adam(self.field.parameters(), lr=learning_rate)
        self.loss = None

    def final_state(self):
        return torchdiffeq.odeint(self.field, self.xs, self.times, **self.solve_options)[-1]

    def __call__(self):
        self.optimiser.zero_grad(set_to_none=True)
        self.loss = self.final_state().square().sum(dim=-1).mean()
        self.loss.backward()
        self.optimiser.step()

    def steps(self) -> int:
        """Solver steps of one forward solve with the current weights (shared by the batch)."""
        self.field.steps = 0
        with torch.no_grad():
            self.final_state()
        return self.field.steps


def threads() -> int:
    """Torch's intra-op threads."""
    return torch.get_num_threads()
