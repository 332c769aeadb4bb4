"""``scale_by_lion``: the sign of an interpolation of momentum and gradient (Lion)."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, rule_transform, unscaled

__all__ = ["ScaleByLionState", "scale_by_lion"]


class ScaleByLionState(NamedTuple):
    """Per-parameter state of [`scale_by_lion`][] (``exp_avg`` as in lion-pytorch)."""

    exp_avg: Any


@schedulable("b1", "b2")
def scale_by_lion(b1: Hyperparam = 0.9, b2: Hyperparam = 0.99) -> GradientTransformation:
    r"""Lion's direction: the sign of an interpolation of the momentum and the gradient.

    $$
    u_t = \operatorname{sign}(\beta_1 m_{t-1} + (1-\beta_1) g_t),\qquad
    m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t \quad (m_0 = 0)
    $$

    The momentum used for the update (``b1``) and the one kept (``b2``) differ; the update is
    computed from the *old* momentum, as in the paper's Program 1 and lion-pytorch.

    Args:
      b1: interpolation weight of the momentum in the update (``betas[0]``).
      b2: decay of the kept momentum (``betas[1]``).

    Example:
      >>> tx = fo.scale_by_lion()
      >>> u, s = tx.update({"w": torch.tensor([0.5, -2.0])}, tx.init({"w": torch.zeros(2)}))
      >>> u["w"]
      tensor([ 1., -1.])

    References:
      Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023 (Program 1).
    """
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)

    def init_fn(params: Params) -> ScaleByLionState:
        return ScaleByLionState(exp_avg=tree.zeros_like(params))

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2 = ops.scalar(b1), ops.scalar(b2)
        (m,) = fields
        direction = ops.sign_(ops.lerp(m, grads, 1 - beta1))  # from the old momentum
        m = ops.lerp(m, grads, 1 - beta2, in_place=in_place)
        # lion-pytorch: p.add_(sign(...), alpha=-lr)
        return RuleStep([m], [Term(direction, None, unscaled)])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_lion",
            step,
            lambda state: [state.exp_avg],
            lambda new: ScaleByLionState(*new),
            state_type=ScaleByLionState,
        ),
    )
