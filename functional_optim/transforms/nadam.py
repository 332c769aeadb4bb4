"""``scale_by_nadam``: Adam with Nesterov momentum and momentum decay (Dozat, 2016)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import After, Rule, RuleStep, Term, rule_transform
from functional_optim.transforms import _steps

__all__ = ["ScaleByNAdamState", "scale_by_nadam"]


class ScaleByNAdamState(NamedTuple):
    """Per-parameter state of [`scale_by_nadam`][] (names and meaning as ``torch.optim.NAdam``).

    ``mu_product`` is a 0-dim CPU tensor of ``step``'s dtype starting at 1: the running product
    of the momentum coefficients ``mu_1 ... mu_t``.
    """

    step: Any
    mu_product: Any
    exp_avg: Any
    exp_avg_sq: Any


def _ones(params: Params) -> Any:
    dtype = _steps.scalar_dtype()
    return tree.map(lambda p: None if p is None else torch.ones((), dtype=dtype), params)


def _times(product: Tensor, mu: Any, *, in_place: bool) -> Tensor:
    """``mu_product * mu``. In the state's dtype (float32 by default, as torch; also under
    ``torch.compile``), except when ``mu`` is a tensor that gradients may flow through (``b1`` or
    ``momentum_decay`` requiring grad, or under ``torch.func``): then the product keeps ``mu``'s
    float64 precision, so that hyper-gradients are not those of a float32-quantised product.
    ``in_place``: written into ``product`` (torch's ``mu_product *= mu``) when ``mu`` is a number."""
    if in_place and isinstance(mu, float) and ops.writable([product]):
        return product.mul_(mu)
    if (
        isinstance(mu, Tensor)
        and not torch.compiler.is_compiling()
        and (mu.requires_grad or torch._C._functorch.is_functorch_wrapped_tensor(mu))
    ):
        return product.to(torch.promote_types(product.dtype, mu.dtype)) * mu
    return (product * mu).to(product.dtype)


@schedulable("b1", "b2", "eps", "momentum_decay")
def scale_by_nadam(
    b1: Hyperparam = 0.9, b2: Hyperparam = 0.999, eps: Hyperparam = 1e-8, momentum_decay: Hyperparam = 4e-3
) -> GradientTransformation:
    r"""Scale updates by NAdam's Nesterov-corrected moments.

    With ``t`` the parameter's step count after increment and ``\psi`` the momentum decay:

    $$
    \begin{aligned}
    &\mu_t = \beta_1 (1 - \tfrac12\, 0.96^{t\psi}),\qquad
    \mu_{t+1} = \beta_1 (1 - \tfrac12\, 0.96^{(t+1)\psi}),\qquad
    \Pi_t = \Pi_{t-1}\,\mu_t\ (\Pi_0 = 1) \\
    &m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\qquad
    d_t = \sqrt{v_t / (1-\beta_2^t)} + \epsilon \\
    &u_t = \frac{1-\mu_t}{1-\Pi_t}\,\frac{g_t}{d_t} + \frac{\mu_{t+1}}{1-\Pi_t\,\mu_{t+1}}\,\frac{m_t}{d_t}
    \end{aligned}
    $$

    Numerics follow ``torch.optim.NAdam``'s for-loop implementation: ``\mu_t`` in Python double,
    ``\Pi_t`` updated in the state's (float32 by default) tensor arithmetic and read back as a
    Python number, ``v`` divided by the bias correction *before* the square root. Complex tensors
    are treated as real tensors of shape ``(..., 2)``.

    Args:
      b1: decay of the first moment (``betas[0]``).
      b2: decay of the second moment (``betas[1]``).
      eps: added to the denominator after the square root.
      momentum_decay: ``\psi``, how fast ``\mu_t`` approaches ``\beta_1``.

    Example::

        nadam = chain(scale_by_nadam(), scale_by_learning_rate(2e-3))

    References:
      Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
    """
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    _validation.nonnegative("momentum_decay", momentum_decay, "momentum_decay value")

    def init_fn(params: Params) -> ScaleByNAdamState:
        return ScaleByNAdamState(
            step=_steps.zeros(params),
            mu_product=_ones(params),
            exp_avg=tree.zeros_like(params),
            exp_avg_sq=tree.zeros_like(params),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        psi = ops.scalar(momentum_decay)
        steps, mu_products, m, v = fields
        g_r, m_r, v_r = ops.view_as_real(grads), ops.view_as_real(m), ops.view_as_real(v)
        steps = _steps.increment(steps, in_place=in_place)
        bc2 = _steps.coefficients(steps, lambda t: 1 - beta2**t)
        mus = _steps.coefficients(steps, lambda t: beta1 * (1.0 - 0.5 * 0.96 ** (t * psi)))
        mu_nexts = _steps.coefficients(steps, lambda t: beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi)))
        # torch: ``mu_product *= mu`` in the state tensor's dtype, then ``.item()``.
        mu_products = [_times(p, mu, in_place=in_place) for p, mu in zip(mu_products, mus, strict=True)]
        prods = ops.step_values(mu_products)
        m_r = ops.lerp(m_r, g_r, 1 - beta1, in_place=in_place)
        v_r = ops.addcmul_(ops.mul(v_r, beta2, in_place=in_place), g_r, g_r, 1 - beta2)
        denom = ops.add_(ops.sqrt_(ops.div(v_r, bc2)), eps_)
        new_fields = [steps, mu_products, ops.view_as_complex_like(m_r, m), ops.view_as_complex_like(v_r, v)]
        # torch.optim.NAdam: two addcdiv_ with -lr·(1-μ)/(1-Π) on g/denom and -lr·μ'/(1-Π·μ') on m/denom
        terms: list[Term | After] = [
            Term(
                g_r, denom, lambda s: [s * (1.0 - mu) / (1.0 - pr) for mu, pr in zip(mus, prods, strict=True)]
            ),
            Term(
                m_r,
                denom,
                lambda s: [s * mn / (1.0 - pr * mn) for mn, pr in zip(mu_nexts, prods, strict=True)],
            ),
        ]
        return RuleStep(new_fields, terms)

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_nadam",
            step,
            lambda state: [state.step, state.mu_product, state.exp_avg, state.exp_avg_sq],
            lambda new: ScaleByNAdamState(*new),
            state_type=ScaleByNAdamState,
            sparse="NAdam",
            replayable=True,
        ),
    )
