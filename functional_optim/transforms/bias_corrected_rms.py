"""``scale_by_bias_corrected_rms``: divide by the bias-corrected root mean square (no momentum)."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, rule_transform, unscaled
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

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta2, eps_ = ops.scalar(b2), ops.scalar(eps)
        steps, v = _steps.increment(fields[0], in_place=in_place), fields[1]
        g_r = ops.view_as_real(grads)
        v_r = ops.addcmul_(ops.mul(ops.view_as_real(v), beta2, in_place=in_place), g_r, g_r, 1 - beta2)
        bc2 = _steps.coefficients(steps, lambda t: 1 - beta2**t)
        denom = ops.add_(ops.sqrt_(ops.div(v_r, bc2)), eps_)
        # g / denom written into the temporary denom (the update is a new tensor either way)
        return RuleStep(
            [steps, ops.view_as_complex_like(v_r, v)], [Term(ops.rdiv_(denom, g_r), None, unscaled)]
        )

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_bias_corrected_rms",
            step,
            lambda state: [state.step, state.exp_avg_sq],
            lambda new: ScaleByBiasCorrectedRmsState(*new),
            state_type=ScaleByBiasCorrectedRmsState,
        ),
    )
