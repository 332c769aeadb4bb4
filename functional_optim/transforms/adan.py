"""``scale_by_adan``: Adan's Nesterov-style moments of the gradient and its difference."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import After, Rule, RuleStep, Term, divided, rule_transform
from functional_optim.transforms import _steps

__all__ = ["ScaleByAdanState", "scale_by_adan"]


class ScaleByAdanState(NamedTuple):
    """Per-parameter state of [`scale_by_adan`][] (names as the authors' ``Adan``)."""

    step: Any
    exp_avg: Any
    exp_avg_diff: Any
    exp_avg_sq: Any
    pre_grad: Any


@schedulable("b1", "b2", "b3", "eps")
def scale_by_adan(
    b1: Hyperparam = 0.98, b2: Hyperparam = 0.92, b3: Hyperparam = 0.99, eps: Hyperparam = 1e-8
) -> GradientTransformation:
    r"""Adan's direction, in the authors' code convention (``β`` = weight of the *old* average).

    With ``t`` the parameter's step count and ``Δ_t = g_t - g_{t-1}`` (``Δ_1 = 0``):

    $$
    \begin{aligned}
    &m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
    d_t = \beta_2 d_{t-1} + (1-\beta_2) \Delta_t \\
    &n_t = \beta_3 n_{t-1} + (1-\beta_3) (g_t + \beta_2 \Delta_t)^2 \\
    &u_t = \frac{m_t/(1-\beta_1^t) + \beta_2\, d_t/(1-\beta_2^t)}{\sqrt{n_t}/\sqrt{1-\beta_3^t} + \epsilon}
    \end{aligned}
    $$

    This is Algorithm 1 of the paper, whose ``β`` are one minus these (paper ``β_2 = 0.08`` is
    ``b2 = 0.92`` here, and its ``(1-β_2)Δ`` is ``b2·Δ``), with the authors' bias correction.
    optax's ``scale_by_adan`` takes the code's defaults but weights ``Δ`` by ``1 - b2`` (0.08
    instead of 0.92): the two agree only at ``b2 = 0.5``.

    Args:
      b1: decay of the gradient average.
      b2: decay of the gradient-difference average (and the weight of ``Δ``).
      b3: decay of the second moment.
      eps: added to the denominator.

    Example:
      >>> tx = fo.scale_by_adan()
      >>> u, _ = tx.update([torch.tensor([0.5])], tx.init([torch.zeros(1)]))
      >>> u[0]
      tensor([1.])

    References:
      Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models",
      TPAMI 2024 (Algorithm 1); sail-sg/Adan.
    """
    for i, (name, b) in enumerate((("b1", b1), ("b2", b2), ("b3", b3))):
        _validation.beta(name, b, i)
    _validation.nonnegative("eps", eps, "epsilon value")

    def init_fn(params: Params) -> ScaleByAdanState:
        return ScaleByAdanState(
            step=_steps.zeros(params),
            exp_avg=tree.zeros_like(params),
            exp_avg_diff=tree.zeros_like(params),
            exp_avg_sq=tree.zeros_like(params),
            pre_grad=tree.zeros_like(params),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, beta3, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(b3), ops.scalar(eps)
        steps, m, d, n, prev = fields
        steps = _steps.increment(steps, in_place=in_place)
        later = _steps.coefficients(steps, lambda t: (t > 1) * 1.0)
        # Δ = g - g_prev, then z = g + β2·Δ, in one temporary: the previous gradient's buffer when
        # in place (as the authors' code), which then takes the new gradient
        diff = ops.add_(ops.neg(prev, in_place=in_place), grads)
        if not (ops.is_python_number(*later) and all(w == 1 for w in later)):
            diff = ops.mul_(diff, later)  # no difference at a parameter's first step
        m = ops.lerp(m, grads, 1 - beta1, in_place=in_place)
        d = ops.lerp(d, diff, 1 - beta2, in_place=in_place)
        z = ops.add_(ops.mul_(diff, beta2), grads)
        n = ops.addcmul_(ops.mul(n, beta3, in_place=in_place), z, z, 1 - beta3)
        prev = ops.assign(prev, grads, in_place=in_place)
        bc1 = _steps.coefficients(steps, lambda t: 1 - beta1**t)
        c2 = _steps.coefficients(steps, lambda t: beta2 / (1 - beta2**t))
        bc3_sqrt = _steps.coefficients(steps, lambda t: (1 - beta3**t) ** 0.5)
        denom = ops.add_(ops.div_(ops.sqrt(n), bc3_sqrt), eps_)
        # the authors' code: p.addcdiv_(m, denom, value=-lr / bc1), p.addcdiv_(d, denom, value=-lr·β2 / bc2)
        terms: list[Term | After] = [
            Term(m, denom, divided(bc1)),
            Term(d, denom, lambda scale: [scale * c for c in c2]),
        ]
        return RuleStep([steps, m, d, n, prev], terms)

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_adan",
            step,
            lambda state: [state.step, state.exp_avg, state.exp_avg_diff, state.exp_avg_sq, state.pre_grad],
            lambda new: ScaleByAdanState(*new),
            state_type=ScaleByAdanState,
        ),
    )
