"""``masked`` and ``freeze``: transforms applied to a subset of the parameters."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import functional_optim as fo
from functional_optim import tree
from tests.combinators._helpers import assert_trees_equal, make_grads, make_params
from tests.strategies import grads_like, masks_like, param_trees


def _sub(d: dict, keys) -> dict:
    return {k: d[k] for k in keys}


def test_masked_adamw_equals_adamw_on_the_selected_leaves_and_passes_the_rest():
    params = make_params()
    mask = {"w1": True, "b1": False, "w2": True, "s": False}
    on = [k for k, v in mask.items() if v]
    opt = fo.masked(fo.adamw(lr=0.1, weight_decay=0.1), mask)
    ref = fo.adamw(lr=0.1, weight_decay=0.1)
    state, ref_state = opt.init(params), ref.init(_sub(params, on))
    ref_params = _sub(params, on)
    for step in range(4):
        grads = make_grads(params, step)
        u, state = opt.update(grads, state, params)
        ru, ref_state = ref.update(_sub(grads, on), ref_state, ref_params)
        assert_trees_equal(_sub(u, on), ru)
        for k in ("b1", "s"):
            assert u[k] is grads[k]  # masked-out updates pass through untouched
        params, ref_params = fo.apply_updates(params, u), fo.apply_updates(ref_params, ru)
    # The inner state is a plain tree with the parameters' structure and None where masked out.
    adam_state = state.inner_state[0]
    assert set(adam_state.exp_avg) == set(params)
    assert adam_state.exp_avg["b1"] == () and adam_state.step["s"] == ()
    assert_trees_equal(_sub(adam_state.exp_avg_sq, on), ref_state[0].exp_avg_sq)


def test_masked_with_a_callable_mask_and_none_grads():
    params = {"w": torch.ones(2, 3), "b": torch.ones(3)}
    opt = fo.masked(fo.scale(10.0), lambda ps: tree.map(lambda p: p is not None and p.ndim == 2, ps))
    grads = {"w": None, "b": torch.full((3,), 2.0)}
    u, _ = opt.update(grads, opt.init(params), params)
    assert u["w"] is None and torch.equal(u["b"], torch.full((3,), 2.0))
    u, _ = opt.update({"w": torch.ones(2, 3), "b": None}, opt.init(params), params)
    assert torch.equal(u["w"], torch.full((2, 3), 10.0)) and u["b"] is None


def test_masked_rejects_non_bool_masks_and_bad_inner():
    params = {"a": torch.ones(2)}
    with pytest.raises(ValueError, match="mask"):
        fo.masked(fo.scale(1.0), {"a": "yes"}).init(params)
    with pytest.raises(ValueError, match="mask"):
        fo.masked(fo.scale(1.0), {"b": True}).init(params)
    with pytest.raises(ValueError, match="inner"):
        fo.masked(fo.scale, {"a": True})


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_masked_property_selected_leaves_follow_inner_others_pass_through(data):
    params = data.draw(param_trees())
    mask = data.draw(masks_like(params))
    grads = data.draw(grads_like(params))
    opt = fo.masked(fo.chain(fo.scale_by_adam(), fo.scale(-0.1)), mask)
    ref = fo.chain(fo.scale_by_adam(), fo.scale(-0.1))
    u, _ = opt.update(grads, opt.init(params), params)
    ru, _ = ref.update(grads, ref.init(params), params)
    rows = zip(tree.leaves(mask), tree.leaves(grads), tree.leaves(u), tree.leaves(ru), strict=True)
    for m, g, out, r in rows:
        if g is None:
            assert out is None
        elif m:
            assert torch.equal(out, r)
        else:
            assert out is g


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_partition_property_equals_masked_parts(data):
    params = data.draw(param_trees())
    mask = data.draw(masks_like(params))
    grads = data.draw(grads_like(params))
    labels = tree.map(lambda m: "a" if m else "b", mask)
    opt = fo.partition({"a": fo.scale_by_adam(), "b": fo.scale(-2.0)}, labels)
    u, state = opt.update(grads, opt.init(params), params)
    ua, _ = fo.scale_by_adam().update(grads, fo.scale_by_adam().init(params), params)
    rows = zip(tree.leaves(mask), tree.leaves(grads), tree.leaves(u), tree.leaves(ua), strict=True)
    for m, g, out, a in rows:
        if g is None:
            assert out is None
        elif m:
            assert torch.equal(out, a)
        else:
            assert torch.equal(out, -2.0 * g)
    # the adam group's state exists exactly on its own leaves
    spec = tree.structure(params)
    for m, s in zip(tree.leaves(mask), spec.flatten_up_to(state.inner_states["a"].exp_avg), strict=True):
        assert isinstance(s, torch.Tensor) == m and (m or s == ())


def test_freeze_zeroes_frozen_updates_and_keeps_no_state():
    params = {"enc": {"w": torch.ones(2, 2)}, "head": torch.ones(3)}
    grads = {"enc": {"w": torch.full((2, 2), 3.0)}, "head": torch.full((3,), 4.0)}
    opt = fo.chain(fo.scale(-0.5), fo.freeze({"enc": True, "head": False}))
    u, state = opt.update(grads, opt.init(params), params)
    assert torch.equal(u["enc"]["w"], torch.zeros(2, 2)) and torch.equal(u["head"], torch.full((3,), -2.0))
    assert state[1] == fo.EmptyState()
    assert fo.freeze().update({"a": None}, fo.EmptyState())[0]["a"] is None
    # inside partition: the frozen group has no optimizer state at all
    part = fo.partition({"train": fo.adam(0.1), "frozen": fo.freeze()}, {"enc": "frozen", "head": "train"})
    pstate = part.init(params)
    assert pstate.inner_states["frozen"] == fo.EmptyState()
    assert pstate.inner_states["train"][1].exp_avg["enc"]["w"] == ()
    pu, _ = part.update(grads, pstate, params)
    assert torch.equal(pu["enc"]["w"], torch.zeros(2, 2))
