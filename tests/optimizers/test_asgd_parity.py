"""ASGD matches torch.optim.ASGD (foreach=False) over every option combination, averaging included."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
# t0=5 starts the averaging (mu < 1) at step 7, well within the 20 steps; t0=1e6 keeps ax = p.
GRID = option_grid(
    t0=[1e6, 5.0],
    lambd=[1e-4, 0.05],
    weight_decay=[0, 0.1],
    maximize=[False, True],
    tensor_lr=[False, True],
)


def _lr(tensor_lr: bool):
    return torch.tensor(0.05) if tensor_lr else 0.05


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", GRID, ids=option_id)
def test_asgd_matches_torch_for_every_option(opts, dtype):
    kw = {k: v for k, v in opts.items() if k != "tensor_lr"}
    check_parity(
        lambda ps: torch.optim.ASGD(ps, lr=_lr(opts["tensor_lr"]), alpha=0.6, foreach=False, **kw),
        fo.asgd(lr=_lr(opts["tensor_lr"]), alpha=0.6, **kw),
        name="asgd",
        options=opts,
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("t0", [1e6, 5.0])
def test_asgd_complex_params_match_torch(dtype, t0):
    check_parity(
        lambda ps: torch.optim.ASGD(ps, lr=0.05, t0=t0, weight_decay=0.1, foreach=False),
        fo.asgd(lr=0.05, t0=t0, weight_decay=0.1),
        name="asgd",
        options={"complex": True, "t0": t0, "weight_decay": 0.1},
        dtype=dtype,
    )


def test_asgd_average_differs_from_params_once_averaging_starts():
    """With t0 = 2 the average ``ax`` lags the parameter; with t0 = 1e6 it is the parameter."""
    params = {"w": torch.randn(5, generator=torch.Generator().manual_seed(0))}
    for t0, lagging in [(2.0, True), (1e6, False)]:
        opt = fo.asgd(lr=0.1, t0=t0)
        state, p = opt.init(params), params
        for step in range(6):
            updates, state = opt.update({"w": torch.full((5,), float(step + 1))}, state, p)
            p = fo.apply_updates(p, updates)
        ax = state[1].ax["w"]
        if lagging:
            assert (ax - p["w"]).abs().min() > 1e-3
        else:  # ax is the new parameter (up to the rounding of p + (p' - p))
            torch.testing.assert_close(ax, p["w"])
        assert state[1].mu["w"].item() == (1 / 4 if lagging else 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Invalid learning rate"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    ],
)
def test_asgd_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.ASGD([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.asgd(**kwargs)
    assert str(ours.value) == str(torch_err.value)
