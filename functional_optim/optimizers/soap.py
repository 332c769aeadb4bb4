"""SOAP as a composition of transforms (the official code's arguments and defaults)."""

from __future__ import annotations

import torch

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.decay_after_update import decay_after_update
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.soap import scale_by_soap

__all__ = ["soap"]


@schedulable("lr", "betas", "shampoo_beta", "eps", "weight_decay")
def soap(
    lr: Hyperparam = 3e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.95, 0.95),
    shampoo_beta: Hyperparam = -1.0,
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0.01,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    normalize_grads: bool = False,
    correct_bias: bool = True,
    *,
    eigh_dtype: torch.dtype | None = torch.float32,
) -> GradientTransformation:
    r"""SOAP (Vyas et al. 2024) with the official code's arguments, defaults and update order.

    ```text
    chain(scale_by_soap(betas, shampoo_beta, eps, ...),       # Adam in Shampoo's eigenbasis
          scale_by_learning_rate(lr),                          # u = -lr·u
          decay_after_update(weight_decay, lr, skip_steps=1))  # p ← (p + u)(1 - lr·wd)
    ```

    The first step only builds the preconditioner (no update, no decay), as the official code.

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      betas: Adam's ``(β₁, β₂)``.
      shampoo_beta: EMA factor of the preconditioner; ``< 0`` = ``β₂``.
      eps: added to ``√v``.
      weight_decay: decay applied after the step (``p ← p(1 - lr·wd)`` on the updated ``p``).
      precondition_frequency: see [`scale_by_soap`][] (as the next five).
      max_precond_dim: largest dimension that gets a preconditioner.
      merge_dims: merge dimensions so that each is at most ``max_precond_dim``.
      precondition_1d: precondition 1-D parameters too.
      normalize_grads: normalise each gradient before the update.
      correct_bias: Adam's bias correction.
      eigh_dtype: dtype of the eigendecompositions (float32 as the official code).

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> opt = fo.soap(lr=3e-3)
      >>> params = {"w": torch.ones(4, 3), "b": torch.zeros(3)}
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     grads = {"w": torch.randn(4, 3), "b": torch.randn(3)}
      ...     updates, state = opt.update(grads, state, params)
      ...     params = fo.apply_updates(params, updates)

    References:
      Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv:2409.11321, 2024
      (official code: github.com/nikhilvyas/SOAP).
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    return chain(
        scale_by_soap(
            betas[0],
            betas[1],
            shampoo_beta,
            eps,
            precondition_frequency,
            max_precond_dim,
            merge_dims,
            precondition_1d,
            normalize_grads,
            correct_bias,
            eigh_dtype=eigh_dtype,
        ),
        scale_by_learning_rate(lr),
        decay_after_update(weight_decay, lr, skip_steps=1),
    )
