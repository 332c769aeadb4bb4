"""``freeze``: zero updates for frozen parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from functional_optim import tree
from functional_optim._masking import mask_flags
from functional_optim.core import EmptyState, GradientTransformation, Params, Updates

__all__ = ["freeze"]


def freeze(mask: Any | Callable[[Params], Any] = True) -> GradientTransformation:
    r"""Zero the updates of the frozen parameters: ``u_i = 0`` where ``mask_i``, else ``u_i = g_i``.

    Stateless. Placed last in a chain (after the learning rate) it stops the frozen parameters
    from moving. To also keep **no optimizer state** for them, route them away from the
    stateful transform instead::

        opt = fo.partition({"train": fo.adamw(1e-3), "frozen": fo.freeze()}, labels)

    (``fo.freeze()`` freezes everything it sees; inside ``partition`` that is its own group.)

    Args:
      mask: ``True`` for frozen leaves: a tree of bools like the parameters (or a prefix of it,
        e.g. the default ``True`` freezes all), or a callable ``params -> such a tree``.

    References:
      optax.freeze (DeepMind).
    """

    def init_fn(params: Params) -> EmptyState:
        mask_flags(mask, params, "freeze")  # validate the mask against the parameters
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del extra
        frozen = mask_flags(mask, params if params is not None else updates, "freeze")
        leaves, spec = tree.flatten(updates)
        out = [
            None if u is None else torch.zeros_like(u) if f else u
            for u, f in zip(leaves, frozen, strict=True)
        ]
        return tree.unflatten(spec, out), state

    return GradientTransformation(init_fn, update_fn)
