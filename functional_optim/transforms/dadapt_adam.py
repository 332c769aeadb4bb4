"""``scale_by_dadapt_adam``: D-Adaptation's distance estimate and its Adam step (lr included)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Begun, PassContext, Rule, RuleStep, Term, rule_transform
from functional_optim.transforms import _scalars, _steps

__all__ = ["ScaleByDAdaptAdamState", "scale_by_dadapt_adam"]


class ScaleByDAdaptAdamState(NamedTuple):
    """State of [`scale_by_dadapt_adam`][]: per parameter as ``dadaptation.DAdaptAdam``
    (``step``, ``s``, ``exp_avg``, ``exp_avg_sq``), and its group values as 0-dim float64 tensors."""

    step: Any
    s: Any
    exp_avg: Any
    exp_avg_sq: Any
    k: Tensor
    d: Tensor
    numerator_weighted: Tensor


@schedulable("lr", "b1", "b2", "eps", "weight_decay")
def scale_by_dadapt_adam(
    lr: Hyperparam = 1.0,
    b1: Hyperparam = 0.9,
    b2: Hyperparam = 0.999,
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0.0,
    decouple: bool = False,
    use_bias_correction: bool = False,
    d0: float = 1e-6,
    growth_rate: float = math.inf,
) -> GradientTransformation:
    r"""D-Adapted Adam (Defazio & Mishchenko, 2023): Adam whose step size $d\cdot\mathrm{lr}$
    is a lower bound of the distance to the solution, grown as the iterates move. The returned
    update is the whole step (learning rate and sign included).

    With $\hat\eta_k = d_k\,\mathrm{lr}\,\rho_k$ ($\rho_k$ Adam's bias correction
    with ``use_bias_correction``, else 1) and sums over every tensor:

    $$
    \begin{aligned}
    r_k &= \sqrt{\beta_2}\, r_{k-1} + (1-\sqrt{\beta_2})\,\hat\eta_k
        \big\langle g_k, s_{k-1} / (\sqrt{v_{k-1}} + \epsilon)\big\rangle \\
    m_k &= \beta_1 m_{k-1} + \hat\eta_k (1-\beta_1) g_k,\quad
    v_k = \beta_2 v_{k-1} + (1-\beta_2) g_k^2,\quad
    s_k = \sqrt{\beta_2}\, s_{k-1} + \hat\eta_k (1-\sqrt{\beta_2}) g_k \\
    d_{k+1} &= \max\big(d_k, \min(r_k / ((1-\sqrt{\beta_2})\lVert s_k\rVert_1), G d_k)\big),\qquad
    u_k = -m_k / (\sqrt{v_k} + \epsilon) - \lambda\hat\eta_k x_k
    \end{aligned}
    $$

    (``decouple=True``: AdamW-style decay as written, the dadaptation package's
    ``DAdaptAdam(decouple=True)``; ``decouple=False`` adds $\lambda x$ to the gradient).
    Numerics as ``dadaptation`` 3.2 (group scalars in double; a step where
    $\lVert s\rVert_1 = 0$ changes no parameter and no counter).

    Args: ``dadaptation.DAdaptAdam``'s, with ``betas`` split into ``b1``, ``b2``.

    Examples:
        >>> opt = fo.scale_by_dadapt_adam(lr=1.0, decouple=True)
        >>> params = {"w": torch.ones(3)}
        >>> updates, state = opt.update({"w": torch.ones(3)}, opt.init(params), params)
        >>> round(-updates["w"][0].item() * 1e6, 3)  # d0 (1 - b1) / sqrt(1 - b2)
        3.162

    References:
      Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023
      (code: github.com/facebookresearch/dadaptation).
    """
    _validation.learning_rate(lr)
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    if not d0 > 0:
        raise ValueError(f"Invalid d0 value: {d0}")

    def init_fn(params: Params) -> ScaleByDAdaptAdamState:
        return ScaleByDAdaptAdamState(
            step=_steps.zeros(params),
            s=tree.zeros_like(params),
            exp_avg=tree.zeros_like(params),
            exp_avg_sq=tree.zeros_like(params),
            k=torch.zeros((), dtype=torch.int64),
            d=_scalars.f64(d0),
            numerator_weighted=torch.zeros((), dtype=torch.float64),
        )

    def directions(grads: list[Tensor], ps: list[Tensor]) -> list[Tensor]:
        """The gradients, with the L2 decay added (``decouple=False``) as the package does (real
        views of complex ones, as ``torch.optim``)."""
        wd = ops.scalar(weight_decay)
        return ops.view_as_real(_scalars.axpy(grads, ps, wd) if wd != 0 and not decouple else grads)

    # the second pass has a decoupled decay term: decided here, not from its coefficient (which a
    # compiled pass reads as a tensor, `PassContext`)
    decays = decouple and not (isinstance(weight_decay, float | int) and weight_decay == 0)

    def moment_scalars(state: ScaleByDAdaptAdamState) -> PassContext:
        """The coefficients of the moment updates (the old ``d``), and for ``settle`` the step
        size ``d·lr``."""
        beta1, beta2 = _scalars.f64(b1), _scalars.f64(b2)
        sqrt_b2 = beta2**0.5
        k1 = state.k.to(torch.float64) + 1
        bias = ((1 - beta2**k1) ** 0.5) / (1 - beta1**k1) if use_bias_correction else 1.0
        dlr = state.d * _scalars.f64(lr) * bias
        values = {
            "eps": ops.scalar(eps),
            "m": ops.scalar(dlr * (1 - beta1)),
            "s": ops.scalar(dlr * (1 - sqrt_b2)),
            "b1": ops.scalar(beta1),
            "b2": ops.scalar(beta2),
            "sb2": ops.scalar(sqrt_b2),
        }
        return PassContext(values, {"sqrt_b2": sqrt_b2, "dlr": dlr, "state": state})

    def begin(
        state: ScaleByDAdaptAdamState, grads: list[Tensor], fields: list[list[Tensor]], ps: Any
    ) -> Begun:
        """The coefficients of the moment updates (the old ``d``). Nothing is written."""
        del fields, ps
        if not grads:  # no gradient at all: nothing moves, nothing is counted
            return Begun(None, (state.k, state.d, state.numerator_weighted))
        return Begun(moment_scalars(state), None)

    def step(grads: list[Tensor], fields: list[list[Tensor]], ps: Any, *, in_place: bool, context: Any):
        """The first pass, as ``dadaptation``'s first loop: ``⟨g, s/(√v + ε)⟩`` with the old
        ``s`` and ``v``, the moments and ``s`` with the old ``d`` (in place in the fused step),
        then ``‖s‖₁``."""
        sc = context.values
        steps, s_old, m_old, v_old = fields
        g = directions(grads, ps)
        s_r, v_r = ops.view_as_real(s_old), ops.view_as_real(v_old)
        ratio = ops.rdiv_(ops.add_(ops.sqrt(v_r), sc["eps"]), s_r)
        dots = [torch.dot(x.reshape(-1), q.reshape(-1)) for x, q in zip(g, ratio, strict=True)]
        m = _scalars.axpy_(ops.mul(ops.view_as_real(m_old), sc["b1"], in_place=in_place), g, sc["m"])
        v = ops.addcmul_(ops.mul(v_r, sc["b2"], in_place=in_place), g, g, 1 - sc["b2"])
        s = _scalars.axpy_(ops.mul(s_r, sc["sb2"], in_place=in_place), g, sc["s"])
        norms = [x.sum() for x in ops.abs(s)]
        new = [ops.view_as_complex_like(x, old) for x, old in ((s, s_old), (m, m_old), (v, v_old))]
        return RuleStep([steps, *new], sums=[dots, norms])

    def settle(context: Any, sums: list[list[Tensor]]) -> Begun:
        """The new estimate ``d`` (the package's arithmetic: the per-tensor values summed left to
        right in double, Python's ``max``/``min``)."""
        carry, (dots, norms) = context.carry, sums
        state: ScaleByDAdaptAdamState = carry["state"]
        sqrt_b2, dlr, d = carry["sqrt_b2"], carry["dlr"], state.d
        num, sk_l1 = _scalars.ordered_total(dots, dlr), _scalars.ordered_total(norms)
        active = sk_l1 != 0
        weighted = sqrt_b2 * state.numerator_weighted + (1 - sqrt_b2) * num
        d_hat = weighted / ((1 - sqrt_b2) * torch.where(active, sk_l1, 1.0))
        d_new = torch.where(
            active,
            # Python's max/min, as dadaptation (a NaN estimate is ignored)
            _scalars.maximum(
                d, d_hat if math.isinf(growth_rate) else _scalars.minimum(d_hat, d * growth_rate)
            ),
            d,
        )
        weighted = torch.where(active, weighted, state.numerator_weighted)
        out = {
            "eps": context.values["eps"],
            "keep": ops.scalar(active.to(torch.float64)),
            "step": ops.scalar(-1.0 * active),
        }
        if decays:
            out["decay"] = ops.scalar(-ops.scalar(weight_decay) * dlr * active)
        return Begun(PassContext(out), (state.k + active.to(torch.int64), d_new, weighted))

    def move(grads: list[Tensor], fields: list[list[Tensor]], ps: Any, *, in_place: bool, context: Any):
        """The second pass, the step as ``dadaptation``: ``p.add_(p, alpha=-λ·d·lr)``,
        ``p.addcdiv_(m, √v + ε, value=-1)``."""
        del grads
        sc = context.values
        steps, _, m, v = fields
        denom = ops.add_(ops.sqrt(ops.view_as_real(v)), sc["eps"])
        step_size = sc["step"]
        terms: list[Term] = []
        if decays:
            decay = sc["decay"]
            terms.append(Term(ops.view_as_real(ps), None, lambda c: c * decay))
        terms.append(Term(ops.view_as_real(m), denom, lambda c: c * step_size))
        new_steps = _scalars.advance(steps, sc["keep"], in_place=in_place)
        return RuleStep([new_steps, *fields[1:]], terms)

    rule = Rule(
        "scale_by_dadapt_adam",
        step,
        lambda state: [state.step, state.s, state.exp_avg, state.exp_avg_sq],
        lambda fields, group: ScaleByDAdaptAdamState(*fields, *group),
        needs_params=True,
        state_type=ScaleByDAdaptAdamState,
        includes_learning_rate=True,
        begin=begin,
        settle=settle,
        move=move,
    )
    return rule_transform(init_fn, rule)
