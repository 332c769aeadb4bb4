"""NAdam matches torch.optim.NAdam (foreach=False) over every option combination."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
NADAM_GRID = option_grid(
    weight_decay=[0, 0.1],
    decoupled_weight_decay=[False, True],
    maximize=[False, True],
    momentum_decay=[4e-3, 0.05],
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
@pytest.mark.parametrize("opts", NADAM_GRID, ids=option_id)
def test_nadam_matches_torch_for_every_option(opts, dtype):
    kw = {k: v for k, v in opts.items() if k != "tensor_lr"}
    check_parity(
        lambda ps: torch.optim.NAdam(ps, lr=_lr(opts["tensor_lr"]), betas=(0.8, 0.99), foreach=False, **kw),
        fo.nadam(lr=_lr(opts["tensor_lr"]), betas=(0.8, 0.99), **kw),
        name="nadam",
        options=opts,
        dtype=dtype,
        **_tol(opts, dtype),
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("decoupled_weight_decay", [False, True])
def test_nadam_complex_params_match_torch(dtype, decoupled_weight_decay):
    opts = {"weight_decay": 0.1, "decoupled_weight_decay": decoupled_weight_decay}
    check_parity(
        lambda ps: torch.optim.NAdam(ps, lr=0.01, foreach=False, **opts),
        fo.nadam(lr=0.01, **opts),
        name="nadam",
        options={"complex": True, **opts},
        dtype=dtype,
    )


def test_nadam_mu_product_is_a_float32_running_product_like_torch():
    tx = fo.scale_by_nadam(b1=0.9, momentum_decay=4e-3)
    params = {"w": torch.zeros(2)}
    state = tx.init(params)
    expected = torch.tensor(1.0)
    for t in range(1, 6):
        _, state = tx.update({"w": torch.ones(2)}, state)
        expected = expected * (0.9 * (1.0 - 0.5 * 0.96 ** (t * 4e-3)))
        assert state.mu_product["w"].dtype == torch.float32
        assert torch.equal(state.mu_product["w"], expected)


def test_nadam_under_vmap_matches_eager():
    tx = fo.nadam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
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


def test_nadam_hypergradients_of_b1_and_momentum_decay_match_finite_differences():
    # With b1 / momentum_decay requiring grad, mu_product is kept in float64 (the torch-faithful float32
    # product would quantise the forward, so that finite differences of it are noise).
    x = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)

    def meta(b1: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        tx = fo.nadam(lr=0.05, betas=(b1, 0.9), momentum_decay=psi, weight_decay=0.05)
        params = {"w": torch.ones(3, dtype=torch.float64)}
        state = tx.init(params)
        for _ in range(3):
            grads = {"w": x.T @ torch.tanh(x @ params["w"])}
            updates, state = tx.update(grads, state, params)
            params = fo.apply_updates(params, updates)
        return (params["w"] ** 2).sum()

    def leaf(v: float) -> torch.Tensor:  # requires grad: the differentiable (traced) path runs
        return torch.tensor(v, dtype=torch.float64, requires_grad=True)

    b1, psi, h = leaf(0.8), leaf(0.05), 1e-6
    g_b1, g_psi = torch.autograd.grad(meta(b1, psi), (b1, psi))
    fd_b1 = (meta(leaf(0.8 + h), leaf(0.05)) - meta(leaf(0.8 - h), leaf(0.05))) / (2 * h)
    fd_psi = (meta(leaf(0.8), leaf(0.05 + h)) - meta(leaf(0.8), leaf(0.05 - h))) / (2 * h)
    torch.testing.assert_close(g_b1, fd_b1.detach(), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(g_psi, fd_psi.detach(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Invalid learning rate: -1.0"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
        ({"eps": -1.0}, "Invalid epsilon value: -1.0"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        ({"momentum_decay": -0.1}, "Invalid momentum_decay value: -0.1"),
    ],
)
def test_nadam_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.NAdam([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.nadam(**kwargs)
    assert str(ours.value) == str(torch_err.value)
