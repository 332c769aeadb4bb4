"""RAdam matches torch.optim.RAdam (foreach=False) over every option combination."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
RADAM_GRID = option_grid(
    weight_decay=[0, 0.1],
    decoupled_weight_decay=[False, True],
    maximize=[False, True],
    tensor_lr=[False, True],
)


def _lr(tensor_lr: bool):
    return torch.tensor(0.01) if tensor_lr else 0.01


def _tol(opts: dict, dtype: torch.dtype) -> dict:
    """Decoupled weight decay with a float32 *tensor* lr: torch computes ``1 - lr·wd`` in float32 tensor
    arithmetic (``param.mul_(1 - lr * weight_decay)``), functional_optim reads the tensor's value and
    works in double. For float64 parameters that is a float32 rounding of the decay factor (relative
    ~3e-8 per step; measured 3.5e-7 absolute after 20 steps): rtol 1e-6. Every other case, float32
    parameters included, passes with the default tolerances."""
    loosen = opts["tensor_lr"] and opts["decoupled_weight_decay"] and opts["weight_decay"] != 0
    return {"rtol": 1e-6, "atol": 1e-7} if loosen and dtype == torch.float64 else {}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", RADAM_GRID, ids=option_id)
def test_radam_matches_torch_for_every_option(opts, dtype):
    # 20 steps with the default betas: unrectified for t <= 5, rectified from t = 6 (the parameter
    # with missing gradients reaches t = 6 later than the others, so both branches mix in one step).
    kw = {k: v for k, v in opts.items() if k != "tensor_lr"}
    check_parity(
        lambda ps: torch.optim.RAdam(ps, lr=_lr(opts["tensor_lr"]), foreach=False, **kw),
        fo.radam(lr=_lr(opts["tensor_lr"]), **kw),
        name="radam",
        options=opts,
        dtype=dtype,
        **_tol(opts, dtype),
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("decoupled_weight_decay", [False, True])
def test_radam_complex_params_match_torch(dtype, decoupled_weight_decay):
    opts = {"weight_decay": 0.1, "decoupled_weight_decay": decoupled_weight_decay}
    check_parity(
        lambda ps: torch.optim.RAdam(ps, lr=0.01, betas=(0.8, 0.99), foreach=False, **opts),
        fo.radam(lr=0.01, betas=(0.8, 0.99), **opts),
        name="radam",
        options={"complex": True, **opts},
        dtype=dtype,
    )


def test_radam_rectifies_from_step_six_with_default_betas():
    tx = fo.scale_by_radam()
    params = {"w": torch.zeros(3)}
    state = tx.init(params)
    g = {"w": torch.tensor([1.0, -2.0, 0.5])}
    for t in range(1, 8):
        u, state = tx.update(g, state)
        m_hat = g["w"]  # a constant gradient: the bias-corrected first moment is the gradient
        if t <= 5:
            torch.testing.assert_close(u["w"], m_hat)
        else:
            assert not torch.allclose(u["w"], m_hat)


def test_radam_under_vmap_matches_eager():
    tx = fo.radam(lr=0.01, weight_decay=0.1)
    params = {"w": torch.randn(3, 4, generator=torch.Generator().manual_seed(0))}
    state = torch.func.vmap(tx.init)(params)
    single = [tx.init({"w": params["w"][i]}) for i in range(3)]
    for step in range(9):  # crosses the rectification threshold (t = 6)
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
def test_radam_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.RAdam([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.radam(**kwargs)
    assert str(ours.value) == str(torch_err.value)
