"""Optimizers whose pure state is checkpointed in ``tests/test_checkpoint_pure.py``.

Run as a script (``python -m tests._checkpoint_cases load.pt out.pt``) it is the *new process*:
it loads the checkpoint with ``torch.load`` (default ``weights_only=True``), continues every
case for ``STEPS`` steps and saves the results.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import optree
import torch

import functional_optim as fo

S = fo.schedules


def _composed() -> fo.GradientTransformation:
    lr = S.warmup_cosine_decay(0.0, 1e-2, warmup_steps=2, decay_steps=10)
    inner = fo.chain(fo.clip_by_global_norm(1.0), fo.adamw(lr=lr, betas=[0.9, 0.99]))
    return fo.multi_steps(fo.apply_if_finite(inner, max_consecutive_errors=3), every_k=2)


CASES: dict[str, Callable[[], fo.GradientTransformation]] = {
    "sgd": lambda: fo.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "adam": lambda: fo.adam(1e-2, amsgrad=True),
    "adamw": lambda: fo.adamw(1e-2),
    "adamax": lambda: fo.adamax(1e-2),
    "nadam": lambda: fo.nadam(1e-2),
    "radam": lambda: fo.radam(1e-2),
    "adagrad": lambda: fo.adagrad(0.1, lr_decay=0.01),
    "adadelta": lambda: fo.adadelta(1.0),
    "adafactor": lambda: fo.adafactor(1e-2),
    "rmsprop": lambda: fo.rmsprop(1e-2, momentum=0.9, centered=True),
    "rprop": lambda: fo.rprop(1e-2),
    "asgd": lambda: fo.asgd(1e-2, t0=1),
    "sparse_adam": lambda: fo.sparse_adam(1e-2),
    "muon": lambda: fo.muon(1e-2),
    "lbfgs": lambda: fo.lbfgs(0.5, max_iter=3, line_search_fn="strong_wolfe"),
    "scheduled_sgd": lambda: fo.sgd(S.step_lr(0.1, step_size=2, gamma=0.5), momentum=S.linear(0.5, 0.9, 4)),
    "composed_chain": _composed,
    "ema_average": lambda: fo.averaging.with_average(
        fo.adam(lr=S.cosine_annealing_lr(1e-2, T_max=5)), fo.averaging.ema(0.9)
    ),
    "swa_average": lambda: fo.averaging.with_average(fo.sgd(0.05), fo.averaging.swa(start_step=1, period=2)),
}

STEPS = 3


def initial_params(name: str) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    if name == "muon":
        return {"w": torch.randn(4, 3, generator=gen), "v": [torch.randn(3, 5, generator=gen)]}
    if name == "sparse_adam":
        return {"w": torch.randn(4, 3, generator=gen), "v": [torch.randn(5, generator=gen)]}
    return {
        "w": torch.randn(4, 3, generator=gen),
        "v": [torch.randn(5, generator=gen), torch.randn((), generator=gen)],
    }


def _loss(params: Any) -> torch.Tensor:
    return sum(((x - 0.3) ** 2).sum() + (3 * x).sin().sum() for x in optree.tree_leaves(params))


def grads_at(name: str, params: Any, step: int) -> Any:
    def grad(x: torch.Tensor) -> torch.Tensor:
        g = torch.cos(x * (step + 1)) + 0.1 * step
        if name == "sparse_adam":
            return g.to_sparse() if g.ndim > 0 else g
        return g

    if name == "composed_chain" and step == 1:  # one non-finite step for apply_if_finite to skip
        return optree.tree_map(lambda x: torch.full_like(x, float("nan")), params)
    return optree.tree_map(grad, params)


def step(name: str, opt: fo.GradientTransformation, params: Any, state: Any, k: int) -> tuple[Any, Any]:
    grads = grads_at(name, params, k)
    if name == "lbfgs":
        updates, state = opt.update(None, state, params, value_fn=_loss)
    else:
        updates, state = opt.update(grads, state, params)
    return fo.apply_updates(params, updates), state


def continue_all(saved: dict[str, Any], first: int) -> dict[str, Any]:
    out = {}
    for name, (params, state) in saved.items():
        opt = CASES[name]()
        for k in range(first, first + STEPS):
            params, state = step(name, opt, params, state, k)
        out[name] = (params, state)
    return out


def adapter() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A drop-in optimizer whose hyperparameters are schedules."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    lr = S.cosine_annealing_lr(1e-2, T_max=10)
    opt = fo.adapters.FunctionalOptimizer(
        model.parameters(), fo.adamw, lr=lr, betas=(S.linear(0.8, 0.9, 5), 0.999)
    )
    return model, opt


def adapter_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, first: int) -> None:
    for k in range(first, first + STEPS):
        opt.zero_grad()
        model(torch.full((4, 3), 0.1 * (k + 1))).square().sum().backward()
        opt.step()


def main(load: str, save: str, adapter_load: str, adapter_save: str) -> None:
    saved = torch.load(load)  # the default: weights_only=True
    torch.save(continue_all(saved, STEPS), save)
    model, opt = adapter()
    checkpoint = torch.load(adapter_load)
    model.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["optimizer"])
    adapter_steps(model, opt, STEPS)
    torch.save(model.state_dict(), adapter_save)


if __name__ == "__main__":
    main(*sys.argv[1:5])
