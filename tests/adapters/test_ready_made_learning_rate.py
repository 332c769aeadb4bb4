"""A FunctionalOptimizer built from a ready-made transform exposes the transform's one constant
learning rate as ``lr`` in its param groups, so torch's schedulers and DCP's ``lr=0``
initialisation step work; transforms without one keep groups without ``lr``."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from functional_optim.adapters import FunctionalOptimizer


def _params() -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]


def _train(opt, params, make_scheduler, steps=6):
    sched = make_scheduler(opt)
    for i in range(steps):
        for q in params:
            q.grad = torch.sin(q.detach() * (i + 1))
        opt.step()
        sched.step()
    return [q.detach().clone() for q in params]


@pytest.mark.parametrize(
    ("ready_made", "torch_opt"),
    [
        (lambda: fo.adamw(1e-2, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1)),
        (lambda: fo.sgd(0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        (lambda: fo.rmsprop(1e-2), lambda p: torch.optim.RMSprop(p, lr=1e-2)),
    ],
)
@pytest.mark.parametrize(
    "make_scheduler",
    [
        lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=10, cycle_momentum=False),
    ],
)
def test_torch_schedulers_drive_a_ready_made_transform_as_torch(ready_made, torch_opt, make_scheduler):
    p_ours, p_torch = _params(), _params()
    ours = FunctionalOptimizer(p_ours, ready_made())
    assert "lr" in ours.param_groups[0]
    expected = _train(torch_opt(p_torch), p_torch, make_scheduler)
    got = _train(ours, p_ours, make_scheduler)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_lr_zero_leaves_parameters_unchanged_even_with_decoupled_weight_decay():
    # what DCP's set_optimizer_state_dict does to initialise a fresh optimizer's state
    params = _params()
    opt = FunctionalOptimizer(params, fo.chain(fo.clip_by_global_norm(1.0), fo.adamw(1e-2, weight_decay=0.5)))
    before = [p.detach().clone() for p in params]
    for g in opt.param_groups:
        g["lr"] = 0.0
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    for a, b in zip(params, before, strict=True):
        assert torch.equal(a.detach(), b)
    assert {"exp_avg", "exp_avg_sq", "step"} <= set(opt.state[params[0]])


def test_the_lr_can_be_given_and_is_validated():
    assert FunctionalOptimizer(_params(), fo.adam(1e-3), lr=0.5).param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="Invalid learning rate"):
        FunctionalOptimizer(_params(), fo.adam(1e-3), lr=-1.0)


@pytest.mark.parametrize(
    "transform",
    [
        lambda: fo.chain(fo.scale_by_adam(), fo.scale_by_learning_rate(fo.schedules.linear(0.1, 0.01, 10))),
        lambda: fo.chain(fo.scale_by_adam(), fo.scale(-1e-3)),  # no declared learning rate
    ],
    ids=["schedule", "no learning-rate role"],
)
def test_transforms_without_one_constant_learning_rate_keep_groups_without_lr(transform):
    opt = FunctionalOptimizer(_params(), transform())
    assert "lr" not in opt.param_groups[0]
    with pytest.raises(TypeError, match="ready-made"):
        FunctionalOptimizer(_params(), transform(), lr=0.1)


def test_state_dict_round_trip_keeps_the_exposed_lr():
    params = _params()
    opt = FunctionalOptimizer(params, fo.adam(1e-3))
    for p in params:
        p.grad = torch.ones_like(p)
    opt.param_groups[0]["lr"] = 0.25
    opt.step()
    other = FunctionalOptimizer(params, fo.adam(1e-3))
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["lr"] == 0.25
