"""What a user writes: type-checked by tests/test_typing.py (mypy must report 0 errors)."""

from __future__ import annotations

from typing import Any

import torch

import functional_optim as fo
from functional_optim.adapters import AdamW


def train_pure(steps: int) -> torch.Tensor:
    params: dict[str, torch.Tensor] = {"w": torch.randn(4, 3), "b": torch.zeros(3)}
    opt: fo.GradientTransformation = fo.chain(
        fo.clip_by_global_norm(1.0),
        fo.adamw(lr=fo.schedules.warmup_cosine_decay(0.0, 1e-3, 10, 100), weight_decay=0.1),
    )
    state = opt.init(params)
    for _ in range(steps):
        grads = {k: torch.ones_like(v) for k, v in params.items()}
        updates, state = opt.update(grads, state, params)
        params = fo.apply_updates(params, updates)
    return params["w"]


def train_drop_in(model: torch.nn.Module) -> float:
    optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss = model(torch.randn(2, 4)).sum()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return float(loss)


def my_transform(scale: float = 0.5) -> fo.GradientTransformation:
    def init_fn(params: fo.Params) -> fo.EmptyState:
        return fo.EmptyState()

    def update_fn(
        updates: fo.Updates, state: fo.EmptyState, params: fo.Params | None = None, **extra: Any
    ) -> tuple[fo.Updates, fo.EmptyState]:
        def maths(
            grads: list[torch.Tensor], fields: list[list[torch.Tensor]], _p: list[torch.Tensor] | None
        ) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
            return [g * scale for g in grads], []

        new_updates, _ = fo.update_leaves(maths, updates, [], name="my_transform")
        return new_updates, state

    return fo.GradientTransformation(init_fn, update_fn)


sgd = fo.sgd(lr=0.1, momentum=0.9, nesterov=True)
muon = fo.muon(lr=0.02)
sched = fo.inject_hyperparams(fo.adam)(lr=1e-3)
tx = fo.chain(my_transform(), fo.scale_by_learning_rate(1e-2))
