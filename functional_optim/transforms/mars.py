"""``scale_by_mars``: MARS variance-reduced gradient (scaled stochastic recursive momentum)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["ScaleByMarsState", "scale_by_mars"]


class ScaleByMarsState(NamedTuple):
    """Per-parameter state of [`scale_by_mars`][] (name as the authors' code)."""

    last_grad: Any


@schedulable("b1", "gamma")
def scale_by_mars(
    b1: Hyperparam = 0.95, gamma: Hyperparam = 0.025, max_norm: float | None = 1.0
) -> GradientTransformation:
    r"""Replace the gradient by MARS's corrected gradient (Yuan et al., 2024), per tensor:

    $$
    c_t = g_t + \gamma\,\frac{\beta_1}{1-\beta_1}\,(g_t - g_{t-1}),\qquad
    c_t \leftarrow c_t \,/\, \max(1, \lVert c_t\rVert / C)
    $$

    with $g_0 = 0$ (the first step uses $g_{t-1} = 0$, as the authors' code). Put
    it in front of any moment-based rule: ``chain(scale_by_mars(β1), scale_by_adam(β1, β2))`` is
    MARS-AdamW ([`fo.mars_adamw`][functional_optim.mars_adamw]), ``scale_by_mars`` before a Lion rule is
    MARS-Lion. ``β1`` should be the momentum of that rule.

    Args:
      b1: the following rule's momentum $\beta_1$.
      gamma: the scale $\gamma$ of the correction.
      max_norm: $C$, the maximum norm of each tensor's $c_t$ (``None``: no clipping).

    Example:
      >>> opt = fo.chain(fo.scale_by_mars(0.95), fo.scale_by_adam(0.95, 0.99),
      ...                fo.scale_by_learning_rate(3e-3))
      >>> params = {"w": torch.zeros(2)}
      >>> updates, state = opt.update({"w": torch.ones(2)}, opt.init(params), params)
      >>> state[0].last_grad["w"].tolist()
      [1.0, 1.0]

    References:
      Yuan, Liu, Wu et al., "MARS: Unleashing the Power of Variance Reduction for Training Large
      Models", arXiv:2411.10438, 2024 (code: github.com/AGI-Arena/MARS).
    """
    _validation.beta("b1", b1)
    _validation.nonnegative("gamma", gamma)
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"scale_by_mars: max_norm must be > 0 or None, got {max_norm!r}")

    def init_fn(params: Params) -> ScaleByMarsState:
        return ScaleByMarsState(last_grad=tree.zeros_like(params))

    def corrected(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
        beta1, gamma_ = ops.scalar(b1), ops.scalar(gamma)
        c = ops.add(ops.mul(ops.sub(grads, fields[0]), gamma_ * (beta1 / (1 - beta1))), grads)
        if max_norm is not None:
            scales = [torch.where(n > max_norm, n / max_norm, torch.ones_like(n)) for n in ops.norm(c)]
            c = [ci / s for ci, s in zip(c, scales, strict=True)]
        return c, [ops.clone(grads)]

    def update_fn(updates: Updates, state: ScaleByMarsState, params: Params | None = None, **extra: Any):
        del params, extra
        new_updates, (last,) = update_leaves(corrected, updates, [state.last_grad], name="scale_by_mars")
        return new_updates, ScaleByMarsState(last)

    return GradientTransformation(init_fn, update_fn)
