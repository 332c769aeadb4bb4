"""``scale_by_dadapt_adam``: D-Adaptation's distance estimate and its Adam step (lr included)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
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

    def update_fn(
        updates: Updates, state: ScaleByDAdaptAdamState, params: Params | None = None, **extra: Any
    ):
        del extra
        beta1, beta2 = _scalars.f64(b1), _scalars.f64(b2)
        sqrt_b2 = beta2**0.5
        k1 = state.k.to(torch.float64) + 1
        bias = ((1 - beta2**k1) ** 0.5) / (1 - beta1**k1) if use_bias_correction else 1.0
        d = state.d
        dlr = d * _scalars.f64(lr) * bias
        wd, eps_ = ops.scalar(weight_decay), ops.scalar(eps)
        c_m, c_s = ops.scalar(dlr * (1 - beta1)), ops.scalar(dlr * (1 - sqrt_b2))
        c_b1, c_b2, c_sb2 = ops.scalar(beta1), ops.scalar(beta2), ops.scalar(sqrt_b2)
        scalars: dict[str, Tensor] = {}

        def first(grads: list[Tensor], fields: list[list[Tensor]], ps: list[Tensor]):
            steps, s, m, v = fields
            if wd != 0 and not decouple:
                grads = _scalars.axpy(grads, ps, wd)
            ratio = ops.rdiv_(ops.add_(ops.sqrt(v), eps_), s)
            dots = [torch.dot(g.reshape(-1), q.reshape(-1)) for g, q in zip(grads, ratio, strict=True)]
            scalars["num"] = _scalars.total([dlr * x.to(torch.float64) for x in dots])
            m = _scalars.axpy_(ops.mul(m, c_b1), grads, c_m)
            v = ops.addcmul_(ops.mul(v, c_b2), grads, grads, 1 - c_b2)
            s = _scalars.axpy_(ops.mul(s, c_sb2), grads, c_s)
            scalars["l1"] = _scalars.total([x.abs().sum() for x in s])
            return grads, [steps, s, m, v]

        fields = [state.step, state.s, state.exp_avg, state.exp_avg_sq]
        grads, new = update_leaves(
            first, updates, fields, params, name="scale_by_dadapt_adam", need_params=True
        )
        if "num" not in scalars:  # no gradient at all
            return updates, state
        sk_l1 = scalars["l1"]
        active = sk_l1 != 0
        weighted = sqrt_b2 * state.numerator_weighted + (1 - sqrt_b2) * scalars["num"]
        d_hat = weighted / ((1 - sqrt_b2) * torch.where(active, sk_l1, 1.0))
        d_new = torch.where(
            active,
            torch.maximum(d, d_hat if math.isinf(growth_rate) else torch.minimum(d_hat, d * growth_rate)),
            d,
        )
        weighted = torch.where(active, weighted, state.numerator_weighted)
        keep = ops.scalar(active.to(torch.float64))
        step_size = ops.scalar(-1.0 * active)
        decay = ops.scalar(-wd * dlr * active) if decouple else 0.0

        def second(g: list[Tensor], fields: list[list[Tensor]], ps: list[Tensor]):
            steps, s, m, v = fields
            u = ops.mul_(ops.rdiv_(ops.add_(ops.sqrt(v), eps_), m), step_size)
            if not isinstance(decay, float) or decay != 0:
                u = _scalars.axpy_(u, ps, decay)
            return u, [_scalars.advance(steps, keep), s, m, v]

        out, new = update_leaves(second, grads, list(new), params, name="scale_by_dadapt_adam")
        k = state.k + active.to(torch.int64)
        return out, ScaleByDAdaptAdamState._make((*new, k, d_new, weighted))

    return GradientTransformation(init_fn, update_fn)
