"""Adam / AdamW match torch.optim.Adam / AdamW (foreach=False) over every option combination."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
ADAM_GRID = option_grid(
    weight_decay=[0, 0.1],
    amsgrad=[False, True],
    maximize=[False, True],
    decoupled_weight_decay=[False, True],
    tensor_lr=[False, True],
)


def _lr(tensor_lr: bool):
    return torch.tensor(0.01) if tensor_lr else 0.01


def _tol(tensor_lr: bool, dtype: torch.dtype) -> dict:
    """torch.optim does the scalar maths of a float32 *tensor* lr in float32 tensor arithmetic
    (``1 - lr*wd``, ``lr/bc1``); functional_optim reads the tensor's value and does it in double.
    In float64 that is a difference of one float32 ulp of the coefficient: tolerance 1e-6."""
    return {"rtol": 1e-6, "atol": 1e-6} if tensor_lr and dtype == torch.float64 else {}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", ADAM_GRID, ids=option_id)
def test_adam_matches_torch_for_every_option(opts, dtype):
    kw = {k: v for k, v in opts.items() if k != "tensor_lr"}
    check_parity(
        lambda ps: torch.optim.Adam(ps, lr=_lr(opts["tensor_lr"]), betas=(0.8, 0.99), foreach=False, **kw),
        fo.adam(lr=_lr(opts["tensor_lr"]), betas=(0.8, 0.99), **kw),
        name="adam",
        options=opts,
        dtype=dtype,
        **_tol(opts["tensor_lr"], dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "opts",
    option_grid(amsgrad=[False, True], maximize=[False, True], weight_decay=[0.0, 0.05]),
    ids=option_id,
)
def test_adamw_matches_torch_for_every_option(opts, dtype):
    check_parity(
        lambda ps: torch.optim.AdamW(ps, lr=0.01, foreach=False, **opts),
        fo.adamw(lr=0.01, **opts),
        name="adamw",
        options=opts,
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_complex_params_match_torch(dtype, amsgrad):
    check_parity(
        lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=amsgrad, foreach=False),
        fo.adam(lr=0.01, weight_decay=0.1, amsgrad=amsgrad),
        name="adam",
        options={"complex": True, "amsgrad": amsgrad, "weight_decay": 0.1},
        dtype=dtype,
    )


def test_adam_tensor_betas_match_torch():
    betas = (torch.tensor(0.85), torch.tensor(0.995))
    check_parity(
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=betas, foreach=False),
        fo.adam(lr=0.01, betas=betas),
        name="adam",
        options={"tensor_betas": True},
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Invalid learning rate"),
        ({"eps": -1.0}, "Invalid epsilon value"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0"),
        ({"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value"),
        ({"betas": (torch.tensor(0.9), 0.999)}, "betas must be either both floats or both Tensors"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    ],
)
def test_adam_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message):
        torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message):
        fo.adam(**kwargs)
