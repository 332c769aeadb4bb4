"""Muon as a composition of transforms (``torch.optim.Muon``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.muon_momentum import scale_by_ema_momentum
from functional_optim.transforms.orthogonalize import ReshapeRule, orthogonalize
from functional_optim.transforms.orthogonalize_distributed import orthogonalize_distributed
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.shape_scaling import AdjustLrFn, scale_by_shape
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["muon"]


@schedulable("lr", "weight_decay", "momentum")
def muon(
    lr: Hyperparam = 1e-3,
    weight_decay: Hyperparam = 0.1,
    momentum: Hyperparam = 0.95,
    nesterov: bool = True,
    ns_coefficients: str | tuple[float, float, float] | Sequence[tuple[float, float, float]] = (
        3.4445,
        -4.7750,
        2.0315,
    ),
    eps: float = 1e-7,
    ns_steps: int | None = None,
    adjust_lr_fn: AdjustLrFn = None,
    *,
    ns_dtype: torch.dtype | None = None,
    safety_factor: float | None = None,
    reshape: ReshapeRule = None,
    ns_method: str | None = None,
    distributed: bool | Any = False,
    state_dtype: torch.dtype | None = None,
) -> GradientTransformation:
    r"""Muon, with ``torch.optim.Muon``'s arguments, defaults and update rule.

    ```text
    chain(scale_by_ema_momentum(momentum, nesterov),   # B = lerp(B, g, 1-μ); u = lerp(g, B, μ)
          orthogonalize(ns_coefficients, ns_steps, eps, ns_dtype=ns_dtype),   # O ≈ U Vᵀ
          scale_by_shape(adjust_lr_fn),                # u = f(A, B)·O
          add_decayed_weights(wd, decoupled=True),        # decoupled: uses the unadjusted lr
          scale_by_learning_rate(lr))                  # p ← p(1 - lr·wd) - lr·f(A, B)·O
    ```

    For hidden 2-D matrices only; see [`muon_with_adamw`][] for a whole model.

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      weight_decay: decoupled weight decay (multiplied by the *unadjusted* lr, as torch).
      momentum: EMA momentum factor ``μ``.
      nesterov: Nesterov look-ahead.
      ns_coefficients: ``(a, b, c)`` (torch's default: Keller Jordan's), a list of per-step
        triples, or a preset name of [`orthogonalize`][] (``"keller"``, ``"cesista_you"``,
        ``"polar_express"``, ``"fast"``). ``"fast"``: 4 steps normalised by the Schatten-8 norm,
        Gram iteration for rectangular matrices; faster than torch's default and closer to the
        exact polar factor (numbers in the README's Muon section), but not torch's numbers.
      eps: floor of the Frobenius normaliser in Newton–Schulz (for the ``polar_express`` preset it is
        added to the norm instead, see [`orthogonalize`][]).
      ns_steps: number of Newton–Schulz steps (< 100). ``None``: the preset's (5 = torch's for a
        single triple, 4 for ``"fast"``).
      adjust_lr_fn: ``None``/``"original"`` (``sqrt(max(1, A/B))``), ``"match_rms_adamw"``
        (``0.2·sqrt(max(A, B))``) or a callable ``(lr, shape) -> adjusted lr``.
      ns_dtype: dtype of Newton–Schulz. ``None`` = bfloat16 on CUDA / CPUs with native bf16, float32
        elsewhere (torch.optim.Muon always uses bfloat16: pass ``torch.bfloat16`` for its exact numbers).
      safety_factor: multiplies the Frobenius norm before normalising (preset default).
      reshape: matrix view of non-2-D parameters (``None`` raises torch's error; ``"flatten"``,
        ``"batch"`` or a callable, see [`orthogonalize`][]).
      ns_method: ``None``: the preset's (``"auto"`` for ``"fast"``, else ``"direct"``);
        ``"direct"`` (torch's matmul sequence), ``"gram"`` or ``"auto"`` (iterate on the small Gram
        matrix of rectangular matrices: same maths, fewer flops; see [`orthogonalize`][]).
      distributed: ``True`` (default group) or a ``ProcessGroup``: divide Newton–Schulz across ranks,
        each orthogonalising the whole matrices it owns ([`orthogonalize_distributed`][]; DDP and
        FSDP2/DTensor parameters; same numbers). ``False``: every rank does all of it.
      state_dtype: ``torch.bfloat16`` keeps the momentum buffers of float32 parameters in
        bfloat16 (half the state memory; computed in float32, stored with stochastic rounding
        seeded by a per-parameter ``step`` count, see [`scale_by_ema_momentum`][]). ``None``: the
        parameters' dtype, torch's numbers.

    Example::

        opt = fo.muon(lr=0.02)
        state = opt.init(hidden_matrices)
        updates, state = opt.update(grads, state, hidden_matrices)
        hidden_matrices = fo.apply_updates(hidden_matrices, updates)

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training", arXiv:2502.16982, 2025.
    """
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    _validation.require(lambda v: v >= 0.0, lr, f"Learning rate should be >= 0 but is: {lr}")
    _validation.require(lambda v: v >= 0.0, momentum, f"momentum should be >= 0 but is: {momentum}")
    _validation.require(
        lambda v: v >= 0.0, weight_decay, f"weight decay should be >= 0 but is: {weight_decay}"
    )
    if (
        adjust_lr_fn is not None
        and not callable(adjust_lr_fn)
        and adjust_lr_fn not in ("original", "match_rms_adamw")
    ):
        raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
    return chain(
        scale_by_ema_momentum(momentum, nesterov, state_dtype=state_dtype),
        orthogonalize(ns_coefficients, ns_steps, eps, safety_factor, ns_dtype, reshape, ns_method=ns_method)
        if distributed is False
        else orthogonalize_distributed(
            ns_coefficients,
            ns_steps,
            eps,
            safety_factor,
            ns_dtype,
            reshape,
            process_group=None if distributed is True else distributed,
            ns_method=ns_method,
        ),
        scale_by_shape(adjust_lr_fn, learning_rate=lr if callable(adjust_lr_fn) else None, reshape=reshape),
        add_decayed_weights(weight_decay, decoupled=True),
        scale_by_learning_rate(lr),
    )
