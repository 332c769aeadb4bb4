"""Parity cases: each torch scheduler (driving ``torch.optim.SGD``) beside our schedule.

Shared by ``tests/schedules/test_lr_scheduler_parity.py`` and ``benchmarks/schedules_parity.py``.
Our values come from one vectorised call ``schedule(torch.arange(steps))``; torch's from a Python
loop reading ``optimizer.param_groups[0]["lr"]`` (and ``"momentum"``) before each ``step()``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler as lrs
from torch.optim.swa_utils import SWALR

from functional_optim import schedules as sch

BASE = 0.1


@dataclass
class Case:
    scheduler: str  # torch's class name
    label: str  # the argument combination
    make_torch: Callable[[torch.optim.Optimizer], Any]
    ours: Callable[[Any], Any]
    steps: int = 1200
    ours_momentum: Callable[[Any], Any] | None = None


def torch_values(case: Case, step_optimizer: bool = True) -> tuple[list[float], list[float]]:
    """``(lrs, momentums)`` at counts ``0..steps-1`` from torch's scheduler driving SGD.

    ``step_optimizer=False`` skips ``optimizer.step()`` (the parameter has no gradient, so the step
    changes nothing; the learning rates are written by the scheduler alone) to keep tests fast.
    """
    p = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([p], lr=BASE, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = case.make_torch(opt)
        lrs, moms = [], []
        for i in range(case.steps):
            lrs.append(float(opt.param_groups[0]["lr"]))
            moms.append(float(opt.param_groups[0]["momentum"]))
            if i < case.steps - 1:
                if step_optimizer:
                    opt.step()
                sched.step()
    return lrs, moms


def max_rel_diff(ours: torch.Tensor, ref: list[float]) -> float:
    """``max |ours - torch| / |torch|`` (0 where both are 0)."""
    r = torch.tensor(ref, dtype=torch.float64)
    diff = (ours.to(torch.float64) - r).abs()
    denom = r.abs()
    rel = torch.where(diff == 0, torch.zeros_like(diff), diff / denom)
    return float(rel.max())


def our_values(schedule: Callable[[Any], Any], steps: int) -> torch.Tensor:
    return torch.as_tensor(schedule(torch.arange(steps)), dtype=torch.float64).expand(steps)


def _cyc(kw: dict, cycle_kw: dict | None = None) -> Case:
    label = ", ".join(f"{k}={v.__name__ if callable(v) else v}" for k, v in kw.items())
    return Case(
        "CyclicLR",
        label,
        lambda o: lrs.CyclicLR(o, base_lr=0.01, max_lr=0.1, base_momentum=0.8, max_momentum=0.9, **kw),
        sch.cyclic_lr(0.01, 0.1, **kw),
        steps=2000,
        ours_momentum=sch.cyclic_momentum(0.8, 0.9, **kw),
    )


def _one_cycle(kw: dict) -> Case:
    label = ", ".join(f"{k}={v}" for k, v in kw.items())
    steps = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
    mom_kw = {k: v for k, v in kw.items() if k not in ("div_factor", "final_div_factor")}
    return Case(
        "OneCycleLR",
        label,
        lambda o: lrs.OneCycleLR(o, max_lr=0.1, **kw),
        sch.one_cycle_lr(0.1, **kw),
        steps=steps + 1,  # counts 0..total_steps (torch raises one step later)
        ours_momentum=sch.one_cycle_momentum(**mom_kw),
    )


def _scale_cycle(x: Any) -> Any:
    return 1 / (1 + 0.25 * (x - 1))


def _scale_iters(x: Any) -> Any:
    return 0.9995**x


def cases() -> list[Case]:
    return [
        Case(
            "LambdaLR",
            "0.997**t",
            lambda o: lrs.LambdaLR(o, lambda t: 0.997**t),
            sch.lambda_lr(BASE, lambda t: 0.997**t),
        ),
        Case(
            "LambdaLR",
            "1/(1+0.01t)",
            lambda o: lrs.LambdaLR(o, lambda t: 1 / (1 + 0.01 * t)),
            sch.lambda_lr(BASE, lambda t: 1 / (1 + 0.01 * t)),
        ),
        Case(
            "MultiplicativeLR",
            "0.999",
            lambda o: lrs.MultiplicativeLR(o, lambda k: 0.999),
            sch.multiplicative_lr(BASE, lambda k: 0.999),
        ),
        Case(
            "MultiplicativeLR",
            "0.5 every 100",
            lambda o: lrs.MultiplicativeLR(o, lambda k: 0.5 if k % 100 == 0 else 1.0),
            sch.multiplicative_lr(BASE, lambda k: 0.5 if k % 100 == 0 else 1.0),
        ),
        *[
            Case(
                "StepLR",
                f"step_size={s}, gamma={g}",
                lambda o, s=s, g=g: lrs.StepLR(o, s, g),
                sch.step_lr(BASE, s, g),
            )
            for s, g in [(30, 0.1), (7, 0.5), (1, 0.99), (100, 1.5)]
        ],
        *[
            Case(
                "MultiStepLR",
                f"milestones={m}, gamma={g}",
                lambda o, m=m, g=g: lrs.MultiStepLR(o, m, g),
                sch.multi_step_lr(BASE, m, g),
            )
            for m, g in [([100, 300, 300, 800], 0.5), ([1], 0.1), ([900, 10, 500], 0.3)]
        ],
        *[
            Case(
                "ConstantLR",
                f"factor={f:.3g}, total_iters={n}",
                lambda o, f=f, n=n: lrs.ConstantLR(o, f, n),
                sch.constant_lr(BASE, f, n),
            )
            for f, n in [(1 / 3, 5), (0.5, 500), (1.0, 10), (0.1, 0)]
        ],
        *[
            Case(
                "LinearLR",
                f"start={a:.3g}, end={b}, total_iters={n}",
                lambda o, a=a, b=b, n=n: lrs.LinearLR(o, a, b, n),
                sch.linear_lr(BASE, a, b, n),
            )
            for a, b, n in [(1 / 3, 1.0, 5), (1.0, 0.1, 700), (0.5, 0.0, 1000), (0.01, 1.0, 1)]
        ],
        *[
            Case(
                "ExponentialLR",
                f"gamma={g}",
                lambda o, g=g: lrs.ExponentialLR(o, g),
                sch.exponential_lr(BASE, g),
            )
            for g in [0.99, 0.999, 1.001]
        ],
        *[
            Case(
                "PolynomialLR",
                f"total_iters={n}, power={p}",
                lambda o, n=n, p=p: lrs.PolynomialLR(o, n, p),
                sch.polynomial_lr(BASE, n, p),
            )
            for n, p in [(5, 1.0), (800, 2.0), (1000, 0.5), (1100, 3.0)]
        ],
        *[
            Case(
                "CosineAnnealingLR",
                f"T_max={t}, eta_min={e}",
                lambda o, t=t, e=e: lrs.CosineAnnealingLR(o, t, e),
                sch.cosine_annealing_lr(BASE, t, e),
                steps=3000,
            )
            for t, e in [(100, 0.0), (333, 1e-3), (1000, 0.0), (7, 0.05)]
        ],
        *[
            Case(
                "CosineAnnealingWarmRestarts",
                f"T_0={t}, T_mult={m}, eta_min={e}",
                lambda o, t=t, m=m, e=e: lrs.CosineAnnealingWarmRestarts(o, t, m, e),
                sch.cosine_annealing_warm_restarts(BASE, t, m, e),
                steps=3000,
            )
            for t, m, e in [(10, 1, 0.0), (7, 2, 1e-4), (50, 3, 0.0), (1, 2, 0.01)]
        ],
        _cyc({"step_size_up": 100}),
        _cyc({"step_size_up": 50, "step_size_down": 150, "mode": "triangular2"}),
        _cyc({"step_size_up": 70, "mode": "exp_range", "gamma": 0.999}),
        _cyc({"step_size_up": 60, "scale_fn": _scale_cycle, "scale_mode": "cycle"}),
        _cyc(
            {"step_size_up": 80, "step_size_down": 20, "scale_fn": _scale_iters, "scale_mode": "iterations"}
        ),
        _one_cycle({"total_steps": 1000}),
        _one_cycle({"total_steps": 1000, "anneal_strategy": "linear"}),
        _one_cycle({"total_steps": 1200, "three_phase": True, "pct_start": 0.25}),
        _one_cycle({"epochs": 10, "steps_per_epoch": 101, "anneal_strategy": "linear", "three_phase": True}),
        _one_cycle({"total_steps": 1500, "div_factor": 10.0, "final_div_factor": 100.0, "pct_start": 0.4}),
        Case(
            "SequentialLR",
            "LinearLR(0.1, 1, 100) -> ExponentialLR(0.999) @ [100]",
            lambda o: lrs.SequentialLR(
                o, [lrs.LinearLR(o, 0.1, 1.0, 100), lrs.ExponentialLR(o, 0.999)], [100]
            ),
            sch.sequential_lr([sch.linear_lr(BASE, 0.1, 1.0, 100), sch.exponential_lr(BASE, 0.999)], [100]),
        ),
        Case(
            "SequentialLR",
            "ConstantLR(0.5, 10) -> CosineAnnealingLR(200) -> StepLR(100, 0.5) @ [50, 450]",
            lambda o: lrs.SequentialLR(
                o,
                [lrs.ConstantLR(o, 0.5, 10), lrs.CosineAnnealingLR(o, 200), lrs.StepLR(o, 100, 0.5)],
                [50, 450],
            ),
            sch.sequential_lr(
                [
                    sch.constant_lr(BASE, 0.5, 10),
                    sch.cosine_annealing_lr(BASE, 200),
                    sch.step_lr(BASE, 100, 0.5),
                ],
                [50, 450],
            ),
        ),
        Case(
            "ChainedScheduler",
            "ConstantLR(0.1, 20) x ExponentialLR(0.9)",
            lambda o: lrs.ChainedScheduler([lrs.ConstantLR(o, 0.1, 20), lrs.ExponentialLR(o, 0.99)]),
            sch.chained_scheduler([sch.constant_lr(BASE, 0.1, 20), sch.exponential_lr(BASE, 0.99)], BASE),
        ),
        Case(
            "ChainedScheduler",
            "LinearLR(0.2, 1, 100) x StepLR(200, 0.5) x PolynomialLR(1000, 2)",
            lambda o: lrs.ChainedScheduler(
                [lrs.LinearLR(o, 0.2, 1.0, 100), lrs.StepLR(o, 200, 0.5), lrs.PolynomialLR(o, 1000, 2.0)]
            ),
            sch.chained_scheduler(
                [
                    sch.linear_lr(BASE, 0.2, 1.0, 100),
                    sch.step_lr(BASE, 200, 0.5),
                    sch.polynomial_lr(BASE, 1000, 2.0),
                ],
                BASE,
            ),
        ),
        Case(
            "ChainedScheduler",
            "MultiStepLR([300, 600], 0.3) x CosineAnnealingLR(1200)",
            lambda o: lrs.ChainedScheduler(
                [lrs.MultiStepLR(o, [300, 600], 0.3), lrs.CosineAnnealingLR(o, 1200)]
            ),
            sch.chained_scheduler(
                [sch.multi_step_lr(BASE, [300, 600], 0.3), sch.cosine_annealing_lr(BASE, 1200)], BASE
            ),
        ),
        *[
            Case(
                "SWALR",
                f"swa_lr={s}, anneal_epochs={n}, anneal_strategy={a}",
                lambda o, s=s, n=n, a=a: SWALR(o, s, n, a),
                sch.swa_lr(BASE, s, n, a),
            )
            for s, n, a in [(0.05, 10, "cos"), (0.01, 5, "linear"), (0.02, 0, "cos"), (0.3, 100, "cos")]
        ],
    ]
