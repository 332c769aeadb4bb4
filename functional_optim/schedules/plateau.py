"""``reduce_lr_on_plateau``: ``torch.optim.lr_scheduler.ReduceLROnPlateau`` as a transform."""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from functional_optim import ops, tree
from functional_optim.core import GradientTransformation, Params, Updates

__all__ = ["ReduceLROnPlateauState", "reduce_lr_on_plateau"]


class ReduceLROnPlateauState(NamedTuple):
    """State of [`reduce_lr_on_plateau`][], torch's scheduler attributes as 0-dim tensors.

    Attributes:
      best: the best metric seen so far (float64; ``inf`` / ``-inf`` before the first one).
      num_bad_epochs: metrics in a row without improvement (int64).
      cooldown_counter: steps left in the cooldown after a reduction (int64).
      lr: the current learning rate / scale the updates are multiplied by (float64).
    """

    best: Tensor
    num_bad_epochs: Tensor
    cooldown_counter: Tensor
    lr: Tensor


def reduce_lr_on_plateau(
    lr: float = 1.0,
    mode: Literal["min", "max"] = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: Literal["rel", "abs"] = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> GradientTransformation:
    r"""Scale the updates by a rate that drops by ``factor`` when a metric stops improving.

    ``update(updates, state, params, value=metric)`` first runs one step of torch's
    ``ReduceLROnPlateau.step(metric)`` on the state, then returns ``updates * state.lr``. A call
    without ``value`` (or ``value=None``) only scales. With ``mode="min"``, ``threshold_mode="rel"``
    (the other modes analogously):

    ```text
    if metric < best · (1 - threshold): best = metric; num_bad_epochs = 0
    else:                                num_bad_epochs += 1
    if cooldown_counter > 0:             cooldown_counter -= 1; num_bad_epochs = 0
    if num_bad_epochs > patience:
        new = max(lr · factor, min_lr);  if lr - new > eps: lr = new
        cooldown_counter = cooldown;     num_bad_epochs = 0
    ```

    Passing the metric of the current parameters at step $k + 1$ reproduces torch's loop
    ``train epoch k; scheduler.step(val_metric)`` exactly: ``state.lr`` equals torch's
    ``param_groups[0]["lr"]`` (set ``lr`` to the optimizer's lr and put this transform in place
    of [`scale_by_learning_rate`][] after a ``negate``-free chain, or keep the
    default ``lr=1.0`` to use it as a factor after an optimizer; ``min_lr`` and ``eps`` are then in
    the same units). The state is tensors only, so the transform is pure and compilable.

    Args:
      lr: the initial rate (torch: the optimizer's lr); default ``1.0`` makes it a pure factor.
      mode: ``"min"`` (the metric should decrease) or ``"max"``.
      factor: multiplicative reduction, ``< 1``.
      patience: number of bad metrics tolerated before reducing.
      threshold: the margin a metric must beat ``best`` by to count as an improvement.
      threshold_mode: ``"rel"`` (``best · (1 ∓ threshold)``) or ``"abs"`` (``best ∓ threshold``).
      cooldown: metrics ignored after a reduction.
      min_lr: lower bound of the rate.
      eps: reductions smaller than this are skipped.

    Example:
        >>> params = {"w": torch.ones(2)}
        >>> opt = fo.chain(fo.adam(lr=1e-3), fo.schedules.reduce_lr_on_plateau(patience=0))
        >>> state = opt.init(params)
        >>> grads = {"w": torch.ones(2)}
        >>> updates, state = opt.update(grads, state, params, value=1.0)
        >>> updates, state = opt.update(grads, state, params, value=2.0)  # worse: the rate drops
        >>> float(state[1].lr)
        0.1
    """
    if factor >= 1.0:
        raise ValueError("Factor should be < 1.0.")
    if mode not in {"min", "max"}:
        raise ValueError("mode " + mode + " is unknown!")
    if threshold_mode not in {"rel", "abs"}:
        raise ValueError("threshold mode " + threshold_mode + " is unknown!")
    if isinstance(min_lr, list | tuple):
        raise ValueError("reduce_lr_on_plateau: min_lr must be a single number (one transform = one group)")
    worse = math.inf if mode == "min" else -math.inf

    def init_fn(params: Params) -> ReduceLROnPlateauState:
        del params
        f64, i64 = torch.float64, torch.int64
        return ReduceLROnPlateauState(
            best=torch.tensor(worse, dtype=f64),
            num_bad_epochs=torch.zeros((), dtype=i64),
            cooldown_counter=torch.zeros((), dtype=i64),
            lr=torch.tensor(float(lr), dtype=f64),
        )

    def is_better(a: Tensor, best: Tensor) -> Tensor:
        if mode == "min" and threshold_mode == "rel":
            return a < best * (1.0 - threshold)
        if mode == "min":
            return a < best - threshold
        if threshold_mode == "rel":
            return a > best * (threshold + 1.0)
        return a > best + threshold

    def step(state: ReduceLROnPlateauState, value: Any) -> ReduceLROnPlateauState:
        if isinstance(value, Tensor):  # torch: float(metrics), i.e. the value widened to double
            current = value.detach().to(dtype=torch.float64, device=state.best.device).reshape(())
        else:
            current = torch.tensor(float(value), dtype=torch.float64, device=state.best.device)
        better = is_better(current, state.best)
        best = torch.where(better, current, state.best)
        bad = torch.where(better, torch.zeros_like(state.num_bad_epochs), state.num_bad_epochs + 1)
        in_cooldown = state.cooldown_counter > 0
        cooldown_counter = torch.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
        bad = torch.where(in_cooldown, torch.zeros_like(bad), bad)
        reduce = bad > patience
        new_lr = torch.clamp(state.lr * factor, min=min_lr)
        lr_ = torch.where(reduce & (state.lr - new_lr > eps), new_lr, state.lr)
        cooldown_counter = torch.where(reduce, torch.full_like(cooldown_counter, cooldown), cooldown_counter)
        bad = torch.where(reduce, torch.zeros_like(bad), bad)
        return ReduceLROnPlateauState(best, bad, cooldown_counter, lr_)

    def update_fn(
        updates: Updates, state: ReduceLROnPlateauState, params: Params | None = None, **extra: Any
    ):
        del params
        value = extra.get("value")
        if value is not None:
            state = step(state, value)
        leaves, spec = tree.flatten(updates)
        present = [u for u in leaves if u is not None]
        if not present:
            return updates, state
        scale = ops.scalar(state.lr)
        scaled = iter(ops.mul(present, scale))
        return tree.unflatten(spec, [None if u is None else next(scaled) for u in leaves]), state

    return GradientTransformation(init_fn, update_fn)
