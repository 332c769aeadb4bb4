"""``scale_by_rms``: RMSprop's running mean of squared gradients (centered, with momentum)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, rule_transform, unscaled
from functional_optim.transforms import _steps

__all__ = ["ScaleByRmsState", "scale_by_rms"]


class ScaleByRmsState(NamedTuple):
    """Per-parameter state of [`scale_by_rms`][] (names and key order as ``torch.optim.RMSprop``)."""

    step: Any  # incremented but unused by the maths, as in torch
    square_avg: Any
    momentum_buffer: Any  # ``()`` unless momentum > 0
    grad_avg: Any  # ``()`` unless centered


@schedulable("alpha", "eps", "momentum")
def scale_by_rms(
    alpha: Hyperparam = 0.99, eps: Hyperparam = 1e-8, centered: bool = False, momentum: Hyperparam = 0
) -> GradientTransformation:
    r"""Scale updates by the root mean square of past gradients (RMSprop).

    $$
    \begin{aligned}
    &v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\qquad
    \bar g_t = \bar g_{t-1} + (1-\alpha)(g_t - \bar g_{t-1})\ \text{(centered)} \\
    &d_t = \sqrt{v_t - \bar g_t^2} + \epsilon\ \text{(centered), else } \sqrt{v_t} + \epsilon \\
    &b_t = \mu b_{t-1} + g_t / d_t,\quad
    u_t = b_t\ \text{(momentum } \mu > 0\text{), else } u_t = g_t / d_t
    \end{aligned}
    $$

    ``eps`` is added outside the square root, as in ``torch.optim.RMSprop``. Torch keeps the
    momentum buffer *without* the learning rate (``buf = μ·buf + g/avg``, ``p -= lr·buf``), so the
    buffer here is the same tensor and ``lr`` is applied afterwards by
    [`scale_by_learning_rate`][]: ``chain(scale_by_rms(...), scale_by_learning_rate(lr))`` is
    RMSprop. The only numerical difference is where ``lr`` enters the product: torch computes
    ``(-lr·g)/avg`` in one ``addcdiv`` without momentum, here ``-lr·(g/avg)`` (about one ulp).
    Complex tensors are treated as real tensors of shape ``(..., 2)``.

    Args:
      alpha: smoothing constant of the running averages.
      eps: added to the denominator, outside the square root.
      centered: normalise by the estimated variance ``v - ḡ²`` instead of ``v``.
      momentum: momentum factor ``μ`` (0 disables the buffer).

    Example::

        opt = fo.chain(fo.scale_by_rms(alpha=0.99, momentum=0.9), fo.scale_by_learning_rate(1e-2))

    References:
      Hinton, "Lecture 6e: rmsprop", Neural Networks for Machine Learning (Coursera), 2012.
      Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850 (centered).
    """
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.nonnegative("momentum", momentum, "momentum value")
    _validation.nonnegative("alpha", alpha, "alpha value")
    # torch creates the momentum buffer only when momentum > 0; a schedule/traced value keeps it.
    mom_value = _validation.value_of(momentum)
    use_momentum = mom_value is None or mom_value > 0

    def init_fn(params: Params) -> ScaleByRmsState:
        return ScaleByRmsState(
            step=_steps.zeros(params),
            square_avg=tree.zeros_like(params),
            momentum_buffer=tree.zeros_like(params) if use_momentum else (),
            grad_avg=tree.zeros_like(params) if centered else (),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        alpha_, eps_, mu = ops.scalar(alpha), ops.scalar(eps), ops.scalar(momentum)
        steps, v = _steps.increment(fields[0], in_place=in_place), fields[1]
        rest = iter(fields[2:])
        buf = next(rest) if use_momentum else []  # read only with momentum
        ga = next(rest) if centered else []  # read only when centered
        g_r, v_r = ops.view_as_real(grads), ops.view_as_real(v)
        v_r = ops.addcmul_(ops.mul(v_r, alpha_, in_place=in_place), g_r, g_r, 1 - alpha_)
        new_fields = [steps, ops.view_as_complex_like(v_r, v)]
        if centered:
            ga_r = ops.lerp(ops.view_as_real(ga), g_r, 1 - alpha_, in_place=in_place)
            avg = ops.sqrt(ops.addcmul(v_r, ga_r, ga_r, -1))
        else:
            avg = ops.sqrt(v_r)
        avg = ops.add_(avg, eps_)
        if use_momentum:
            # torch.optim.RMSprop: buf.mul_(μ).addcdiv_(g, avg); p.add_(buf, alpha=-lr)
            buf_r = ops.addcdiv_(ops.mul(ops.view_as_real(buf), mu, in_place=in_place), g_r, avg)
            new_fields.append(ops.view_as_complex_like(buf_r, buf))
            term = Term(buf_r, None, unscaled)
        else:
            term = Term(g_r, avg, unscaled)  # p.addcdiv_(g, avg, value=-lr)
        if centered:
            new_fields.append(ops.view_as_complex_like(ga_r, ga))
        return RuleStep(new_fields, [term])

    def state_fields(state: ScaleByRmsState) -> list[Any]:
        fields = [state.step, state.square_avg]
        if use_momentum:
            fields.append(state.momentum_buffer)
        if centered:
            fields.append(state.grad_avg)
        return fields

    def as_state(new: Sequence[Any]) -> ScaleByRmsState:
        it = iter(new)
        step, square_avg = next(it), next(it)
        buf = next(it) if use_momentum else ()
        grad_avg = next(it) if centered else ()
        return ScaleByRmsState(step, square_avg, buf, grad_avg)

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_rms",
            step,
            state_fields,
            as_state,
            state_type=ScaleByRmsState,
            sparse="RMSprop",
            replayable=True,
        ),
    )
