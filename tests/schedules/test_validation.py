"""Invalid arguments raise ``ValueError`` where torch does, with torch's message."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.optim import lr_scheduler as L
from torch.optim.swa_utils import SWALR

from functional_optim import schedules as S


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
    "constant_lr factor > 1": (lambda: S.constant_lr(0.1, factor=1.5), lambda o: L.ConstantLR(o, factor=1.5)),
    "constant_lr factor < 0": (lambda: S.constant_lr(0.1, factor=-0.1), lambda o: L.ConstantLR(o, factor=-0.1)),
    "linear_lr start 0": (lambda: S.linear_lr(0.1, start_factor=0.0), lambda o: L.LinearLR(o, start_factor=0.0)),
    "linear_lr start > 1": (lambda: S.linear_lr(0.1, start_factor=2.0), lambda o: L.LinearLR(o, start_factor=2.0)),
    "linear_lr end > 1": (lambda: S.linear_lr(0.1, end_factor=1.1), lambda o: L.LinearLR(o, end_factor=1.1)),
    "linear_lr end < 0": (lambda: S.linear_lr(0.1, end_factor=-1.0), lambda o: L.LinearLR(o, end_factor=-1.0)),
    "sgdr T_0 0": (lambda: S.cosine_annealing_warm_restarts(0.1, 0), lambda o: L.CosineAnnealingWarmRestarts(o, 0)),
    "sgdr T_0 float": (
        lambda: S.cosine_annealing_warm_restarts(0.1, 2.5),
        lambda o: L.CosineAnnealingWarmRestarts(o, 2.5),
    ),
    "sgdr T_mult 0": (
        lambda: S.cosine_annealing_warm_restarts(0.1, 5, 0),
        lambda o: L.CosineAnnealingWarmRestarts(o, 5, 0),
    ),
    "sgdr eta_min str": (
        lambda: S.cosine_annealing_warm_restarts(0.1, 5, 1, "0"),
        lambda o: L.CosineAnnealingWarmRestarts(o, 5, 1, "0"),
    ),
    "cyclic mode": (
        lambda: S.cyclic_lr(0.01, 0.1, mode="square"),
        lambda o: L.CyclicLR(o, 0.01, 0.1, mode="square"),
    ),
    "cyclic_momentum mode": (
        lambda: S.cyclic_momentum(0.8, 0.9, mode="square"),
        lambda o: L.CyclicLR(o, 0.01, 0.1, mode="square"),
    ),
    "one_cycle total_steps 0": (
        lambda: S.one_cycle_lr(0.1, total_steps=0),
        lambda o: L.OneCycleLR(o, 0.1, total_steps=0),
    ),
    "one_cycle no steps": (lambda: S.one_cycle_lr(0.1), lambda o: L.OneCycleLR(o, 0.1)),
    "one_cycle epochs 0": (
        lambda: S.one_cycle_lr(0.1, epochs=0, steps_per_epoch=5),
        lambda o: L.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=5),
    ),
    "one_cycle steps_per_epoch -1": (
        lambda: S.one_cycle_lr(0.1, epochs=3, steps_per_epoch=-1),
        lambda o: L.OneCycleLR(o, 0.1, epochs=3, steps_per_epoch=-1),
    ),
    "one_cycle pct_start > 1": (
        lambda: S.one_cycle_lr(0.1, total_steps=10, pct_start=1.5),
        lambda o: L.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.5),
    ),
    "one_cycle pct_start int": (
        lambda: S.one_cycle_lr(0.1, total_steps=10, pct_start=0),
        lambda o: L.OneCycleLR(o, 0.1, total_steps=10, pct_start=0),
    ),
    "one_cycle anneal": (
        lambda: S.one_cycle_lr(0.1, total_steps=10, anneal_strategy="exp"),
        lambda o: L.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"),
    ),
    "one_cycle_momentum anneal": (
        lambda: S.one_cycle_momentum(total_steps=10, anneal_strategy="exp"),
        lambda o: L.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"),
    ),
    "sequential empty": (lambda: S.sequential_lr([], []), lambda o: L.SequentialLR(o, [], [])),
    "sequential milestones": (
        lambda: S.sequential_lr([S.constant_lr(0.1), S.constant_lr(0.1)], [1, 2]),
        lambda o: L.SequentialLR(o, [L.ConstantLR(o), L.ConstantLR(o)], [1, 2]),
    ),
    "chained empty": (lambda: S.chained_scheduler([], 0.1), lambda o: L.ChainedScheduler([], o)),
    "swa anneal_strategy": (lambda: S.swa_lr(0.1, 0.05, anneal_strategy="exp"), lambda o: SWALR(o, 0.05, 10, "exp")),
    "swa anneal_epochs -1": (lambda: S.swa_lr(0.1, 0.05, anneal_epochs=-1), lambda o: SWALR(o, 0.05, -1)),
    "swa anneal_epochs float": (lambda: S.swa_lr(0.1, 0.05, anneal_epochs=2.0), lambda o: SWALR(o, 0.05, 2.0)),
    "plateau factor": (
        lambda: S.reduce_lr_on_plateau(factor=1.0),
        lambda o: L.ReduceLROnPlateau(o, factor=1.0),
    ),
    "plateau mode": (lambda: S.reduce_lr_on_plateau(mode="avg"), lambda o: L.ReduceLROnPlateau(o, mode="avg")),
    "plateau threshold_mode": (
        lambda: S.reduce_lr_on_plateau(threshold_mode="pct"),
        lambda o: L.ReduceLROnPlateau(o, threshold_mode="pct"),
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
        lambda: S.step_lr(0.1, step_size=0),
        lambda: S.polynomial_lr(0.1, total_iters=0),
        lambda: S.cosine_annealing_lr(0.1, T_max=0),
        lambda: S.linear(0.0, 1.0, transition_steps=-1),
        lambda: S.cosine_decay(1.0, decay_steps=0),
        lambda: S.warmup_cosine_decay(0.0, 1.0, warmup_steps=10, decay_steps=10),
        lambda: S.linear_warmup(S.constant(1.0), warmup_steps=-2),
        lambda: S.join_schedules([S.constant(1.0)], [5]),
        lambda: S.piecewise_constant(1.0, {10: -0.5}),
        lambda: S.piecewise_constant(boundaries=[1, 2], values=[1.0]),
        lambda: S.piecewise_constant(boundaries=[5, 2], values=[1.0, 2.0, 3.0]),
        lambda: S.piecewise_constant(1.0, {1: 0.5}, boundaries=[1], values=[1.0, 2.0]),
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
        S.multiplicative_lr(0.1, 0.5)
    with pytest.raises(TypeError, match="lr_lambda should be a function"):
        S.lambda_lr(0.1, 0.5)
