"""``scale_by_shape`` and ``scale_by_ema_momentum``: Muon's lr adjustment and EMA momentum."""

from __future__ import annotations

import math

import pytest
import torch

import functional_optim as fo
from functional_optim.transforms.shape_scaling import shape_factor


def _apply(t: fo.GradientTransformation, updates, params=None):
    return t.update(updates, t.init(updates), params)[0]


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5)])
def test_named_adjustments_are_torchs_factors(shape):
    g = {"w": torch.ones(shape, dtype=torch.float64)}
    a, b = shape
    expected = {
        None: math.sqrt(max(1, a / b)),
        "original": math.sqrt(max(1, a / b)),
        "match_rms_adamw": 0.2 * math.sqrt(max(a, b)),
    }
    for fn, factor in expected.items():
        torch.testing.assert_close(
            _apply(fo.scale_by_shape(fn), g)["w"], torch.full(shape, factor, dtype=torch.float64)
        )
        lr = 0.3
        assert torch.optim._muon._adjust_lr(lr, fn, torch.Size(shape)) == pytest.approx(
            lr * factor, rel=1e-15
        )


def test_a_callable_composes_with_scale_by_learning_rate_into_the_adjusted_lr():
    fn = lambda lr, shape: lr**2 * shape[0] + 2 * lr  # noqa: E731 (non-linear in lr)
    g = {"w": torch.randn(3, 7, dtype=torch.float64), "v": None}
    for lr in (0.1, torch.tensor(0.25, dtype=torch.float64)):
        opt = fo.chain(fo.scale_by_shape(fn, learning_rate=lr), fo.scale_by_learning_rate(lr))
        out = _apply(opt, g)
        assert out["v"] is None
        torch.testing.assert_close(out["w"], -fn(float(lr), (3, 7)) * g["w"])
    # without learning_rate the factor is fn(1, shape): exact for fns linear in lr
    linear = lambda lr, shape: lr * shape[1] / shape[0]  # noqa: E731
    out = _apply(fo.chain(fo.scale_by_shape(linear), fo.scale_by_learning_rate(0.1)), g)
    torch.testing.assert_close(out["w"], -linear(0.1, (3, 7)) * g["w"])


def test_a_scheduled_learning_rate_is_followed_by_a_callable_adjustment():
    fn = lambda lr, shape: lr**2  # noqa: E731
    sched = lambda count: 0.5 / (1 + count)  # noqa: E731
    opt = fo.chain(fo.scale_by_shape(fn, learning_rate=sched), fo.scale_by_learning_rate(sched))
    g = {"w": torch.ones(2, 2, dtype=torch.float64)}
    state = opt.init(g)
    for count in range(3):
        out, state = opt.update(g, state)
        torch.testing.assert_close(out["w"], torch.full((2, 2), -fn(sched(count), None), dtype=torch.float64))


def test_reshape_rules_give_the_matrix_dims():
    assert shape_factor("match_rms_adamw", torch.Size((4, 2, 3, 3)), "flatten") == pytest.approx(
        0.2 * math.sqrt(18)
    )
    assert shape_factor(None, torch.Size((5, 9, 3)), "batch") == pytest.approx(math.sqrt(3))
    assert shape_factor(None, torch.Size((5, 9, 3))) == pytest.approx(1.0)  # torch: shape[:2]


def test_invalid_adjust_lr_fn_is_rejected_with_torchs_message():
    with pytest.raises(ValueError, match="Adjust learning rate function sqrt is not supported"):
        fo.scale_by_shape("sqrt")


def test_ema_momentum_is_torchs_lerp_buffer_with_optional_nesterov():
    g1, g2 = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    for nesterov in (False, True):
        t = fo.scale_by_ema_momentum(0.9, nesterov=nesterov)
        state = t.init({"w": g1, "n": None})
        _, state = t.update({"w": g1, "n": None}, state)
        u, state = t.update({"w": g2, "n": None}, state)
        buf = 0.9 * (0.1 * g1) + 0.1 * g2
        torch.testing.assert_close(state.momentum_buffer["w"], buf)
        torch.testing.assert_close(u["w"], 0.1 * g2 + 0.9 * buf if nesterov else buf)
        assert u["n"] is None and state.momentum_buffer["n"] is None
    with pytest.raises(ValueError, match="momentum should be >= 0 but is: -1"):
        fo.scale_by_ema_momentum(-1)
