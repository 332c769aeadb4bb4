"""``torch.compile(opt.step)`` — the usual "compile the optimizer" recipe — works for every drop-in
and for ``FunctionalOptimizer``: equal to the eager step, one graph for the steady state over 50
steps while a scheduler changes a tensor ``lr`` every step (as ``torch.optim`` needs it too), no
graph breaks beyond the one ``torch.optim.Optimizer``'s step wrapper makes.

Dynamo is run with ``backend="eager"`` here (what is traced and how often it recompiles does not
depend on the backend; Inductor's code generation is covered by one slow test)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

import functional_optim as fo

pytestmark = pytest.mark.slow

DROP_INS: dict[str, dict[str, Any]] = {
    "SGD": {"momentum": 0.9},
    "Adam": {},
    "AdamW": {},
    "Adamax": {},
    "NAdam": {},
    "RAdam": {},
    "Adagrad": {},
    "Adadelta": {},
    "RMSprop": {"momentum": 0.9},
    "Rprop": {},
    "ASGD": {},
    "Adafactor": {},
    "Muon": {},
    # the modern drop-ins whose rules the adapters fuse
    "Lion": {"weight_decay": 0.1},
    "Signum": {},
    "AdaBelief": {"weight_decay": 0.01, "rectify": False},
    "Yogi": {},
    "ADOPT": {"weight_decay": 0.01, "decouple": True},
    "AdEMAMix": {"weight_decay": 0.01},
    "Adan": {"weight_decay": 0.02},
    "LaProp": {"weight_decay": 0.01},
    "Novograd": {},
}


def _params(two_d: bool, seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3, 5)] if two_d else [(4, 3), (3,)]
    return [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]


def _grads(params: list[torch.nn.Parameter], step: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, generator=gen) for p in params]


def _compare(make: Callable[[list], torch.optim.Optimizer], two_d: bool, steps: int = 50) -> tuple[int, int]:
    """Run ``steps`` compiled and eager steps side by side; returns (graphs, graph breaks)."""
    torch._dynamo.reset()
    counters.clear()
    compiled_params, eager_params = _params(two_d), _params(two_d)
    opt, ref = make(compiled_params), make(eager_params)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: 0.98**s) for o in (opt, ref)]
    step = torch.compile(opt.step, backend="eager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(steps):
            for p, q, g in zip(compiled_params, eager_params, _grads(compiled_params, k), strict=True):
                p.grad, q.grad = g.clone(), g.clone()
            step()
            ref.step()
            for s in scheds:
                s.step()
    for p, q in zip(compiled_params, eager_params, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    breaks = sum(v for k, v in counters["graph_break"].items() if "marked as skipped" not in k)
    return counters["stats"]["unique_graphs"], breaks


@pytest.mark.parametrize("name", sorted(DROP_INS))
def test_compiled_step_of_every_drop_in_equals_eager_and_compiles_once(name):
    kwargs = DROP_INS[name]
    graphs, breaks = _compare(
        lambda ps: getattr(fo.adapters, name)(ps, lr=torch.tensor(0.01), **kwargs), two_d=name == "Muon"
    )
    # one graph for the first step (it creates the state) and one for every later step
    assert graphs <= 2, graphs
    assert breaks == 0


def test_compiled_step_of_a_functional_optimizer_with_a_custom_chain():
    def make(ps: list) -> torch.optim.Optimizer:
        return fo.adapters.FunctionalOptimizer(ps, fo.adamw, lr=torch.tensor(0.01), weight_decay=0.1)

    graphs, breaks = _compare(make, two_d=False)
    assert graphs <= 2 and breaks == 0


def test_inductor_compiled_adamw_step_equals_eager():
    torch._dynamo.reset()
    compiled_params, eager_params = _params(False), _params(False)
    opt = fo.adapters.AdamW(compiled_params, lr=torch.tensor(0.01))
    ref = fo.adapters.AdamW(eager_params, lr=torch.tensor(0.01))
    step = torch.compile(opt.step)
    for k in range(4):
        for p, q, g in zip(compiled_params, eager_params, _grads(compiled_params, k), strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        step()
        ref.step()
    for p, q in zip(compiled_params, eager_params, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(opt.state[p]["exp_avg_sq"], ref.state[q]["exp_avg_sq"])
