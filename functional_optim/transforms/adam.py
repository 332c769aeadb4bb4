"""``scale_by_adam``: Adam's bias-corrected moment estimates (with AMSGrad)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _low_precision, _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, TorchKernel, divided, rule_transform
from functional_optim.transforms import _steps

__all__ = ["ScaleByAdamState", "scale_by_adam"]


class ScaleByAdamState(NamedTuple):
    """Per-parameter state of [`scale_by_adam`][] (names and meaning as ``torch.optim.Adam``)."""

    step: Any
    exp_avg: Any
    exp_avg_sq: Any
    max_exp_avg_sq: Any  # ``()`` unless amsgrad


@schedulable("b1", "b2", "eps")
def scale_by_adam(
    b1: Hyperparam = 0.9,
    b2: Hyperparam = 0.999,
    eps: Hyperparam = 1e-8,
    *,
    amsgrad: bool = False,
    state_dtype: torch.dtype | None = None,
) -> GradientTransformation:
    r"""Scale updates by Adam's bias-corrected moments.

    With ``t`` the parameter's step count after increment:

    $$
    \begin{aligned}
    &m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    &\hat v_t = \max(\hat v_{t-1}, v_t)\ \text{(amsgrad)},\ \text{else } v_t \\
    &u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{\hat v_t} / \sqrt{1-\beta_2^t} + \epsilon}
    \end{aligned}
    $$

    ``eps`` is added after bias-correcting ``sqrt(v)`` and the AMSGrad maximum is taken of the
    uncorrected ``v``, exactly as ``torch.optim.Adam``. Complex tensors are treated as real
    tensors of shape ``(..., 2)``, as in torch.

    Args:
      b1: decay of the first moment (``betas[0]``).
      b2: decay of the second moment (``betas[1]``).
      eps: added to the denominator for numerical stability.
      amsgrad: keep the running maximum of the second moment (Reddi et al., 2018).
      state_dtype: ``torch.bfloat16`` keeps the moments of float32 parameters in bfloat16 (half
        the state memory): each step computes in float32 (the update uses the float32 moments)
        and stores them with stochastic rounding, seeded by the step count
        (`functional_optim._low_precision`). ``None``: the parameters' dtype, exactly torch.

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
      Reddi et al., "On the Convergence of Adam and Beyond", ICLR 2018.
    """
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)
    low_dtype = _low_precision.check_state_dtype(state_dtype)

    def zeros(params: Params) -> Any:
        return tree.map(lambda p: _low_precision.zeros_like(p, low_dtype), params)

    def init_fn(params: Params) -> ScaleByAdamState:
        return ScaleByAdamState(
            step=_steps.zeros(params),
            exp_avg=zeros(params),
            exp_avg_sq=zeros(params),
            max_exp_avg_sq=zeros(params) if amsgrad else (),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        steps, m, v = fields[0], fields[1], fields[2]
        vmax = fields[3] if amsgrad else []  # read only with amsgrad
        g_r, m_r, v_r = ops.view_as_real(grads), ops.view_as_real(m), ops.view_as_real(v)
        steps = _steps.increment(steps, in_place=in_place)
        # bfloat16 moments: the maths below runs on float32 working copies (written in place)
        low = low_dtype is not None and _low_precision.is_low(m_r, g_r)
        write = in_place or low
        m_w, v_w = (_low_precision.widen(m_r, g_r), _low_precision.widen(v_r, g_r)) if low else (m_r, v_r)
        m_w = ops.lerp(m_w, g_r, 1 - beta1, in_place=write)
        v_w = ops.addcmul_(ops.mul(v_w, beta2, in_place=write), g_r, g_r, 1 - beta2)
        second = v_w
        if amsgrad:
            vmax_r = ops.view_as_real(vmax)
            vmax_w = ops.maximum(_low_precision.widen(vmax_r, g_r) if low else vmax_r, v_w, in_place=write)
            second = vmax_w
        bc1 = _steps.coefficients(steps, lambda t: 1 - beta1**t)
        bc2_sqrt = _steps.coefficients(steps, lambda t: (1 - beta2**t) ** 0.5)
        denom = ops.add_(ops.div_(ops.sqrt(second), bc2_sqrt), eps_)
        if low:  # stored stochastically rounded; this step's update uses the float32 values
            t = _steps.read(steps)
            new_m = _low_precision.narrow(m_w, m_r, t, 1, in_place=in_place)
            new_v = _low_precision.narrow(v_w, v_r, t, 2, in_place=in_place)
            new_fields = [steps, new_m, new_v]
            if amsgrad:
                new_fields.append(_low_precision.narrow(vmax_w, vmax_r, t, 3, in_place=in_place))
        else:
            new_fields = [steps, ops.view_as_complex_like(m_w, m), ops.view_as_complex_like(v_w, v)]
            if amsgrad:
                new_fields.append(ops.view_as_complex_like(vmax_w, vmax))
        # torch.optim.Adam: p.addcdiv_(m, denom, value=-lr / bc1)
        return RuleStep(new_fields, [Term(m_w, denom, divided(bc1))])

    def state_fields(state: ScaleByAdamState) -> list[Any]:
        return [state.step, state.exp_avg, state.exp_avg_sq, *([state.max_exp_avg_sq] if amsgrad else [])]

    def as_state(new: Any) -> ScaleByAdamState:
        return ScaleByAdamState(*new) if amsgrad else ScaleByAdamState._make((*new, ()))

    def kernel() -> TorchKernel | None:
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        if low_dtype is not None or not ops.is_python_number(beta1, beta2, eps_):
            return None
        return TorchKernel("adam", {"beta1": beta1, "beta2": beta2, "eps": eps_, "amsgrad": amsgrad})

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_adam",
            step,
            state_fields,
            as_state,
            state_type=ScaleByAdamState,
            sparse="Adam does not support sparse gradients, please consider SparseAdam instead",
            kernel=kernel,
            low_precision_state=low_dtype is not None,
            replayable=low_dtype is None,
        ),
    )
