"""Schedules drive any hyperparameter (through ``@schedulable``/``inject_hyperparams``) exactly like
hand-scheduled values, end to end against torch, and hyper-gradients flow to tensor arguments."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as lrs

import functional_optim as fo
from functional_optim import schedules as sch

STEPS = 25


def _params(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"a": torch.randn(4, 3, generator=g, dtype=dtype), "b": torch.randn(5, generator=g, dtype=dtype)}


def _grads(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gradient of sum(p^2/2 + cos p): nonlinear, so the trajectory depends on every step."""
    return {k: v - torch.sin(v) for k, v in params.items()}


def _run_scheduled(tx: fo.GradientTransformation) -> dict[str, torch.Tensor]:
    params = _params()
    state = tx.init(params)
    for _ in range(STEPS):
        updates, state = tx.update(_grads(params), state, params)
        params = fo.apply_updates(params, updates)
    return params


def _run_by_hand(make: Callable[[int], fo.GradientTransformation]) -> dict[str, torch.Tensor]:
    params = _params()
    state = make(0).init(params)
    for t in range(STEPS):
        updates, state = make(t).update(_grads(params), state, params)
        params = fo.apply_updates(params, updates)
    return params


def _trace() -> Any:
    momentum = pytest.importorskip("functional_optim.transforms.momentum")
    return momentum.trace


LR = sch.one_cycle_lr(0.05, total_steps=STEPS, pct_start=0.3)
B1 = sch.one_cycle_momentum(total_steps=STEPS, pct_start=0.3)
WD = sch.cosine_annealing_lr(0.1, T_max=10)
MOM = sch.cyclic_momentum(0.8, 0.95, step_size_up=4, mode="triangular2")

CASES: dict[
    str, tuple[Callable[[], fo.GradientTransformation], Callable[[int], fo.GradientTransformation]]
] = {
    "adam_lr_and_betas0": (
        lambda: fo.adam(lr=LR, betas=(B1, 0.999)),
        lambda t: fo.adam(lr=LR(t), betas=(B1(t), 0.999)),
    ),
    "adamw_weight_decay": (
        lambda: fo.adamw(lr=1e-2, weight_decay=WD),
        lambda t: fo.adamw(lr=1e-2, weight_decay=WD(t)),
    ),
    "add_decayed_weights": (
        lambda: fo.chain(
            fo.add_decayed_weights(WD), fo.scale_by_learning_rate(sch.exponential_lr(0.1, 0.95))
        ),
        lambda t: fo.chain(fo.add_decayed_weights(WD(t)), fo.scale_by_learning_rate(0.1 * 0.95**t)),
    ),
    "trace_momentum": (
        lambda: fo.chain(_trace()(MOM), fo.scale_by_learning_rate(sch.step_lr(0.05, 5, 0.5))),
        lambda t: fo.chain(_trace()(MOM(t)), fo.scale_by_learning_rate(0.05 * 0.5 ** (t // 5))),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_scheduled_hyperparameter_gives_the_hand_scheduled_trajectory(name):
    scheduled, by_hand = CASES[name]
    ours = _run_scheduled(scheduled())
    ref = _run_by_hand(by_hand)
    for k in ref:
        torch.testing.assert_close(ours[k], ref[k], rtol=0, atol=0)


def test_adam_with_one_cycle_lr_and_beta1_matches_torch_adam_with_one_cycle_lr():
    kw = dict(total_steps=40, pct_start=0.25, three_phase=True)
    params = _params(torch.float64)
    tparams = [p.clone().requires_grad_() for p in params.values()]
    topt = torch.optim.Adam(tparams, lr=0.01, foreach=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tsched = lrs.OneCycleLR(topt, max_lr=0.05, **kw)
    tx = fo.adam(lr=sch.one_cycle_lr(0.05, **kw), betas=(sch.one_cycle_momentum(**kw), 0.999))
    state = tx.init(params)
    for _ in range(40):
        grads = _grads(params)
        for p, g in zip(tparams, grads.values(), strict=True):
            p.grad = g.clone()
        topt.step()
        tsched.step()
        updates, state = tx.update(grads, state, params)
        params = fo.apply_updates(params, updates)
        for p, q in zip(tparams, params.values(), strict=True):
            torch.testing.assert_close(q, p.detach())


def _final_loss(
    make_schedule: Callable[[torch.Tensor], Any], value: torch.Tensor, adam: bool
) -> torch.Tensor:
    sched = make_schedule(value)
    tx = fo.adam(lr=sched) if adam else fo.scale_by_learning_rate(sched)
    params = {"w": torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)}
    state = tx.init(params)
    for _ in range(6):
        grads = {"w": params["w"] * 2 + torch.sin(params["w"])}
        updates, state = tx.update(grads, state, params)
        params = fo.apply_updates(params, updates)
    return (params["w"] ** 2).sum()


@pytest.mark.parametrize(
    ("name", "make_schedule", "adam"),
    [
        ("warmup_cosine_decay_peak", lambda v: sch.warmup_cosine_decay(0.0, v, 2, 10, end_value=1e-3), True),
        ("one_cycle_lr_max_lr", lambda v: sch.one_cycle_lr(v, total_steps=8, pct_start=0.25), False),
        (
            "linear_warmup_cosine_annealing_base",
            lambda v: sch.linear_warmup(sch.cosine_annealing_lr(v, 5), 2),
            False,
        ),
    ],
)
def test_hypergradient_flows_to_tensor_schedule_argument(name, make_schedule, adam):
    value = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(_final_loss(make_schedule, value, adam), value)
    h = 1e-6
    with torch.no_grad():
        up = _final_loss(make_schedule, torch.tensor(0.1 + h, dtype=torch.float64), adam)
        down = _final_loss(make_schedule, torch.tensor(0.1 - h, dtype=torch.float64), adam)
    fd = (up - down) / (2 * h)
    assert grad.abs() > 1e-3
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-8)
