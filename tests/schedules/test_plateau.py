"""``reduce_lr_on_plateau`` vs ``torch.optim.lr_scheduler.ReduceLROnPlateau`` step by step."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.optim import lr_scheduler as lrs

import functional_optim as fo
from functional_optim import schedules as sch


def _metrics(n: int, seed: int) -> list[float]:
    """A noisy decreasing-then-flat curve with exact repeats (plateaus) and jumps."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64)
    curve = 1.0 / (1 + 0.05 * t) + 0.02 * torch.randn(n, generator=g, dtype=torch.float64)
    curve[n // 3 : n // 3 + 20] = curve[n // 3]  # an exact plateau
    return [round(v, 4) for v in curve.tolist()]


OPTIONS = list(
    itertools.product(
        ["min", "max"],
        ["rel", "abs"],
        [(0.1, 5, 0, 0.0, 1e-8, 1e-4), (0.5, 0, 3, 1e-3, 1e-8, 1e-2), (0.3, 2, 1, 0.0, 0.05, 0.0)],
    )
)


@pytest.mark.parametrize(("mode", "threshold_mode", "opts"), OPTIONS)
def test_state_and_lr_match_torch_reduce_lr_on_plateau(mode, threshold_mode, opts):
    factor, patience, cooldown, min_lr, eps, threshold = opts
    kw = dict(
        mode=mode,
        factor=factor,
        patience=patience,
        threshold=threshold,
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        min_lr=min_lr,
        eps=eps,
    )
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ref = lrs.ReduceLROnPlateau(opt, **kw)
    tx = sch.reduce_lr_on_plateau(lr=0.1, **kw)
    grads = {"w": torch.ones(3)}
    state = tx.init(grads)
    metrics = _metrics(300, seed=len(mode) + len(threshold_mode) + patience)
    if mode == "max":
        metrics = [-m for m in metrics]
    reductions = 0
    for i, m in enumerate(metrics):
        value = m if i % 2 else torch.tensor(m, dtype=torch.float64)  # a float or a 0-dim tensor
        before = opt.param_groups[0]["lr"]
        ref.step(m)
        updates, state = tx.update(grads, state, None, value=value)
        lr = opt.param_groups[0]["lr"]
        reductions += lr != before
        assert float(state.lr) == lr
        assert float(state.best) == ref.best
        assert int(state.num_bad_epochs) == ref.num_bad_epochs
        assert int(state.cooldown_counter) == ref.cooldown_counter
        torch.testing.assert_close(updates["w"], torch.full((3,), lr))
    assert reductions >= 1  # the sequence exercises reductions (eps=0.05 allows only one)


def test_update_without_metric_only_scales():
    tx = sch.reduce_lr_on_plateau(lr=0.5, patience=0)
    params = [torch.ones(2), None]
    state = tx.init(params)
    _, state = tx.update([torch.ones(2), None], state, value=1.0)
    _, state = tx.update([torch.ones(2), None], state, value=2.0)  # bad -> lr 0.05
    assert float(state.lr) == pytest.approx(0.05)
    updates, state2 = tx.update([torch.full((2,), 2.0), None], state)
    assert updates[1] is None
    torch.testing.assert_close(updates[0], torch.full((2,), 0.1))
    assert state2 is state


def test_plateau_in_a_chain_with_adam_receives_value_as_extra():
    params = {"w": torch.tensor([1.0, -2.0])}
    tx = fo.chain(fo.adam(lr=0.1), sch.reduce_lr_on_plateau(factor=0.5, patience=0))
    state = tx.init(params)
    lrs = []
    for loss in [3.0, 2.0, 2.5, 2.6, 1.0]:
        updates, state = tx.update({"w": params["w"].clone()}, state, params, value=loss)
        params = fo.apply_updates(params, updates)
        lrs.append(float(state[1].lr))
    assert lrs == [1.0, 1.0, 0.5, 0.25, 0.25]
