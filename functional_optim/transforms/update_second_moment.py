"""``scale_by_update_second_moment``: divide an update by the root of its own EMA of squares."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = ["UpdateSecondMomentState", "scale_by_update_second_moment"]


class UpdateSecondMomentState(NamedTuple):
    """Per-parameter state of [`scale_by_update_second_moment`][].

    Attributes:
      step: steps taken (0-dim, for the bias correction).
      v_buffer: EMA of the squared incoming updates (the official AdaMuon code's key).
    """

    step: Any
    v_buffer: Any


@schedulable("beta2")
def scale_by_update_second_moment(
    beta2: Hyperparam = 0.95, eps: float = 1e-8, bias_correction: bool = False
) -> GradientTransformation:
    r"""Element-wise second-moment scaling of the incoming update (AdaMuon's variance adaptation).

    $$
    v \leftarrow \beta_2 v + (1-\beta_2)\,O \odot O,\qquad
    u = O / (\sqrt{v / c} + \epsilon),\quad c = 1-\beta_2^t \text{ if bias\_correction else } 1
    $$

    Put it after [`orthogonalize`][] (AdaMuon) — unlike Adam's, the moment is of the *update*,
    not of the gradient. Pure maths: works under ``torch.func.grad``, ``vmap`` and ``torch.compile``.

    Args:
      beta2: EMA factor (float, 0-dim tensor or schedule); the official AdaMuon uses its momentum.
      eps: added to the root.
      bias_correction: divide ``v`` by ``1-β₂ᵗ`` (pytorch-optimizer's AdaMuon; not the official code).

    Examples:
        >>> import torch
        >>> import functional_optim as fo
        >>> tx = fo.scale_by_update_second_moment(0.5)
        >>> u, _ = tx.update({"w": torch.tensor([2.0])}, tx.init({"w": torch.zeros(1)}))
        >>> round(float(u["w"][0]), 4)  # 2 / sqrt(0.5 * 4)
        1.4142

    References:
      Si et al., "AdaMuon: Adaptive Muon Optimizer", arXiv:2507.11005, 2025
      (official code: github.com/Chongjie-Si/AdaMuon).
    """
    _validation.beta("beta2", beta2)
    _validation.nonnegative("eps", eps)

    def init_fn(params: Params) -> UpdateSecondMomentState:
        return UpdateSecondMomentState(_steps.zeros(params), tree.zeros_like(params))

    def update_fn(
        updates: Updates, state: UpdateSecondMomentState, params: Params | None = None, **extra: Any
    ):
        del params, extra
        b2 = ops.scalar(beta2)

        def fn(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
            steps, vs = fields
            steps = _steps.increment(steps)
            if isinstance(b2, float | int):  # the references' rounding: v·β₂ + (1-β₂)·O·O in one kernel
                vs = [torch.addcmul(v * b2, o, o, value=1 - b2) for o, v in zip(grads, vs, strict=True)]
            else:  # a tensor β₂ (hyper-gradients)
                vs = [v * b2 + o * o * (1 - b2) for o, v in zip(grads, vs, strict=True)]
            if bias_correction:
                corr = [1 - b2**t for t in ops.step_values(steps)]
                outs = [o / ((v / c).sqrt() + eps) for o, v, c in zip(grads, vs, corr, strict=True)]
            else:
                outs = [o / (v.sqrt() + eps) for o, v in zip(grads, vs, strict=True)]
            return outs, [steps, vs]

        new_updates, (steps, vs) = update_leaves(
            fn, updates, [state.step, state.v_buffer], name="scale_by_update_second_moment"
        )
        return new_updates, UpdateSecondMomentState(steps, vs)

    return GradientTransformation(init_fn, update_fn)
