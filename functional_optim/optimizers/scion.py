"""Scion as a composition of transforms (the official code's arguments and defaults)."""

from __future__ import annotations

from typing import Any, cast

import torch

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.lmo import scale_by_lmo
from functional_optim.transforms.muon_momentum import scale_by_ema_momentum
from functional_optim.transforms.scaling import scale as _scale
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["scion"]


@schedulable("lr", "momentum", "scale")
def scion(
    lr: Hyperparam = 1e-3,
    momentum: Hyperparam = 1.0,
    norm: str = "Auto",
    norm_kwargs: dict[str, Any] | None = None,
    scale: Hyperparam = 1.0,
    unconstrained: bool = False,
    *,
    ns_dtype: torch.dtype | None = None,
) -> GradientTransformation:
    r"""Scion / uScion (Pethick et al. 2025) with the official code's arguments and defaults.

    ```text
    chain(scale_by_ema_momentum(1 - momentum, nesterov=False),  # d = (1-α) d + α g   (α = momentum)
          scale_by_lmo(norm, **norm_kwargs),                    # lmo(d) of the layer's norm ball
          scale(scale),                                         # radius ρ
          add_decayed_weights(1.0),                             # Scion only (constrained)
          scale_by_learning_rate(lr))
    Scion:  p ← (1 - lr)·p - lr·ρ·lmo(d)          uScion (unconstrained=True):  p ← p - lr·ρ·lmo(d)
    ```

    ``momentum`` is the official *one minus* the usual factor (``1.0`` = no momentum). Use one
    parameter group per layer type (``Spectral`` for hidden matrices, ``Sign``/``ColNorm``/``RowNorm``
    for embeddings and heads, ``BiasRMS`` for vectors), as in the official examples.

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      momentum: ``α`` of ``d = (1-α) d + α g``, in ``(0, 1]``.
      norm: the LMO's norm ([`LMO_NORMS`][]).
      norm_kwargs: arguments of that norm (``normalized``, ``transpose``, ``max``, ``steps``).
      scale: the radius ``ρ`` of the norm ball.
      unconstrained: uScion (no ``(1 - lr)`` shrinkage).
      ns_dtype: dtype of Newton–Schulz (``None``: bf16 where fast, else float32; official: bf16).

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> opt = fo.scion(lr=0.05, momentum=0.1, norm="Spectral", scale=50.0)
      >>> params = {"w": torch.randn(4, 3)}
      >>> updates, state = opt.update({"w": torch.randn(4, 3)}, opt.init(params), params)

    References:
      Pethick et al., "Training Deep Learning Models with Norm-Constrained LMOs", ICML 2025
      (official code: github.com/LIONS-EPFL/scion).
    """
    _validation.learning_rate(lr)
    _validation.require(lambda v: 0.0 < v <= 1.0, momentum, f"momentum must be in (0, 1], got {momentum}")
    return chain(
        # inside a @schedulable factory a hyperparameter is a value, never a schedule
        scale_by_ema_momentum(1.0 - cast("float | torch.Tensor", momentum), nesterov=False),
        scale_by_lmo(norm, ns_dtype=ns_dtype, **(norm_kwargs or {})),
        _scale(scale),
        *([] if unconstrained else [add_decayed_weights(1.0)]),
        scale_by_learning_rate(lr),
    )
