"""``scale_by_adadelta``: Adadelta's ratio of running RMS of updates and gradients."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, rule_transform, unscaled
from functional_optim.transforms import _steps

__all__ = ["ScaleByAdadeltaState", "scale_by_adadelta"]


class ScaleByAdadeltaState(NamedTuple):
    """Per-parameter state of [`scale_by_adadelta`][] (names and meaning as ``torch.optim.Adadelta``)."""

    step: Any  # incremented but unused by the maths, as in torch
    square_avg: Any
    acc_delta: Any


@schedulable("rho", "eps")
def scale_by_adadelta(rho: Hyperparam = 0.9, eps: Hyperparam = 1e-6) -> GradientTransformation:
    r"""Scale updates by Adadelta's ratio of running RMS values.

    $$
    v_t = \rho v_{t-1} + (1-\rho) g_t^2,\qquad
    \Delta_t = \frac{\sqrt{a_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t,\qquad
    a_t = \rho a_{t-1} + (1-\rho) \Delta_t^2,\qquad u_t = \Delta_t
    $$

    ``eps`` sits inside both square roots, and the ops run in ``torch.optim.Adadelta``'s order
    (``sqrt(a+ε) / sqrt(v+ε) · g``). Follow it with ``scale_by_learning_rate(lr)`` (torch's
    ``lr`` defaults to 1.0). Complex tensors are treated as real tensors of shape ``(..., 2)``.

    Args:
      rho: decay of the running averages, in ``[0, 1]``.
      eps: added inside the square roots.

    Example::

        opt = fo.chain(fo.scale_by_adadelta(rho=0.9), fo.scale_by_learning_rate(1.0))

    References:
      Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.
    """
    _validation.require(lambda v: 0.0 <= v <= 1.0, rho, f"Invalid rho value: {rho}")
    _validation.nonnegative("eps", eps, "epsilon value")

    def init_fn(params: Params) -> ScaleByAdadeltaState:
        return ScaleByAdadeltaState(
            step=_steps.zeros(params), square_avg=tree.zeros_like(params), acc_delta=tree.zeros_like(params)
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        rho_, eps_ = ops.scalar(rho), ops.scalar(eps)
        steps, v, a = _steps.increment(fields[0], in_place=in_place), fields[1], fields[2]
        g_r, v_r, a_r = ops.view_as_real(grads), ops.view_as_real(v), ops.view_as_real(a)
        v_r = ops.addcmul_(ops.mul(v_r, rho_, in_place=in_place), g_r, g_r, 1 - rho_)
        std = ops.sqrt_(ops.add(v_r, eps_))
        delta = ops.mul_(ops.div_(ops.sqrt_(ops.add(a_r, eps_)), std), g_r)
        a_r = ops.addcmul_(ops.mul(a_r, rho_, in_place=in_place), delta, delta, 1 - rho_)
        new_fields = [steps, ops.view_as_complex_like(v_r, v), ops.view_as_complex_like(a_r, a)]
        # torch.optim.Adadelta: p.add_(delta, alpha=-lr)
        return RuleStep(new_fields, [Term(delta, None, unscaled)])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_adadelta",
            step,
            lambda st: [st.step, st.square_avg, st.acc_delta],
            lambda new: ScaleByAdadeltaState(*new),
            state_type=ScaleByAdadeltaState,
            sparse="Adadelta",
            replayable=True,
        ),
    )
