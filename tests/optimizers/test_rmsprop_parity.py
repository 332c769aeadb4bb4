"""RMSprop matches torch.optim.RMSprop (foreach=False) over every option combination."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
GRID = option_grid(
    centered=[False, True],
    momentum=[0, 0.9],
    weight_decay=[0, 0.1],
    maximize=[False, True],
    tensor_lr=[False, True],
)


def _lr(tensor_lr: bool):
    return torch.tensor(0.01) if tensor_lr else 0.01


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", GRID, ids=option_id)
def test_rmsprop_matches_torch_for_every_option(opts, dtype):
    kw = {k: v for k, v in opts.items() if k != "tensor_lr"}
    check_parity(
        lambda ps: torch.optim.RMSprop(ps, lr=_lr(opts["tensor_lr"]), alpha=0.9, foreach=False, **kw),
        fo.rmsprop(lr=_lr(opts["tensor_lr"]), alpha=0.9, **kw),
        name="rmsprop",
        options=opts,
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("opts", option_grid(centered=[False, True], momentum=[0, 0.9]), ids=option_id)
def test_rmsprop_complex_params_match_torch(dtype, opts):
    check_parity(
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, weight_decay=0.1, foreach=False, **opts),
        fo.rmsprop(lr=0.01, weight_decay=0.1, **opts),
        name="rmsprop",
        options={**opts, "complex": True, "weight_decay": 0.1},
        dtype=dtype,
    )


def test_rmsprop_state_has_torch_keys_only_for_enabled_options():
    params = {"w": torch.zeros(3)}
    plain = fo.rmsprop().init(params)[1]
    assert plain.momentum_buffer == () and plain.grad_avg == ()
    full = fo.rmsprop(momentum=0.5, centered=True).init(params)[1]
    assert full.momentum_buffer["w"].shape == (3,) and full.grad_avg["w"].shape == (3,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Invalid learning rate"),
        ({"eps": -1.0}, "Invalid epsilon value"),
        ({"momentum": -0.1}, "Invalid momentum value"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value"),
        ({"alpha": -0.1}, "Invalid alpha value"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    ],
)
def test_rmsprop_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.RMSprop([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.rmsprop(**kwargs)
    assert str(ours.value) == str(torch_err.value)
