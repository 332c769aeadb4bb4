"""``scale_by_belief``: AdaBelief's moments (the variance of the gradient around its mean)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, divided, rule_transform, unscaled
from functional_optim.transforms import _steps

__all__ = ["ScaleByBeliefState", "scale_by_belief"]


class ScaleByBeliefState(NamedTuple):
    """Per-parameter state of [`scale_by_belief`][] (names as adabelief-pytorch)."""

    step: Any
    exp_avg: Any
    exp_avg_var: Any
    max_exp_avg_var: Any  # ``()`` unless amsgrad


def _rectified(t: float, b1: float, b2: float, degenerated_to_sgd: bool) -> tuple[str, float]:
    """RAdam's rectification at step ``t``: ``("adaptive", r/bc1·sqrt(bc2))``, ``("sgd", 1/bc1)``
    or ``("none", 0)`` (adabelief-pytorch's ``rectify=True`` branch)."""
    b2t = b2**t
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2t / (1 - b2t)
    if rho >= 5:
        r = (rho - 4) / (rho_inf - 4) * (rho - 2) / rho * rho_inf / (rho_inf - 2)
        return "adaptive", math.sqrt((1 - b2t) * r) / (1 - b1**t)
    if degenerated_to_sgd:
        return "sgd", 1.0 / (1 - b1**t)
    return "none", 0.0


@schedulable("b1", "b2", "eps")
def scale_by_belief(
    b1: Hyperparam = 0.9,
    b2: Hyperparam = 0.999,
    eps: Hyperparam = 1e-16,
    *,
    amsgrad: bool = False,
    rectify: bool = False,
    degenerated_to_sgd: bool = True,
) -> GradientTransformation:
    r"""AdaBelief: Adam with the second moment of ``g - m`` ("belief") instead of ``g``.

    With ``t`` the parameter's step count:

    $$
    \begin{aligned}
    &m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
    s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon \\
    &\hat s_t = \max(\hat s_{t-1}, s_t)\ \text{(amsgrad)},\ \text{else } s_t \\
    &u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{\hat s_t} / \sqrt{1-\beta_2^t} + \epsilon}
    \end{aligned}
    $$

    ``eps`` enters twice, as in the paper's Algorithm 2 and adabelief-pytorch: it is added to
    the stored ``s_t`` and again to the denominator (optax adds its ``eps_root`` to the stored
    ``s`` too, but bias-corrects before the square root: the same value up to rounding).

    With ``rectify=True`` the step is rectified as RAdam (adabelief-pytorch's default): while
    the variance of the adaptive rate is intractable (``ρ_t < 5``) the update is ``m_t/(1-β1^t)``
    (``degenerated_to_sgd``) or zero, afterwards ``r_t\,\sqrt{1-β_2^t}\, m_t / ((1-β_1^t)(\sqrt{s_t}+ε))``.

    Args:
      b1: decay of the first moment.
      b2: decay of the belief (second central moment).
      eps: added to ``s_t`` and to the denominator.
      amsgrad: keep the running maximum of ``s_t``.
      rectify: RAdam's rectification (adabelief-pytorch ``rectify``).
      degenerated_to_sgd: with ``rectify``, take momentum-SGD steps while ``ρ_t < 5``.

    Example:
      >>> tx = fo.scale_by_belief()
      >>> u, _ = tx.update([torch.tensor([2.0, -1.0])], tx.init([torch.zeros(2)]))
      >>> u[0]
      tensor([ 1.1111, -1.1111])

    References:
      Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
      Gradients", NeurIPS 2020 (Algorithm 2). adabelief-pytorch 0.2.
    """
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    _validation.nonnegative("eps", eps, "epsilon value")

    def init_fn(params: Params) -> ScaleByBeliefState:
        return ScaleByBeliefState(
            step=_steps.zeros(params),
            exp_avg=tree.zeros_like(params),
            exp_avg_var=tree.zeros_like(params),
            max_exp_avg_var=tree.zeros_like(params) if amsgrad else (),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        steps, m, s = fields[0], fields[1], fields[2]
        if rectify and (not ops.is_python_number(beta1, beta2) or ops.is_traced(steps[0])):
            raise TypeError("scale_by_belief: rectify=True needs concrete float betas and step counters")
        steps = _steps.increment(steps, in_place=in_place)
        m = ops.lerp(m, grads, 1 - beta1, in_place=in_place)
        residual = ops.sub(grads, m)
        s = ops.add_(ops.addcmul_(ops.mul(s, beta2, in_place=in_place), residual, residual, 1 - beta2), eps_)
        new_fields = [steps, m, s]
        second = s
        if amsgrad:
            second = ops.maximum(fields[3], s, in_place=in_place)
            new_fields.append(second)
        if not rectify:
            bc1 = _steps.coefficients(steps, lambda t: 1 - beta1**t)
            bc2_sqrt = _steps.coefficients(steps, lambda t: (1 - beta2**t) ** 0.5)
            denom = ops.add_(ops.div_(ops.sqrt(second), bc2_sqrt), eps_)
            # adabelief-pytorch: p.addcdiv_(m, denom, value=-lr / bc1)
            return RuleStep(new_fields, [Term(m, denom, divided(bc1))])
        b1f, b2f = cast(float, beta1), cast(float, beta2)  # Python numbers (checked above)
        rule = _steps.coefficients(steps, lambda t: _rectified(t, b1f, b2f, degenerated_to_sgd))
        # the adaptive rectified step divides by s_t, not by its AMSGrad maximum (as the package)
        if all(kind == "adaptive" for kind, _ in rule):  # past the first steps: one addcdiv_
            cs = [c for _, c in rule]
            denom = ops.add_(ops.sqrt(s), eps_)
            return RuleStep(new_fields, [Term(m, denom, lambda scale: [scale * c for c in cs])])
        out = []
        for mi, si, (kind, c) in zip(m, s, rule, strict=True):
            if kind == "adaptive":
                out.append(mi * c / (torch.sqrt(si) + eps_))
            else:
                out.append(mi * c)
        return RuleStep(new_fields, [Term(out, None, unscaled)])

    def state_fields(state: ScaleByBeliefState) -> list[Any]:
        return [state.step, state.exp_avg, state.exp_avg_var, *([state.max_exp_avg_var] if amsgrad else [])]

    def as_state(new: Any) -> ScaleByBeliefState:
        return ScaleByBeliefState(*new) if amsgrad else ScaleByBeliefState._make((*new, ()))

    return rule_transform(
        init_fn, Rule("scale_by_belief", step, state_fields, as_state, state_type=ScaleByBeliefState)
    )
