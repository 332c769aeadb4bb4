"""``fo.unroll`` (with truncated backpropagation), ``fo.stop_gradient`` and ``fo.SavedTensorsMeter``:
the helper equals a hand-written unrolled loop, truncation equals detaching by hand at the
chosen step, and the memory an unrolled meta-gradient keeps grows linearly in K (bounded with
truncation)."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests.differentiable._problems import DT, data, init_params, loss

XT, YT, XV, YV = data()


def _manual(params: dict, lr: torch.Tensor, k: int, cut: int | None = None, first_order: bool = False):
    """The reference loop: ``k`` Adam steps, detaching params and state before step ``cut``."""
    opt = fo.adam(lr=lr, betas=(0.8, 0.9))
    state = opt.init(params)
    for step in range(k):
        if step == cut:
            params = {n: p.detach() for n, p in params.items()}
            state = fo.tree.map(lambda x: x.detach() if isinstance(x, torch.Tensor) else x, state)
        grads = torch.func.grad(loss)(params, XT, YT)
        if first_order:
            grads = {n: g.detach() for n, g in grads.items()}
        updates, state = opt.update(grads, state, params)
        params = fo.apply_updates(params, updates)
    return loss(params, XV, YV)


def _helper(params: dict, lr: torch.Tensor, k: int, **kwargs):
    out = fo.unroll(fo.adam(lr=lr, betas=(0.8, 0.9)), loss, params, batches=[(XT, YT)] * k, **kwargs)
    return loss(out.params, XV, YV)


LR = torch.tensor(0.05, dtype=DT)


def test_unroll_equals_the_hand_written_loop_in_value_and_meta_gradient():
    params = init_params()
    expected = torch.func.grad_and_value(lambda p, lr: _manual(p, lr, 4), argnums=(0, 1))(params, LR)
    actual = torch.func.grad_and_value(lambda p, lr: _helper(p, lr, 4), argnums=(0, 1))(params, LR)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


@pytest.mark.parametrize("truncate", [0, 1, 3, 5, 9])
def test_truncate_equals_detaching_params_and_state_by_hand(truncate):
    k = 5
    params = init_params()
    cut = None if truncate >= k else k - truncate
    expected_value = _manual(params, LR, k, cut)
    if truncate == 0:  # nothing flows: the result does not depend on the inputs any more
        leafs = {n: p.clone().requires_grad_(True) for n, p in params.items()}
        lr = LR.clone().requires_grad_(True)
        value = _helper(leafs, lr, k, truncate=0)
        assert not value.requires_grad
        torch.testing.assert_close(value, expected_value, rtol=0, atol=0)
        return
    expected = torch.func.grad(lambda p, lr: _manual(p, lr, k, cut), argnums=(0, 1))(params, LR)
    actual = torch.func.grad(lambda p, lr: _helper(p, lr, k, truncate=truncate), argnums=(0, 1))(params, LR)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    if cut is not None:  # and it is really different from the full meta-gradient
        full = torch.func.grad(lambda p, lr: _helper(p, lr, k), argnums=1)(params, LR)
        assert (actual[1] - full).abs() > 1e-6 * full.abs()


def test_first_order_drops_the_second_order_terms_only():
    params = init_params()
    expected = torch.func.grad(lambda p: _manual(p, LR, 3, first_order=True))(params)
    actual = torch.func.grad(lambda p: _helper(p, LR, 3, first_order=True))(params)
    full = torch.func.grad(lambda p: _helper(p, LR, 3))(params)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    assert (actual["w"] - full["w"]).abs().max() > 1e-6


def test_autograd_inner_gradients_give_the_same_numbers_as_torch_func():
    params = init_params()
    expected = torch.func.grad(lambda p, lr: _helper(p, lr, 4, truncate=2), argnums=(0, 1))(params, LR)
    leafs = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    lr = LR.clone().requires_grad_(True)
    value = _helper(leafs, lr, 4, truncate=2, inner_grad="autograd")
    grads = torch.autograd.grad(value, [*leafs.values(), lr], allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(grads[-1], expected[1], rtol=1e-12, atol=0)
    for g, name in zip(grads[:-1], leafs, strict=True):
        torch.testing.assert_close(g, expected[0][name], rtol=1e-12, atol=0)


def test_unroll_under_no_grad_with_autograd_inner_gradients_still_trains():
    params = init_params()
    with torch.no_grad():
        value = _helper(params, LR, 3, inner_grad="autograd")
    torch.testing.assert_close(value, _helper(params, LR, 3), rtol=1e-12, atol=0)


def test_unroll_full_batch_steps_and_losses():
    params = init_params()
    out = fo.unroll(fo.sgd(lr=0.1), lambda p: loss(p, XT, YT), params, steps=3)
    assert len(out.losses) == 3 and all(not v.requires_grad for v in out.losses)
    assert out.losses[2] < out.losses[0]
    assert len(fo.unroll(fo.sgd(lr=0.1), lambda p: loss(p, XT, YT), params, steps=0).losses) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "batches"),
        ({"steps": -1}, "steps"),
        ({"steps": 2, "batches": [()]}, "steps"),
        ({"steps": 2, "truncate": -1}, "truncate"),
        ({"steps": 2, "truncate": 1.5}, "truncate"),
        ({"steps": 2, "inner_grad": "jax"}, "inner_grad"),
    ],
)
def test_unroll_rejects_bad_arguments_with_a_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fo.unroll(fo.sgd(lr=0.1), lambda p: loss(p, XT, YT), init_params(), **kwargs)


def test_stop_gradient_detaches_every_tensor_and_keeps_structure():
    x = torch.ones(2, requires_grad=True)
    tree = {"a": x * 2, "b": None, "c": (), "d": [x + 1, 3.0]}
    out = fo.stop_gradient(tree)
    assert not out["a"].requires_grad and not out["d"][0].requires_grad
    assert out["b"] is None and out["c"] == () and out["d"][1] == 3.0
    torch.testing.assert_close(out["a"], tree["a"].detach())
    grad = torch.func.grad(lambda v: (fo.stop_gradient(v * v) * v).sum())(torch.ones(2))
    torch.testing.assert_close(grad, torch.ones(2))  # d/dv [c·v] with c = v² held constant


# ----------------------------------------------------------------------------- memory


def _saved_bytes(k: int, truncate: int | None = None) -> int:
    params = {n: p.clone().requires_grad_(True) for n, p in init_params().items()}
    lr = LR.clone().requires_grad_(True)
    with fo.SavedTensorsMeter() as meter:
        value = _helper(params, lr, k, truncate=truncate, inner_grad="autograd")
    kept = meter.bytes
    if value.requires_grad:
        value.backward()
    return kept


def test_saved_memory_of_an_unrolled_meta_gradient_grows_linearly_in_k():
    sizes = {k: _saved_bytes(k) for k in (1, 2, 3, 5, 9)}
    per_step = sizes[2] - sizes[1]
    assert per_step > 0
    for k, size in sizes.items():
        assert size == sizes[1] + (k - 1) * per_step, sizes


def test_truncation_bounds_the_saved_memory():
    window = _saved_bytes(3)
    for k in (3, 6, 10):
        assert _saved_bytes(k, truncate=3) <= window
    assert _saved_bytes(10, truncate=3) < _saved_bytes(10) / 2
    assert _saved_bytes(4, truncate=0) == 0


def test_saved_tensors_meter_releases_what_the_graph_frees_and_does_not_change_gradients():
    params = {n: p.clone().requires_grad_(True) for n, p in init_params().items()}
    with fo.SavedTensorsMeter() as meter:
        value = _helper(params, LR, 2, inner_grad="autograd")
    assert meter.bytes > 0 and meter.peak_bytes >= meter.bytes and meter.count > 0
    with_meter = torch.autograd.grad(value, list(params.values()))
    del value
    assert meter.bytes == 0  # the graph is gone: nothing is counted any more (no leak through the meter)
    plain = {n: p.clone().requires_grad_(True) for n, p in init_params().items()}
    expected = torch.autograd.grad(_helper(plain, LR, 2, inner_grad="autograd"), list(plain.values()))
    torch.testing.assert_close(with_meter, expected, rtol=0, atol=0)
