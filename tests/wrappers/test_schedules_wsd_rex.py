"""``warmup_stable_decay`` and ``rex`` against their formulas, in Python and tensor mode."""

from __future__ import annotations

import math

import pytest
import torch

import functional_optim as fo


def _wsd_formula(t: int, peak: float, w: int, s: int, d: int, v0: float, ve: float, kind: str) -> float:
    if t < w:
        return v0 + (peak - v0) * t / w
    if t < w + s:
        return peak
    tau = min(t - w - s, d) / d
    f = {"linear": 1 - tau, "cosine": 0.5 * (1 + math.cos(math.pi * tau)), "1-sqrt": 1 - math.sqrt(tau)}[kind]
    return ve + (peak - ve) * f


@pytest.mark.parametrize("kind", ["linear", "cosine", "1-sqrt"])
def test_wsd_follows_warmup_plateau_and_decay(kind: str) -> None:
    args = dict(peak=3e-3, w=5, s=7, d=6, v0=1e-4, ve=3e-5)
    lr = fo.schedules.warmup_stable_decay(3e-3, 5, 7, 6, init_value=1e-4, end_value=3e-5, decay_type=kind)
    for t in range(25):
        assert lr(t) == pytest.approx(_wsd_formula(t, kind=kind, **args), rel=1e-12, abs=1e-15)
    values = lr(torch.arange(25))
    assert values.dtype == torch.float64
    torch.testing.assert_close(values, torch.tensor([lr(t) for t in range(25)], dtype=torch.float64))


def test_wsd_without_warmup_starts_at_the_peak_and_ends_at_end_value() -> None:
    lr = fo.schedules.warmup_stable_decay(1.0, 0, 2, 4, end_value=0.1)
    assert lr(0) == 1.0 and lr(6) == pytest.approx(0.1) and lr(100) == pytest.approx(0.1)


def test_wsd_hypergradient_flows_to_a_tensor_peak() -> None:
    peak = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    lr = fo.schedules.warmup_stable_decay(peak, 2, 2, 4, decay_type="1-sqrt")
    (g,) = torch.autograd.grad(lr(5), peak)
    assert g.item() == pytest.approx(1 - math.sqrt(1 / 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(warmup_steps=-1, stable_steps=0, decay_steps=1), "warmup_steps"),
        (dict(warmup_steps=0, stable_steps=1.5, decay_steps=1), "stable_steps"),
        (dict(warmup_steps=0, stable_steps=0, decay_steps=0), "decay_steps"),
        (dict(warmup_steps=0, stable_steps=0, decay_steps=3, decay_type="exp"), "decay_type"),
    ],
)
def test_wsd_bad_arguments_are_refused_naming_them(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fo.schedules.warmup_stable_decay(1.0, **kwargs)


def test_rex_follows_the_formula_and_holds_the_end_value() -> None:
    lr = fo.schedules.rex(0.1, total_steps=10, end_value=0.01)
    for t in range(15):
        z = min(t, 10) / 10
        assert lr(t) == pytest.approx(0.01 + 0.09 * (1 - z) / (0.5 + 0.5 * (1 - z)), rel=1e-12)
    torch.testing.assert_close(
        lr(torch.arange(15)), torch.tensor([lr(t) for t in range(15)], dtype=torch.float64)
    )


def test_rex_stays_above_linear_decay() -> None:
    lr = fo.schedules.rex(1.0, total_steps=100)
    assert all(lr(t) >= 1 - t / 100 for t in range(101))


def test_rex_refuses_a_non_positive_length() -> None:
    with pytest.raises(ValueError, match="total_steps"):
        fo.schedules.rex(1.0, total_steps=0)


def test_schedules_drive_an_optimizer_hyperparameter() -> None:
    opt = fo.schedule_free_adamw(lr=fo.schedules.warmup_stable_decay(1e-2, 1, 1, 2))
    params = {"w": torch.ones(2)}
    state = opt.init(params)
    for _ in range(4):  # the 4th update runs at count 3: half-way through the decay
        _, state = opt.update({"w": torch.ones(2)}, state, params)
    assert float(state.hyperparams["lr"]) == pytest.approx(1e-2 * 0.5)
