"""NorMuon as a composition of transforms (the official code's arguments and defaults)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.muon_momentum import scale_by_ema_momentum
from functional_optim.transforms.neuron_norm import scale_by_neuron_norm
from functional_optim.transforms.orthogonalize import ReshapeRule, orthogonalize
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.shape_scaling import scale_by_shape
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["normuon"]

Triple = tuple[float, float, float]


@schedulable("lr", "weight_decay", "momentum", "beta2")
def normuon(
    lr: Hyperparam = 0.02,
    weight_decay: Hyperparam = 0.0,
    momentum: Hyperparam = 0.95,
    beta2: Hyperparam = 0.95,
    nesterov: bool = True,
    ns_steps: int = 5,
    eps: float = 1e-10,
    ns_coefficients: str | Triple | Sequence[Triple] = "keller",
    *,
    ns_dtype: torch.dtype | None = None,
    reshape: ReshapeRule = "flatten",
) -> GradientTransformation:
    r"""NorMuon: Muon with per-neuron second-moment normalisation (the official code's defaults).

    ```text
    chain(scale_by_ema_momentum(momentum, nesterov),   # B = lerp(B, g, 1-μ); u = lerp(g, B, μ)
          orthogonalize(ns_coefficients, ns_steps),     # O ≈ U Vᵀ (Newton–Schulz)
          scale_by_neuron_norm(beta2, eps),             # rows / (√v_row + ε), Frobenius norm kept
          scale_by_shape(),                             # · √max(1, rows/cols)
          add_decayed_weights(weight_decay),
          scale_by_learning_rate(lr))                   # p ← p(1 - lr·wd) - lr·u
    ```

    For matrices (conv kernels are seen as ``out × in·kh·kw``); pair it with AdamW for the rest
    (e.g. [`partition`][]).

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      weight_decay: decoupled weight decay.
      momentum: EMA momentum ``μ``.
      beta2: EMA factor of the per-neuron second moment.
      nesterov: Nesterov look-ahead (the official code always uses it).
      ns_steps: Newton–Schulz steps.
      eps: of the normalisation (the official ``1e-10``).
      ns_coefficients: Newton–Schulz coefficients (see [`orthogonalize`][]).
      ns_dtype: dtype of Newton–Schulz (``None``: bf16 where fast, else float32; the official
        code always uses bf16, and also keeps the normalisation in bf16).
      reshape: matrix view of non-2-D parameters (``"flatten"``, as the official code for conv).

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> opt = fo.normuon(lr=0.02)
      >>> params = {"w": torch.randn(4, 3)}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": torch.randn(4, 3)}, state, params)

    References:
      Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025
      (official code: github.com/zichongli5/NorMuon).
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("weight_decay", weight_decay)
    _validation.beta("momentum", momentum)
    _validation.beta("beta2", beta2)
    return chain(
        scale_by_ema_momentum(momentum, nesterov),
        orthogonalize(ns_coefficients, ns_steps, ns_dtype=ns_dtype, reshape=reshape),
        scale_by_neuron_norm(beta2, eps),
        scale_by_shape(None, reshape=reshape),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr),
    )
