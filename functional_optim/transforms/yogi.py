"""``scale_by_yogi``: Adam with Yogi's additive (sign-controlled) second-moment update."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, divided, rule_transform
from functional_optim.transforms import _steps

__all__ = ["ScaleByYogiState", "scale_by_yogi"]


class ScaleByYogiState(NamedTuple):
    """Per-parameter state of [`scale_by_yogi`][] (names as ``torch.optim.Adam``)."""

    step: Any
    exp_avg: Any
    exp_avg_sq: Any


@schedulable("b1", "b2", "eps")
def scale_by_yogi(
    b1: Hyperparam = 0.9, b2: Hyperparam = 0.999, eps: Hyperparam = 1e-3, initial_accumulator: float = 1e-6
) -> GradientTransformation:
    r"""Yogi: the second moment moves additively, towards ``g²`` by at most ``(1-β2) g²``.

    With ``t`` the parameter's step count and both moments starting at ``initial_accumulator``:

    $$
    \begin{aligned}
    &m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
    v_t = v_{t-1} - (1-\beta_2)\,\operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2 \\
    &u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}
    \end{aligned}
    $$

    Bias correction and the initial accumulator follow optax's ``scale_by_yogi`` (and the
    authors' TensorFlow Addons ``Yogi``, which starts ``v`` at ``1e-6`` too); the paper's
    Algorithm 2 has neither.

    Args:
      b1: decay of the first moment.
      b2: rate ``β2`` of the second-moment update.
      eps: added to the denominator (the paper recommends ``1e-3``).
      initial_accumulator: starting value of both moments.

    Example:
      >>> tx = fo.scale_by_yogi()
      >>> u, _ = tx.update([torch.tensor([1.0])], tx.init([torch.zeros(1)]))
      >>> u[0]
      tensor([0.9985])

    References:
      Zaheer et al., "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018.
    """
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.nonnegative("initial_accumulator", initial_accumulator)

    def init_fn(params: Params) -> ScaleByYogiState:
        def full() -> Any:  # a new tensor per moment: the adapters update them in place
            return tree.map(lambda p: None if p is None else p.new_full(p.shape, initial_accumulator), params)

        return ScaleByYogiState(step=_steps.zeros(params), exp_avg=full(), exp_avg_sq=full())

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        steps, m, v = fields
        steps = _steps.increment(steps, in_place=in_place)
        m = ops.lerp(m, grads, 1 - beta1, in_place=in_place)
        g2 = ops.mul(grads, grads)
        v = ops.addcmul(v, ops.sign_(ops.sub(v, g2)), g2, -(1 - beta2), in_place=in_place)
        bc1 = _steps.coefficients(steps, lambda t: 1 - beta1**t)
        bc2 = _steps.coefficients(steps, lambda t: 1 - beta2**t)
        denom = ops.add_(ops.sqrt_(ops.div(v, bc2)), eps_)
        # p.addcdiv_(m, denom, value=-lr / bc1), as pytorch-optimizer's Yogi
        return RuleStep([steps, m, v], [Term(m, denom, divided(bc1))])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_yogi",
            step,
            lambda state: [state.step, state.exp_avg, state.exp_avg_sq],
            lambda new: ScaleByYogiState(*new),
            state_type=ScaleByYogiState,
        ),
    )
