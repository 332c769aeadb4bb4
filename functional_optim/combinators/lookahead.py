"""``lookahead``: k fast steps forward, one step back (Zhang et al., 2019)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, tree
from functional_optim.combinators._select import cond
from functional_optim.core import Combinator, GradientTransformation, Params, Updates

__all__ = ["LookaheadState", "lookahead"]


class LookaheadState(NamedTuple):
    """State of [`lookahead`][].

    Attributes:
      fast_state: the fast transform's state.
      slow_params: the slow weights ``φ`` (parameters' structure).
      count: fast steps taken so far (0-dim int64, CPU).
    """

    fast_state: Any
    slow_params: Any
    count: Tensor  # type: ignore[assignment]  # a field named like tuple.count


def lookahead(
    fast: GradientTransformation, sync_period: int = 6, alpha: float = 0.5, *, reset_state: bool = False
) -> GradientTransformation:
    r"""Lookahead: the fast transform moves the parameters, and every ``sync_period`` steps the
    slow weights move a fraction ``alpha`` towards them and the parameters jump back to them.

    $$
    \begin{aligned}
    &\theta_{t+1} = \theta_t + T(g_t) \\
    &\text{if } (t+1) \bmod k = 0:\quad \phi \leftarrow \phi + \alpha(\theta_{t+1} - \phi),\quad
    \theta_{t+1} \leftarrow \phi
    \end{aligned}
    $$

    The slow weights live in the state (initialised to a copy of the parameters), so the
    parameters the user holds are the fast weights; on a sync step the returned update is
    ``φ_new - θ_t``. ``update`` needs ``params``. A leaf whose gradient is ``None`` gets a
    ``None`` update and its slow weight is not synchronised on that step.

    Args:
      fast: the inner ("fast") transform, e.g. ``fo.adam(1e-3)``.
      sync_period: ``k``, fast steps between synchronisations (int >= 1).
      alpha: slow step size in ``[0, 1]``.
      reset_state: re-initialise the fast transform's state at every synchronisation.

    Example:
        >>> params = {"w": torch.ones(2)}
        >>> opt = fo.lookahead(fo.adam(1e-3), sync_period=5, alpha=0.5)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.ones(2)}, state, params)  # params required
        >>> fo.apply_updates(params, updates)["w"]
        tensor([0.9990, 0.9990])

    References:
      Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back", NeurIPS 2019.
      optax.lookahead (DeepMind).
    """
    if not isinstance(fast, GradientTransformation):
        raise ValueError(f"lookahead: fast must be a GradientTransformation, got {type(fast).__name__}")
    if isinstance(sync_period, bool) or not isinstance(sync_period, int) or sync_period < 1:
        raise ValueError(f"sync_period must be an int >= 1, got {sync_period!r}")
    _validation.require(lambda v: 0.0 <= v <= 1.0, alpha, f"alpha must be in [0, 1], got {alpha}")

    def init_fn(params: Params) -> LookaheadState:
        slow = tree.map(lambda p: None if p is None else p.detach().clone(), params)
        return LookaheadState(fast.init(params), slow, torch.zeros((), dtype=torch.int64))

    def update_fn(updates: Updates, state: LookaheadState, params: Params | None = None, **extra: Any):
        if params is None:
            raise ValueError("lookahead needs the parameters: call update(grads, state, params)")
        fast_u, fast_state = fast.update(updates, state.fast_state, params, **extra)
        count = state.count + 1
        sync = count % sync_period == 0

        def synchronise() -> tuple:
            def slow_step(u, p, s):
                if u is None:
                    return s
                return s + alpha * (p + u.to(p.dtype) - s)

            new_slow = tree.map(slow_step, fast_u, params, state.slow_params)
            new_u = tree.map(
                lambda u, p, s: None if u is None else (s - p).to(u.dtype), fast_u, params, new_slow
            )
            new_fast_state = fast.init(params) if reset_state else fast_state
            return new_u, new_fast_state, new_slow

        new_u, new_fast_state, new_slow = cond(
            sync, synchronise, lambda: (fast_u, fast_state, state.slow_params)
        )
        return new_u, LookaheadState(new_fast_state, new_slow, count)

    return GradientTransformation(init_fn, update_fn, Combinator((fast,), keeps_old_state=False))
