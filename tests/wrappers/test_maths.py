"""The update rules of the composable transforms, checked against their formulas written out."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from functional_optim.core import EmptyState, GradientTransformation


def _fixed(direction: dict[str, torch.Tensor]) -> GradientTransformation:
    """A rule that ignores its input and returns ``direction``."""
    return GradientTransformation(lambda p: EmptyState(), lambda u, s, p=None, **e: (direction, s))


def test_cautious_zeroes_disagreeing_components_and_rescales_by_the_mean() -> None:
    g = torch.tensor([1.0, -2.0, 3.0, -4.0])
    u = torch.tensor([0.5, 0.5, -1.0, -2.0])  # agrees at 0 and 3
    opt = fo.cautious(_fixed({"w": u}))
    out, _ = opt.update({"w": g}, opt.init({"w": g}))
    expected = torch.tensor([0.5, 0.0, 0.0, -2.0]) / 0.5  # mean of the mask: 2/4
    assert torch.equal(out["w"], expected)


def test_cautious_numel_rescale_is_the_papers_first_version() -> None:
    g = torch.tensor([1.0, -2.0, 3.0, -4.0])
    u = torch.tensor([0.5, 0.5, -1.0, -2.0])
    opt = fo.cautious(_fixed({"w": u}), rescale="numel")
    out, _ = opt.update({"w": g}, opt.init({"w": g}))
    torch.testing.assert_close(out["w"], torch.tensor([0.5, 0.0, 0.0, -2.0]) * 4 / 3)


def test_cautious_mean_rescale_is_capped_when_nothing_agrees() -> None:
    g = torch.ones(3)
    opt = fo.cautious(_fixed({"w": -torch.ones(3)}))
    out, _ = opt.update({"w": g}, opt.init({"w": g}))
    assert torch.equal(out["w"], torch.zeros(3))


def test_cautious_rejects_an_unknown_rescale() -> None:
    with pytest.raises(ValueError, match="rescale"):
        fo.cautious(fo.identity(), rescale="max")


def test_cautious_weight_decay_decays_only_where_update_and_parameter_agree_in_sign() -> None:
    p = torch.tensor([1.0, 1.0, -1.0, -1.0])
    u = torch.tensor([0.5, -0.5, 0.5, -0.5])
    opt = fo.add_cautious_decayed_weights(0.1)
    out, _ = opt.update({"w": u}, opt.init({"w": p}), {"w": p})
    torch.testing.assert_close(out["w"], u + 0.1 * torch.tensor([1.0, 0.0, 0.0, -1.0]))


def test_graft_has_the_magnitude_rules_norm_and_the_direction_rules_direction() -> None:
    g = {"a": torch.tensor([3.0, 4.0]), "b": torch.tensor([1.0, 0.0, 0.0])}
    mags = {"a": torch.tensor([0.0, 10.0]), "b": torch.tensor([0.0, 0.0, 2.0])}
    dirs = {"a": torch.tensor([1.0, 1.0]), "b": torch.zeros(3)}
    opt = fo.graft(_fixed(mags), _fixed(dirs))
    out, _ = opt.update(g, opt.init(g))
    torch.testing.assert_close(out["a"], torch.tensor([1.0, 1.0]) * 10 / 2**0.5)
    assert torch.equal(out["b"], torch.zeros(3))  # a zero direction stays zero


def test_clip_by_rms_caps_each_tensors_rms_and_leaves_small_ones() -> None:
    g = {"big": torch.full((4,), 3.0), "small": torch.tensor([0.1, -0.1])}
    opt = fo.clip_by_rms(1.0)
    out, _ = opt.update(g, opt.init(g))
    assert torch.equal(out["big"], torch.ones(4))
    assert torch.equal(out["small"], g["small"])


def test_mars_correction_is_the_papers_formula_with_norm_clipping() -> None:
    b1, gamma = 0.9, 0.5
    g1, g2 = torch.tensor([0.3, -0.2]), torch.tensor([0.1, 0.4])
    opt = fo.scale_by_mars(b1, gamma)
    state = opt.init({"w": g1})
    c1, state = opt.update({"w": g1}, state)
    c2, state = opt.update({"w": g2}, state)

    def corrected(g: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        c = g + gamma * b1 / (1 - b1) * (g - prev)
        n = torch.linalg.vector_norm(c)
        return c / n if n > 1 else c

    torch.testing.assert_close(c1["w"], corrected(g1, torch.zeros(2)))
    torch.testing.assert_close(c2["w"], corrected(g2, g1))
    assert torch.linalg.vector_norm(c1["w"]) == pytest.approx(1.0)  # clipped: ||c1|| = 4.5·||g1|| > 1
    assert torch.equal(state.last_grad["w"], g2)


def test_mars_without_clipping_keeps_large_corrections() -> None:
    g = torch.tensor([3.0, 4.0])
    opt = fo.scale_by_mars(0.5, 0.0, max_norm=None)
    out, _ = opt.update({"w": g}, opt.init({"w": g}))
    assert torch.equal(out["w"], g)


def test_mars_adamw_routes_vectors_to_adamw_unless_optimize_1d() -> None:
    params = {"w": torch.ones(2, 2), "b": torch.ones(2)}
    grads = {"w": torch.full((2, 2), 0.1), "b": torch.full((2,), 0.1)}
    ours, _ = fo.mars_adamw(weight_decay_1d=0.0).update(
        grads, fo.mars_adamw(weight_decay_1d=0.0).init(params), params
    )
    adamw = fo.adamw(lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0)
    ref, _ = adamw.update({"b": grads["b"]}, adamw.init({"b": params["b"]}), {"b": params["b"]})
    torch.testing.assert_close(ours["b"], ref["b"])


def test_bias_corrected_rms_is_g_over_sqrt_of_v_hat_plus_eps() -> None:
    g1, g2 = torch.tensor([2.0, -1.0], dtype=torch.float64), torch.tensor([1.0, 3.0], dtype=torch.float64)
    opt = fo.scale_by_bias_corrected_rms(0.9, 1e-3)
    state = opt.init({"w": g1})
    _, state = opt.update({"w": g1}, state)
    out, _ = opt.update({"w": g2}, state)
    v = 0.9 * 0.1 * g1**2 + 0.1 * g2**2
    torch.testing.assert_close(out["w"], g2 / ((v / (1 - 0.9**2)).sqrt() + 1e-3))
