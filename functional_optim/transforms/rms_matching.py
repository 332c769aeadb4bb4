"""``scale_to_rms``: rescale each update to a fixed root-mean-square."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from functional_optim import _validation, ops
from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["scale_to_rms"]


@schedulable("rms")
def scale_to_rms(rms: Hyperparam = 0.2, eps: float = 1e-8) -> GradientTransformation:
    r"""Rescale each update tensor to the root-mean-square ``rms``: ``u = rms·√N · O / (‖O‖_F + ε)``.

    ``N`` is the tensor's number of elements. With ``rms = 0.2`` a matrix update has AdamW's typical
    RMS, so AdamW's learning rate and weight decay carry over (AdaMuon; Moonshot's Muon).
    Pure maths: works under ``torch.func.grad``, ``vmap`` and ``torch.compile``.

    Args:
      rms: the target RMS (float, 0-dim tensor or schedule).
      eps: added to the Frobenius norm.

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> tx = fo.scale_to_rms(0.2)
      >>> u, _ = tx.update({"w": torch.full((4,), 3.0)}, tx.init({"w": torch.zeros(4)}))
      >>> round(float(u["w"].square().mean().sqrt()), 4)
      0.2

    References:
      Si et al., "AdaMuon: Adaptive Muon Optimizer", arXiv:2507.11005, 2025.
      Liu et al., "Muon is Scalable for LLM Training", arXiv:2502.16982, 2025.
    """
    _validation.nonnegative("rms", rms)
    _validation.nonnegative("eps", eps)

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        target = ops.scalar(rms)

        def fn(grads: list[Tensor], fields: list, _: Any):
            del fields
            outs = [o * (target * math.sqrt(o.numel()) / (torch.linalg.vector_norm(o) + eps)) for o in grads]
            return outs, []

        new_updates, _ = update_leaves(fn, updates, [], name="scale_to_rms")
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)
