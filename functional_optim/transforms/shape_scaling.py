"""``scale_by_shape``: Muon's shape-dependent learning-rate adjustment, as a factor on the update."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from functional_optim import ops, tree
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.orthogonalize import ReshapeRule, matrix_view_shape

__all__ = ["scale_by_shape", "shape_factor"]

AdjustLrFn = None | str | Callable[[Any, torch.Size], Any]


def shape_factor(adjust_lr_fn: str | None, shape: torch.Size, reshape: ReshapeRule = None) -> float:
    """The factor of torch.optim.Muon's ``_adjust_lr`` for a parameter of ``shape``.

    ``None``/``"original"``: ``sqrt(max(1, A/B))``; ``"match_rms_adamw"``: ``0.2·sqrt(max(A, B))``,
    with ``A, B = shape[:2]`` as torch (or the matrix dims given by ``reshape``).
    """
    if reshape is None and len(shape) >= 2:
        a, b = shape[0], shape[1]
    else:
        _, a, b = matrix_view_shape(shape, reshape)
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, a / b))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(a, b))
    raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")


@schedulable("learning_rate")
def scale_by_shape(
    adjust_lr_fn: AdjustLrFn = None,
    *,
    learning_rate: Hyperparam | None = None,
    reshape: ReshapeRule = None,
) -> GradientTransformation:
    r"""Scale each matrix update by a factor of its shape ``(A, B)``: ``u = f(A, B) · g``.

    * ``None`` / ``"original"`` (Keller Jordan): ``f = sqrt(max(1, A/B))``;
    * ``"match_rms_adamw"`` (Moonshot, Liu et al. 2025): ``f = 0.2·sqrt(max(A, B))``, so the update
      RMS matches AdamW's and AdamW's lr / weight decay can be reused;
    * a callable ``adjust_lr_fn(lr, shape) -> adjusted lr`` (torch.optim.Muon's notion). The factor
      is ``adjust_lr_fn(lr, shape) / lr``, so ``chain(scale_by_shape(fn, learning_rate=lr),
      scale_by_learning_rate(lr))`` moves the parameter by exactly ``-adjust_lr_fn(lr, shape)·g``.
      Pass the same ``learning_rate`` (value, tensor or schedule) as to ``scale_by_learning_rate``;
      without it the factor is ``adjust_lr_fn(1.0, shape)``, exact for any fn linear in lr
      (``lr·h(shape)``). With ``lr == 0`` the factor is taken at ``lr = 1``.

    Placed after [`orthogonalize`][] and before decoupled weight decay, as in torch.optim.Muon
    (whose weight decay uses the *unadjusted* lr).

    Args:
      adjust_lr_fn: ``None``, ``"original"``, ``"match_rms_adamw"`` or a callable ``(lr, shape) -> lr``.
      learning_rate: the learning rate a callable ``adjust_lr_fn`` is evaluated at (ignored otherwise).
      reshape: the matrix view of non-2-D parameters (see [`matrix_view_shape`][]); default uses
        ``shape[:2]`` like torch.

    Example:
        >>> muon_like = fo.chain(
        ...     fo.orthogonalize(),
        ...     fo.scale_by_shape("match_rms_adamw"),
        ...     fo.add_decayed_weights(0.1),
        ...     fo.scale_by_learning_rate(0.02),
        ... )
        >>> params = {"w": torch.eye(4)}
        >>> updates, _ = muon_like.update({"w": torch.eye(4)}, muon_like.init(params), params)
        >>> updates["w"].shape
        torch.Size([4, 4])
    """
    if not (
        adjust_lr_fn is None or adjust_lr_fn in ("original", "match_rms_adamw") or callable(adjust_lr_fn)
    ):
        raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")

    def factor(shape: torch.Size) -> Any:
        if not callable(adjust_lr_fn):
            return shape_factor(adjust_lr_fn, shape, reshape)
        lr = 1.0 if learning_rate is None else ops.scalar(learning_rate)  # type: ignore[arg-type]
        if isinstance(lr, float | int) and lr == 0:
            lr = 1.0
        return adjust_lr_fn(lr, shape) / lr

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        leaves, spec = tree.flatten(updates)
        present = [u for u in leaves if u is not None]
        if not present:
            return updates, state
        cache: dict[torch.Size, Any] = {}
        factors = []
        for u in present:
            if u.shape not in cache:
                cache[u.shape] = factor(u.shape)
            factors.append(cache[u.shape])
        scaled = iter(ops.mul(present, factors))
        return tree.unflatten(spec, [None if u is None else next(scaled) for u in leaves]), state

    return GradientTransformation(init_fn, update_fn)
