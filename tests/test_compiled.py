"""``fo.compile_step``: the compiled in-place step equals the pure loop, and a change of layout
(new gradient strides, ``None`` gradients, replaced tensors) compiles a new variant instead of
running kernels made for another layout."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo


def _reference(tx, params, grads_seq):
    params = {k: v.clone() for k, v in params.items()}
    state = tx.init(params)
    for grads in grads_seq:
        updates, state = tx.update(grads, state, params)
        params = fo.apply_updates(params, updates)
    return params, state


def test_compile_step_updates_params_and_state_in_place_like_the_pure_loop():
    gen = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(4, 3, generator=gen), "b": torch.randn(3, generator=gen)}
    grads_seq = [
        {"w": torch.randn(4, 3, generator=gen), "b": None if k == 2 else torch.randn(3, generator=gen)}
        for k in range(5)
    ]
    tx = fo.adamw(1e-2, weight_decay=0.1)
    expected, expected_state = _reference(tx, params, grads_seq)

    state = tx.init(params)
    buffers = fo.tree.leaves(state)
    step = fo.compile_step(tx)
    for grads in grads_seq[:2]:
        step(params, grads, state)
    assert step.compilations == 1
    for grads in grads_seq[2:]:
        step(params, grads, state)
    assert step.compilations == 2  # the None gradient of step 2 is another variant; then back
    for k in params:
        torch.testing.assert_close(params[k], expected[k], rtol=1e-6, atol=1e-7)
    assert all(a is b for a, b in zip(fo.tree.leaves(state), buffers, strict=True))  # in place
    for a, b in zip(fo.tree.leaves(state), fo.tree.leaves(expected_state), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)

    # gradients with other strides (a transposed view) must not reuse kernels made for others
    g = {"w": torch.randn(3, 4, generator=gen).t(), "b": torch.randn(3, generator=gen)}
    ref_p = {k: v.clone() for k, v in params.items()}
    ref_s = fo.tree.map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, state)
    updates, _ = tx.update(g, ref_s, ref_p)
    ref_p = fo.apply_updates(ref_p, updates)
    step(params, g, state)
    assert step.compilations == 3
    for k in params:
        torch.testing.assert_close(params[k], ref_p[k], rtol=1e-6, atol=1e-7)


def test_compile_step_rejects_what_is_not_a_transform():
    with pytest.raises(TypeError, match="GradientTransformation"):
        fo.compile_step(fo.adam)  # the factory, not a transform
