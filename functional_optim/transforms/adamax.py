"""``scale_by_adamax``: Adamax's first moment over an exponentially weighted infinity norm."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, divided, rule_transform
from functional_optim.transforms import _steps

__all__ = ["ScaleByAdamaxState", "scale_by_adamax"]


class ScaleByAdamaxState(NamedTuple):
    """Per-parameter state of [`scale_by_adamax`][] (names and meaning as ``torch.optim.Adamax``)."""

    step: Any
    exp_avg: Any
    exp_inf: Any


@schedulable("b1", "b2", "eps")
def scale_by_adamax(
    b1: Hyperparam = 0.9, b2: Hyperparam = 0.999, eps: Hyperparam = 1e-8
) -> GradientTransformation:
    r"""Scale updates by Adamax's bias-corrected first moment over the infinity norm.

    With ``t`` the parameter's step count after increment:

    $$
    \begin{aligned}
    &m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
    u^{\infty}_t = \max(\beta_2 u^{\infty}_{t-1},\ |g_t| + \epsilon) \\
    &u_t = \frac{m_t}{u^{\infty}_t\,(1-\beta_1^t)}
    \end{aligned}
    $$

    ``eps`` sits *inside* the maximum, exactly as ``torch.optim.Adamax``. Complex tensors are
    treated as real tensors of shape ``(..., 2)``, as in torch.

    Args:
      b1: decay of the first moment (``betas[0]``).
      b2: decay of the infinity norm (``betas[1]``).
      eps: added to ``|g|`` inside the maximum.

    Example::

        adamax = chain(scale_by_adamax(), scale_by_learning_rate(2e-3))

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (section 7.1).
    """
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)

    def init_fn(params: Params) -> ScaleByAdamaxState:
        return ScaleByAdamaxState(
            step=_steps.zeros(params), exp_avg=tree.zeros_like(params), exp_inf=tree.zeros_like(params)
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        steps, m, u = fields
        g_r, m_r, u_r = ops.view_as_real(grads), ops.view_as_real(m), ops.view_as_real(u)
        steps = _steps.increment(steps, in_place=in_place)
        m_r = ops.lerp(m_r, g_r, 1 - beta1, in_place=in_place)
        u_r = ops.maximum_(ops.mul(u_r, beta2, in_place=in_place), ops.add_(ops.abs(g_r), eps_))
        bc1 = _steps.coefficients(steps, lambda t: 1 - beta1**t)
        new_fields = [steps, ops.view_as_complex_like(m_r, m), ops.view_as_complex_like(u_r, u)]
        # torch.optim.Adamax: p.addcdiv_(m, u_inf, value=-lr / bc1)
        return RuleStep(new_fields, [Term(m_r, u_r, divided(bc1))])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_adamax",
            step,
            lambda state: [state.step, state.exp_avg, state.exp_inf],
            lambda new: ScaleByAdamaxState(*new),
            state_type=ScaleByAdamaxState,
            sparse="Adamax",
            replayable=True,
        ),
    )
