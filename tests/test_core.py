"""The functional core: chain, identity, apply_updates, None-grad semantics, error messages."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

import functional_optim as fo
from functional_optim import ops, tree


def _params():
    return {"w": torch.randn(3, 2), "b": torch.randn(2)}


def test_chain_applies_transforms_in_order_and_keeps_a_state_per_transform():
    opt = fo.chain(fo.scale(2.0), fo.scale_by_learning_rate(0.5))
    params = _params()
    state = opt.init(params)
    assert isinstance(state, tuple) and len(state) == 2
    grads = {"w": torch.ones(3, 2), "b": torch.ones(2)}
    updates, _ = opt.update(grads, state, params)
    torch.testing.assert_close(updates["w"], torch.full((3, 2), -1.0))


def test_chain_rejects_something_that_is_not_a_transform():
    with pytest.raises(TypeError, match="argument 1 is a function"):
        fo.chain(fo.identity(), fo.scale_by_adam)


def test_chain_rejects_a_state_of_the_wrong_length():
    opt = fo.chain(fo.identity(), fo.identity())
    with pytest.raises(ValueError, match="state has 1 entries but the chain has 2"):
        opt.update({"w": torch.ones(1)}, (fo.EmptyState(),))


def test_identity_returns_its_input_unchanged():
    grads = {"w": torch.randn(3)}
    updates, _ = fo.identity().update(grads, fo.identity().init(grads))
    assert updates["w"] is grads["w"]


def test_apply_updates_adds_and_keeps_structure_dtype_and_none():
    class P(NamedTuple):
        a: torch.Tensor
        b: list

    params = P(torch.ones(2, dtype=torch.bfloat16), [torch.zeros(3), torch.ones(1)])
    updates = P(torch.full((2,), 0.5), [None, torch.ones(1)])
    new = fo.apply_updates(params, updates)
    assert isinstance(new, P) and new.a.dtype == torch.bfloat16
    torch.testing.assert_close(new.a, torch.full((2,), 1.5, dtype=torch.bfloat16))
    assert new.b[0] is params.b[0]
    torch.testing.assert_close(new.b[1], torch.full((1,), 2.0))
    torch.testing.assert_close(params.a, torch.ones(2, dtype=torch.bfloat16))  # input untouched


def test_none_grad_leaves_the_parameter_and_its_state_exactly_as_they_were():
    opt = fo.adam(lr=0.1)
    params = _params()
    state = opt.init(params)
    updates, state = opt.update({"w": torch.ones(3, 2), "b": torch.ones(2)}, state, params)
    adam_state = state[1]
    updates, new_state = opt.update({"w": torch.ones(3, 2), "b": None}, state, params)
    assert updates["b"] is None
    new_adam = new_state[1]
    assert new_adam.exp_avg["b"] is adam_state.exp_avg["b"]
    assert new_adam.step["b"] is adam_state.step["b"]
    assert new_adam.step["w"].item() == 2.0 and new_adam.step["b"].item() == 1.0


def test_grads_with_a_different_tree_structure_raise_a_clear_error():
    opt = fo.adam()
    state = opt.init(_params())
    with pytest.raises(ValueError, match="structure"):
        opt.update({"w": torch.ones(3, 2), "c": torch.ones(2)}, state)


def test_grad_with_a_wrong_shape_names_the_parameter():
    opt = fo.adam(weight_decay=0.1)
    params = _params()
    state = opt.init(params)
    with pytest.raises(ValueError, match="parameter 'b' has shape \\(3,\\)"):
        opt.update({"w": torch.ones(3, 2), "b": torch.ones(3)}, state, params)


def test_transforms_that_need_params_say_so():
    opt = fo.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match="needs the parameters"):
        opt.update({"w": torch.ones(2)}, opt.init({"w": torch.ones(2)}))


def test_tree_helpers_handle_none_leaves():
    t = {"a": torch.ones(2), "b": None, "c": [torch.full((2,), 2.0)]}
    z = tree.zeros_like(t)
    assert z["b"] is None and torch.equal(z["a"], torch.zeros(2))
    torch.testing.assert_close(tree.global_norm(t), torch.tensor((2 + 8) ** 0.5))
    assert tree.leaf_names(tree.structure(t)) == ["a", "b", "c.0"]


def test_ops_foreach_and_per_tensor_paths_agree():
    xs = [torch.randn(3, 4), torch.randn(5)]
    ys = [torch.randn(3, 4), torch.randn(5)]
    assert ops.use_foreach(xs, ys)
    fast = ops.addcdiv(ops.lerp(xs, ys, 0.1), xs, ops.add(ops.abs(ys), 1.0), -0.5)
    slow = [
        torch.addcdiv(torch.lerp(x, y, 0.1), x, y.abs() + 1.0, value=-0.5)
        for x, y in zip(xs, ys, strict=False)
    ]
    for a, b in zip(fast, slow, strict=False):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_ops_choose_the_per_tensor_path_under_vmap():
    seen = []

    def f(x):
        seen.append(ops.use_foreach([x]))
        return ops.mul([x], 2.0)[0]

    torch.func.vmap(f)(torch.randn(4, 3))
    assert seen == [False]


def test_scalar_reads_concrete_tensors_and_keeps_traced_ones():
    assert ops.scalar(torch.tensor(0.5, dtype=torch.float64)) == 0.5
    lr = torch.tensor(0.5, requires_grad=True)
    assert ops.scalar(lr) is lr
