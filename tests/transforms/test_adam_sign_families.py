"""The building blocks of the sign and Adam families: ``None`` gradients, first steps, and the
update rules on inputs small enough to check by hand."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

import functional_optim as fo

TRANSFORMS: dict[str, Callable[[], fo.GradientTransformation]] = {
    "scale_by_lion": fo.scale_by_lion,
    "scale_by_trust_ratio": fo.scale_by_trust_ratio,
    "scale_by_lamb": lambda: fo.scale_by_lamb(weight_decay=0.1),
    "scale_by_lars": lambda: fo.scale_by_lars(0.5, weight_decay=0.1, nesterov=True),
    "scale_by_novograd": lambda: fo.scale_by_novograd(weight_decay=0.1),
    "scale_by_belief": lambda: fo.scale_by_belief(amsgrad=True),
    "scale_by_belief_rectified": lambda: fo.scale_by_belief(rectify=True),
    "scale_by_yogi": fo.scale_by_yogi,
    "scale_by_adopt": fo.scale_by_adopt,
    "scale_by_ademamix": fo.scale_by_ademamix,
    "scale_by_adan": fo.scale_by_adan,
    "scale_by_laprop": lambda: fo.scale_by_laprop(amsgrad=True),
    "scale_by_proximal_decay": lambda: fo.scale_by_proximal_decay(0.1, 0.5),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_none_gradient_leaves_update_none_and_state_untouched(name: str) -> None:
    tx = TRANSFORMS[name]()
    params = {"a": torch.tensor([1.0, -2.0]), "b": torch.tensor([0.5, 3.0])}
    _, state = tx.update(
        {"a": torch.tensor([0.1, 0.2]), "b": torch.tensor([0.3, -0.4])}, tx.init(params), params
    )
    before = [t.clone() for t in fo.tree.leaves(state) if isinstance(t, torch.Tensor)]
    updates, new_state = tx.update({"a": torch.tensor([0.5, 0.5]), "b": None}, state, params)
    assert updates["b"] is None
    for old, new in zip(state, new_state, strict=True):
        if isinstance(old, dict):  # a per-parameter field: "b" keeps its very tensor
            assert new["b"] is old["b"]
    after = [t for t in fo.tree.leaves(state) if isinstance(t, torch.Tensor)]
    assert all(torch.equal(x, y) for x, y in zip(before, after, strict=True))  # inputs not mutated


def test_trust_ratio_is_one_where_a_norm_is_zero() -> None:
    tx = fo.scale_by_trust_ratio(trust_coefficient=0.5)
    u, _ = tx.update(
        [torch.tensor([3.0, 4.0]), torch.tensor([1.0, 1.0])],
        tx.init(None),
        [torch.tensor([6.0, 8.0]), torch.zeros(2)],
    )
    assert torch.allclose(u[0], torch.tensor([3.0, 4.0]) * 0.5 * 10 / 5)
    assert torch.equal(u[1], torch.tensor([1.0, 1.0]))


def test_novograd_first_step_normalises_by_the_gradient_norm_then_averages() -> None:
    tx = fo.scale_by_novograd(b1=0.5, b2=0.5, eps=0.0)
    params = [torch.zeros(2)]
    u1, s = tx.update([torch.tensor([3.0, 4.0])], tx.init(params), params)
    assert torch.allclose(u1[0], torch.tensor([0.6, 0.8]))
    u2, _ = tx.update([torch.tensor([0.0, 5.0])], s, params)
    v2 = 0.5 * 25 + 0.5 * 25  # ||g1||^2 = ||g2||^2 = 25
    assert torch.allclose(u2[0], 0.5 * torch.tensor([0.6, 0.8]) + torch.tensor([0.0, 5.0]) / math.sqrt(v2))


def test_adopt_first_gradient_only_initialises_the_second_moment_and_clips_at_paper_step() -> None:
    tx = fo.scale_by_adopt(b1=0.0, b2=0.5, eps=1e-12)
    s = tx.init([torch.zeros(1)])
    u, s = tx.update([torch.tensor([1.0])], s)
    assert torch.equal(u[0], torch.zeros(1)) and torch.equal(s.exp_avg_sq[0], torch.ones(1))
    u, _ = tx.update([torch.tensor([3.0])], s)
    assert torch.equal(u[0], torch.tensor([1.0]))  # 3 / sqrt(1) clipped to c_1 = 1 ** 0.25 = 1


def test_adan_has_no_gradient_difference_at_the_first_step_and_weights_it_by_b2_after() -> None:
    b1, b2, b3 = 0.5, 0.25, 0.5
    tx = fo.scale_by_adan(b1, b2, b3, eps=0.0)
    u, s = tx.update([torch.tensor([2.0])], tx.init([torch.zeros(1)]))
    assert torch.allclose(u[0], torch.tensor([1.0]))  # m̂ = 2, n̂ = 4
    u, _ = tx.update([torch.tensor([4.0])], s)
    m = (b1 * 1.0 + (1 - b1) * 4.0) / (1 - b1**2)  # m1 = 1
    d = ((1 - b2) * 2.0) / (1 - b2**2)  # Δ = 2
    n = (b3 * 2.0 + (1 - b3) * (4.0 + b2 * 2.0) ** 2) / (1 - b3**2)  # n1 = 2
    assert torch.allclose(u[0], torch.tensor([(m + b2 * d) / math.sqrt(n)]))


def test_yogi_second_moment_moves_by_at_most_one_minus_b2_times_g_squared() -> None:
    tx = fo.scale_by_yogi(b2=0.9, initial_accumulator=1.0)
    _, s = tx.update([torch.tensor([2.0, 0.5])], tx.init([torch.zeros(2)]))
    assert torch.allclose(s.exp_avg_sq[0], torch.tensor([1.0 + 0.1 * 4.0, 1.0 - 0.1 * 0.25]))


def test_proximal_decay_equals_the_implicit_step() -> None:
    lr, wd = 0.1, 0.5
    p, u = torch.tensor([2.0]), torch.tensor([3.0])
    tx = fo.chain(
        fo.add_decayed_weights(wd), fo.scale_by_proximal_decay(lr, wd), fo.scale_by_learning_rate(lr)
    )
    new = fo.apply_updates([p], tx.update([u], tx.init([p]), [p])[0])[0]
    assert torch.allclose(new, (p - lr * u) / (1 + lr * wd))


def test_ademamix_warmups_reach_their_final_values() -> None:
    alpha = fo.ademamix_alpha_warmup(4.0, 10)
    beta3 = fo.ademamix_beta3_warmup(0.9, 0.999, 10)
    assert alpha(0) == pytest.approx(0.4) and alpha(9) == 4.0 and alpha(50) == 4.0
    assert beta3(0) > 0.9 and beta3(9) == 0.999 and beta3(4) < 0.999
