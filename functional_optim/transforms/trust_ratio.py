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
            return ops.mul(grads, trust_ratios(ps, grads, coef, eps_)), []

        new_updates, _ = update_leaves(
            trust, updates, [], params, name="scale_by_trust_ratio", need_params=True
        )
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)


def trust_ratios(
    params: list[Tensor], updates: list[Tensor], trust_coefficient: Any, eps: Any
) -> list[Tensor]:
    r"""The trust ratio of each tensor: ``η ||p|| / (||u|| + ε)``, or ``1`` where ``||p||`` or
    ``||u||`` is zero.

    The maths of [`scale_by_trust_ratio`][functional_optim.transforms.trust_ratio.scale_by_trust_ratio],
    shared with the rules that apply it inside their step (LARS, LAMB). The norms are one
    ``torch._foreach_norm`` per list and the ratios one vectorised expression over them, as 0-dim
    tensors (a multi-tensor ``mul`` by 0-dim tensors is faster on the CPU than by Python scalars,
    each of which it wraps into a new tensor; and other devices need no synchronisation).

    Args:
      params: the parameters.
      updates: the updates, matching ``params``.
      trust_coefficient: ``η`` (a Python number or 0-dim tensor).
      eps: ``ε``, added to the update norm.

    Examples:
        >>> from functional_optim.transforms.trust_ratio import trust_ratios
        >>> trust_ratios([torch.tensor([3.0, 4.0]), torch.zeros(2)], [torch.ones(2), torch.ones(2)], 1.0, 0.0)
        [tensor(3.5355), tensor(1.)]
    """
    p_norms, u_norms = ops.norm(params), ops.norm(updates)
    norms = p_norms + u_norms
    if norms and ops.uniform(norms):
        # one vectorised expression over the stacked norms, not one per tensor
        pn, un = torch.stack(p_norms), torch.stack(u_norms)
        return list(torch.where((pn > 0) & (un > 0), trust_coefficient * pn / (un + eps), 1.0).unbind(0))
    return [
        torch.where((pn > 0) & (un > 0), trust_coefficient * pn / (un + eps), 1.0)
        for pn, un in zip(p_norms, u_norms, strict=True)
    ]
