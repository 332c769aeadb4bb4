"""Shampoo with grafting as a composition of transforms (Distributed Shampoo's arguments and defaults)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from functional_optim import _validation
from functional_optim.combinators.blockwise import blockwise
from functional_optim.combinators.precondition_momentum import precondition_momentum
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.diagonal_preconditioner import (
    scale_by_diagonal_preconditioner,
    scale_by_identity_preconditioner,
)
from functional_optim.transforms.grafting import graft
from functional_optim.transforms.momentum import trace
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.shampoo import scale_by_shampoo
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["GRAFTING_RULES", "shampoo"]

GRAFTING_RULES: dict[str, dict[str, Any]] = {
    "sgd": {},
    "adagrad": {"b2": 1.0, "bias_correction": False},
    "rmsprop": {"b2": 0.99, "bias_correction": False},
    "adam": {"b2": 0.999, "bias_correction": True},
}
"""Distributed Shampoo's grafting configs as
[`scale_by_diagonal_preconditioner`][functional_optim.scale_by_diagonal_preconditioner]
arguments (``beta2`` defaults of ``AdaGrad/RMSprop/AdamPreconditionerConfig``; ``sgd``:
[`scale_by_identity_preconditioner`][functional_optim.scale_by_identity_preconditioner])."""


def _grafting_rule(grafting: str, beta2: float | None, epsilon: float) -> GradientTransformation:
    if grafting == "sgd":
        return scale_by_identity_preconditioner()
    kw = dict(GRAFTING_RULES[grafting])
    if beta2 is not None:
        if grafting == "adagrad":
            raise ValueError("shampoo: grafting_beta2 has no meaning for AdaGrad grafting (a sum)")
        kw["b2"] = beta2
    return scale_by_diagonal_preconditioner(eps=epsilon, **kw)


@schedulable("lr", "weight_decay")
def shampoo(
    lr: Hyperparam = 1e-2,
    betas: tuple[float, float] = (0.9, 1.0),
    beta3: float = -1.0,
    epsilon: float = 1e-12,
    weight_decay: Hyperparam = 0.0,
    weight_decay_type: str = "decoupled",
    max_preconditioner_dim: int | float = 1024,
    precondition_frequency: int = 1,
    start_preconditioning_step: int = -1,
    use_bias_correction: bool = True,
    grafting: str | None = None,
    grafting_beta2: float | None = None,
    grafting_epsilon: float = 1e-10,
    inverse_exponent_override: Mapping[int, Mapping[int, float] | float] | None = None,
    momentum: float = 0.0,
    use_nesterov: bool = False,
    *,
    factor_matrix_dtype: torch.dtype | None = torch.float32,
) -> GradientTransformation:
    r"""Shampoo with grafting, as Distributed Shampoo (Shi et al. 2023; ``DistributedShampoo`` with
    the default root-inverse preconditioner), with its arguments and defaults.

    ```text
    chain(add_decayed_weights(wd)                                 # weight_decay_type="l2" only
          blockwise(                                              # merge small dims, cut blocks
              precondition_momentum(                              # ḡ = EMA(g) / (1 - β₃β₁^{t-1})
                  graft(scale_by_diagonal_preconditioner(...),    # |P_graft(ḡ)| ...
                        scale_by_shampoo(β₂, ε, ...),             # ... in the direction F̂_L ḡ F̂_R
                        warmup=start_preconditioning_step - 1),
                  b1=β₁, b3=β₃, bias_correction=use_bias_correction),
              max_preconditioner_dim),
          add_decayed_weights(wd, decoupled=True),                # weight_decay_type="decoupled"
          trace(momentum, nesterov=use_nesterov),                 # ClassicMomentumConfig, if momentum > 0
          scale_by_learning_rate(lr))
    ```

    Statistics (Shampoo's factor matrices and the grafting rule's ``v``) are fitted on the raw
    gradient of each block; both are applied to the filtered gradient. Without grafting the
    Shampoo direction is used as it is (the identity before the first root). 1-D parameters (and
    matrices merged into vectors: a ``16 × 4`` weight is a 64-vector when ``max_preconditioner_dim
    >= 64``) get one full ``d × d`` factor with exponent ``-1/2``.

    Args:
      lr: learning rate.
      betas: ``(β₁, β₂)``: the filtered gradient's EMA factor and the factor matrices' (``β₂ = 1``: sums).
      beta3: the current step's factor of the filtered gradient (``-1``: ``β₁``).
      epsilon: added to the factor matrices' eigenvalues.
      weight_decay: the decay coefficient.
      weight_decay_type: ``"decoupled"`` (added to the search direction) or ``"l2"`` (to the gradient).
      max_preconditioner_dim: the largest block dimension (``math.inf``: no blocking).
      precondition_frequency: steps between recomputations of the inverse roots.
      start_preconditioning_step: first recomputation; before it the grafting rule alone is used
        (``-1``: ``precondition_frequency``).
      use_bias_correction: bias corrections of the filtered gradient and of the factor matrices.
      grafting: ``None``, ``"sgd"``, ``"adagrad"``, ``"rmsprop"`` or ``"adam"``.
      grafting_beta2: the grafting rule's ``β₂`` (RMSprop 0.99, Adam 0.999 by default).
      grafting_epsilon: the grafting rule's ``ε``.
      inverse_exponent_override: see
        [`shampoo_inverse_exponents`][functional_optim.shampoo_inverse_exponents].
      momentum: classic momentum on the search direction (the reference's ``ClassicMomentumConfig``
        with ``dampening=0``); ``0`` = none.
      use_nesterov: Nesterov form of that momentum.
      factor_matrix_dtype: dtype of the factor matrices and roots (float32 as the reference).

    Example:
      >>> opt = fo.shampoo(lr=1e-2, grafting="adagrad", max_preconditioner_dim=8)
      >>> params = {"w": torch.ones(8, 16), "b": torch.zeros(16)}
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     grads = {"w": torch.randn(8, 16), "b": torch.randn(16)}
      ...     updates, state = opt.update(grads, state, params)
      ...     params = fo.apply_updates(params, updates)

    References:
      Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization", ICML 2018;
      Agarwal et al., "Disentangling Adaptive Gradient Methods from Learning Rates", 2020 (grafting);
      Shi et al., arXiv:2309.06497, 2023 (github.com/facebookresearch/optimizers).
    """
    _validation.learning_rate(lr)
    beta1, beta2 = betas
    _validation.require(lambda v: 0.0 <= v < 1.0, beta1, f"Invalid beta parameter at index 0: {beta1}")
    _validation.require(lambda v: 0.0 <= v <= 1.0, beta2, f"Invalid beta parameter at index 1: {beta2}")
    _validation.require(
        lambda v: v == -1.0 or 0.0 <= v < 1.0, beta3, f"Invalid beta3: {beta3} (must be -1 or in [0, 1))"
    )
    _validation.require(lambda v: v > 0.0, epsilon, f"Invalid epsilon value: {epsilon} (must be > 0)")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    _validation.require(lambda v: v >= 0.0, momentum, f"Invalid momentum value: {momentum}")
    if weight_decay_type not in ("decoupled", "l2"):
        raise ValueError(f"shampoo: weight_decay_type must be 'decoupled' or 'l2', got {weight_decay_type!r}")
    if grafting is not None and grafting not in GRAFTING_RULES:
        raise ValueError(
            f"shampoo: grafting must be None or one of {sorted(GRAFTING_RULES)}, got {grafting!r}"
        )
    if not (
        max_preconditioner_dim == math.inf
        or (isinstance(max_preconditioner_dim, int) and max_preconditioner_dim >= 1)
    ):
        raise ValueError(
            "shampoo: max_preconditioner_dim must be a positive int or math.inf, "
            f"got {max_preconditioner_dim!r}"
        )
    if use_nesterov and not momentum:
        raise ValueError("shampoo: use_nesterov needs a momentum > 0")
    direction = scale_by_shampoo(
        beta2,
        epsilon,
        precondition_frequency,
        start_preconditioning_step,
        use_bias_correction,
        inverse_exponent_override,
        factor_matrix_dtype=factor_matrix_dtype,
    )
    if grafting is not None:
        start = precondition_frequency if start_preconditioning_step == -1 else start_preconditioning_step
        rule = _grafting_rule(grafting, grafting_beta2, grafting_epsilon)
        direction = graft(rule, direction, warmup=max(start - 1, 0))
    elif grafting_beta2 is not None:
        raise ValueError("shampoo: grafting_beta2 given without grafting")
    search = blockwise(
        precondition_momentum(direction, beta1, beta3, bias_correction=use_bias_correction),
        max_preconditioner_dim,
    )
    parts = []
    if weight_decay_type == "l2":
        parts.append(add_decayed_weights(weight_decay))
    parts.append(search)
    if weight_decay_type == "decoupled":
        parts.append(add_decayed_weights(weight_decay, decoupled=True))
    if momentum:
        parts.append(trace(momentum, nesterov=use_nesterov))
    parts.append(scale_by_learning_rate(lr))
    return chain(*parts)
