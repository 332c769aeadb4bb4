"""``adaptive_grad_clip``: unit-wise adaptive gradient clipping (Brock et al., 2021)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["adaptive_grad_clip", "unitwise_norm"]


def unitwise_norm(x: Tensor) -> Tensor:
    """The L2 norm of each output unit: over all dims but the first for ``ndim > 1`` (torch's
    ``(out, in, ...)`` weight layout), over the whole tensor otherwise; broadcastable to ``x``."""
    if x.ndim <= 1:
        return torch.linalg.vector_norm(x).reshape((1,) * x.ndim)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim)), keepdim=True)


@schedulable("clipping", "eps")
def adaptive_grad_clip(clipping: Hyperparam = 0.01, eps: Hyperparam = 1e-3) -> GradientTransformation:
    r"""Clip each unit's gradient relative to the norm of its weights (AGC, NFNets).

    Per unit ``i`` (a row of a ``Linear`` weight, a filter of a convolution, a whole vector):

    $$
    m_i = \lambda\,\max(\|W_i\|, \epsilon),\qquad
    u_i = \begin{cases} g_i & \|g_i\| < m_i \\
                        g_i\, m_i / \max(\|g_i\|, 10^{-6}) & \text{otherwise}\end{cases}
    $$

    ``update`` needs ``params``. Stateless; ``None`` gradients stay ``None``.

    Args:
      clipping: ``λ``, the maximum ratio of gradient norm to weight norm (> 0).
      eps: ``ε``, the floor of the weight norm (so zero-initialised weights can move; >= 0).

    Example:
        >>> params = {"w": torch.ones(4)}
        >>> opt = fo.chain(fo.adaptive_grad_clip(0.01), fo.sgd(0.1, momentum=0.9))
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.full((4,), 100.0)}, state, params)
        >>> updates["w"]  # the gradient clipped to 0.01 · ‖w‖ = 0.02, then -lr ·
        tensor([-0.0010, -0.0010, -0.0010, -0.0010])

    References:
      Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image Recognition Without
      Normalization", ICML 2021.
    """
    _validation.require(lambda v: v > 0, clipping, f"clipping must be > 0, got {clipping}")
    _validation.nonnegative("eps", eps)

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del extra
        if params is None:
            raise ValueError("adaptive_grad_clip needs the parameters: call update(grads, state, params)")
        lam, eps_ = ops.scalar(clipping), ops.scalar(eps)  # type: ignore[arg-type]

        def clip(g: Tensor | None, p: Tensor | None) -> Tensor | None:
            if g is None:
                return None
            max_norm = torch.clamp(unitwise_norm(p), min=eps_) * lam  # type: ignore[arg-type]  # p present with g
            g_norm = unitwise_norm(g)
            clipped = g * (max_norm / torch.clamp(g_norm, min=1e-6))
            return torch.where(g_norm < max_norm, g, clipped.to(g.dtype))

        return tree.map(clip, updates, params), state

    return GradientTransformation(init_fn, update_fn)
