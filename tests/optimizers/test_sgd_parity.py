"""SGD matches torch.optim.SGD (foreach=False): every valid option combination, complex and sparse grads."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, default_grad, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
# (momentum, dampening, nesterov): every combination torch accepts (nesterov needs momentum > 0, dampening 0).
MOMENTUM_COMBOS = [(0, 0, False), (0, 0.5, False), (0.9, 0, False), (0.9, 0.5, False), (0.9, 0, True)]
SGD_GRID = [
    {"momentum": m, "dampening": d, "nesterov": n, **rest}
    for (m, d, n) in MOMENTUM_COMBOS
    for rest in option_grid(weight_decay=[0, 0.1], maximize=[False, True], tensor_lr=[False, True])
]


def _lr(tensor_lr: bool):
    return torch.tensor(0.05) if tensor_lr else 0.05


def _kwargs(opts: dict) -> dict:
    return {k: v for k, v in opts.items() if k != "tensor_lr"}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", SGD_GRID, ids=option_id)
def test_sgd_matches_torch_for_every_option(opts, dtype):
    kw = _kwargs(opts)
    check_parity(
        lambda ps: torch.optim.SGD(ps, lr=_lr(opts["tensor_lr"]), foreach=False, **kw),
        fo.sgd(lr=_lr(opts["tensor_lr"]), **kw),
        name="sgd",
        options=opts,
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sgd_tensor_weight_decay_matches_torch(dtype):
    wd = torch.tensor(0.1)
    opts = {"momentum": 0.9, "weight_decay": wd, "nesterov": True}
    check_parity(
        lambda ps: torch.optim.SGD(ps, lr=0.05, foreach=False, **opts),
        fo.sgd(lr=0.05, **opts),
        name="sgd",
        options={**opts, "tensor_weight_decay": True},
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize(("momentum", "dampening", "nesterov"), MOMENTUM_COMBOS)
def test_sgd_complex_params_match_torch(dtype, momentum, dampening, nesterov):
    opts = {"momentum": momentum, "dampening": dampening, "nesterov": nesterov, "weight_decay": 0.1}
    check_parity(
        lambda ps: torch.optim.SGD(ps, lr=0.05, maximize=True, foreach=False, **opts),
        fo.sgd(lr=0.05, maximize=True, **opts),
        name="sgd",
        options={"complex": True, "maximize": True, **opts},
        dtype=dtype,
    )


def _sparse_grad(name: str, p: torch.Tensor, step: int) -> torch.Tensor:
    """A sparse COO gradient (0-dim parameters keep a dense one): about half of the entries of the
    dense test gradient, split into two *uncoalesced* duplicates of 1/4 and 3/4 of each value."""
    g = default_grad(name, p, step)
    if g.dim() == 0:
        return g
    gen = torch.Generator().manual_seed(7 * step + len(name))
    keep = torch.rand(g.shape, generator=gen) < 0.5
    s = (g * keep).to_sparse()
    idx, val = s.indices(), s.values()
    return torch.sparse_coo_tensor(
        torch.cat([idx, idx], 1), torch.cat([val * 0.25, val * 0.75]), g.shape, check_invariants=True
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize(("momentum", "dampening", "nesterov"), MOMENTUM_COMBOS)
def test_sgd_sparse_grads_match_torch(dtype, momentum, dampening, nesterov, maximize):
    opts = {"momentum": momentum, "dampening": dampening, "nesterov": nesterov, "maximize": maximize}
    check_parity(
        lambda ps: torch.optim.SGD(ps, lr=0.05, foreach=False, **opts),
        fo.sgd(lr=0.05, **opts),
        name="sgd",
        options={"sparse": True, **opts},
        dtype=dtype,
        grad_fn=_sparse_grad,
    )


def test_sgd_sparse_grads_with_weight_decay_raise_like_torch():
    p = torch.nn.Parameter(torch.ones(4, 3))
    grad = _sparse_grad("a_matrix", p.detach(), 0)
    opt = torch.optim.SGD([p], lr=0.1, weight_decay=0.1, foreach=False)
    p.grad = grad
    with pytest.raises(RuntimeError):
        opt.step()
    tx = fo.sgd(lr=0.1, weight_decay=0.1)
    params = {"w": torch.ones(4, 3)}
    with pytest.raises(RuntimeError, match="sparse"):
        tx.update({"w": grad}, tx.init(params), params)


def test_sgd_without_momentum_keeps_no_state_like_torch():
    params = {"w": torch.ones(3)}
    state = fo.sgd(lr=0.1).init(params)
    assert not any(isinstance(leaf, torch.Tensor) for leaf in fo.tree.leaves(state))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Invalid learning rate: -1.0"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
        ({"momentum": -0.5}, "Invalid momentum value: -0.5"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        ({"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
        ({"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov momentum requires a momentum"),
    ],
)
def test_sgd_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.sgd(**kwargs)
    assert str(ours.value) == str(torch_err.value)
