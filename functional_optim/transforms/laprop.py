"""``scale_by_laprop``: momentum over the gradient *already divided* by the RMS (LaProp)."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, divided, rule_transform
from functional_optim.transforms import _steps

__all__ = ["ScaleByLapropState", "scale_by_laprop"]


class ScaleByLapropState(NamedTuple):
    """Per-parameter state of [`scale_by_laprop`][] (names as ``torch.optim.Adam``)."""

    step: Any
    exp_avg: Any
    exp_avg_sq: Any
    max_exp_avg_sq: Any  # ``()`` unless amsgrad


@schedulable("b1", "b2", "eps")
def scale_by_laprop(
    b1: Hyperparam = 0.9, b2: Hyperparam = 0.999, eps: Hyperparam = 1e-15, *, amsgrad: bool = False
) -> GradientTransformation:
    r"""LaProp: decouple momentum from adaptivity by normalising the gradient first.

    With ``t`` the parameter's step count:

    $$
    \begin{aligned}
    &v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\qquad
    \hat v_t = \max(\hat v_{t-1}, v_t)\ \text{(amsgrad)},\ \text{else } v_t \\
    &m_t = \beta_1 m_{t-1} + (1-\beta_1) \frac{g_t}{\sqrt{\hat v_t / (1-\beta_2^t)} + \epsilon},\qquad
    u_t = \frac{m_t}{1-\beta_1^t}
    \end{aligned}
    $$

    The authors' code keeps the learning rate inside the momentum (``m ← β1 m + (1-β1)·lr·ĝ``,
    with a matching lr-weighted bias correction); with a constant learning rate the two are
    the same, with a schedule ours is momentum over the normalised gradients, scaled by the
    current rate.

    Args:
      b1: momentum ``β1``.
      b2: decay of the second moment.
      eps: added to the denominator (the paper uses ``1e-15``).
      amsgrad: use the running maximum of ``v`` (the authors' ``amsgrad``).

    Example:
      >>> tx = fo.scale_by_laprop()
      >>> u, _ = tx.update([torch.tensor([-4.0])], tx.init([torch.zeros(1)]))
      >>> u[0]
      tensor([-1.])

    References:
      Ziyin et al., "LaProp: Separating Momentum and Adaptivity in Adam", 2020 (Algorithm 1);
      Z-T-WANG/LaProp-Optimizer.
    """
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    _validation.nonnegative("eps", eps, "epsilon value")

    def init_fn(params: Params) -> ScaleByLapropState:
        return ScaleByLapropState(
            step=_steps.zeros(params),
            exp_avg=tree.zeros_like(params),
            exp_avg_sq=tree.zeros_like(params),
            max_exp_avg_sq=tree.zeros_like(params) if amsgrad else (),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        steps, m, v = fields[0], fields[1], fields[2]
        steps = _steps.increment(steps, in_place=in_place)
        v = ops.addcmul_(ops.mul(v, beta2, in_place=in_place), grads, grads, 1 - beta2)
        second = v
        if amsgrad:
            second = ops.maximum(fields[3], v, in_place=in_place)
        bc2 = _steps.coefficients(steps, lambda t: 1 - beta2**t)
        denom = ops.add_(ops.sqrt_(ops.div(second, bc2)), eps_)
        m = ops.lerp(m, ops.rdiv_(denom, grads), 1 - beta1, in_place=in_place)  # momentum of g / denom
        bc1 = _steps.coefficients(steps, lambda t: 1 - beta1**t)
        new_fields = [steps, m, v, *([second] if amsgrad else [])]
        # p.add_(m, alpha=-lr / bc1)
        return RuleStep(new_fields, [Term(m, None, divided(bc1))])

    def state_fields(state: ScaleByLapropState) -> list[Any]:
        return [state.step, state.exp_avg, state.exp_avg_sq, *([state.max_exp_avg_sq] if amsgrad else [])]

    def as_state(new: Any) -> ScaleByLapropState:
        return ScaleByLapropState(*new) if amsgrad else ScaleByLapropState._make((*new, ()))

    return rule_transform(
        init_fn, Rule("scale_by_laprop", step, state_fields, as_state, state_type=ScaleByLapropState)
    )
