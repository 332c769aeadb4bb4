"""Every torch.optim.lr_scheduler class (and swa_utils.SWALR) drives the drop-in classes exactly as it
drives torch.optim: same learning rates / momenta / betas in the groups and same parameters."""

from __future__ import annotations

import pytest
import torch
from torch.optim import lr_scheduler as sch
from torch.optim.swa_utils import SWALR

from tests.adapters._cases import run_side_by_side

SCHEDULERS = {
    "LambdaLR": lambda o: sch.LambdaLR(o, lr_lambda=[lambda e: 0.9**e, lambda e: 1.0 / (e + 1)]),
    "MultiplicativeLR": lambda o: sch.MultiplicativeLR(o, lr_lambda=lambda e: 0.95),
    "StepLR": lambda o: sch.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda o: sch.MultiStepLR(o, milestones=[2, 5, 7], gamma=0.3),
    "ConstantLR": lambda o: sch.ConstantLR(o, factor=0.25, total_iters=4),
    "LinearLR": lambda o: sch.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=6),
    "ExponentialLR": lambda o: sch.ExponentialLR(o, gamma=0.8),
    "PolynomialLR": lambda o: sch.PolynomialLR(o, total_iters=8, power=2.0),
    "CosineAnnealingLR": lambda o: sch.CosineAnnealingLR(o, T_max=5, eta_min=1e-4),
    "CosineAnnealingWarmRestarts": lambda o: sch.CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2, eta_min=1e-4
    ),
    "SequentialLR": lambda o: sch.SequentialLR(
        o, [sch.LinearLR(o, start_factor=0.1, total_iters=3), sch.ExponentialLR(o, gamma=0.9)], milestones=[3]
    ),
    "ChainedScheduler": lambda o: sch.ChainedScheduler(
        [sch.ConstantLR(o, factor=0.5, total_iters=4), sch.ExponentialLR(o, 0.9)]
    ),
    "SWALR": lambda o: SWALR(o, swa_lr=0.002, anneal_epochs=4, anneal_strategy="cos"),
}


def _step(sched, step):
    sched.step()


@pytest.mark.parametrize("sched", list(SCHEDULERS), ids=str)
@pytest.mark.parametrize("name", ["AdamW", "SGD"])
def test_scheduler_drives_dropin_like_torch(sched, name):
    opts = {"lr": 0.05, "momentum": 0.9} if name == "SGD" else {"lr": 0.01}
    run_side_by_side(name, opts, setup=SCHEDULERS[sched], after_step=_step)


@pytest.mark.parametrize(
    ("name", "opts"),
    [
        ("SGD", {"lr": 0.05, "momentum": 0.9}),
        ("Adam", {"lr": 0.01}),
        ("RMSprop", {"lr": 0.01, "momentum": 0.8}),
    ],
)
def test_cyclic_lr_cycles_momentum_or_betas_like_torch(name, opts):
    run_side_by_side(
        name,
        opts,
        setup=lambda o: sch.CyclicLR(
            o,
            base_lr=0.001,
            max_lr=0.02,
            step_size_up=3,
            cycle_momentum=True,
            base_momentum=0.7,
            max_momentum=0.9,
        ),
        after_step=_step,
    )


@pytest.mark.parametrize(
    ("name", "opts"),
    [("SGD", {"lr": 0.05, "momentum": 0.9}), ("Adam", {"lr": 0.01}), ("NAdam", {"lr": 0.01})],
)
@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_one_cycle_lr_cycles_momentum_or_betas_like_torch(name, opts, strategy):
    run_side_by_side(
        name,
        opts,
        setup=lambda o: sch.OneCycleLR(o, max_lr=[0.02, 0.01], total_steps=12, anneal_strategy=strategy),
        after_step=_step,
    )


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_reduce_lr_on_plateau_drives_dropin_like_torch(name):
    metrics = [1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.86, 0.87, 0.9]
    run_side_by_side(
        name,
        {"lr": 0.05},
        setup=lambda o: sch.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=1, cooldown=1),
        after_step=lambda s, step: s.step(metrics[step]),
    )


def test_tensor_lr_scheduler_updates_the_tensor_in_place_like_torch():
    run_side_by_side(
        "Adam", {"lr": torch.tensor(0.01)}, setup=lambda o: sch.ExponentialLR(o, gamma=0.7), after_step=_step
    )
