"""A small float64 regression problem and K-step unrolled training used by the
differentiability tests: ``meta_loss(init_params, hyperparams)`` trains for K steps with a
pure optimizer (inner gradients by ``torch.func.grad``, so second-order terms are kept) and
returns the validation loss of the trained parameters."""

from __future__ import annotations

from collections.abc import Callable

import torch

import functional_optim as fo

DT = torch.float64


def data(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 3, generator=gen, dtype=DT)
    w_true = torch.randn(3, 2, generator=gen, dtype=DT)
    y = torch.tanh(x @ w_true) + 0.1 * torch.randn(16, 2, generator=gen, dtype=DT)
    return x[:8], y[:8], x[8:], y[8:]


def init_params(seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"w": 0.5 * torch.randn(3, 2, generator=gen, dtype=DT), "b": 0.1 * torch.randn(2, generator=gen, dtype=DT)}


def loss(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((torch.tanh(x @ params["w"] + params["b"]) - y) ** 2).mean()


def unrolled(
    make_opt: Callable[[dict], fo.GradientTransformation], steps: int = 3, stop_gradient_at: int | None = None
) -> Callable[[dict, dict], torch.Tensor]:
    """``meta_loss(params, hyper)``: train ``steps`` steps with ``make_opt(hyper)``, return the val loss."""
    xt, yt, xv, yv = data()

    def meta_loss(params: dict, hyper: dict) -> torch.Tensor:
        opt = make_opt(hyper)
        state = opt.init(params)
        for _ in range(steps):
            grads = torch.func.grad(loss)(params, xt, yt)
            updates, state = opt.update(grads, state, params)
            params = fo.apply_updates(params, updates)
        return loss(params, xv, yv)

    return meta_loss


def central_difference(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6):
    """Central finite differences of a scalar function of one tensor, in float64."""
    flat = x.detach().clone().reshape(-1)
    out = torch.zeros_like(flat)
    for i in range(flat.numel()):
        plus, minus = flat.clone(), flat.clone()
        plus[i] += eps
        minus[i] -= eps
        out[i] = (fn(plus.reshape(x.shape)) - fn(minus.reshape(x.shape))) / (2 * eps)
    return out.reshape(x.shape)
