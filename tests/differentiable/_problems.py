"""Small float64 problems and K-step unrolled training for the differentiability tests.

``unrolled(make_opt)`` returns ``meta_loss(init_params, hyper)``: it trains for K steps with
the pure optimizer ``make_opt(hyper)`` (inner gradients by ``torch.func.grad``, so the
second-order terms are kept) and returns the validation loss of the trained parameters. The
loop is written out here on purpose (not :func:`functional_optim.unroll`), so that the
algorithms are tested independently of the helper; ``test_truncated_backprop.py`` checks the
helper against this loop.
"""

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
    return {
        "w": 0.5 * torch.randn(3, 2, generator=gen, dtype=DT),
        "b": 0.1 * torch.randn(2, generator=gen, dtype=DT),
    }


def loss(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((torch.tanh(x @ params["w"] + params["b"]) - y) ** 2).mean()


def matrix_loss(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The same regression without the bias (Muon updates 2-D matrices only)."""
    return ((torch.tanh(x @ params["w"]) - y) ** 2).mean()


def gated_loss(params: dict, x: torch.Tensor, y: torch.Tensor, gate: float) -> torch.Tensor:
    """``loss`` plus a term in ``params["z"]`` multiplied by ``gate``: with ``gate = 0`` the
    gradient of ``z`` is exactly zero (so its second moment is exactly zero at the first steps)."""
    return loss(params, x, y) + gate * ((params["z"] - 0.3) ** 2).sum()


def unrolled(
    make_opt: Callable[[dict], fo.GradientTransformation],
    steps: int = 3,
    loss_fn: Callable[..., torch.Tensor] = loss,
) -> Callable[[dict, dict], torch.Tensor]:
    """``meta_loss(params, hyper)``: train ``steps`` steps with ``make_opt(hyper)``, return the val loss."""
    xt, yt, xv, yv = data()

    def meta_loss(params: dict, hyper: dict) -> torch.Tensor:
        opt = make_opt(hyper)
        state = opt.init(params)
        for _ in range(steps):
            grads = torch.func.grad(loss_fn)(params, xt, yt)
            updates, state = opt.update(grads, state, params)
            params = fo.apply_updates(params, updates)
        return loss_fn(params, xv, yv)

    return meta_loss


def gated_unrolled(
    make_opt: Callable[[dict], fo.GradientTransformation], gates: tuple[float, ...] = (0.0, 0.0, 1.0, 1.0)
) -> Callable[[dict, dict], torch.Tensor]:
    """Like :func:`unrolled` with :func:`gated_loss`, one step per gate value; the validation loss
    includes the ``z`` term so that the meta-gradient depends on ``z``'s trajectory."""
    xt, yt, xv, yv = data()

    def meta_loss(params: dict, hyper: dict) -> torch.Tensor:
        opt = make_opt(hyper)
        state = opt.init(params)
        for gate in gates:
            grads = torch.func.grad(gated_loss)(params, xt, yt, gate)
            updates, state = opt.update(grads, state, params)
            params = fo.apply_updates(params, updates)
        return gated_loss(params, xv, yv, 1.0)

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


def max_relative_error(actual: torch.Tensor, expected: torch.Tensor, floor: float = 1e-8) -> float:
    """``max |a - e| / max(|e|, floor)`` (the number reported in the FD tables)."""
    return ((actual - expected).abs() / expected.abs().clamp_min(floor)).max().item()
