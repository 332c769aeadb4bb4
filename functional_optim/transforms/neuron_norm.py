"""``scale_by_neuron_norm``: NorMuon's per-neuron second-moment normalisation of an update."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["NeuronNormState", "scale_by_neuron_norm"]


class NeuronNormState(NamedTuple):
    """Per-parameter state of [`scale_by_neuron_norm`][].

    Attributes:
      second_momentum_buffer: EMA of each row's mean squared update, shape ``(rows, 1)`` (the
        official NorMuon code's key).
    """

    second_momentum_buffer: Any


def _rows(shape: torch.Size) -> int:
    if len(shape) < 2:
        raise ValueError(
            f"scale_by_neuron_norm: needs matrices (rows = neurons), got a parameter of shape {tuple(shape)}"
        )
    return shape[0]


@schedulable("beta2")
def scale_by_neuron_norm(beta2: Hyperparam = 0.95, eps: float = 1e-10) -> GradientTransformation:
    r"""Normalise each row (output neuron) of a matrix update by the EMA of its mean square,
    keeping the update's Frobenius norm (NorMuon).

    For an update ``O`` seen as ``rows × (everything else)``:

    $$
    v \leftarrow \beta_2 v + (1-\beta_2)\,\mathrm{mean}_j O_{ij}^2,\qquad
    \hat O = O \cdot \frac{1}{\sqrt{v} + \epsilon},\qquad
    u = \hat O\,\frac{\lVert O\rVert_F}{\lVert \hat O\rVert_F + \epsilon}
    $$

    Put it after [`orthogonalize`][] (the official NorMuon). Pure, list-level maths: works under
    ``torch.func.grad``, ``vmap`` and ``torch.compile``.

    Args:
      beta2: EMA factor of the row second moment (float, 0-dim tensor or schedule).
      eps: added to ``√v`` and to ``‖Ô‖_F`` (the official ``1e-10``).

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> tx = fo.scale_by_neuron_norm(0.95)
      >>> u, state = tx.update({"w": torch.ones(2, 3)}, tx.init({"w": torch.zeros(2, 3)}))
      >>> tuple(state.second_momentum_buffer["w"].shape)
      (2, 1)

    References:
      Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025
      (official code: github.com/zichongli5/NorMuon).
    """
    _validation.beta("beta2", beta2)
    _validation.nonnegative("eps", eps)

    def init_fn(params: Params) -> NeuronNormState:
        return NeuronNormState(
            tree.map(lambda p: None if p is None else p.new_zeros(_rows(p.shape), 1), params)
        )

    def update_fn(updates: Updates, state: NeuronNormState, params: Params | None = None, **extra: Any):
        del params, extra
        b2 = ops.scalar(beta2)

        def fn(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
            (vs,) = fields
            outs, new_vs = [], []
            for o, v in zip(grads, vs, strict=True):
                mat = o.reshape(_rows(o.shape), -1)
                norm = torch.linalg.vector_norm(mat)
                v = torch.lerp(v, torch.mean(mat * mat, dim=-1, keepdim=True), 1 - b2)
                scaled = mat * (1 / (v.sqrt() + eps))
                scaled = scaled * (norm / (torch.linalg.vector_norm(scaled) + eps))
                outs.append(scaled.reshape(o.shape))
                new_vs.append(v)
            return outs, [new_vs]

        new_updates, (vs,) = update_leaves(
            fn, updates, [state.second_momentum_buffer], name="scale_by_neuron_norm"
        )
        return new_updates, NeuronNormState(vs)

    return GradientTransformation(init_fn, update_fn)
