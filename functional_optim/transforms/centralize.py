"""``centralize``: gradient centralization (Yong et al., 2020)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from functional_optim import tree
from functional_optim.core import EmptyState, GradientTransformation, Params, Updates

__all__ = ["centralize"]


def centralize() -> GradientTransformation:
    r"""Subtract from each multi-dimensional gradient its mean over all dimensions but the first.

    $$
    u = g - \operatorname{mean}_{\text{dims } 1..n-1}(g) \qquad (g.\text{ndim} > 1;\ \text{else } u = g)
    $$

    For a ``Linear`` weight ``(out, in)`` each output unit's gradient row gets zero mean; for a
    convolution ``(out, in, kh, kw)`` each filter's. Vectors and scalars pass unchanged.
    Stateless; ``None`` gradients stay ``None``.

    Example:
        >>> params = {"w": torch.ones(2, 2)}
        >>> opt = fo.chain(fo.centralize(), fo.sgd(0.1, momentum=0.9))
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([[1.0, 3.0], [0.0, 2.0]])}, state, params)
        >>> updates["w"]  # each row's mean removed, then -0.1 ·
        tensor([[ 0.1000, -0.1000],
                [ 0.1000, -0.1000]])

    References:
      Yong, Huang, Hua & Zhang, "Gradient Centralization: A New Optimization Technique for Deep
      Neural Networks", ECCV 2020.
    """

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra

        def center(g: Tensor | None) -> Tensor | None:
            if g is None or g.ndim <= 1:
                return g
            return g - g.mean(dim=tuple(range(1, g.ndim)), keepdim=True)

        return tree.map(center, updates), state

    return GradientTransformation(init_fn, update_fn)
