"""``scale_by_bias_corrected_rms``: divide by the bias-corrected root mean square (no momentum)."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = ["ScaleByBiasCorrectedRmsState", "scale_by_bias_corrected_rms"]


class ScaleByBiasCorrectedRmsState(NamedTuple):
    """Per-parameter state of [`scale_by_bias_corrected_rms`][] (torch's names)."""

    step: Any
    exp_avg_sq: Any


@schedulable("b2", "eps")
def scale_by_bias_corrected_rms(b2: Hyperparam = 0.999, eps: Hyperparam = 1e-8) -> GradientTransformation:
    r"""Adam's second moment alone: the gradient over the bias-corrected RMS of past gradients.

    $$
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\qquad
    u_t = \frac{g_t}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}
    $$

    computed as the ``schedulefree`` package computes it (``sqrt(v / bc2) + eps``); the base rule
    of Schedule-Free AdamW (``optax.scale_by_rms(bias_correction=True, eps_in_sqrt=False)``).

    Args:
      b2: decay of the second moment.
      eps: added outside the square root.

    Example:
      >>> opt = fo.scale_by_bias_corrected_rms(0.999)
      >>> updates, _ = opt.update({"w": torch.tensor([2.0])}, opt.init({"w": torch.zeros(1)}))
      >>> round(updates["w"].item(), 6)
      1.0

    References:
      Kingma & Ba, "Adam", ICLR 2015; Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.beta("b2", b2, 1)

    def init_fn(params: Params) -> ScaleByBiasCorrectedRmsState:
        return ScaleByBiasCorrectedRmsState(step=_steps.zeros(params), exp_avg_sq=tree.zeros_like(params))

    def rule(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
        beta2, eps_ = ops.scalar(b2), ops.scalar(eps)
        steps = _steps.increment(fields[0])
        v = ops.addcmul_(ops.mul(fields[1], beta2), grads, grads, 1 - beta2)
        bc2 = _steps.coefficients(steps, lambda t: 1 - beta2**t)
        denom = ops.add_(ops.sqrt_(ops.div(v, bc2)), eps_)
        return ops.rdiv_(denom, grads), [steps, v]

    def update_fn(
        updates: Updates, state: ScaleByBiasCorrectedRmsState, params: Params | None = None, **extra
    ):
        del params, extra
        new_updates, new = update_leaves(
            rule, updates, [state.step, state.exp_avg_sq], name="scale_by_bias_corrected_rms"
        )
        return new_updates, ScaleByBiasCorrectedRmsState(*new)

    return GradientTransformation(init_fn, update_fn)
