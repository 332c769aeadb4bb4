"""Adagrad matches torch.optim.Adagrad (foreach=False) over every option combination, sparse grads too."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, default_grad, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
GRID = option_grid(
    lr_decay=[0, 0.05],
    initial_accumulator_value=[0, 0.1],
    weight_decay=[0, 0.1],
    maximize=[False, True],
    tensor_lr=[False, True],
)


def _lr(tensor_lr: bool):
    return torch.tensor(0.05) if tensor_lr else 0.05


def _kwargs(opts: dict) -> dict:
    return {k: v for k, v in opts.items() if k != "tensor_lr"}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", GRID, ids=option_id)
def test_adagrad_matches_torch_for_every_option(opts, dtype):
    kw = _kwargs(opts)
    check_parity(
        lambda ps: torch.optim.Adagrad(ps, lr=_lr(opts["tensor_lr"]), eps=1e-8, foreach=False, **kw),
        fo.adagrad(lr=_lr(opts["tensor_lr"]), eps=1e-8, **kw),
        name="adagrad",
        options=opts,
        dtype=dtype,
    )


def sparse_grad(name: str, p: torch.Tensor, step: int) -> torch.Tensor:
    """The dense test gradient restricted to a few rows, as a sparse COO tensor with *duplicate*
    indices (so coalescing matters) -- the gradient an ``nn.Embedding(sparse=True)`` produces."""
    dense = default_grad(name, p, step)
    if dense.dim() == 0:
        return dense.to_sparse()
    rows = torch.tensor([step % dense.shape[0], (step + 2) % dense.shape[0], step % dense.shape[0]])
    values = dense[rows] * 0.5  # the duplicated row gets 0.5 + 0.5 of its gradient
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values, dense.shape, check_invariants=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "opts",
    option_grid(lr_decay=[0, 0.05], initial_accumulator_value=[0, 0.1], maximize=[False, True]),
    ids=option_id,
)
def test_adagrad_sparse_gradients_match_torch(opts, dtype):
    check_parity(
        lambda ps: torch.optim.Adagrad(ps, lr=0.05, foreach=False, **opts),
        fo.adagrad(lr=0.05, **opts),
        name="adagrad",
        options={**opts, "sparse": True},
        dtype=dtype,
        grad_fn=sparse_grad,
    )


def test_adagrad_sparse_update_touches_only_the_gradient_rows():
    params = {"w": torch.randn(6, 3)}
    opt = fo.adagrad(lr=0.1)
    grad = torch.sparse_coo_tensor(torch.tensor([[1, 4]]), torch.ones(2, 3), (6, 3))
    updates, state = opt.update({"w": grad}, opt.init(params), params)
    assert updates["w"].is_sparse
    changed = fo.apply_updates(params, updates)["w"] != params["w"]
    assert changed[[1, 4]].all() and not changed[[0, 2, 3, 5]].any()
    assert (state[1].sum["w"][[0, 2, 3, 5]] == 0).all()


def test_adagrad_sparse_gradient_with_weight_decay_raises_like_torch():
    p = torch.nn.Parameter(torch.randn(4, 2))
    grad = torch.sparse_coo_tensor(torch.tensor([[0, 2]]), torch.ones(2, 2), (4, 2))
    torch_opt = torch.optim.Adagrad([p], weight_decay=0.1, foreach=False)
    p.grad = grad
    with pytest.raises(RuntimeError, match="sparse"):
        torch_opt.step()
    opt = fo.adagrad(weight_decay=0.1)
    params = {"w": p.detach().clone()}
    with pytest.raises(RuntimeError, match="sparse"):
        opt.update({"w": grad}, opt.init(params), params)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize(
    "opts", option_grid(initial_accumulator_value=[0, 0.1], weight_decay=[0, 0.1]), ids=option_id
)
def test_adagrad_complex_params_match_torch(dtype, opts):
    check_parity(
        lambda ps: torch.optim.Adagrad(ps, lr=0.05, lr_decay=0.01, foreach=False, **opts),
        fo.adagrad(lr=0.05, lr_decay=0.01, **opts),
        name="adagrad",
        options={**opts, "complex": True},
        dtype=dtype,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Invalid learning rate"),
        ({"lr_decay": -0.1}, "Invalid lr_decay value"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value"),
        ({"initial_accumulator_value": -0.1}, "Invalid initial_accumulator_value value"),
        ({"eps": -1.0}, "Invalid epsilon value"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    ],
)
def test_adagrad_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.adagrad(**kwargs)
    assert str(ours.value) == str(torch_err.value)
