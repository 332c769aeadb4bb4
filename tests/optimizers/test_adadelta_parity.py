"""Adadelta matches torch.optim.Adadelta (foreach=False) over every option combination."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
GRID = option_grid(
    rho=[0.9, 0.5],
    weight_decay=[0, 0.1],
    maximize=[False, True],
    tensor_lr=[False, True],
)


def _lr(tensor_lr: bool):
    return torch.tensor(0.5) if tensor_lr else 0.5


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", GRID, ids=option_id)
def test_adadelta_matches_torch_for_every_option(opts, dtype):
    kw = {k: v for k, v in opts.items() if k != "tensor_lr"}
    check_parity(
        lambda ps: torch.optim.Adadelta(ps, lr=_lr(opts["tensor_lr"]), eps=1e-5, foreach=False, **kw),
        fo.adadelta(lr=_lr(opts["tensor_lr"]), eps=1e-5, **kw),
        name="adadelta",
        options=opts,
        dtype=dtype,
    )


def test_adadelta_defaults_match_torch():
    check_parity(
        lambda ps: torch.optim.Adadelta(ps, foreach=False),
        fo.adadelta(),
        name="adadelta",
        options={"defaults": True},
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("weight_decay", [0, 0.1])
def test_adadelta_complex_params_match_torch(dtype, weight_decay):
    check_parity(
        lambda ps: torch.optim.Adadelta(ps, lr=0.5, weight_decay=weight_decay, foreach=False),
        fo.adadelta(lr=0.5, weight_decay=weight_decay),
        name="adadelta",
        options={"complex": True, "weight_decay": weight_decay},
        dtype=dtype,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Invalid learning rate"),
        ({"rho": -0.1}, "Invalid rho value"),
        ({"rho": 1.5}, "Invalid rho value"),
        ({"eps": -1.0}, "Invalid epsilon value"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    ],
)
def test_adadelta_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.Adadelta([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.adadelta(**kwargs)
    assert str(ours.value) == str(torch_err.value)
