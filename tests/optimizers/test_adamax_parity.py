"""Adamax matches torch.optim.Adamax (foreach=False) over every option combination (default tolerances)."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
ADAMAX_GRID = option_grid(weight_decay=[0, 0.1], maximize=[False, True], tensor_lr=[False, True])


def _lr(tensor_lr: bool):
    return torch.tensor(0.01) if tensor_lr else 0.01


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", ADAMAX_GRID, ids=option_id)
def test_adamax_matches_torch_for_every_option(opts, dtype):
    kw = {k: v for k, v in opts.items() if k != "tensor_lr"}
    check_parity(
        lambda ps: torch.optim.Adamax(ps, lr=_lr(opts["tensor_lr"]), betas=(0.8, 0.99), foreach=False, **kw),
        fo.adamax(lr=_lr(opts["tensor_lr"]), betas=(0.8, 0.99), **kw),
        name="adamax",
        options=opts,
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("maximize", [False, True])
def test_adamax_complex_params_match_torch(dtype, maximize):
    check_parity(
        lambda ps: torch.optim.Adamax(ps, lr=0.01, weight_decay=0.1, maximize=maximize, foreach=False),
        fo.adamax(lr=0.01, weight_decay=0.1, maximize=maximize),
        name="adamax",
        options={"complex": True, "weight_decay": 0.1, "maximize": maximize},
        dtype=dtype,
    )


def test_adamax_eps_sits_inside_the_max():
    # |g| = 0 on the first step: exp_inf = max(0, 0 + eps) = eps, and the update is 0 (m = 0).
    tx = fo.scale_by_adamax(b1=0.9, b2=0.5, eps=1e-3)
    params = {"w": torch.zeros(2)}
    state = tx.init(params)
    _, state = tx.update({"w": torch.zeros(2)}, state)
    torch.testing.assert_close(state.exp_inf["w"], torch.full((2,), 1e-3))
    # then g = 1: exp_inf = max(0.5 * 1e-3, 1 + 1e-3)
    _, state = tx.update({"w": torch.ones(2)}, state)
    torch.testing.assert_close(state.exp_inf["w"], torch.full((2,), 1.001))


def test_adamax_under_vmap_matches_eager():
    tx = fo.adamax(lr=0.01, weight_decay=0.1)
    params = {"w": torch.randn(3, 4, generator=torch.Generator().manual_seed(0))}
    state = torch.func.vmap(tx.init)(params)
    single = [tx.init({"w": params["w"][i]}) for i in range(3)]
    for step in range(8):
        grads = {"w": torch.sin(params["w"] * (step + 1))}
        upd, state = torch.func.vmap(tx.update)(grads, state, params)
        for i in range(3):
            u_i, single[i] = tx.update({"w": grads["w"][i]}, single[i], {"w": params["w"][i]})
            torch.testing.assert_close(upd["w"][i], u_i["w"])
        params = fo.apply_updates(params, upd)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Invalid learning rate: -1.0"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
        ({"eps": -1.0}, "Invalid epsilon value: -1.0"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    ],
)
def test_adamax_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.Adamax([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.adamax(**kwargs)
    assert str(ours.value) == str(torch_err.value)
