"""AdaMuon as a composition of transforms (the official code's arguments and defaults)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.muon_momentum import scale_by_ema_momentum
from functional_optim.transforms.orthogonalize import ReshapeRule, orthogonalize
from functional_optim.transforms.rms_matching import scale_to_rms
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.sign import scale_by_sign
from functional_optim.transforms.update_second_moment import scale_by_update_second_moment
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adamuon"]

Triple = tuple[float, float, float]


@schedulable("lr", "weight_decay", "momentum", "beta2", "rms")
def adamuon(
    lr: Hyperparam = 0.02,
    weight_decay: Hyperparam = 0.01,
    momentum: Hyperparam = 0.95,
    nesterov: bool = True,
    ns_steps: int = 5,
    eps: float = 1e-8,
    *,
    beta2: Hyperparam | None = None,
    sign: bool = True,
    bias_correction: bool = False,
    rms: Hyperparam = 0.2,
    ns_coefficients: str | Triple | Sequence[Triple] = "keller",
    ns_dtype: torch.dtype | None = None,
    reshape: ReshapeRule = "flatten",
) -> GradientTransformation:
    r"""AdaMuon: Muon with an element-wise second moment of the orthogonalised update (official code).

    ```text
    chain(scale_by_ema_momentum(momentum, nesterov),     # B = lerp(B, g, 1-μ); u = lerp(g, B, μ)
          scale_by_sign(),                                # sign(u)            (if sign)
          orthogonalize(ns_coefficients, ns_steps),       # O ≈ U Vᵀ
          scale_by_update_second_moment(beta2, eps),      # v = β₂v + (1-β₂)O²;  O / (√v + ε)
          scale_to_rms(rms, eps),                         # · rms·√(mn) / (‖·‖_F + ε)
          add_decayed_weights(weight_decay),
          scale_by_learning_rate(lr))                     # p ← p(1 - lr·wd) - lr·u
    ```

    The defaults are the official code's (``β₂ = momentum``, sign before Newton–Schulz, Nesterov,
    no bias correction). pytorch-optimizer's ``AdaMuon`` is ``momentum=0.9, nesterov=False,
    sign=False, beta2=0.95, bias_correction=True, eps=1e-10``.

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      weight_decay: decoupled weight decay.
      momentum: EMA momentum ``μ``.
      nesterov: Nesterov look-ahead.
      ns_steps: Newton–Schulz steps.
      eps: of the second-moment division and of the RMS matching.
      beta2: EMA factor of the second moment (``None`` = ``momentum``, the official code).
      sign: take the sign of the momentum before Newton–Schulz (the official code).
      bias_correction: divide the second moment by ``1-β₂ᵗ``.
      rms: target RMS of the update (0.2 = AdamW's).
      ns_coefficients: Newton–Schulz coefficients (see [`orthogonalize`][]).
      ns_dtype: dtype of Newton–Schulz (``None``: bf16 where fast, else float32; the official
        code: bf16).
      reshape: matrix view of non-2-D parameters (``"flatten"``, as the official code for conv).

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> opt = fo.adamuon(lr=0.02)
      >>> params = {"w": torch.randn(4, 3)}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": torch.randn(4, 3)}, state, params)

    References:
      Si et al., "AdaMuon: Adaptive Muon Optimizer", arXiv:2507.11005, 2025
      (official code: github.com/Chongjie-Si/AdaMuon).
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("weight_decay", weight_decay)
    _validation.beta("momentum", momentum)
    return chain(
        scale_by_ema_momentum(momentum, nesterov),
        *([scale_by_sign()] if sign else []),
        orthogonalize(ns_coefficients, ns_steps, ns_dtype=ns_dtype, reshape=reshape),
        scale_by_update_second_moment(momentum if beta2 is None else beta2, eps, bias_correction),
        scale_to_rms(rms, eps),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr),
    )
