"""PSGD Kron as a composition of transforms (kron_torch's ``Kron`` arguments and defaults)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from functional_optim import _validation, tree
from functional_optim.combinators.masked import masked
from functional_optim.combinators.precondition_momentum import precondition_momentum
from functional_optim.core import GradientTransformation, Hyperparam, Params, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.kron import scale_by_kron
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["kron"]


def _matrices(params: Params) -> Any:
    return tree.map(lambda p: p is not None and p.dim() >= 2, params)


@schedulable("lr", "weight_decay")
def kron(
    lr: Hyperparam = 0.0003,
    b1: float = 0.9,
    weight_decay: Hyperparam = 0.0,
    preconditioner_update_probability: float | Callable[[torch.Tensor], Any] | None = None,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
    momentum_into_precond_update: bool = True,
    precond_lr: float = 0.1,
    precond_init_scale: float = 1.0,
    merge_dims: bool = True,
    precond_dtype: torch.dtype | None = None,
    *,
    seed: int | None = 0,
) -> GradientTransformation:
    r"""PSGD Kron (Li's PSGD with a Kronecker-factored preconditioner), with the arguments and
    defaults of kron_torch's ``Kron`` (Evan Walters; the form heavyball and pytorch-optimizer follow).

    ```text
    chain(precondition_momentum(scale_by_kron(...), b1,          # m̂ = EMA_b1(g) / (1 - b1ᵗ); fit Q on m̂
                                momentum_into_preconditioner=...),  # (or on g), u = clip(QᵀQ m̂)
          masked(add_decayed_weights(wd, decoupled=True), ndim >= 2),
          scale_by_learning_rate(lr))
    ```

    The probe vectors of the preconditioner fit come from a generator kept in the state
    (``seed``): see [`scale_by_kron`][functional_optim.scale_by_kron]. Weight decay applies to parameters of
    2 or more dimensions only, as the reference.

    Args:
      lr: learning rate.
      b1: momentum (EMA, bias-corrected); ``0``: none.
      weight_decay: decoupled decay, added to the preconditioned update of matrices.
      preconditioner_update_probability: see [`scale_by_kron`][functional_optim.scale_by_kron] (as the
        next seven arguments).
      max_size_triangular: dimensions larger than this get a diagonal factor.
      min_ndim_triangular: tensors with fewer dimensions get diagonal factors only.
      memory_save_mode: ``None``, ``"smart_one_diag"``, ``"one_diag"`` or ``"all_diag"``.
      momentum_into_precond_update: fit the preconditioner on the momentum (else on the gradient).
      precond_lr: the preconditioner's step size.
      precond_init_scale: the initial scale of ``Q``.
      merge_dims: view tensors of more than 2 dimensions as matrices.
      precond_dtype: dtype of the preconditioner (``None``: float32).
      seed: seed of the probe generator (``None``: a copy of torch's global generator at ``init``).

    Example:
      >>> opt = fo.kron(lr=3e-4, seed=0)
      >>> params = {"w": torch.ones(4, 3), "b": torch.zeros(3)}
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     grads = {"w": torch.randn(4, 3), "b": torch.randn(3)}
      ...     updates, state = opt.update(grads, state, params)
      ...     params = fo.apply_updates(params, updates)

    References:
      Li, "Preconditioned Stochastic Gradient Descent", IEEE TNNLS 2018 (arXiv:1512.04202);
      Li, "Black Box Lie Group Preconditioners for SGD", arXiv:2211.04422, 2022;
      github.com/evanatyourservice/kron_torch.
    """
    _validation.learning_rate(lr)
    _validation.require(
        lambda v: 0.0 <= v < 1.0, b1, f"Invalid b1 (momentum) value: {b1} (must be in [0, 1))"
    )
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    preconditioner = scale_by_kron(
        preconditioner_update_probability,
        max_size_triangular,
        min_ndim_triangular,
        memory_save_mode,
        precond_lr,
        precond_init_scale,
        merge_dims,
        precond_dtype,
        seed=seed,
    )
    return chain(
        precondition_momentum(preconditioner, b1, momentum_into_preconditioner=momentum_into_precond_update),
        masked(add_decayed_weights(weight_decay, decoupled=True), _matrices),
        scale_by_learning_rate(lr),
    )
