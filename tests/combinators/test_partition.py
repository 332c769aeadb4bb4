"""``partition``: each group of parameters follows its own transform, exactly as if run alone."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from functional_optim import tree
from tests.combinators._helpers import assert_trees_equal, make_grads, make_params


def _sub(d: dict, keys) -> dict:
    return {k: d[k] for k in keys}


def _labels(ps: dict) -> dict:
    return {k: "adamw" if k.startswith("w") else "adam" for k in ps}


def test_partition_equals_running_the_parts_separately():
    params = make_params()
    a_keys, b_keys = ["w1", "w2"], ["b1", "s"]
    opt = fo.partition({"adamw": fo.adamw(lr=0.1, weight_decay=0.1), "adam": fo.adam(lr=0.01)}, _labels)
    ref_a, ref_b = fo.adamw(lr=0.1, weight_decay=0.1), fo.adam(lr=0.01)
    state = opt.init(params)
    pa, pb = _sub(params, a_keys), _sub(params, b_keys)
    sa, sb = ref_a.init(pa), ref_b.init(pb)
    for step in range(5):
        grads = make_grads(params, step)
        if step == 2:
            grads["w1"] = None  # a None gradient stays None and leaves its state untouched
        u, state = opt.update(grads, state, params)
        ua, sa = ref_a.update(_sub(grads, a_keys), sa, pa)
        ub, sb = ref_b.update(_sub(grads, b_keys), sb, pb)
        merged = {**ua, **ub}
        assert_trees_equal(u, {k: merged[k] for k in params})
        params = fo.apply_updates(params, u)
        pa, pb = fo.apply_updates(pa, ua), fo.apply_updates(pb, ub)
    # Each inner state covers only its own leaves (None elsewhere) and equals the separate run.
    adamw_state = state.inner_states["adamw"][0]
    assert adamw_state.exp_avg["b1"] == () and adamw_state.exp_avg["s"] == ()
    assert_trees_equal(_sub(adamw_state.exp_avg, a_keys), sa[0].exp_avg)
    assert_trees_equal(_sub(state.inner_states["adam"][1].exp_avg_sq, b_keys), sb[1].exp_avg_sq)


def test_partition_accepts_a_label_tree_and_a_prefix():
    params = {"enc": {"w": torch.ones(2, 2), "b": torch.ones(2)}, "head": torch.ones(3)}
    grads = tree.full_like(params, 1.0)
    opt = fo.partition({"frozen": fo.scale(0.0), "train": fo.scale(-1.0)}, {"enc": "frozen", "head": "train"})
    u, _ = opt.update(grads, opt.init(params), params)
    assert torch.equal(u["enc"]["w"], torch.zeros(2, 2)) and torch.equal(u["head"], -torch.ones(3))


def test_partition_global_quantities_see_only_their_own_leaves():
    # clip_by_global_norm-like behaviour: a scale by a tree-wide norm must use only the group's leaves.
    params = {"a": torch.full((4,), 3.0), "b": torch.full((4,), 100.0)}

    def normalize() -> fo.GradientTransformation:
        def update(u, s, p=None, **_):
            n = tree.global_norm(u)
            return tree.map(lambda x: None if x is None else x / n, u), s

        return fo.GradientTransformation(lambda p: fo.EmptyState(), update)

    opt = fo.partition({"x": normalize(), "y": normalize()}, {"a": "x", "b": "y"})
    u, _ = opt.update(params, opt.init(params), params)
    torch.testing.assert_close(u["a"], torch.full((4,), 0.5))
    torch.testing.assert_close(u["b"], torch.full((4,), 0.5))


def test_partition_rejects_unknown_labels_and_bad_transforms():
    params = {"a": torch.ones(2)}
    with pytest.raises(ValueError, match="labels"):
        fo.partition({"x": fo.scale(1.0)}, {"a": "nope"}).init(params)
    with pytest.raises(ValueError, match="transforms"):
        fo.partition({"x": 1.0}, {"a": "x"})
    with pytest.raises(ValueError, match="transforms"):
        fo.partition({}, {"a": "x"})
    with pytest.raises(ValueError, match="labels"):
        fo.partition({"x": fo.scale(1.0)}, {"b": "x"}).init(params)


def test_partition_works_under_vmap_and_grad():
    params = {"w": torch.randn(3, 2), "b": torch.randn(2)}
    opt = fo.partition({"m": fo.adam(lr=0.1), "s": fo.scale(-0.5)}, {"w": "m", "b": "s"})
    state = opt.init(params)
    grads = tree.map(torch.ones_like, params)

    # vmap over an ensemble of 4 gradient trees sharing one state; the new states come out batched
    # (the absent leaves of each inner state are () -- empty sub-trees -- which vmap accepts)
    batched = tree.map(lambda g: torch.stack([g * (i + 1) for i in range(4)]), grads)
    u_b, s_b = torch.func.vmap(lambda g: opt.update(g, state, params), in_dims=(0,))(batched)
    for i in range(4):
        u_i, s_i = opt.update({k: g[i] for k, g in batched.items()}, state, params)
        torch.testing.assert_close(u_b["w"][i], u_i["w"])
        torch.testing.assert_close(u_b["b"][i], u_i["b"])
        exp_avg = s_b.inner_states["m"][1].exp_avg
        torch.testing.assert_close(exp_avg["w"][i], s_i.inner_states["m"][1].exp_avg["w"])
        assert exp_avg["b"] == ()

    # gradient through an update with respect to the parameters
    def loss(p):
        u, _ = opt.update(tree.map(lambda x: 2 * x, p), state, p)
        new = fo.apply_updates(p, u)
        return sum((x**2).sum() for x in tree.leaves(new))

    g = torch.func.grad(loss)(params)
    # b: new = b - 0.5 * 2b = 0  -> zero gradient; w gets a finite gradient
    torch.testing.assert_close(g["b"], torch.zeros(2))
    assert torch.isfinite(g["w"]).all()


def test_partition_group_without_parameters_and_masked_with_nothing_selected():
    params = {"a": torch.ones(2), "b": torch.ones(3)}
    grads = {"a": torch.full((2,), 2.0), "b": torch.full((3,), 3.0)}
    opt = fo.partition({"x": fo.scale(-1.0), "unused": fo.adam(0.1)}, {"a": "x", "b": "x"})
    state = opt.init(params)
    assert state.inner_states["unused"][1].exp_avg == {"a": (), "b": ()}
    u, new_state = opt.update(grads, state, params)
    assert torch.equal(u["a"], -grads["a"]) and torch.equal(u["b"], -grads["b"])
    assert new_state.inner_states["unused"] is state.inner_states["unused"]
    nothing = fo.masked(fo.adam(0.1), {"a": False, "b": False})
    mstate = nothing.init(params)
    u, mnew = nothing.update(grads, mstate, params)
    assert u["a"] is grads["a"] and mnew is mstate
