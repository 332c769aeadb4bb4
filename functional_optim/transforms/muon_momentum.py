"""``scale_by_ema_momentum``: torch.optim.Muon's momentum (an EMA buffer, optional Nesterov)."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["EmaMomentumState", "scale_by_ema_momentum"]


class EmaMomentumState(NamedTuple):
    """Per-parameter state of [`scale_by_ema_momentum`][].

    Attributes:
      momentum_buffer: the EMA of the gradients (torch.optim.Muon's ``momentum_buffer``; no ``step``).
    """

    momentum_buffer: Any


@schedulable("momentum")
def scale_by_ema_momentum(momentum: Hyperparam = 0.95, nesterov: bool = True) -> GradientTransformation:
    r"""EMA momentum, as torch.optim.Muon keeps it.

    $$
    B_t = \mu B_{t-1} + (1-\mu) g_t\ \ (B_0 = 0,\ \text{as } \mathrm{lerp}(B, g, 1-\mu)),\qquad
    u_t = \begin{cases} (1-\mu) g_t + \mu B_t = \mathrm{lerp}(g_t, B_t, \mu) & \text{nesterov} \\
                         B_t & \text{otherwise} \end{cases}
    $$

    This is ``(1-μ)`` times the sum-form momentum of SGD (``B = μB + g``); followed by a
    scale-invariant step such as [`orthogonalize`][], both give the same direction.

    Args:
      momentum: ``μ`` (float, 0-dim tensor or schedule), ``>= 0``.
      nesterov: use the Nesterov look-ahead ``lerp(g, B, μ)`` instead of ``B``.

    Example:
        >>> muon_like = fo.chain(
        ...     fo.scale_by_ema_momentum(0.95), fo.orthogonalize(), fo.scale_by_learning_rate(0.02)
        ... )
        >>> params = {"w": torch.eye(3)}
        >>> updates, _ = muon_like.update({"w": torch.eye(3)}, muon_like.init(params), params)
        >>> updates["w"].shape
        torch.Size([3, 3])

    References:
      Jordan et al., "Muon", 2024 (torch.optim.Muon).
    """
    _validation.require(lambda v: v >= 0.0, momentum, f"momentum should be >= 0 but is: {momentum}")

    def init_fn(params: Params) -> EmaMomentumState:
        return EmaMomentumState(momentum_buffer=tree.zeros_like(params))

    def update_fn(updates: Updates, state: EmaMomentumState, params: Params | None = None, **extra: Any):
        del extra
        mu = ops.scalar(momentum)  # type: ignore[arg-type]

        def fn(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
            (bufs,) = fields
            bufs = ops.lerp(bufs, grads, 1 - mu)
            if not nesterov:
                return bufs, [bufs]
            return ops.lerp(grads, bufs, mu), [bufs]

        new_updates, (bufs,) = update_leaves(
            fn,
            updates,
            [state.momentum_buffer],
            params,
            name="scale_by_ema_momentum",
            sparse="Muon",
            state=state,
        )
        return new_updates, EmaMomentumState(bufs)

    return GradientTransformation(init_fn, update_fn)
