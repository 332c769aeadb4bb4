"""``clip`` and ``clip_by_global_norm``: values, None, sparse and complex leaves, schedules, validation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import functional_optim as fo


def _sparse(indices, values, shape):
    return torch.sparse_coo_tensor(torch.tensor(indices), torch.tensor(values), shape, check_invariants=True)


def test_clip_clamps_every_entry_and_skips_none_leaves():
    grads = {"a": torch.tensor([-3.0, -0.5, 0.0, 0.7, 2.0]), "b": None, "c": torch.tensor(5.0)}
    opt = fo.clip(1.0)
    updates, state = opt.update(grads, opt.init(grads), None)
    torch.testing.assert_close(updates["a"], torch.tensor([-1.0, -0.5, 0.0, 0.7, 1.0]))
    torch.testing.assert_close(updates["c"], torch.tensor(1.0))
    assert updates["b"] is None
    assert state == fo.EmptyState()


def test_clip_sums_duplicate_sparse_indices_before_clipping_and_stays_sparse():
    g = _sparse([[0, 2, 2]], [0.6, 0.7, 0.8], (4,))  # row 2 holds 1.5 once coalesced
    updates, _ = fo.clip(1.0).update([g], fo.EmptyState(), None)
    assert updates[0].is_sparse
    torch.testing.assert_close(updates[0].to_dense(), torch.tensor([0.6, 0.0, 1.0, 0.0]))


def test_clip_clips_real_and_imaginary_parts_of_complex_updates():
    g = torch.tensor([3.0 - 0.2j, -0.5 + 4.0j])
    updates, _ = fo.clip(1.0).update([g], fo.EmptyState(), None)
    torch.testing.assert_close(updates[0], torch.tensor([1.0 - 0.2j, -0.5 + 1.0j]))


def test_clip_accepts_a_schedule():
    opt = fo.clip(lambda count: 1.0 / (1 + count))
    state = opt.init([torch.zeros(2)])
    g = [torch.tensor([5.0, -5.0])]
    u0, state = opt.update(g, state, None)
    u1, state = opt.update(g, state, None)
    torch.testing.assert_close(u0[0], torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(u1[0], torch.tensor([0.5, -0.5]))


def test_clip_by_global_norm_leaves_small_updates_untouched():
    grads = {"a": torch.tensor([0.3, 0.4]), "b": None}
    updates, _ = fo.clip_by_global_norm(1.0).update(grads, fo.EmptyState(), None)
    assert torch.equal(updates["a"], grads["a"])
    assert updates["b"] is None


def test_clip_by_global_norm_rescales_all_leaves_together():
    grads = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([[0.0], [4.0]]), "none": None}
    updates, _ = fo.clip_by_global_norm(2.0).update(grads, fo.EmptyState(), None)
    torch.testing.assert_close(updates["a"], torch.tensor([1.2, 0.0]))
    torch.testing.assert_close(updates["b"], torch.tensor([[0.0], [1.6]]))
    assert updates["none"] is None


@settings(max_examples=30, deadline=None)
@given(
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4),
    max_norm=st.floats(0.01, 10.0),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_clip_by_global_norm_result_has_norm_min_of_norm_and_max_norm(shapes, max_norm, seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    grads = [torch.randn(s, generator=gen, dtype=dtype) * 3 for s in shapes]
    norm = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))
    updates, _ = fo.clip_by_global_norm(max_norm).update(grads, fo.EmptyState(), None)
    new_norm = torch.linalg.vector_norm(torch.cat([u.reshape(-1) for u in updates]))
    torch.testing.assert_close(new_norm, torch.minimum(norm, torch.tensor(max_norm, dtype=dtype)))
    for g, u in zip(grads, updates, strict=True):  # same direction: u = c·g with 0 < c <= 1
        assert u.dtype == g.dtype and u.shape == g.shape
        torch.testing.assert_close(u, g * (min(1.0, max_norm / norm.item())), rtol=1e-5, atol=1e-6)


def test_clip_by_global_norm_counts_coalesced_sparse_leaves_and_keeps_them_sparse():
    sparse = _sparse([[1, 1, 3]], [1.0, 2.0, 4.0], (5,))  # coalesced: [0, 3, 0, 4, 0] -> norm 5
    dense = torch.tensor([0.0])
    updates, _ = fo.clip_by_global_norm(1.0).update([sparse, dense], fo.EmptyState(), None)
    assert updates[0].is_sparse
    torch.testing.assert_close(updates[0].to_dense(), torch.tensor([0.0, 0.6, 0.0, 0.8, 0.0]))
    untouched, _ = fo.clip_by_global_norm(10.0).update([sparse], fo.EmptyState(), None)
    torch.testing.assert_close(untouched[0].to_dense(), sparse.to_dense())


def test_clip_by_global_norm_uses_the_modulus_of_complex_leaves():
    g = torch.tensor([3.0 + 4.0j])
    updates, _ = fo.clip_by_global_norm(1.0).update([g], fo.EmptyState(), None)
    torch.testing.assert_close(updates[0], torch.tensor([0.6 + 0.8j]))


def test_clip_by_global_norm_is_differentiable_in_max_norm_and_grads():
    max_norm = torch.tensor(1.0, requires_grad=True)
    g = torch.tensor([3.0, 4.0], requires_grad=True)
    updates, _ = fo.clip_by_global_norm(max_norm).update([g], fo.EmptyState(), None)
    updates[0].sum().backward()
    torch.testing.assert_close(max_norm.grad, torch.tensor(1.4))  # d/dm (m·(3+4)/5)
    assert g.grad is not None


def test_clip_by_global_norm_works_under_vmap():
    def clipped(g):
        return fo.clip_by_global_norm(1.0).update([g], fo.EmptyState(), None)[0][0]

    batch = torch.tensor([[0.3, 0.4], [3.0, 4.0]])
    out = torch.func.vmap(clipped)(batch)
    torch.testing.assert_close(out, torch.tensor([[0.3, 0.4], [0.6, 0.8]]))


def test_clipping_does_not_mutate_its_inputs():
    g = torch.tensor([3.0, -4.0])
    before = g.clone()
    fo.clip(1.0).update([g], fo.EmptyState(), None)
    fo.clip_by_global_norm(1.0).update([g], fo.EmptyState(), None)
    assert torch.equal(g, before)


@pytest.mark.parametrize(
    ("factory", "value", "message"),
    [(fo.clip, -1.0, "Invalid max_delta"), (fo.clip_by_global_norm, 0.0, "Invalid max_norm")],
)
def test_clipping_rejects_invalid_thresholds(factory, value, message):
    with pytest.raises(ValueError, match=message):
        factory(value)
