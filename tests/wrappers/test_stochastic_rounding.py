"""Stochastic rounding to bfloat16: only the two neighbours, unbiased (statistically), and
``apply_updates_stochastic`` equal to ``apply_updates`` for every other dtype."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo


def _neighbours(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The bfloat16 values just below and just above ``x`` in magnitude (truncation and next)."""
    down = x.to(torch.bfloat16, copy=True)
    down = torch.where(down.float().abs() > x.abs(), torch.nextafter(down, torch.zeros_like(down)), down)
    up = torch.nextafter(down, torch.sign(down) * torch.full_like(down, float("inf")))
    return down, up


@pytest.mark.parametrize("value", [1.0 + 2**-10, -3.3, 1e-3, 12345.678, -7.77e-30])
def test_rounds_to_one_of_the_two_neighbours_with_the_mean_at_the_value(value: float) -> None:
    n = 200_000
    x = torch.full((n,), value, dtype=torch.float32)
    y = fo.stochastic_round_to_bfloat16(x, torch.Generator().manual_seed(0)).float()
    down, up = (t.float()[0] for t in _neighbours(x[:1]))
    assert set(y.unique().tolist()) <= {down.item(), up.item()}
    gap = abs(up.item() - down.item())
    # each draw is a Bernoulli of variance <= gap²/4: the mean is within 5 sigma of the value
    assert abs(y.double().mean().item() - float(x[0])) <= 5 * gap / 2 / n**0.5


def test_values_exactly_representable_are_kept() -> None:
    x = torch.tensor([1.0, -2.5, 0.0, float("inf"), -float("inf")])
    assert torch.equal(fo.stochastic_round_to_bfloat16(x).float(), x)
    assert fo.stochastic_round_to_bfloat16(torch.tensor([float("nan")])).isnan().all()


def test_non_float32_input_raises() -> None:
    with pytest.raises(TypeError, match="float32"):
        fo.stochastic_round_to_bfloat16(torch.ones(2, dtype=torch.float64))


def test_small_updates_accumulate_on_average_where_round_to_nearest_loses_them() -> None:
    gen = torch.Generator().manual_seed(1)
    p = {"w": torch.ones(50_000, dtype=torch.bfloat16)}
    u = {"w": torch.full((50_000,), 2e-4)}  # 1/39 of bfloat16's ulp at 1
    nearest, stochastic = p, p
    for _ in range(10):
        nearest = fo.apply_updates(nearest, u)
        stochastic = fo.apply_updates_stochastic(stochastic, u, gen)
    assert torch.equal(nearest["w"], p["w"])  # every update lost
    assert abs(stochastic["w"].double().mean().item() - 1.002) < 2e-4


def test_other_dtypes_and_none_updates_are_exactly_apply_updates() -> None:
    params = {
        "a": torch.randn(5),
        "b": torch.randn(3, dtype=torch.float64),
        "c": torch.ones(2, dtype=torch.bfloat16),
    }
    updates = {"a": torch.randn(5), "b": torch.randn(3, dtype=torch.float64), "c": None}
    out = fo.apply_updates_stochastic(params, updates)
    ref = fo.apply_updates(params, updates)
    for k in params:
        assert torch.equal(out[k], ref[k])
    assert out["c"] is params["c"]


def test_is_pure_and_reproducible_with_a_generator() -> None:
    p = {"w": torch.randn(100).to(torch.bfloat16)}
    u = {"w": torch.randn(100) * 1e-3}
    before = (p["w"].clone(), u["w"].clone())
    a = fo.apply_updates_stochastic(p, u, torch.Generator().manual_seed(3))
    b = fo.apply_updates_stochastic(p, u, torch.Generator().manual_seed(3))
    assert torch.equal(a["w"], b["w"]) and a["w"].dtype == torch.bfloat16
    assert torch.equal(p["w"], before[0]) and torch.equal(u["w"], before[1])
