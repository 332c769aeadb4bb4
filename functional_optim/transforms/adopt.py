"""``scale_by_adopt``: ADOPT, momentum of the gradient normalised by the *previous* second moment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, rule_transform, unscaled
from functional_optim.transforms import _steps

__all__ = ["ScaleByAdoptState", "adopt_clip", "scale_by_adopt"]


class ScaleByAdoptState(NamedTuple):
    """Per-parameter state of [`scale_by_adopt`][] (names as the authors' ``ADOPT``)."""

    step: Any
    exp_avg: Any
    exp_avg_sq: Any


def _like(c: Any, x: Tensor) -> Any:
    """A coefficient in ``x``'s dtype when it is a tensor (a Python number is left as it is)."""
    return c.to(x.dtype) if isinstance(c, Tensor) else c


def _lerp(xs: list[Tensor], ys: list[Tensor], weights: list[Any], *, in_place: bool) -> list[Tensor]:
    """``lerp(x, y, w)`` with one weight per tensor (one call when they are one number)."""
    if ops.is_python_number(*weights) and len(set(weights)) == 1:
        return ops.lerp(xs, ys, weights[0], in_place=in_place)
    return [ops.lerp([x], [y], w, in_place=in_place)[0] for x, y, w in zip(xs, ys, weights, strict=True)]


def adopt_clip(t: Any) -> Any:
    """The paper's clipping threshold ``c_t = t^{1/4}``."""
    return t**0.25


@schedulable("b1", "b2", "eps")
def scale_by_adopt(
    b1: Hyperparam = 0.9,
    b2: Hyperparam = 0.9999,
    eps: Hyperparam = 1e-6,
    clip_lambda: Callable[[Any], Any] | None = adopt_clip,
) -> GradientTransformation:
    r"""ADOPT: normalise the gradient by the second moment *before* it sees that gradient,
    then take momentum (Algorithm 2 of the paper, with clipping).

    A parameter's first gradient only initialises ``v_0 = g_0^2`` (the update is zero). Then,
    for its ``t``-th update (``t = 1, 2, ...``):

    $$
    \begin{aligned}
    &m_t = \beta_1 m_{t-1} + (1-\beta_1)\,
          \operatorname{clip}\Big(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, c_t\Big),\qquad
    u_t = m_t \\
    &v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2
    \end{aligned}
    $$

    with ``c_t = clip_lambda(t)`` (``t^{1/4}`` by default; ``None``: no clipping).

    **Update order.** The paper counts ``t`` from the first *parameter update* (``c_1 = 1``), as
    optax's ``scale_by_adopt``. The authors' PyTorch code (and pytorch-optimizer) call
    ``clip_lambda`` with the optimizer step, which is one larger (``c = 2^{1/4}`` at the first
    update): we follow the paper; pass ``clip_lambda=lambda t: (t + 1) ** 0.25`` to reproduce
    the code.

    Args:
      b1: momentum ``β1``.
      b2: decay ``β2`` of the second moment.
      eps: lower bound of ``sqrt(v)``.
      clip_lambda: the clipping threshold as a function of ``t`` (or ``None``).

    Examples:
        >>> tx = fo.scale_by_adopt()
        >>> s = tx.init([torch.zeros(1)])
        >>> u, s = tx.update([torch.tensor([2.0])], s)  # initialises v only
        >>> u[0], tx.update([torch.tensor([2.0])], s)[0][0]
        (tensor([0.]), tensor([0.1000]))

    References:
      Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any β2 with the Optimal Rate",
      NeurIPS 2024 (Algorithm 2). optax.contrib.scale_by_adopt.
    """
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    _validation.nonnegative("eps", eps, "epsilon value")

    def init_fn(params: Params) -> ScaleByAdoptState:
        return ScaleByAdoptState(
            step=_steps.zeros(params), exp_avg=tree.zeros_like(params), exp_avg_sq=tree.zeros_like(params)
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        steps, m, v = fields
        steps = _steps.increment(steps, in_place=in_place)
        # the first gradient initialises v (decay 0) and leaves m (weight 0)
        # traced counters give float64 0-dim tensors: cast to each gradient's dtype
        later = [
            _like(w, g)
            for w, g in zip(_steps.coefficients(steps, lambda t: (t > 1) * 1.0), grads, strict=True)
        ]
        normed = ops.rdiv_(ops.clamp_(ops.sqrt(v), min=eps_), grads)  # g / max(sqrt(v), eps)
        if clip_lambda is not None:
            bounds = [
                _like(c, g)
                for c, g in zip(_steps.coefficients(steps, lambda t: clip_lambda(t - 1)), grads, strict=True)
            ]
            if ops.is_python_number(*bounds) and len(set(bounds)) == 1:
                normed = ops.clamp_(normed, -bounds[0], bounds[0])
            else:
                normed = [x.clamp(-c, c) for x, c in zip(normed, bounds, strict=True)]
        # the authors' code: m.lerp_(normed, 1 - β1), v.mul_(β2).addcmul_(g, g, value=1 - β2)
        m = _lerp(m, normed, [w * (1 - beta1) for w in later], in_place=in_place)
        decay = [w * beta2 for w in later]
        v = ops.addcmul_(ops.mul(v, decay, in_place=in_place), grads, grads, [1 - d for d in decay])
        # p.add_(m, alpha=-lr)
        return RuleStep([steps, m, v], [Term(m, None, unscaled)])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_adopt",
            step,
            lambda state: [state.step, state.exp_avg, state.exp_avg_sq],
            lambda new: ScaleByAdoptState(*new),
            state_type=ScaleByAdoptState,
        ),
    )
