"""Adam and AdamW as compositions of transforms (``torch.optim.Adam`` / ``torch.optim.AdamW``)."""

from __future__ import annotations

import torch

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.adam import scale_by_adam
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adam", "adamw"]


@schedulable("lr", "betas", "eps", "weight_decay")
def adam(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    state_dtype: torch.dtype | None = None,
) -> GradientTransformation:
    r"""Adam, with ``torch.optim.Adam``'s arguments, defaults and numerics.

    ```text
    chain(negate()            if maximize,
          add_decayed_weights(weight_decay)   # L2: g += wd·p   (unless decoupled)
          scale_by_adam(β1, β2, eps, amsgrad),
          add_decayed_weights(wd, decoupled=True)   # decoupled: p *= 1 - lr·wd (if decoupled)
          scale_by_learning_rate(lr))
    ```

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      betas: ``(β1, β2)`` for the first and second moments.
      eps: term added to the denominator.
      weight_decay: L2 penalty, or decoupled decay if ``decoupled_weight_decay``.
      amsgrad: use the AMSGrad maximum of the second moment.
      maximize: maximize the objective instead of minimizing.
      decoupled_weight_decay: AdamW-style decay (equivalent to [`adamw`][]).
      state_dtype: ``torch.bfloat16`` stores the moments in bfloat16 with stochastic rounding
        (half the state memory; see [`scale_by_adam`][]). ``None``: torch's float32 state.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.adam(lr=1e-3)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]  # first step: p - lr · g / |g|
        tensor([0.9990, 1.0010, 0.9990])

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("eps", eps, "epsilon value")
    betas = _validation.betas(betas)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    decay = add_decayed_weights(weight_decay, decoupled=decoupled_weight_decay)
    return chain(
        *([negate()] if maximize else []),
        *([] if decoupled_weight_decay else [decay]),
        scale_by_adam(betas[0], betas[1], eps, amsgrad=amsgrad, state_dtype=state_dtype),
        *([decay] if decoupled_weight_decay else []),
        scale_by_learning_rate(lr),
    )


@schedulable("lr", "betas", "eps", "weight_decay")
def adamw(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    state_dtype: torch.dtype | None = None,
) -> GradientTransformation:
    r"""AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``).

    The parameters decay beside the Adam step instead of the decay entering the moments; per
    parameter, at step $t$:

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
    p_t &= p_{t-1} - \mathrm{lr}\cdot\mathrm{wd}\cdot p_{t-1}
        - \mathrm{lr}\,\frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}
    \end{aligned}
    $$

    i.e. ``chain(scale_by_adam(β1, β2, eps), add_decayed_weights(wd), scale_by_learning_rate(lr))``.

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      betas: ``(β1, β2)`` for the first and second moments.
      eps: term added to the denominator.
      weight_decay: decoupled weight decay coefficient (torch's default 1e-2).
      amsgrad: use the AMSGrad maximum of the second moment.
      maximize: maximize the objective instead of minimizing.
      state_dtype: ``torch.bfloat16`` stores the moments in bfloat16 with stochastic rounding
        (half the state memory; see [`scale_by_adam`][]).

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.adamw(lr=1e-3, weight_decay=0.1)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> fo.apply_updates(params, updates)["w"]  # 1 - lr·wd·1 - lr·sign(g)
        tensor([0.9989, 1.0009, 0.9989])

    References:
      Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    return adam(
        lr,
        betas,
        eps,
        weight_decay,
        amsgrad,
        maximize=maximize,
        decoupled_weight_decay=True,
        state_dtype=state_dtype,
    )
