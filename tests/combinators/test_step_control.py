"""``apply_if_finite``, ``skip_large_updates``, ``multi_steps``, ``lookahead``: combinators that skip,
delay or undo steps, against hand-computed expectations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import functional_optim as fo
from functional_optim import tree
from tests.combinators._helpers import assert_trees_equal, make_grads, make_params
from tests.strategies import grads_like, param_trees

# ----------------------------------------------------------------------------- apply_if_finite


def test_apply_if_finite_skips_a_nan_step_with_bit_identical_inner_state():
    params = make_params()
    opt = fo.apply_if_finite(fo.adam(lr=0.1), max_consecutive_errors=2)
    state = opt.init(params)
    _, state = opt.update(make_grads(params, 0), state, params)
    before = state.inner_state
    bad = make_grads(params, 1)
    bad["w1"] = bad["w1"].clone()
    bad["w1"][0, 0] = float("nan")
    bad["b1"] = None
    u, state = opt.update(bad, state, params)
    assert_trees_equal(state.inner_state, before)  # bit-identical
    assert all(torch.count_nonzero(x) == 0 for x in u.values() if x is not None) and u["b1"] is None
    assert (int(state.notfinite_count), bool(state.last_finite), int(state.total_notfinite)) == (1, False, 1)
    # a finite step afterwards equals adam that never saw the bad step
    ref = fo.adam(lr=0.1)
    good = make_grads(params, 2)
    u, state = opt.update(good, state, params)
    ru, _ = ref.update(good, before, params)
    assert_trees_equal(u, ru)
    assert (int(state.notfinite_count), bool(state.last_finite), int(state.total_notfinite)) == (0, True, 1)


def test_apply_if_finite_applies_after_max_consecutive_errors():
    params = {"w": torch.ones(2)}
    opt = fo.apply_if_finite(fo.sgd(lr=1.0), max_consecutive_errors=2)
    state = opt.init(params)
    inf = {"w": torch.tensor([float("inf"), 1.0])}
    applied = []
    for _ in range(4):
        u, state = opt.update(inf, state, params)
        applied.append(bool(torch.isinf(u["w"]).any()))
    assert applied == [False, False, True, True]  # optax: applied once count > max_consecutive_errors
    assert int(state.notfinite_count) == 4 and int(state.total_notfinite) == 4
    with pytest.raises(ValueError, match="max_consecutive_errors"):
        fo.apply_if_finite(fo.sgd(lr=1.0), -1)


# ----------------------------------------------------------------------------- skip_large_updates


def test_skip_large_updates_skips_when_the_squared_update_norm_exceeds_the_threshold():
    params = {"w": torch.zeros(4)}
    opt = fo.skip_large_updates(fo.sgd(lr=1.0, momentum=0.9), max_squared_norm=1.0)
    state = opt.init(params)
    small = {"w": torch.full((4,), 0.25)}  # ||u||² = 0.25
    u, state = opt.update(small, state, params)
    torch.testing.assert_close(u["w"], -small["w"])
    kept = state.inner_state
    big = {"w": torch.full((4,), 1.0)}  # momentum buffer 0.9*0.25+1 -> ||u||² = 4 * 1.225² > 1
    u, state = opt.update(big, state, params)
    assert torch.count_nonzero(u["w"]) == 0 and bool(state.skipped) and int(state.total_skipped) == 1
    assert_trees_equal(state.inner_state, kept)
    nan = {"w": torch.full((4,), float("nan"))}
    u, state = opt.update(nan, state, params)
    assert torch.count_nonzero(u["w"]) == 0 and int(state.total_skipped) == 2
    with pytest.raises(ValueError, match="max_squared_norm"):
        fo.skip_large_updates(fo.sgd(lr=1.0), 0.0)


# ----------------------------------------------------------------------------- multi_steps


@pytest.mark.parametrize("k", [1, 3])
def test_multi_steps_sgd_equals_sgd_on_the_mean_of_k_gradients(k):
    params = make_params(dtype=torch.float64)
    opt = fo.multi_steps(fo.sgd(lr=0.1, momentum=0.9), every_k=k)
    ref = fo.sgd(lr=0.1, momentum=0.9)
    state, ref_state = opt.init(params), ref.init(params)
    p, rp = params, params
    for outer in range(3):
        grads = [make_grads(params, outer * k + i) for i in range(k)]
        for i, g in enumerate(grads):
            u, state = opt.update(g, state, p)
            if i < k - 1:
                assert all(torch.count_nonzero(x) == 0 for x in u.values())
                assert int(state.mini_step) == i + 1
            p = fo.apply_updates(p, u)
        mean = tree.map(lambda *gs: torch.stack(gs).mean(0), *grads)
        ru, ref_state = ref.update(mean, ref_state, rp)
        rp = fo.apply_updates(rp, ru)
        for key in params:
            torch.testing.assert_close(p[key], rp[key], rtol=1e-12, atol=1e-14)  # sum/k vs mean: rounding
        assert int(state.gradient_step) == outer + 1 and int(state.mini_step) == 0
    assert all(torch.count_nonzero(a) == 0 for a in state.acc_grads.values())


def test_multi_steps_inner_state_only_changes_every_k_and_none_grads_add_nothing():
    params = {"a": torch.zeros(2), "b": torch.zeros(2)}
    opt = fo.multi_steps(fo.adam(lr=0.1), every_k=2)
    state = opt.init(params)
    u, state1 = opt.update({"a": torch.ones(2), "b": None}, state, params)
    assert_trees_equal(state1.inner_state, state.inner_state)
    assert torch.equal(state1.acc_grads["a"], torch.ones(2))
    assert torch.equal(state1.acc_grads["b"], torch.zeros(2))
    assert u["b"] is None
    u, _ = opt.update({"a": torch.full((2,), 3.0), "b": torch.ones(2)}, state1, params)
    # inner saw mean a = 2, b = 0.5
    mean = {"a": torch.full((2,), 2.0), "b": torch.full((2,), 0.5)}
    ru, _ = fo.adam(lr=0.1).update(mean, state.inner_state)
    assert_trees_equal(u, ru)
    with pytest.raises(ValueError, match="every_k"):
        fo.multi_steps(fo.adam(), 0)


def test_multi_steps_accumulates_bf16_grads_in_a_wider_dtype():
    params = {"w": torch.zeros(3, dtype=torch.bfloat16)}
    opt = fo.multi_steps(fo.sgd(lr=1.0), every_k=4, acc_dtype=torch.float32)
    state = opt.init(params)
    assert state.acc_grads["w"].dtype == torch.float32
    for _ in range(4):
        u, state = opt.update({"w": torch.full((3,), 1.0 + 2**-8, dtype=torch.bfloat16)}, state, params)
    assert u["w"].dtype == torch.bfloat16
    torch.testing.assert_close(u["w"], torch.full((3,), -(1.0 + 2**-8), dtype=torch.bfloat16))


# ----------------------------------------------------------------------------- lookahead


def _lookahead_reference(params, grads_seq, lr, k, alpha):
    """Hand-written Lookahead around plain SGD (Zhang et al. 2019, Algorithm 1)."""
    fast = {n: p.clone() for n, p in params.items()}
    slow = {n: p.clone() for n, p in params.items()}
    out = []
    for t, g in enumerate(grads_seq, start=1):
        fast = {n: fast[n] - lr * g[n] for n in fast}
        if t % k == 0:
            slow = {n: slow[n] + alpha * (fast[n] - slow[n]) for n in slow}
            fast = {n: s.clone() for n, s in slow.items()}
        out.append(fast)
    return out, slow


def test_lookahead_matches_the_algorithm_with_sgd():
    params = make_params(dtype=torch.float64)
    grads_seq = [make_grads(params, t) for t in range(7)]
    expected, slow = _lookahead_reference(params, grads_seq, lr=0.1, k=3, alpha=0.5)
    opt = fo.lookahead(fo.sgd(lr=0.1), sync_period=3, alpha=0.5)
    state, p = opt.init(params), params
    for t, g in enumerate(grads_seq):
        u, state = opt.update(g, state, p)
        p = fo.apply_updates(p, u)
        for n in params:
            torch.testing.assert_close(p[n], expected[t][n], rtol=1e-12, atol=1e-12)
    for n in params:
        torch.testing.assert_close(state.slow_params[n], slow[n], rtol=1e-12, atol=1e-12)
    assert int(state.count) == 7


def test_lookahead_reset_state_and_validation():
    params = {"w": torch.ones(2)}
    opt = fo.lookahead(fo.sgd(lr=0.1, momentum=0.9), sync_period=2, alpha=0.5, reset_state=True)
    state = opt.init(params)
    for _ in range(2):
        _, state = opt.update({"w": torch.ones(2)}, state, params)
    fresh = fo.sgd(lr=0.1, momentum=0.9).init(params)
    assert_trees_equal(state.fast_state, fresh)
    with pytest.raises(ValueError, match="params"):
        opt.update({"w": torch.ones(2)}, state)
    with pytest.raises(ValueError, match="alpha"):
        fo.lookahead(fo.sgd(lr=0.1), 2, alpha=1.5)
    with pytest.raises(ValueError, match="sync_period"):
        fo.lookahead(fo.sgd(lr=0.1), 0)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), k=st.integers(min_value=1, max_value=4))
def test_multi_steps_property_emits_adam_on_the_mean_every_k_calls(data, k):
    params = data.draw(param_trees())
    grads = [data.draw(grads_like(params, allow_none=False)) for _ in range(k)]
    opt = fo.multi_steps(fo.adam(lr=0.1), every_k=k)
    state = opt.init(params)
    for g in grads:
        u, state = opt.update(g, state, params)
    mean = tree.map(lambda *gs: sum(gs[1:], gs[0]) / k, *grads)
    ref = fo.adam(lr=0.1)
    ru, rs = ref.update(mean, ref.init(params), params)
    for a, b in zip(tree.leaves(u), tree.leaves(ru), strict=True):
        torch.testing.assert_close(a, b)
    assert_trees_equal(state.inner_state, rs, exact=False)
