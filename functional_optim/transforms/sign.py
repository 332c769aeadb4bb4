"""``scale_by_sign``: keep only the sign of each update entry (signSGD, Lion's last step)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from functional_optim import ops
from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Params, Updates

__all__ = ["scale_by_sign"]


def _sign(x: Tensor) -> Tensor:
    if x.is_sparse:
        x = x.coalesce()  # sign(a + b) != sign(a) + sign(b): sum duplicate indices first
        return torch.sparse_coo_tensor(
            x._indices(), _sign(x._values()), x.shape, is_coalesced=True, check_invariants=False
        )
    return torch.sgn(x) if x.is_complex() else torch.sign(x)


def scale_by_sign() -> GradientTransformation:
    r"""Replace every update entry by its sign.

    $$
    u_i = \operatorname{sign}(g_i) \in \{-1, 0, 1\}
    $$

    Complex entries map to ``z / |z|`` (``torch.sgn``; ``0`` stays ``0``). Sparse COO updates
    are coalesced first (duplicate indices summed) and stay sparse. ``None`` leaves stay
    ``None``.

    Example:
        >>> signsgd = fo.chain(fo.scale_by_sign(), fo.scale_by_learning_rate(1e-3))
        >>> g = {"w": torch.tensor([2.0, -0.5, 0.0])}
        >>> updates, _ = signsgd.update(g, signsgd.init(g))
        >>> updates["w"]
        tensor([-0.0010,  0.0010, -0.0000])

    References:
      Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems", ICML 2018.
      optax.scale_by_sign (DeepMind).
    """

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra

        def sign_leaves(grads: list[Tensor], fields: list, _: Any):
            del fields
            if all(not g.is_sparse and not g.is_complex() for g in grads):
                return ops.sign(grads), []
            return [_sign(g) for g in grads], []

        new_updates, _ = update_leaves(sign_leaves, updates, [], name="scale_by_sign")
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)
