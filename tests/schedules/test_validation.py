"""Invalid arguments raise ``ValueError`` where torch does, with torch's message."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.optim import lr_scheduler as lrs
from torch.optim.swa_utils import SWALR

from functional_optim import schedules as sch


def _sgd() -> torch.optim.SGD:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)


def _torch_message(make) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as info:
            make(_sgd())
    return str(info.value)


# (ours, torch) pairs that must both raise ValueError with the same message
INVALID = {
    "constant_lr factor > 1": (
        lambda: sch.constant_lr(0.1, factor=1.5),
        lambda o: lrs.ConstantLR(o, factor=1.5),
    ),
    "constant_lr factor < 0": (
        lambda: sch.constant_lr(0.1, factor=-0.1),
        lambda o: lrs.ConstantLR(o, factor=-0.1),
    ),
    "linear_lr start 0": (
        lambda: sch.linear_lr(0.1, start_factor=0.0),
        lambda o: lrs.LinearLR(o, start_factor=0.0),
    ),
    "linear_lr start > 1": (
        lambda: sch.linear_lr(0.1, start_factor=2.0),
        lambda o: lrs.LinearLR(o, start_factor=2.0),
    ),
    "linear_lr end > 1": (
        lambda: sch.linear_lr(0.1, end_factor=1.1),
        lambda o: lrs.LinearLR(o, end_factor=1.1),
    ),
    "linear_lr end < 0": (
        lambda: sch.linear_lr(0.1, end_factor=-1.0),
        lambda o: lrs.LinearLR(o, end_factor=-1.0),
    ),
    "sgdr T_0 0": (
        lambda: sch.cosine_annealing_warm_restarts(0.1, 0),
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 0),
    ),
    "sgdr T_0 float": (
        lambda: sch.cosine_annealing_warm_restarts(0.1, 2.5),
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 2.5),
    ),
    "sgdr T_mult 0": (
        lambda: sch.cosine_annealing_warm_restarts(0.1, 5, 0),
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 5, 0),
    ),
    "sgdr eta_min str": (
        lambda: sch.cosine_annealing_warm_restarts(0.1, 5, 1, "0"),
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 5, 1, "0"),
    ),
    "cyclic mode": (
        lambda: sch.cyclic_lr(0.01, 0.1, mode="square"),
        lambda o: lrs.CyclicLR(o, 0.01, 0.1, mode="square"),
    ),
    "cyclic_momentum mode": (
        lambda: sch.cyclic_momentum(0.8, 0.9, mode="square"),
        lambda o: lrs.CyclicLR(o, 0.01, 0.1, mode="square"),
    ),
    "one_cycle total_steps 0": (
        lambda: sch.one_cycle_lr(0.1, total_steps=0),
        lambda o: lrs.OneCycleLR(o, 0.1, total_steps=0),
    ),
    "one_cycle no steps": (lambda: sch.one_cycle_lr(0.1), lambda o: lrs.OneCycleLR(o, 0.1)),
    "one_cycle epochs 0": (
        lambda: sch.one_cycle_lr(0.1, epochs=0, steps_per_epoch=5),
        lambda o: lrs.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=5),
    ),
    "one_cycle steps_per_epoch -1": (
        lambda: sch.one_cycle_lr(0.1, epochs=3, steps_per_epoch=-1),
        lambda o: lrs.OneCycleLR(o, 0.1, epochs=3, steps_per_epoch=-1),
    ),
    "one_cycle pct_start > 1": (
        lambda: sch.one_cycle_lr(0.1, total_steps=10, pct_start=1.5),
        lambda o: lrs.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.5),
    ),
    "one_cycle pct_start int": (
        lambda: sch.one_cycle_lr(0.1, total_steps=10, pct_start=0),
        lambda o: lrs.OneCycleLR(o, 0.1, total_steps=10, pct_start=0),
    ),
    "one_cycle anneal": (
        lambda: sch.one_cycle_lr(0.1, total_steps=10, anneal_strategy="exp"),
        lambda o: lrs.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"),
    ),
    "one_cycle_momentum anneal": (
        lambda: sch.one_cycle_momentum(total_steps=10, anneal_strategy="exp"),
        lambda o: lrs.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"),
    ),
    "sequential empty": (lambda: sch.sequential_lr([], []), lambda o: lrs.SequentialLR(o, [], [])),
    "sequential milestones": (
        lambda: sch.sequential_lr([sch.constant_lr(0.1), sch.constant_lr(0.1)], [1, 2]),
        lambda o: lrs.SequentialLR(o, [lrs.ConstantLR(o), lrs.ConstantLR(o)], [1, 2]),
    ),
    "chained empty": (lambda: sch.chained_scheduler([], 0.1), lambda o: lrs.ChainedScheduler([], o)),
    "swa anneal_strategy": (
        lambda: sch.swa_lr(0.1, 0.05, anneal_strategy="exp"),
        lambda o: SWALR(o, 0.05, 10, "exp"),
    ),
    "swa anneal_epochs -1": (lambda: sch.swa_lr(0.1, 0.05, anneal_epochs=-1), lambda o: SWALR(o, 0.05, -1)),
    "swa anneal_epochs float": (
        lambda: sch.swa_lr(0.1, 0.05, anneal_epochs=2.0),
        lambda o: SWALR(o, 0.05, 2.0),
    ),
    "plateau factor": (
        lambda: sch.reduce_lr_on_plateau(factor=1.0),
        lambda o: lrs.ReduceLROnPlateau(o, factor=1.0),
    ),
    "plateau mode": (
        lambda: sch.reduce_lr_on_plateau(mode="avg"),
        lambda o: lrs.ReduceLROnPlateau(o, mode="avg"),
    ),
    "plateau threshold_mode": (
        lambda: sch.reduce_lr_on_plateau(threshold_mode="pct"),
        lambda o: lrs.ReduceLROnPlateau(o, threshold_mode="pct"),
    ),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_argument_raises_torch_value_error_with_torch_message(name):
    ours, theirs = INVALID[name]
    expected = _torch_message(theirs)
    with pytest.raises(ValueError) as info:
        ours()
    assert str(info.value) == expected


@pytest.mark.parametrize(
    "make",
    [
        lambda: sch.step_lr(0.1, step_size=0),
        lambda: sch.polynomial_lr(0.1, total_iters=0),
        lambda: sch.cosine_annealing_lr(0.1, T_max=0),
        lambda: sch.linear(0.0, 1.0, transition_steps=-1),
        lambda: sch.cosine_decay(1.0, decay_steps=0),
        lambda: sch.warmup_cosine_decay(0.0, 1.0, warmup_steps=10, decay_steps=10),
        lambda: sch.linear_warmup(sch.constant(1.0), warmup_steps=-2),
        lambda: sch.join_schedules([sch.constant(1.0)], [5]),
        lambda: sch.piecewise_constant(1.0, {10: -0.5}),
        lambda: sch.piecewise_constant(boundaries=[1, 2], values=[1.0]),
        lambda: sch.piecewise_constant(boundaries=[5, 2], values=[1.0, 2.0, 3.0]),
        lambda: sch.piecewise_constant(1.0, {1: 0.5}, boundaries=[1], values=[1.0, 2.0]),
    ],
    ids=[
        "step_size",
        "polynomial_total_iters",
        "T_max",
        "transition_steps",
        "decay_steps",
        "warmup_not_shorter_than_decay",
        "warmup_steps",
        "join_lengths",
        "negative_scale",
        "values_length",
        "boundaries_order",
        "both_forms",
    ],
)
def test_arguments_torch_would_divide_by_zero_on_raise_value_error_naming_them(make):
    with pytest.raises(ValueError):
        make()


def test_lambda_schedules_require_a_callable():
    with pytest.raises(TypeError, match="lr_lambda should be a function"):
        sch.multiplicative_lr(0.1, 0.5)
    with pytest.raises(TypeError, match="lr_lambda should be a function"):
        sch.lambda_lr(0.1, 0.5)
