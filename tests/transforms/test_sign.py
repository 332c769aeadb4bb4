"""``scale_by_sign``: u = sign(g) for dense, sparse, complex and None leaves."""

from __future__ import annotations

import torch

import functional_optim as fo


def test_scale_by_sign_keeps_only_the_sign():
    grads = {
        "a": torch.tensor([-3.0, -0.0, 0.0, 1e-30, 2.0]),
        "b": None,
        "c": torch.tensor(-7.0, dtype=torch.float64),
    }
    opt = fo.scale_by_sign()
    updates, state = opt.update(grads, opt.init(grads), None)
    torch.testing.assert_close(updates["a"], torch.tensor([-1.0, 0.0, 0.0, 1.0, 1.0]))
    assert updates["c"].dtype == torch.float64 and updates["c"].item() == -1.0
    assert updates["b"] is None
    assert state == fo.EmptyState()


def test_scale_by_sign_coalesces_sparse_updates_first():
    # entries at index 1 sum to -1 once coalesced: the sign of the sum, not the sum of signs (0)
    g = torch.sparse_coo_tensor(
        torch.tensor([[1, 1, 3]]), torch.tensor([2.0, -3.0, 0.5]), (4,), check_invariants=True
    )
    updates, _ = fo.scale_by_sign().update([g], fo.EmptyState(), None)
    assert updates[0].is_sparse
    torch.testing.assert_close(updates[0].to_dense(), torch.tensor([0.0, -1.0, 0.0, 1.0]))


def test_scale_by_sign_maps_complex_entries_to_the_unit_circle():
    g = torch.tensor([3.0 + 4.0j, 0.0j, -2.0 + 0.0j])
    updates, _ = fo.scale_by_sign().update([g], fo.EmptyState(), None)
    torch.testing.assert_close(updates[0], torch.tensor([0.6 + 0.8j, 0.0j, -1.0 + 0.0j]))


def test_signsgd_chain_moves_each_parameter_by_lr():
    params = {"w": torch.tensor([1.0, 2.0, 3.0])}
    grads = {"w": torch.tensor([10.0, -0.01, 0.0])}
    opt = fo.chain(fo.scale_by_sign(), fo.scale_by_learning_rate(0.1))
    updates, _ = opt.update(grads, opt.init(params), params)
    torch.testing.assert_close(fo.apply_updates(params, updates)["w"], torch.tensor([0.9, 2.1, 3.0]))


def test_scale_by_sign_works_under_vmap_and_does_not_mutate():
    g = torch.tensor([[1.5, -2.0], [0.0, 3.0]])
    before = g.clone()
    out = torch.func.vmap(lambda x: fo.scale_by_sign().update([x], fo.EmptyState(), None)[0][0])(g)
    torch.testing.assert_close(out, torch.tensor([[1.0, -1.0], [0.0, 1.0]]))
    assert torch.equal(g, before)
