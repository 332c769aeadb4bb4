"""``scale_by_lars``: LARS' whole step (trust ratio, learning rate, momentum) as one rule."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from functional_optim import _validation, ops
from functional_optim.core import GradientTransformation, Hyperparam
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, rule_transform, run
from functional_optim.transforms.momentum import TraceState, trace
from functional_optim.transforms.trust_ratio import trust_ratios

__all__ = ["scale_by_lars"]


@schedulable("learning_rate", "momentum", "weight_decay", "trust_coefficient", "eps")
def scale_by_lars(
    learning_rate: Hyperparam = 1.0,
    momentum: Hyperparam = 0.9,
    weight_decay: Hyperparam = 0.0,
    trust_coefficient: Hyperparam = 0.001,
    eps: Hyperparam = 0.0,
    *,
    nesterov: bool = False,
    trust_ratio: bool = True,
) -> GradientTransformation:
    r"""LARS' step: the trust-ratio-scaled gradient, times ``-lr``, accumulated in a momentum buffer.

    $$
    \begin{aligned}
    &d_t = g_t + \beta\, p,\qquad r = \eta\,\lVert p\rVert / (\lVert d_t\rVert + \epsilon)
      \quad (\text{or } 1 \text{ if either norm is zero}) \\
    &b_t = \mu\, b_{t-1} - \gamma\, r\, d_t \quad (b_1 = -\gamma\, r\, d_1),\qquad
    u_t = b_t \ \text{ or, Nesterov, } u_t = -\gamma\, r\, d_t + \mu\, b_t
    \end{aligned}
    $$

    ``chain(add_decayed_weights(β), scale_by_trust_ratio(η, ε), scale_by_learning_rate(γ),
    trace(μ, nesterov=nesterov))`` (optax's ``lars``) as one rule, with the same operations in
    the same order (the same numbers bit for bit) and ``trace`` 's state: the learning rate is
    inside the momentum, so the update is the parameters' whole move (``p ← p + u``), and the
    adapters apply it in place (``p.add_(b)``) after updating the buffer in place, chunk by
    chunk, never materialising the scaled gradient of the whole model.

    Args:
      learning_rate: ``γ``.
      momentum: ``μ``.
      weight_decay: ``β``, added to the gradient before the trust ratio.
      trust_coefficient: ``η``.
      eps: ``ε``, added to the norm of ``d``.
      nesterov: Nesterov momentum.
      trust_ratio: ``False``: no layer-wise adaptation (``r = 1``: momentum SGD on ``g + β p``,
        optax's ``lars`` with ``trust_ratio_mask=False``), for the parameters LARS is usually
        not applied to (biases, normalisation layers: in the drop-in, a param group with
        ``trust_ratio=False`` and ``weight_decay=0``).

    Examples:
      >>> tx = fo.scale_by_lars(learning_rate=1.0)
      >>> p = [torch.tensor([3.0, 4.0])]
      >>> tx.update([torch.tensor([1.0, 0.0])], tx.init(p), p)[0][0]
      tensor([-0.0050, -0.0000])

    References:
      You et al., "Large Batch Training of Convolutional Networks", 2017. optax.lars.
    """
    _validation.learning_rate(learning_rate)
    momentum_tx = trace(momentum, nesterov=nesterov)  # checks the momentum
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    _validation.nonnegative("trust_coefficient", trust_coefficient)
    _validation.nonnegative("eps", eps, "epsilon value")
    momentum_rule = momentum_tx.role
    assert isinstance(momentum_rule, Rule)

    def step(grads: list[Tensor], fields: list[list[Any]], ps: Any, *, in_place: bool) -> RuleStep:
        lr, wd = ops.scalar(learning_rate), ops.scalar(weight_decay)
        coef, eps_ = ops.scalar(trust_coefficient), ops.scalar(eps)
        no_decay = isinstance(wd, float | int) and wd == 0
        if not trust_ratio:
            d = ops.mul(grads if no_decay else ops.add(grads, ps, alpha=wd), -lr)
        else:
            if no_decay:
                d = ops.mul(grads, trust_ratios(ps, grads, coef, eps_))  # the gradients are not written
            else:
                d = ops.add(grads, ps, alpha=wd)  # add_decayed_weights
                d = ops.mul_(d, trust_ratios(ps, d, coef, eps_))  # scale_by_trust_ratio
            d = ops.mul_(d, -lr)  # scale_by_learning_rate
        # trace: b ← μ b + d in place (pytorch-optimizer's LARS), then p.add_(b)
        return run(momentum_rule, d, fields, None, in_place=in_place)

    return rule_transform(
        momentum_tx.init,
        Rule(
            "scale_by_lars",
            step,
            momentum_rule.fields,
            momentum_rule.state,
            needs_params=True,
            state_type=TraceState,
            includes_learning_rate=True,
        ),
    )
