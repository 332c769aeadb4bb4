"""``cautious``: keep only the update components whose sign agrees with the gradient."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import tree
from functional_optim.core import GradientTransformation, Params, Updates

__all__ = ["CautiousState", "cautious", "cautious_mask"]

_RESCALES = ("mean", "numel", "none")


class CautiousState(NamedTuple):
    """State of [`cautious`][]: the wrapped transform's state."""

    inner_state: Any


def cautious_mask(update: Tensor, grad: Tensor, rescale: str = "mean") -> Tensor:
    r"""``update`` with the components whose sign disagrees with ``grad`` set to zero, rescaled.

    $$
    \phi = \mathbb 1[u \odot g > 0],\qquad
    u' = u \odot \phi / \max(\operatorname{mean}\phi, 10^{-3})\ (\texttt{"mean"}),\quad
    u \odot \phi\,\frac{n}{\textstyle\sum\phi + 1}\ (\texttt{"numel"}),\quad
    u \odot \phi\ (\texttt{"none"})
    $$
    """
    mask = (update * grad > 0).to(update.dtype)
    if rescale == "mean":
        mask = mask / mask.mean().clamp(min=1e-3)
    elif rescale == "numel":
        mask = mask * (mask.numel() / (mask.sum() + 1))
    return update * mask


def cautious(inner: GradientTransformation, rescale: str = "mean") -> GradientTransformation:
    r"""Cautious masking of any transform's update (Liang et al., 2024).

    ``inner`` maps the incoming gradient $g$ to a *direction* $u$ (the same sign
    convention as $g$, i.e. before [`scale_by_learning_rate`][]). Per tensor:

    $$
    \phi = \mathbb 1[u \odot g > 0],\qquad u' = u \odot \phi \,/\, \max(\operatorname{mean}\phi, 10^{-3})
    $$

    ``rescale="mean"`` is the authors' current code (``mask.div_(mask.mean().clamp_(min=1e-3))``);
    ``"numel"`` is the paper's first version, ``mask · numel / (sum(mask) + 1)`` (as
    pytorch-optimizer); ``"none"`` only masks. For Adam the mask of ``m / denom`` is the mask of
    ``m`` (``denom > 0``), so ``cautious(scale_by_adam())`` is C-AdamW's update. ``None``
    gradients stay ``None``.

    Args:
      inner: the transform producing the direction.
      rescale: ``"mean"``, ``"numel"`` or ``"none"``.

    Example:
      >>> opt = fo.chain(fo.cautious(fo.scale_by_adam()), fo.scale_by_learning_rate(1e-3))
      >>> params = {"w": torch.ones(3)}
      >>> updates, state = opt.update({"w": torch.tensor([1.0, -1.0, 2.0])}, opt.init(params), params)
      >>> updates["w"].shape
      torch.Size([3])

    References:
      Liang, Chen, Liu & Liu, "Cautious Optimizers: Improving Training with One Line of Code",
      arXiv:2411.16085, 2024 (code: github.com/kyleliang919/C-Optim).
    """
    if rescale not in _RESCALES:
        raise ValueError(f"cautious: rescale must be one of {_RESCALES}, got {rescale!r}")

    def init_fn(params: Params) -> CautiousState:
        return CautiousState(inner.init(params))

    def update_fn(updates: Updates, state: CautiousState, params: Params | None = None, **extra: Any):
        directions, inner_state = inner.update(updates, state.inner_state, params, **extra)
        grads, spec = tree.flatten(updates)
        dirs = tree.flatten_like(spec, directions, "cautious: inner updates")
        out = [
            None if u is None or g is None else cautious_mask(u, g, rescale)
            for u, g in zip(dirs, grads, strict=True)
        ]
        return tree.unflatten(spec, out), CautiousState(inner_state)

    return GradientTransformation(init_fn, update_fn)
