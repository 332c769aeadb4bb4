"""``multi_steps``: gradient accumulation over ``k`` calls."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import tree
from functional_optim.combinators._select import cond
from functional_optim.core import Combinator, GradientTransformation, Params, Updates

__all__ = ["MultiStepsState", "multi_steps"]


class MultiStepsState(NamedTuple):
    """State of [`multi_steps`][].

    Attributes:
      mini_step: calls since the last inner step, in ``[0, every_k)`` (0-dim int64, CPU).
      gradient_step: inner steps taken so far (0-dim int64, CPU).
      inner_state: the wrapped transform's state.
      acc_grads: the running sum of the gradients of the current window (parameters' structure).
    """

    mini_step: Tensor
    gradient_step: Tensor
    inner_state: Any
    acc_grads: Any


def multi_steps(
    inner: GradientTransformation, every_k: int, *, acc_dtype: torch.dtype | None = None
) -> GradientTransformation:
    r"""Accumulate gradients over ``every_k`` calls and step ``inner`` on their mean.

    $$
    a \leftarrow a + g_t;\quad
    u_t = \begin{cases} T\big(a / k\big), \ a \leftarrow 0 & t \equiv k-1 \pmod k \\
                        0 & \text{otherwise}\end{cases}
    $$

    The inner transform (and its state) only sees the mean gradient, once every ``k`` calls;
    the other calls return zero updates. One accumulator per parameter.

    ``None`` gradients add nothing. On the ``k``-th call the update of a leaf whose gradient is
    ``None`` is ``None`` (the inner transform skips it) and its accumulated sum is kept for the
    next window, so no gradient is lost; give every leaf a gradient on the ``k``-th call to have
    exact window semantics.

    Trace-friendliness: the window counter lives on the CPU, so in eager mode it is read
    without a device sync and the inner update runs only on the ``k``-th call. Under
    ``torch.func`` or ``torch.compile`` both branches are computed and selected with
    ``torch.where`` (no Python branch on a tensor value).

    Args:
      inner: the transform to apply to the mean gradient.
      every_k: number of calls per inner step (int >= 1).
      acc_dtype: dtype of the accumulators (default: the parameter's dtype; e.g. ``torch.float32``
        for bf16 parameters).

    Example:
        >>> params = {"w": torch.ones(2)}
        >>> opt = fo.multi_steps(fo.sgd(0.1), every_k=2)  # 2 micro-batches per step
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.ones(2)}, state, params)
        >>> updates["w"]  # accumulating: no step yet
        tensor([0., 0.])
        >>> updates, state = opt.update({"w": torch.full((2,), 3.0)}, state, params)
        >>> updates["w"]  # -0.1 * mean(1, 3)
        tensor([-0.2000, -0.2000])

    References:
      optax.MultiSteps (DeepMind).
    """
    if not isinstance(inner, GradientTransformation):
        raise ValueError(f"multi_steps: inner must be a GradientTransformation, got {type(inner).__name__}")
    if isinstance(every_k, bool) or not isinstance(every_k, int) or every_k < 1:
        raise ValueError(f"every_k must be an int >= 1, got {every_k!r}")

    def init_fn(params: Params) -> MultiStepsState:
        zero = torch.zeros((), dtype=torch.int64)
        return MultiStepsState(
            zero, zero.clone(), inner.init(params), tree.zeros_like(params, dtype=acc_dtype)
        )

    def update_fn(updates: Updates, state: MultiStepsState, params: Params | None = None, **extra: Any):
        leaves, spec = tree.flatten(updates)
        acc_leaves = tree.flatten_like(spec, state.acc_grads, "multi_steps: acc_grads")
        acc = [a if g is None else a + g.to(a.dtype) for g, a in zip(leaves, acc_leaves, strict=True)]
        emit = state.mini_step + 1 >= every_k

        def step() -> tuple:
            mean = [
                None if g is None else (a / every_k).to(g.dtype) for g, a in zip(leaves, acc, strict=True)
            ]
            new_u, new_inner = inner.update(tree.unflatten(spec, mean), state.inner_state, params, **extra)
            new_acc = [a if g is None else torch.zeros_like(a) for g, a in zip(leaves, acc, strict=True)]
            return (
                new_u,
                torch.zeros_like(state.mini_step),
                state.gradient_step + 1,
                new_inner,
                tree.unflatten(spec, new_acc),
            )

        def accumulate() -> tuple:
            zeros = tree.zeros_like(updates)
            return (
                zeros,
                state.mini_step + 1,
                state.gradient_step,
                state.inner_state,
                tree.unflatten(spec, acc),
            )

        new_u, mini, gstep, inner_state, acc_tree = cond(emit, step, accumulate)
        return new_u, MultiStepsState(mini, gstep, inner_state, acc_tree)

    return GradientTransformation(init_fn, update_fn, Combinator((inner,), keeps_old_state=True))
