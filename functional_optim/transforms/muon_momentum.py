"""``scale_by_ema_momentum``: torch.optim.Muon's momentum (an EMA buffer, optional Nesterov)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _low_precision, _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = ["EmaMomentumState", "scale_by_ema_momentum"]

_SALT = 1
"""Tells the momentum's rounding bits apart from other fields' (`functional_optim._low_precision.narrow`)."""


class EmaMomentumState(NamedTuple):
    """Per-parameter state of [`scale_by_ema_momentum`][].

    Attributes:
      momentum_buffer: the EMA of the gradients (torch.optim.Muon's ``momentum_buffer``).
      step: ``()`` (torch.optim.Muon keeps no ``step``), or with ``state_dtype=torch.bfloat16``
        the per-parameter step counters that seed the stochastic rounding of the buffer.
    """

    momentum_buffer: Any
    step: Any = ()


@schedulable("momentum")
def scale_by_ema_momentum(
    momentum: Hyperparam = 0.95, nesterov: bool = True, *, state_dtype: torch.dtype | None = None
) -> GradientTransformation:
    r"""EMA momentum, as torch.optim.Muon keeps it.

    $$
    B_t = \mu B_{t-1} + (1-\mu) g_t\ \ (B_0 = 0,\ \text{as } \mathrm{lerp}(B, g, 1-\mu)),\qquad
    u_t = \begin{cases} (1-\mu) g_t + \mu B_t = \mathrm{lerp}(g_t, B_t, \mu) & \text{nesterov} \\
                         B_t & \text{otherwise} \end{cases}
    $$

    This is ``(1-μ)`` times the sum-form momentum of SGD (``B = μB + g``); followed by a
    scale-invariant step such as [`orthogonalize`][], both give the same direction.

    With ``state_dtype=torch.bfloat16`` the buffer of a float32 parameter is stored in bfloat16
    (half the memory): each step widens it to float32, computes $B_t$ and $u_t$ in float32 (the
    update uses the float32 $B_t$) and stores $B_t$ with stochastic rounding
    ($\mathbb E[\mathrm{round}(B_t)] = B_t$, so the small increments $(1-\mu) g_t$ are not lost
    as round-to-nearest loses them), seeded by a per-parameter step count kept in the state
    (`functional_optim._low_precision`, as [`scale_by_adam`][]'s).

    Args:
      momentum: ``μ`` (float, 0-dim tensor or schedule), ``>= 0``.
      nesterov: use the Nesterov look-ahead ``lerp(g, B, μ)`` instead of ``B``.
      state_dtype: ``None`` (the parameter's dtype, torch's numbers) or ``torch.bfloat16`` (the
        buffers of float32 parameters in bfloat16, plus a ``step`` counter per parameter).

    Example:
        >>> muon_like = fo.chain(
        ...     fo.scale_by_ema_momentum(0.95), fo.orthogonalize(), fo.scale_by_learning_rate(0.02)
        ... )
        >>> params = {"w": torch.eye(3)}
        >>> updates, _ = muon_like.update({"w": torch.eye(3)}, muon_like.init(params), params)
        >>> updates["w"].shape
        torch.Size([3, 3])
        >>> low = fo.scale_by_ema_momentum(0.95, state_dtype=torch.bfloat16)
        >>> state = low.init(params)
        >>> _, state = low.update({"w": torch.eye(3)}, state, params)
        >>> state.momentum_buffer["w"].dtype, float(state.step["w"])
        (torch.bfloat16, 1.0)

    References:
      Jordan et al., "Muon", 2024 (torch.optim.Muon).
    """
    _validation.require(lambda v: v >= 0.0, momentum, f"momentum should be >= 0 but is: {momentum}")
    low_dtype = _low_precision.check_state_dtype(state_dtype)

    def init_fn(params: Params) -> EmaMomentumState:
        if low_dtype is None:
            return EmaMomentumState(momentum_buffer=tree.zeros_like(params))
        buffers = tree.map(lambda p: _low_precision.zeros_like(p, low_dtype), params)
        return EmaMomentumState(momentum_buffer=buffers, step=_steps.zeros(params))

    def update_fn(updates: Updates, state: EmaMomentumState, params: Params | None = None, **extra: Any):
        del extra
        mu = ops.scalar(momentum)  # type: ignore[arg-type]

        def fn(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
            (bufs,) = fields
            bufs = ops.lerp(bufs, grads, 1 - mu)
            if not nesterov:
                return bufs, [bufs]
            return ops.lerp(grads, bufs, mu), [bufs]

        def low_fn(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
            bufs, steps = fields
            steps = _steps.increment(steps)
            if not _low_precision.is_low(bufs, grads):
                new_updates, (new_bufs,) = fn(grads, [bufs], None)
                return new_updates, [new_bufs, steps]
            work = ops.lerp_(_low_precision.widen(bufs, grads), grads, 1 - mu)  # float32 copies
            new_updates = ops.lerp(grads, work, mu) if nesterov else work
            stored = _low_precision.narrow(work, bufs, _steps.read(steps), _SALT, in_place=False)
            return new_updates, [stored, steps]

        low = low_dtype is not None
        new_updates, new_fields = update_leaves(
            low_fn if low else fn,
            updates,
            [state.momentum_buffer, state.step] if low else [state.momentum_buffer],
            params,
            name="scale_by_ema_momentum",
            sparse="Muon",
            state=state,
            low_precision=low,
        )
        return new_updates, EmaMomentumState(*new_fields)

    return GradientTransformation(init_fn, update_fn)
