"""``scale_by_prodigy``: Prodigy's distance estimate and its Adam step (learning rate included)."""

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

__all__ = ["ScaleByProdigyState", "scale_by_prodigy"]


class ScaleByProdigyState(NamedTuple):
    """State of [`scale_by_prodigy`][]: per parameter as ``prodigyopt`` (``step``, ``s``, ``p0``,
    ``exp_avg``, ``exp_avg_sq``), and its group values as 0-dim float64 tensors."""

    step: Any
    s: Any
    p0: Any
    exp_avg: Any  # ``()`` when beta1 == 0
    exp_avg_sq: Any
    k: Tensor
    d: Tensor
    d_max: Tensor
    d_numerator: Tensor


def _sliced(x: Tensor, slice_p: int) -> Tensor:
    if slice_p == 1:
        return x if x.dim() == 1 else x.reshape(-1)
    return x.reshape(-1)[::slice_p]


@schedulable("lr", "b1", "b2", "beta3", "eps", "weight_decay", "d_coef")
def scale_by_prodigy(
    lr: Hyperparam = 1.0,
    b1: Hyperparam = 0.9,
    b2: Hyperparam = 0.999,
    beta3: Hyperparam | None = None,
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0.0,
    decouple: bool = True,
    use_bias_correction: bool = False,
    safeguard_warmup: bool = False,
    d0: float = 1e-6,
    d_coef: Hyperparam = 1.0,
    growth_rate: float = math.inf,
    slice_p: int = 1,
) -> GradientTransformation:
    r"""Prodigy (Mishchenko & Defazio, 2024): Adam whose step size $d\cdot\mathrm{lr}$
    estimates the distance to the solution. The returned update is the whole step (it contains
    the learning rate and the sign; do not follow it by [`scale_by_learning_rate`][]).

    With $\hat\eta = d_k \mathrm{lr}\, \rho_k$ (with bias correction
    $\rho_k = \sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})$, else 1), $\beta_3 = \sqrt{\beta_2}$
    by default, sums over every
    tensor (on the ``slice_p``-strided entries):

    $$
    \begin{aligned}
    r_k &= \beta_3 r_{k-1} + \tfrac{d_k}{d_0}\hat\eta\,\langle g_k, x_0 - x_k\rangle,\qquad
    s_k = \beta_3 s_{k-1} + \tfrac{d_k}{d_0}\hat\eta\, g_k \\
    m_k &= \beta_1 m_{k-1} + d_k(1-\beta_1) g_k,\qquad v_k = \beta_2 v_{k-1} + d_k^2 (1-\beta_2) g_k^2 \\
    \hat d &= d_{coef}\, r_k / \lVert s_k\rVert_1,\quad d_{\max} = \max(d_{\max}, \hat d),\quad
    d_{k+1} = \min(d_{\max}, G\, d_k) \ (\text{and } \max(d_k, \hat d) \text{ while } d_k = d_0) \\
    u_k &= -\hat\eta\,\big(m_k / (\sqrt{v_k} + d_{k+1}\epsilon) + \lambda x_k\big)
    \end{aligned}
    $$

    (with ``safeguard_warmup`` $s$ grows by $\tfrac{d_k}{d_0} d_k g_k$; with
    ``decouple=False`` the decay is added to the gradient instead; with $\beta_1 = 0$ the
    step is $-\hat\eta d_{k+1} g_k / (\sqrt{v_k} + d_{k+1}\epsilon)$). Numerics as
    ``prodigyopt`` 1.1 (group scalars in double; a step where $\lVert s\rVert_1 = 0$ changes
    no parameter and no counter). ``None`` gradients are skipped.

    Args: ``prodigyopt.Prodigy``'s, with ``betas`` split into ``b1``, ``b2``.

    Example:
      >>> opt = fo.scale_by_prodigy(lr=1.0)
      >>> params = {"w": torch.ones(3)}
      >>> updates, state = opt.update({"w": torch.ones(3)}, opt.init(params), params)
      >>> round(state.d.item(), 12)
      1e-06

    References:
      Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", ICML
      2024 (code: github.com/konstmish/prodigy).
    """
    _validation.learning_rate(lr)
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    if not d0 > 0:
        raise ValueError(f"Invalid d0 value: {d0}")
    if isinstance(slice_p, bool) or not isinstance(slice_p, int) or slice_p < 1:
        raise ValueError(f"Invalid slice_p value: {slice_p!r}, expected an integer >= 1")
    use_m = _validation.value_of(b1) != 0
    # the second pass has a decoupled decay term: decided here, not from its coefficient (which a
    # compiled pass reads as a tensor, `PassContext`)
    decays = decouple and not (isinstance(weight_decay, float | int) and weight_decay == 0)

    def init_fn(params: Params) -> ScaleByProdigyState:
        like = lambda f: tree.map(lambda p: None if p is None else f(p), params)  # noqa: E731
        return ScaleByProdigyState(
            step=_steps.zeros(params),
            s=like(lambda p: torch.zeros_like(_sliced(p, slice_p))),
            p0=like(lambda p: _sliced(p, slice_p).detach().clone()),
            exp_avg=tree.zeros_like(params) if use_m else (),
            exp_avg_sq=tree.zeros_like(params),
            k=torch.zeros((), dtype=torch.int64),
            d=_scalars.f64(d0),
            d_max=_scalars.f64(d0),
            d_numerator=torch.zeros((), dtype=torch.float64),
        )

    def directions(grads: list[Tensor], ps: list[Tensor]) -> list[Tensor]:
        """The gradients, with the L2 decay added (``decouple=False``) as the package does."""
        wd = ops.scalar(weight_decay)
        return _scalars.axpy(grads, ps, wd) if wd != 0 and not decouple else grads

    def begin(state: ScaleByProdigyState, grads: list[Tensor], fields: list[list[Tensor]], ps: Any) -> Begun:
        """The coefficients of the moment updates (the old ``d``): in Python double as
        ``prodigyopt`` (0-dim float64 tensors when a value is traced). Nothing is written."""
        del fields
        if not grads:  # no gradient at all: nothing moves, nothing is counted
            return Begun(None, (state.k, state.d, state.d_max, state.d_numerator))
        values: tuple[Any, ...] = (state.k, state.d, state.d_max, state.d_numerator)
        values += (lr, b1, b2, eps, weight_decay, d_coef)
        # (the dots and norms are read on the host too: not when the gradients are traced)
        traced = ops.is_traced(grads[0]) or (ps is not None and ops.is_traced(ps[0]))
        host = None if traced else _scalars.on_host(*values)
        scalars: list[Any] = [*values[:4], *map(_scalars.f64, values[4:])] if host is None else host
        k, d, _, _, lr_, beta1, beta2, _, _, _ = scalars
        beta3_: Any = _scalars.sqrt(beta2) if beta3 is None else beta3
        if host is None:
            beta3_ = _scalars.f64(beta3_)
        bias = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1)) if use_bias_correction else 1.0
        dlr = d * lr_ * bias
        sc: dict[str, Any] = {
            "m": d * (1 - beta1),
            "v": d * d * (1 - beta2),
            "s": (d / d0) * (d if safeguard_warmup else dlr),
            "b1": beta1,
            "b2": beta2,
            "b3": beta3_,
        }
        if host is None:
            sc = {key: ops.scalar(v) for key, v in sc.items()}
        carry = {"host": host is not None, "scalars": scalars, "beta3": beta3_, "dlr": dlr, "state": state}
        return Begun(PassContext(sc, carry), None)

    def step(grads: list[Tensor], fields: list[list[Tensor]], ps: Any, *, in_place: bool, context: Any):
        """The first pass, as ``prodigyopt``'s first loop: ``⟨g, x₀ - x⟩``, the moments and
        ``s`` with the old ``d`` (in place in the fused step), then ``‖s‖₁``."""
        sc = context.values
        steps, s_old, p0, v_old = fields[:4]
        g = directions(grads, ps)
        g_s = [_sliced(x, slice_p) for x in g]
        diff = ops.sub(p0, [_sliced(p, slice_p) for p in ps])
        dots = [torch.dot(x, y) for x, y in zip(g_s, diff, strict=True)]
        v = ops.addcmul_(ops.mul(v_old, sc["b2"], in_place=in_place), g, g, sc["v"])
        m = [_scalars.axpy_(ops.mul(fields[4], sc["b1"], in_place=in_place), g, sc["m"])] if use_m else []
        s = _scalars.axpy_(ops.mul(s_old, sc["b3"], in_place=in_place), g_s, sc["s"])
        norms = [x.sum() for x in ops.abs(s)]
        return RuleStep([steps, s, p0, v, *m], sums=[dots, norms])

    def settle(context: Any, sums: list[list[Tensor]]) -> Begun:
        """The new estimate ``d`` from the dot products and ``‖s‖₁`` (the package's arithmetic:
        the per-tensor values summed left to right, Python's ``max``/``min``)."""
        sc, (dots, norms) = context.carry, sums
        state: ScaleByProdigyState = sc["state"]
        k, d, d_max_old, numerator_old, _, _, _, eps_, wd, coef = sc["scalars"]
        dlr = sc["dlr"]
        scale = (d / d0) * dlr
        delta: Any
        d_denom: Any
        if sc["host"]:
            delta, d_denom = _scalars.host_sum(dots, scale), _scalars.host_sum(norms)
        else:
            delta = _scalars.total([scale * x.to(torch.float64) for x in dots])
            d_denom = _scalars.total(norms)
        active = d_denom != 0
        numerator = numerator_old * sc["beta3"] + delta
        d_hat = coef * numerator / _scalars.where(active, d_denom, 1.0)
        # Python's max/min, as prodigyopt (a NaN estimate is ignored)
        d_new = _scalars.where(d == d0, _scalars.maximum(d, d_hat), d)
        d_max = _scalars.maximum(d_max_old, d_hat)
        # min(d_max, d·G): d_max when G = inf (no inf·0 in the gradient)
        d_new = d_max if math.isinf(growth_rate) else _scalars.minimum(d_max, d_new * growth_rate)
        d_new = _scalars.where(active, d_new, d)
        d_max = _scalars.where(active, d_max, d_max_old)
        numerator = _scalars.where(active, numerator, numerator_old)
        out = {"eps_d": d_new * eps_}
        if use_m:
            out["step"] = -dlr * active
        else:
            out["g_step"] = -dlr * d_new * active
        if decays:
            out["decay"] = -wd * dlr * active
        if not sc["host"]:
            out = {key: ops.scalar(v) for key, v in out.items()}
            out["keep"] = ops.scalar(active.to(torch.float64))
            return Begun(PassContext(out), (state.k + active.to(torch.int64), d_new, d_max, numerator))
        out["keep"] = 1.0 if active else 0.0
        f64 = torch.float64
        group = (
            torch.scalar_tensor(k + int(active), dtype=torch.int64),
            torch.scalar_tensor(d_new, dtype=f64),
            torch.scalar_tensor(d_max, dtype=f64),
            torch.scalar_tensor(numerator, dtype=f64),
        )
        return Begun(PassContext(out), group)

    def move(grads: list[Tensor], fields: list[list[Tensor]], ps: Any, *, in_place: bool, context: Any):
        """The second pass, Adam's step with ``d·lr`` as ``prodigyopt``: ``p.add_(p,
        alpha=-λ·d·lr)``, ``p.addcdiv_(m, √v + d·ε, value=-d·lr)``."""
        sc = context.values
        steps, v = fields[0], fields[3]
        denom = ops.add_(ops.sqrt(v), sc["eps_d"])
        terms = []
        if decays:
            decay = sc["decay"]
            terms.append(Term(ops.view_as_real(ps), None, lambda c: c * decay))
        if use_m:
            step_size = sc["step"]
            terms.append(Term(fields[4], denom, lambda c: c * step_size))
        else:
            g_step = sc["g_step"]
            terms.append(Term(directions(grads, ps), denom, lambda c: c * g_step))
        new_steps = _scalars.advance(steps, sc["keep"], in_place=in_place)
        return RuleStep([new_steps, *fields[1:]], terms)

    def state_fields(state: ScaleByProdigyState) -> list[Any]:
        return [state.step, state.s, state.p0, state.exp_avg_sq, *([state.exp_avg] if use_m else [])]

    def as_state(new: list[Any], group: Any) -> ScaleByProdigyState:
        steps, s, p0, v = new[:4]
        return ScaleByProdigyState(steps, s, p0, new[4] if use_m else (), v, *group)

    rule = Rule(
        "scale_by_prodigy",
        step,
        state_fields,
        as_state,
        needs_params=True,
        state_type=ScaleByProdigyState,
        includes_learning_rate=True,
        begin=begin,
        elementwise_state=False,  # s and p0 are sliced (every slice_p-th entry)
        settle=settle,
        move=move,
    )
    return rule_transform(init_fn, rule)
