"""``add_noise``, ``centralize``, ``zero_nans``, ``clip_by_block_rms``, ``adaptive_grad_clip``,
``snapshot``: each against a hand-computed expectation."""

from __future__ import annotations

import math

import pytest
import torch

import functional_optim as fo
from functional_optim import tree
from tests.combinators._helpers import assert_trees_equal, make_grads, make_params

# ----------------------------------------------------------------------------- add_noise


def test_add_noise_is_deterministic_and_annealed():
    params = {"w": torch.zeros(20000), "b": torch.zeros(3)}
    grads = {"w": torch.zeros(20000), "b": None}
    opt = fo.add_noise(eta=0.3, gamma=0.55, seed=7)
    state = opt.init(params)
    stds = []
    for t in range(3):
        u, new_state = opt.update(grads, state, params)
        u_again, _ = opt.update(grads, state, params)
        assert torch.equal(u["w"], u_again["w"]) and u["b"] is None  # same state -> same noise
        stds.append(float(u["w"].std()))
        expected = math.sqrt(0.3 / (1 + t) ** 0.55)
        assert abs(stds[-1] - expected) < 0.03 * expected  # 20000 samples: std error ~0.5%
        assert abs(float(u["w"].mean())) < 5 * expected / math.sqrt(20000)
        state = new_state
    assert int(state.count) == 3
    # different steps and different seeds give different noise
    u0, _ = opt.update(grads, opt.init(params), params)
    u1, _ = opt.update(grads, state, params)
    other = fo.add_noise(eta=0.3, gamma=0.55, seed=8)
    u_other, _ = other.update(grads, other.init(params), params)
    assert not torch.equal(u0["w"], u1["w"]) and not torch.equal(u0["w"], u_other["w"])
    # noise is added to the gradient
    g = {"w": torch.ones(20000), "b": torch.ones(3)}
    ug, _ = opt.update(g, opt.init(params), params)
    torch.testing.assert_close(ug["w"] - 1.0, u0["w"])
    with pytest.raises(ValueError, match="eta"):
        fo.add_noise(eta=-1.0)


# ----------------------------------------------------------------------------- centralize


def test_centralize_subtracts_the_mean_over_all_but_dim_0():
    g = {
        "m": torch.arange(6.0).reshape(2, 3),
        "c": torch.ones(2, 2, 2) * 5,
        "v": torch.arange(3.0),
        "n": None,
    }
    u, _ = fo.centralize().update(g, fo.EmptyState())
    torch.testing.assert_close(u["m"], torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]))
    torch.testing.assert_close(u["c"], torch.zeros(2, 2, 2))
    assert u["v"] is g["v"] and u["n"] is None  # vectors untouched


# ----------------------------------------------------------------------------- zero_nans


def test_zero_nans_replaces_nans_keeps_infs_and_records_them():
    params = {"a": torch.zeros(3), "b": torch.zeros(2), "c": torch.zeros(1)}
    opt = fo.zero_nans()
    state = opt.init(params)
    g = {"a": torch.tensor([1.0, float("nan"), float("inf")]), "b": torch.ones(2), "c": None}
    u, state = opt.update(g, state)
    assert torch.equal(u["a"], torch.tensor([1.0, 0.0, float("inf")])) and u["c"] is None
    assert bool(state.found_nan["a"]) and not bool(state.found_nan["b"]) and not bool(state.found_nan["c"])


# ----------------------------------------------------------------------------- clip_by_block_rms


def test_clip_by_block_rms_scales_each_block_to_the_threshold():
    g = {"big": torch.full((4,), 3.0), "small": torch.full((2, 2), 0.5), "n": None}
    u, _ = fo.clip_by_block_rms(1.0).update(g, fo.EmptyState())
    torch.testing.assert_close(u["big"], torch.ones(4))  # rms 3 -> 1
    torch.testing.assert_close(u["small"], g["small"])  # rms 0.5 <= 1: unchanged
    assert u["n"] is None
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    out, _ = fo.clip_by_block_rms(0.1).update({"x": x}, fo.EmptyState())
    torch.testing.assert_close(out["x"].square().mean().sqrt(), torch.tensor(0.1))
    with pytest.raises(ValueError, match="threshold"):
        fo.clip_by_block_rms(0.0)


# ----------------------------------------------------------------------------- adaptive_grad_clip


def test_adaptive_grad_clip_clips_each_unit_relative_to_its_weight_norm():
    w = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # unit norms 5 and 0 (-> eps)
    b = torch.tensor([1.0, 0.0])  # whole-vector norm 1
    params = {"w": w, "b": b}
    g = {"w": torch.tensor([[0.6, 0.8], [0.3, 0.4]]), "b": torch.tensor([0.0, 0.05])}
    u, _ = fo.adaptive_grad_clip(clipping=0.1, eps=1e-3).update(g, fo.EmptyState(), params)
    # row 0: ||g||=1 > 0.1*5=0.5 -> scaled to norm 0.5; row 1: ||g||=0.5 > 0.1*1e-3 -> norm 1e-4
    torch.testing.assert_close(u["w"][0], torch.tensor([0.3, 0.4]))
    torch.testing.assert_close(u["w"][1], torch.tensor([0.3, 0.4]) * 1e-4 / 0.5)
    torch.testing.assert_close(u["b"], g["b"])  # 0.05 < 0.1 * 1: unchanged
    conv = torch.randn(3, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    gc = 10 * torch.randn(3, 2, 2, 2, generator=torch.Generator().manual_seed(2))
    out, _ = fo.adaptive_grad_clip(0.05).update({"c": gc}, fo.EmptyState(), {"c": conv})
    ratio = out["c"].flatten(1).norm(dim=1) / conv.flatten(1).norm(dim=1)
    torch.testing.assert_close(ratio, torch.full((3,), 0.05))
    with pytest.raises(ValueError, match="params"):
        fo.adaptive_grad_clip(0.1).update(g, fo.EmptyState())
    with pytest.raises(ValueError, match="clipping"):
        fo.adaptive_grad_clip(0.0)


# ----------------------------------------------------------------------------- snapshot


def test_snapshot_records_grad_and_update_norms_without_changing_updates():
    params = make_params()
    opt = fo.chain(fo.snapshot("grad_norm"), fo.adam(lr=0.1), fo.snapshot("update_norm"))
    state = opt.init(params)
    assert set(fo.read_snapshots(state)) == {"grad_norm", "update_norm"}
    grads = make_grads(params, 0)
    grads["s"] = None
    u, state = opt.update(grads, state, params)
    ref_u, _ = fo.adam(lr=0.1).update(grads, fo.adam(lr=0.1).init(params), params)
    assert_trees_equal(u, ref_u)
    snaps = fo.read_snapshots(state)
    flat = torch.cat([g.flatten() for g in tree.leaves(grads) if g is not None])
    torch.testing.assert_close(snaps["grad_norm"], flat.norm())
    torch.testing.assert_close(
        snaps["update_norm"], torch.cat([x.flatten() for x in u.values() if x is not None]).norm()
    )
    custom = fo.snapshot("max_abs", lambda us: max(x.abs().max() for x in tree.leaves(us) if x is not None))
    _, s = custom.update(grads, custom.init(params))
    torch.testing.assert_close(s.values["max_abs"], flat.abs().max())
    with pytest.raises(ValueError, match="name"):
        fo.snapshot("")
