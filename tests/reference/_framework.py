"""Parity against reference implementations of algorithms that ``torch.optim`` lacks.

A :class:`ReferenceCase` trains the same small MLP (:func:`mlp_problem`) with our optimizer and
with the reference (the authors' PyTorch package, or optax run on CPU with jax) for ``steps``
steps, each side on its own parameters and the gradients of the same loss at them, and returns
both final parameter lists. ``tests/reference/test_reference_parity.py`` runs every case for a
few steps; ``benchmarks/reference_parity.py`` runs 100 steps and prints the table.

Cases live in ``tests/reference/cases_<family>.py`` as a module-level ``CASES`` list; a case
names the modules it needs (``requires``) and is skipped with that reason when one is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

import functional_optim as fo

Runner = Callable[[torch.dtype, int], tuple[list[Tensor], list[Tensor]]]


@dataclass(frozen=True)
class ReferenceCase:
    """One algorithm configuration compared with its reference.

    Attributes:
      name: the case's id, e.g. ``"lion"`` or ``"adan-no_prox"``.
      reference: what it is compared with, e.g. ``"lion-pytorch 0.2"`` or ``"optax.lion"``.
      requires: importable module names the reference needs (skipped when one is missing).
      run: ``run(dtype, steps) -> (ours, reference)``: final parameters of both sides.
      dtypes: the dtypes the reference supports.
      atol: allowed max abs difference per dtype after the test's step count.
      note: anything a reader of the table should know (a reference bug we do not follow...).
    """

    name: str
    reference: str
    requires: tuple[str, ...]
    run: Runner
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    atol: dict[torch.dtype, float] = field(
        default_factory=lambda: {torch.float32: 1e-5, torch.float64: 1e-10}
    )
    note: str = ""

    def missing(self) -> list[str]:
        """The required modules that are not installed."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


def all_cases() -> list[ReferenceCase]:
    """Every case of every ``tests/reference/cases_*.py`` module."""
    import tests.reference as pkg

    cases: list[ReferenceCase] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cases_"):
            cases.extend(importlib.import_module(f"tests.reference.{info.name}").CASES)
    return cases


# ----------------------------------------------------------------------------- the problem


@dataclass
class Problem:
    """A 2-layer tanh MLP regression: ``params`` (dict of tensors) and ``loss(params, step)``.

    The mini-batch depends on the step only, so both sides see the same data at every step.
    """

    params: dict[str, Tensor]
    inputs: Tensor
    targets: Tensor
    batch: int = 16

    def loss(self, params: dict[str, Tensor], step: int) -> Tensor:
        n = self.inputs.shape[0]
        idx = (torch.arange(self.batch) + step * self.batch) % n
        x, y = self.inputs[idx], self.targets[idx]
        h = torch.tanh(x @ params["w1"] + params["b1"])
        return ((h @ params["w2"] + params["b2"] - y) ** 2).mean()


def mlp_problem(dtype: torch.dtype = torch.float32, seed: int = 0, width: int = 16) -> Problem:
    """The shared problem: inputs 8, hidden ``width``, outputs 4, 256 samples."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int, scale: float = 1.0) -> Tensor:
        return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)

    params = {
        "w1": randn(8, width, scale=8**-0.5),
        "b1": randn(width, scale=0.1),
        "w2": randn(width, 4, scale=width**-0.5),
        "b2": randn(4, scale=0.1),
    }
    inputs = randn(256, 8)
    targets = torch.sin(inputs[:, :4] * 2) + 0.1 * randn(256, 4)
    return Problem(params, inputs, targets)


def _grads(problem: Problem, params: dict[str, Tensor], step: int) -> dict[str, Tensor]:
    p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    loss = problem.loss(p, step)
    return dict(zip(p, torch.autograd.grad(loss, list(p.values())), strict=True))


def run_pure(transform: fo.GradientTransformation, problem: Problem, steps: int) -> list[Tensor]:
    """Train with a pure transform; the final parameters in ``problem.params`` order."""
    params = {k: v.clone() for k, v in problem.params.items()}
    state = transform.init(params)
    for step in range(steps):
        updates, state = transform.update(_grads(problem, params, step), state, params)
        params = fo.apply_updates(params, updates)
    return list(params.values())


def run_torch(make_optimizer: Callable[[list[Tensor]], Any], problem: Problem, steps: int) -> list[Tensor]:
    """Train with a ``torch.optim.Optimizer``-style object built by ``make_optimizer(params)``
    (a reference package's class, or one of our drop-ins)."""
    params = [v.clone().requires_grad_(True) for v in problem.params.values()]
    names = list(problem.params)
    opt = make_optimizer(params)
    for step in range(steps):
        opt.zero_grad()
        problem.loss(dict(zip(names, params, strict=True)), step).backward()
        opt.step()
    return [p.detach() for p in params]


def run_optax(make_transform: Callable[[], Any], problem: Problem, steps: int) -> list[Tensor]:
    """Train with an optax transform (jax on CPU, float64 enabled when the problem is float64),
    gradients computed by torch at the jax side's parameters (converted each step)."""
    import jax
    import numpy as np

    dtype = next(iter(problem.params.values())).dtype
    jax.config.update("jax_enable_x64", dtype == torch.float64)
    import jax.numpy as jnp
    import optax

    to_jax = lambda t: jnp.asarray(t.detach().cpu().numpy())  # noqa: E731
    params = {k: to_jax(v) for k, v in problem.params.items()}
    tx = make_transform()
    state = tx.init(params)
    for step in range(steps):
        torch_params = {k: torch.from_numpy(np.array(v)) for k, v in params.items()}
        grads = {k: to_jax(g) for k, g in _grads(problem, torch_params, step).items()}
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return [torch.from_numpy(np.array(params[k])) for k in problem.params]


def max_abs_diff(ours: Sequence[Tensor], ref: Sequence[Tensor]) -> float:
    """``max |ours - ref|`` over every element of every tensor (in float64)."""
    return max(
        float((a.detach().double() - b.detach().double()).abs().max()) for a, b in zip(ours, ref, strict=True)
    )
