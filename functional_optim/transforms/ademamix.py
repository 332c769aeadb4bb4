"""``scale_by_ademamix``: Adam with a second, slow momentum added to the numerator (AdEMAMix)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, rule_transform, unscaled
from functional_optim.transforms import _steps

__all__ = ["ScaleByAdemamixState", "ademamix_alpha_warmup", "ademamix_beta3_warmup", "scale_by_ademamix"]


class ScaleByAdemamixState(NamedTuple):
    """Per-parameter state of [`scale_by_ademamix`][] (names as the authors' ``AdEMAMix``)."""

    step: Any
    exp_avg_fast: Any
    exp_avg_slow: Any
    exp_avg_sq: Any


def ademamix_alpha_warmup(alpha: float, warmup: int) -> Callable[[Any], Any]:
    """The paper's linear warmup of ``α`` as a schedule of the update count ``c`` (``0, 1, ...``):
    ``min((c+1)·α / T, α)``."""
    return lambda count: min((count + 1) * alpha / warmup, alpha)


def ademamix_beta3_warmup(beta_start: float, beta_end: float, warmup: int) -> Callable[[Any], Any]:
    """The paper's warmup of ``β3`` (linear in the half-life ``ln 0.5 / ln β - 1``) as a schedule
    of the update count ``c``: from ``beta_start`` (the paper uses ``β1``) to ``beta_end``."""

    def half_life(beta: float) -> float:  # the authors' code adds 1e-8 to beta here; the paper does not
        return math.log(0.5) / math.log(beta) - 1.0

    def schedule(count: Any) -> Any:
        step = float(count) + 1
        if step >= warmup:
            return beta_end
        a = step / warmup
        return 0.5 ** (1.0 / ((1.0 - a) * half_life(beta_start) + a * half_life(beta_end) + 1))

    return schedule


@schedulable("b1", "b2", "b3", "alpha", "eps")
def scale_by_ademamix(
    b1: Hyperparam = 0.9,
    b2: Hyperparam = 0.999,
    b3: Hyperparam = 0.9999,
    alpha: Hyperparam = 2.0,
    eps: Hyperparam = 1e-8,
) -> GradientTransformation:
    r"""AdEMAMix: a fast (bias-corrected) and a slow (not corrected) momentum over Adam's denominator.

    With ``t`` the parameter's step count:

    $$
    \begin{aligned}
    &m^{(1)}_t = \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g_t,\quad
    m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1-\beta_3) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    &u_t = \frac{m^{(1)}_t / (1-\beta_1^t) + \alpha\, m^{(2)}_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}
    \end{aligned}
    $$

    ``b3`` and ``alpha`` accept schedules: [`ademamix_beta3_warmup`][] and
    [`ademamix_alpha_warmup`][] are the paper's warmups.

    Args:
      b1: decay of the fast momentum.
      b2: decay of the second moment.
      b3: decay of the slow momentum.
      alpha: weight of the slow momentum.
      eps: added to the denominator.

    Example:
      >>> tx = fo.scale_by_ademamix(alpha=0.0)
      >>> u, _ = tx.update([torch.tensor([-3.0])], tx.init([torch.zeros(1)]))
      >>> u[0]
      tensor([-1.0000])

    References:
      Pagliardini et al., "The AdEMAMix Optimizer: Better, Faster, Older", ICLR 2025 (Algorithm 1);
      apple/ml-ademamix.
    """
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    _validation.beta("b3", b3, 2)
    _validation.nonnegative("alpha", alpha)
    _validation.nonnegative("eps", eps, "epsilon value")

    def init_fn(params: Params) -> ScaleByAdemamixState:
        return ScaleByAdemamixState(
            step=_steps.zeros(params),
            exp_avg_fast=tree.zeros_like(params),
            exp_avg_slow=tree.zeros_like(params),
            exp_avg_sq=tree.zeros_like(params),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, beta3 = ops.scalar(b1), ops.scalar(b2), ops.scalar(b3)
        alpha_, eps_ = ops.scalar(alpha), ops.scalar(eps)
        steps, fast, slow, v = fields
        steps = _steps.increment(steps, in_place=in_place)
        fast = ops.lerp(fast, grads, 1 - beta1, in_place=in_place)
        slow = ops.lerp(slow, grads, 1 - beta3, in_place=in_place)
        v = ops.addcmul_(ops.mul(v, beta2, in_place=in_place), grads, grads, 1 - beta2)
        bc1 = _steps.coefficients(steps, lambda t: 1 - beta1**t)
        bc2_sqrt = _steps.coefficients(steps, lambda t: (1 - beta2**t) ** 0.5)
        denom = ops.add_(ops.div_(ops.sqrt(v), bc2_sqrt), eps_)
        numer = ops.add_(ops.div(fast, bc1), slow, alpha=alpha_)
        # the authors' code: p.add_(-lr · (m1/bc1 + α·m2) / denom), one addcdiv_ as pytorch-optimizer
        return RuleStep([steps, fast, slow, v], [Term(numer, denom, unscaled)])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_ademamix",
            step,
            lambda state: [state.step, state.exp_avg_fast, state.exp_avg_slow, state.exp_avg_sq],
            lambda new: ScaleByAdemamixState(*new),
            state_type=ScaleByAdemamixState,
        ),
    )
