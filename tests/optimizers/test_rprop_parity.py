"""Rprop matches torch.optim.Rprop (foreach=False) over every option combination."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
GRID = option_grid(
    etas=[(0.5, 1.2), (0.3, 1.7)],
    step_sizes=[(1e-6, 50), (2e-3, 0.03)],
    maximize=[False, True],
    tensor_lr=[False, True],
)


def _lr(tensor_lr: bool):
    return torch.tensor(0.01) if tensor_lr else 0.01


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", GRID, ids=option_id)
def test_rprop_matches_torch_for_every_option(opts, dtype):
    kw = {k: v for k, v in opts.items() if k != "tensor_lr"}
    check_parity(
        lambda ps: torch.optim.Rprop(ps, lr=_lr(opts["tensor_lr"]), foreach=False, **kw),
        fo.rprop(lr=_lr(opts["tensor_lr"]), **kw),
        name="rprop",
        options=opts,
        dtype=dtype,
        rtol=0,
        atol=0,  # the composition does torch's exact ops: bitwise equal
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("maximize", [False, True])
def test_rprop_complex_params_match_torch(dtype, maximize):
    check_parity(
        lambda ps: torch.optim.Rprop(ps, lr=0.01, maximize=maximize, foreach=False),
        fo.rprop(lr=0.01, maximize=maximize),
        name="rprop",
        options={"complex": True, "maximize": maximize},
        dtype=dtype,
        rtol=0,
        atol=0,
    )


def test_rprop_step_size_is_seeded_once_from_lr():
    """torch's quirk: the step sizes come from lr at init; a scheduled lr changes nothing later."""
    params = {"w": torch.randn(4)}
    grads = {"w": torch.randn(4)}
    fixed, sched = fo.rprop(lr=0.01), fo.rprop(lr=lambda count: 0.01 * 10.0**count)
    s_fixed, s_sched = fixed.init(params), sched.init(params)
    for _ in range(3):
        u_fixed, s_fixed = fixed.update(grads, s_fixed, params)
        u_sched, s_sched = sched.update(grads, s_sched, params)
        torch.testing.assert_close(u_sched["w"], u_fixed["w"], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Invalid learning rate"),
        ({"etas": (1.0, 1.2)}, "Invalid eta values"),
        ({"etas": (0.0, 1.2)}, "Invalid eta values"),
        ({"etas": (0.5, 1.0)}, "Invalid eta values"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    ],
)
def test_rprop_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.Rprop([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.rprop(**kwargs)
    assert str(ours.value) == str(torch_err.value)
