"""``scale_by_radam``: Rectified Adam (Liu et al., 2020)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, divided, rule_transform, unscaled
from functional_optim.transforms import _steps

__all__ = ["ScaleByRAdamState", "scale_by_radam"]

_THRESHOLD = 5.0


class ScaleByRAdamState(NamedTuple):
    """Per-parameter state of [`scale_by_radam`][] (names and meaning as ``torch.optim.RAdam``)."""

    step: Any
    exp_avg: Any
    exp_avg_sq: Any


@schedulable("b1", "b2", "eps")
def scale_by_radam(
    b1: Hyperparam = 0.9, b2: Hyperparam = 0.999, eps: Hyperparam = 1e-8
) -> GradientTransformation:
    r"""Scale updates by Rectified Adam's moments.

    With ``t`` the parameter's step count after increment:

    $$
    \begin{aligned}
    &m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    &\rho_\infty = \frac{2}{1-\beta_2} - 1,\qquad
    \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t} \\
    &r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}} \\
    &u_t = \frac{m_t}{1-\beta_1^t}\cdot\frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon}\cdot r_t
    \ \text{ if } \rho_t > 5,\quad\text{else } u_t = \frac{m_t}{1-\beta_1^t}
    \end{aligned}
    $$

    ``eps`` is added to the *uncorrected* ``sqrt(v)`` and the threshold is ``rho_t > 5``, exactly
    as ``torch.optim.RAdam`` (with the default betas the first rectified step is ``t = 6``). The
    choice is made per parameter, from its own step count. Complex tensors are treated as real
    tensors of shape ``(..., 2)``.

    The update is described as one term (`fo.rules`): rectified, the
    adapters apply it as ``p.addcdiv_(m, √v + ε, value=-lr·r_t·√(1-β₂ᵗ)/(1-β₁ᵗ))`` (one
    update-sized temporary, the denominator, as ``torch.optim.RAdam``'s foreach path), and
    before that as ``p.add_(m, alpha=-lr/(1-β₁ᵗ))`` (none).

    Args:
      b1: decay of the first moment (``betas[0]``).
      b2: decay of the second moment (``betas[1]``).
      eps: added to ``sqrt(v)``.

    Example::

        radam = chain(scale_by_radam(), scale_by_learning_rate(1e-3))

    References:
      Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.
    """
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)

    def init_fn(params: Params) -> ScaleByRAdamState:
        return ScaleByRAdamState(
            step=_steps.zeros(params), exp_avg=tree.zeros_like(params), exp_avg_sq=tree.zeros_like(params)
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        rho_inf = 2 / (1 - beta2) - 1

        def rho(t: Any) -> Any:
            return rho_inf - 2 * t * (beta2**t) / (1 - beta2**t)

        def rect(r: Any) -> Any:
            return ((r - 4) * (r - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * r)) ** 0.5

        steps, m, v = fields
        g_r, m_r, v_r = ops.view_as_real(grads), ops.view_as_real(m), ops.view_as_real(v)
        steps = _steps.increment(steps, in_place=in_place)
        m_r = ops.lerp(m_r, g_r, 1 - beta1, in_place=in_place)
        v_r = ops.addcmul_(ops.mul(v_r, beta2, in_place=in_place), g_r, g_r, 1 - beta2)
        bc1 = _steps.coefficients(steps, lambda t: 1 - beta1**t)
        rhos = _steps.coefficients(steps, rho)
        sqrt_bc2 = _steps.coefficients(steps, lambda t: (1 - beta2**t) ** 0.5)
        new_fields = [steps, ops.view_as_complex_like(m_r, m), ops.view_as_complex_like(v_r, v)]
        if rhos and isinstance(rhos[0], float):
            rectified = [r > _THRESHOLD for r in rhos]
            if not any(rectified):  # the first steps: p ← p + s · m / bc1
                return RuleStep(new_fields, [Term(m_r, None, divided(bc1))])
            if all(rectified):
                # p ← p + s · (r_t · √bc2 / bc1) · m / (√v + ε): one temporary (the denominator),
                # applied with one ``addcdiv_`` as Adam's update
                coef = [r * c2 / c1 for r, c2, c1 in zip(map(rect, rhos), sqrt_bc2, bc1, strict=True)]
                denom = ops.add_(ops.sqrt(v_r), eps_)
                return RuleStep(new_fields, [Term(m_r, denom, lambda s: [s * c for c in coef])])
            # parameters at different steps, some rectified: the update materialised
            out = ops.div(m_r, bc1)
            idx = [i for i, r in enumerate(rectified) if r]
            denom = ops.add_(ops.sqrt([v_r[i] for i in idx]), eps_)
            for i, d in zip(idx, denom, strict=True):
                out[i] = out[i].mul_(sqrt_bc2[i] * rect(rhos[i])).div_(d)
        else:  # traced step counters: select without reading them (torch's capturable form)
            m_hat = ops.div(m_r, bc1)
            adaptive = ops.mul(ops.reciprocal(ops.add(ops.sqrt(v_r), eps_)), sqrt_bc2)
            out = [
                mh * torch.where(r > _THRESHOLD, rect(torch.clamp(r, min=_THRESHOLD)) * a, 1.0)
                for mh, a, r in zip(m_hat, adaptive, rhos, strict=True)
            ]
        return RuleStep(new_fields, [Term(out, None, unscaled)])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_radam",
            step,
            lambda st: [st.step, st.exp_avg, st.exp_avg_sq],
            lambda new: ScaleByRAdamState(*new),
            state_type=ScaleByRAdamState,
            sparse="RAdam",
            replayable=True,
        ),
    )
