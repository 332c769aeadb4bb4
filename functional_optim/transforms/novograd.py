"""``scale_by_novograd``: NovoGrad's layer-wise second moment and normalised momentum."""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, rule_transform, unscaled
from functional_optim.transforms import _steps

__all__ = ["ScaleByNovogradState", "scale_by_novograd"]


class ScaleByNovogradState(NamedTuple):
    """Per-parameter state of [`scale_by_novograd`][] (names as NVIDIA's ``Novograd``).

    Attributes:
      step: updates received (0-dim CPU float tensor).
      exp_avg: the momentum of the normalised gradients.
      exp_avg_sq: the moving average of ``||g||^2``: **one 0-dim tensor per parameter tensor**.
    """

    step: Any
    exp_avg: Any
    exp_avg_sq: Any


@schedulable("b1", "b2", "eps", "weight_decay")
def scale_by_novograd(
    b1: Hyperparam = 0.95,
    b2: Hyperparam = 0.98,
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0.0,
    *,
    grad_averaging: bool = False,
) -> GradientTransformation:
    r"""NovoGrad: a second moment per layer, and momentum over the normalised gradient.

    With ``t`` the parameter's step count and ``c = 1 - β1`` if ``grad_averaging`` else ``1``:

    $$
    \begin{aligned}
    &v_1 = \lVert g_1\rVert^2,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2)\lVert g_t\rVert^2 \\
    &m_t = \beta_1 m_{t-1} + c\,\Big(\frac{g_t}{\sqrt{v_t} + \epsilon} + \lambda\, p\Big)
    \quad (m_0 = 0),\qquad u_t = m_t
    \end{aligned}
    $$

    ``λ`` (``weight_decay``) enters the momentum, as in the paper and NVIDIA's implementation;
    ``eps`` is added outside the square root.

    Args:
      b1: momentum ``β1``.
      b2: decay ``β2`` of the layer-wise second moment.
      eps: added to ``sqrt(v)``.
      weight_decay: ``λ``, decay added to the normalised gradient.
      grad_averaging: scale the normalised gradient by ``1 - β1``.

    Example:
      >>> tx = fo.scale_by_novograd()
      >>> p = {"w": torch.ones(2)}
      >>> u, _ = tx.update({"w": torch.tensor([3.0, 4.0])}, tx.init(p), p)
      >>> u["w"]
      tensor([0.6000, 0.8000])

    References:
      Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training
      of Deep Networks", 2019. NVIDIA NeMo/apex ``Novograd``; optax.scale_by_novograd.
    """
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")

    def init_fn(params: Params) -> ScaleByNovogradState:
        return ScaleByNovogradState(
            step=_steps.zeros(params),
            exp_avg=tree.zeros_like(params),
            exp_avg_sq=tree.map(lambda p: None if p is None else p.new_zeros(()), params),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], ps: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, eps_, wd = (ops.scalar(x) for x in (b1, b2, eps, weight_decay))
        steps, m, v = fields
        steps = _steps.increment(steps, in_place=in_place)
        # the first step takes ||g||^2 as it is (beta2 -> 0)
        decay = _steps.coefficients(steps, lambda t: (t > 1) * beta2)
        norms = ops.norm(grads)
        if (
            ops.uniform(norms + v)
            and ops.is_python_number(*decay)
            # DTensor norms: one op per tensor
            and (ops.plain(norms) or not any(map(tree.is_dtensor, norms)))
        ):
            # the layer-wise scalars as one vector: a few ops instead of a few per tensor
            sq = torch.stack(norms).square()
            v_all = torch.lerp(sq, torch.stack(v), sq.new_tensor(decay))
            new_v, denom = list(v_all.unbind(0)), list((v_all.sqrt() + eps_).unbind(0))
        else:
            new_v = [torch.lerp(n * n, v_i, d) for n, v_i, d in zip(norms, v, decay, strict=True)]
            denom = [torch.sqrt(v_i) + eps_ for v_i in new_v]
        v = ops.assign(v, new_v, in_place=in_place) if in_place else new_v
        m = ops.mul(m, beta1, in_place=in_place)
        if isinstance(wd, float | int) and wd == 0 and not grad_averaging and _full_precision(grads):
            # m + g / denom in one kernel, without the temporary g / denom: the same numbers
            # (addcdiv rounds g / denom, then adds it with coefficient 1; half-precision kernels
            # would keep g / denom in float32)
            m = ops.addcdiv_(m, grads, denom, 1.0)
        else:
            d = ops.div(grads, denom)
            if not (isinstance(wd, float | int) and wd == 0):
                d = ops.add_(d, ps, alpha=wd)
            m = ops.add_(m, d, alpha=(1 - beta1) if grad_averaging else 1)
        # NVIDIA's Novograd: p.add_(m, alpha=-lr)
        return RuleStep([steps, m, v], [Term(m, None, unscaled)])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_novograd",
            step,
            lambda state: [state.step, state.exp_avg, state.exp_avg_sq],
            lambda new: ScaleByNovogradState(*new),
            needs_params=not (isinstance(weight_decay, float | int) and weight_decay == 0),
            state_type=ScaleByNovogradState,
        ),
    )


_FULL = frozenset({torch.float32, torch.float64})


def _full_precision(xs: list[Tensor]) -> bool:
    """Every tensor is float32 or float64 (a C-level loop eagerly: once per step)."""
    if torch.compiler.is_compiling():
        return all(x.dtype in _FULL for x in xs)
    return set(map(operator.attrgetter("dtype"), xs)) <= _FULL
