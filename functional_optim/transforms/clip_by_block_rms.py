"""``clip_by_block_rms``: clip each parameter's update to a maximum root-mean-square."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["clip_by_block_rms"]


@schedulable("threshold")
def clip_by_block_rms(threshold: Hyperparam) -> GradientTransformation:
    r"""Scale each update tensor (block) so that its RMS is at most ``threshold``.

    $$
    \operatorname{rms}(g) = \sqrt{\operatorname{mean}(|g|^2)},\qquad
    u = \frac{g}{\max\big(1, \operatorname{rms}(g) / \tau\big)}
    $$

    Stateless; ``None`` gradients stay ``None``. Complex entries use ``|g|²``.

    Args:
      threshold: the maximum RMS ``τ`` (> 0; float, 0-dim tensor or schedule).

    Example:
        >>> opt = fo.clip_by_block_rms(1.0)
        >>> g = {"w": torch.full((4,), 3.0)}
        >>> updates, _ = opt.update(g, opt.init(g))
        >>> updates["w"]  # RMS 3 scaled down to 1
        tensor([1., 1., 1., 1.])

    References:
      optax.clip_by_block_rms (DeepMind).
    """
    _validation.require(lambda v: v > 0, threshold, f"threshold must be > 0, got {threshold}")

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        tau = ops.scalar(threshold)  # type: ignore[arg-type]

        def clip(g: Tensor | None) -> Tensor | None:
            if g is None:
                return None
            sq = g.real.square() + g.imag.square() if g.is_complex() else g.square()
            rms = torch.sqrt(sq.mean()) if g.numel() else torch.zeros((), dtype=sq.dtype, device=g.device)
            return g / torch.clamp(rms / tau, min=1.0)

        return tree.map(clip, updates), state

    return GradientTransformation(init_fn, update_fn)
