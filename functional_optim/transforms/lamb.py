"""``scale_by_lamb``: LAMB's direction (Adam's step plus decay, scaled by the trust ratio) as one rule."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from functional_optim import _validation, ops
from functional_optim.core import GradientTransformation, Hyperparam
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, materialize, rule_transform, run, unscaled
from functional_optim.transforms.adam import ScaleByAdamState, scale_by_adam
from functional_optim.transforms.trust_ratio import trust_ratios

__all__ = ["scale_by_lamb"]


@schedulable("b1", "b2", "eps", "weight_decay")
def scale_by_lamb(
    b1: Hyperparam = 0.9, b2: Hyperparam = 0.999, eps: Hyperparam = 1e-6, weight_decay: Hyperparam = 0.0
) -> GradientTransformation:
    r"""LAMB's direction: Adam's bias-corrected step plus ``wd·p``, scaled layer-wise by ``||p|| / ||u||``.

    $$
    \begin{aligned}
    &a_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} \quad\text{(Adam's step)},
    \qquad u_t = a_t + \lambda\, p \\
    &r = \lVert p\rVert / \lVert u_t\rVert \quad (\text{or } 1 \text{ if either norm is zero}),
    \qquad \text{update} = r\, u_t
    \end{aligned}
    $$

    ``chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay), scale_by_trust_ratio())``
    as one rule, with the same operations in the same order (the same numbers bit for bit) and
    Adam's state: the adapters update the moments in place and compute ``u``, its norm and the
    parameters' move chunk by chunk, never materialising the update of the whole model.

    Args:
      b1: decay of the first moment.
      b2: decay of the second moment.
      eps: added to Adam's denominator.
      weight_decay: ``λ``, added to Adam's step before the trust ratio (inside it).

    Examples:
      >>> tx = fo.scale_by_lamb()
      >>> p = [torch.tensor([3.0, 4.0])]
      >>> tx.update([torch.tensor([1.0, 1.0])], tx.init(p), p)[0][0]
      tensor([3.5355, 3.5355])

    References:
      You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020.
    """
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    adam = scale_by_adam(b1, b2, eps)
    adam_rule = adam.role
    assert isinstance(adam_rule, Rule)

    def step(grads: list[Tensor], fields: list[list[Any]], ps: Any, *, in_place: bool) -> RuleStep:
        moved = run(adam_rule, grads, fields, None, in_place=in_place)
        assert moved.terms is not None  # Adam's step is one term
        # Adam's step (a new tensor), seen as the parameters are (complex or real)
        u = ops.view_as_complex_like(materialize(moved.terms, None), grads)
        wd = ops.scalar(weight_decay)
        if not (isinstance(wd, float | int) and wd == 0):
            u = ops.add_(u, ps, alpha=wd)  # add_decayed_weights
        u = ops.mul_(u, trust_ratios(ps, u, 1.0, 0.0))  # scale_by_trust_ratio()
        # pytorch-optimizer's Lamb: p.add_(u · r, alpha=-lr)
        return RuleStep(moved.fields, [Term(ops.view_as_real(u), None, unscaled)])

    return rule_transform(
        adam.init,
        Rule(
            "scale_by_lamb",
            step,
            adam_rule.fields,
            adam_rule.state,
            needs_params=True,
            state_type=ScaleByAdamState,
            sparse=adam_rule.sparse,
        ),
    )
