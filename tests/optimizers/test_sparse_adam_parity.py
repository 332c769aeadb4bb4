"""SparseAdam matches torch.optim.SparseAdam on sparse (embedding-like) gradients."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
# Embedding-like tables: rows sparse with dense trailing dims (hybrid COO), a fully sparse vector,
# a 3-D tensor with two sparse dims, and one parameter whose grad is None on some steps.
SHAPES = {"a_table": (10, 4), "b_vector": (8,), "c_cube": (6, 3, 2), "d_sometimes_none": (5, 3)}
SPARSE_DIMS = {"a_table": 1, "b_vector": 1, "c_cube": 2, "d_sometimes_none": 1}


def sparse_grad(name: str, p: torch.Tensor, step: int) -> torch.Tensor:
    """An uncoalesced sparse COO gradient: 6 random index tuples (with repeats), values from a smooth
    loss at those entries plus noise. ``a_table`` has no entries at all on steps 2, 7, 12, 17."""
    gen = torch.Generator().manual_seed(1000 * step + sum(map(ord, name)))
    sd = SPARSE_DIMS[name]
    nnz = 0 if name == "a_table" and step % 5 == 2 else 6
    idx = torch.stack([torch.randint(0, p.shape[k], (nnz,), generator=gen) for k in range(sd)])
    rows = p.detach()[tuple(idx)]
    noise = torch.randn(rows.shape, generator=gen, dtype=torch.float64).to(p.dtype)
    values = 0.5 * rows + torch.sin(rows) + noise
    return torch.sparse_coo_tensor(idx, values, p.shape, check_invariants=True)


GRID = option_grid(maximize=[False, True], betas=[(0.9, 0.999), (0.8, 0.99)], eps=[1e-8, 1e-3])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", GRID, ids=option_id)
def test_sparse_adam_matches_torch_for_every_option(opts, dtype):
    check_parity(
        lambda ps: torch.optim.SparseAdam(ps, lr=0.05, **opts),
        fo.sparse_adam(lr=0.05, **opts),
        name="sparse_adam",
        options=opts,
        dtype=dtype,
        shapes=SHAPES,
        grad_fn=sparse_grad,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sparse_adam_tensor_lr_matches_torch(dtype):
    """torch multiplies by a float32 *tensor* step size ``lr·sqrt(bc2)/bc1``; we read lr as a double.
    In float64 that is one float32 ulp of the coefficient: tolerance 1e-6 there."""
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float64 else {}
    check_parity(
        lambda ps: torch.optim.SparseAdam(ps, lr=torch.tensor(0.05)),
        fo.sparse_adam(lr=torch.tensor(0.05)),
        name="sparse_adam",
        options={"tensor_lr": True},
        dtype=dtype,
        shapes=SHAPES,
        grad_fn=sparse_grad,
        **tol,
    )


def test_sparse_adam_emits_sparse_updates_and_leaves_untouched_rows_alone():
    params = {"w": torch.randn(6, 3)}
    opt = fo.sparse_adam(lr=0.1)
    state = opt.init(params)
    g = torch.sparse_coo_tensor(torch.tensor([[1, 4, 1]]), torch.ones(3, 3), (6, 3), check_invariants=True)
    updates, state = opt.update({"w": g}, state, params)
    assert updates["w"].is_sparse
    assert updates["w"].coalesce()._indices().tolist() == [[1, 4]]
    new = fo.apply_updates(params, updates)
    untouched = [0, 2, 3, 5]
    assert torch.equal(new["w"][untouched], params["w"][untouched])
    assert not torch.equal(new["w"][[1, 4]], params["w"][[1, 4]])
    adam_state = state[0]
    assert torch.count_nonzero(adam_state.exp_avg["w"][untouched]) == 0
    # the repeated row 1 was summed (coalesced) before the moment update: m = (1-b1)·2
    torch.testing.assert_close(adam_state.exp_avg["w"][1], torch.full((3,), 0.1 * 2.0))


def test_sparse_adam_empty_gradient_counts_a_step_but_changes_nothing():
    params = {"w": torch.randn(4, 2)}
    opt = fo.scale_by_sparse_adam()
    state = opt.init(params)
    empty = torch.sparse_coo_tensor(
        torch.zeros(1, 0, dtype=torch.long), torch.zeros(0, 2), (4, 2), check_invariants=True
    )
    updates, new_state = opt.update({"w": empty}, state, params)
    assert new_state.step["w"].item() == 1.0
    assert torch.equal(fo.apply_updates(params, updates)["w"], params["w"])
    assert new_state.exp_avg["w"] is state.exp_avg["w"]


def test_sparse_adam_does_not_mutate_its_inputs():
    params = {"w": torch.randn(5, 2)}
    opt = fo.sparse_adam(lr=0.1)
    state = opt.init(params)
    g = torch.sparse_coo_tensor(torch.tensor([[0, 3]]), torch.randn(2, 2), (5, 2), check_invariants=True)
    _, state = opt.update({"w": g}, state, params)
    before = [t.clone() for t in (state[0].exp_avg["w"], state[0].exp_avg_sq["w"], state[0].step["w"])]
    p_before = params["w"].clone()
    opt.update({"w": g}, state, params)
    for b, a in zip(
        before, (state[0].exp_avg["w"], state[0].exp_avg_sq["w"], state[0].step["w"]), strict=True
    ):
        assert torch.equal(a, b)
    assert torch.equal(params["w"], p_before)


def test_sparse_adam_rejects_dense_gradients_like_torch():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="SparseAdam does not support dense gradients"):
        torch.optim.SparseAdam([p]).step()
    opt = fo.sparse_adam()
    with pytest.raises(RuntimeError, match="SparseAdam does not support dense gradients"):
        opt.update([torch.ones(3)], opt.init([torch.zeros(3)]), [torch.zeros(3)])


@pytest.mark.parametrize(
    ("param", "message"),
    [
        (torch.zeros(3, dtype=torch.complex64), "SparseAdam does not support complex parameters"),
        (torch.zeros(3).to_sparse(), "SparseAdam requires dense parameter tensors"),
    ],
    ids=["complex", "sparse"],
)
def test_sparse_adam_rejects_complex_and_sparse_params_like_torch(param, message):
    with pytest.raises(ValueError, match=message):
        torch.optim.SparseAdam([torch.nn.Parameter(param)])
    with pytest.raises(ValueError, match=message):
        fo.sparse_adam().init({"w": param})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, "Invalid learning rate"),
        ({"lr": -1.0}, "Invalid learning rate"),
        ({"eps": 0.0}, "Invalid epsilon value"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0"),
        ({"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    ],
)
def test_sparse_adam_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message):
        torch.optim.SparseAdam([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message):
        fo.sparse_adam(**kwargs)
