"""``scale_by_trust_ratio``: layer-wise trust ratio ``||p|| / ||u||`` (LARS, LAMB)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from functional_optim import _validation, ops
from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["scale_by_trust_ratio"]


@schedulable("trust_coefficient", "eps")
def scale_by_trust_ratio(
    trust_coefficient: Hyperparam = 1.0, eps: Hyperparam = 0.0
) -> GradientTransformation:
    r"""Scale each parameter's update by its trust ratio.

    $$
    u \leftarrow u \cdot \begin{cases}
      \eta \,\lVert p\rVert / (\lVert u\rVert + \epsilon)
        & \lVert p\rVert > 0 \text{ and } \lVert u\rVert > 0\\
      1 & \text{otherwise}
    \end{cases}
    $$

    with ``η`` the trust coefficient and the norms the L2 norms of the whole tensor (one ratio
    per parameter tensor, "layer-wise"). The ratio is ``1`` where either norm is zero, as in
    optax (so a zero-initialised bias still moves).

    Args:
      trust_coefficient: ``η`` (LARS uses 0.001, LAMB 1).
      eps: added to the update norm.

    Example:
      >>> tx = fo.scale_by_trust_ratio()
      >>> u, _ = tx.update([torch.tensor([3.0, 4.0])], tx.init(None), [torch.tensor([0.0, 10.0])])
      >>> u[0]
      tensor([6., 8.])

    References:
      You et al., "Large Batch Training of Convolutional Networks", 2017 (LARS).
      You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020.
    """
    _validation.nonnegative("trust_coefficient", trust_coefficient)
    _validation.nonnegative("eps", eps, "epsilon value")

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del extra
        coef, eps_ = ops.scalar(trust_coefficient), ops.scalar(eps)

        def trust(grads: list[Tensor], fields: list, ps: list[Tensor]):
            del fields
            p_norms, u_norms = ops.norm(ps), ops.norm(grads)
            if len({(n.dtype, n.device) for n in p_norms + u_norms}) == 1:
                # one vectorised expression over the stacked norms, not one per tensor
                pn, un = torch.stack(p_norms), torch.stack(u_norms)
                ratios = list(torch.where((pn > 0) & (un > 0), coef * pn / (un + eps_), 1.0).unbind(0))
            else:
                ratios = [
                    torch.where((pn > 0) & (un > 0), coef * pn / (un + eps_), 1.0)
                    for pn, un in zip(p_norms, u_norms, strict=True)
                ]
            return ops.mul(grads, ratios), []

        new_updates, _ = update_leaves(
            trust, updates, [], params, name="scale_by_trust_ratio", need_params=True
        )
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)
