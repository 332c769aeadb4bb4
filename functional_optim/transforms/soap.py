"""``scale_by_soap``: Adam in the eigenbasis of Shampoo's preconditioner (SOAP, Vyas et al. 2024)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = ["ScaleBySoapState", "scale_by_soap", "soap_view_shape"]

_NONE: tuple = ()  # the placeholder of a dimension that has no preconditioner


class ScaleBySoapState(NamedTuple):
    """Per-parameter state of [`scale_by_soap`][] (names as the official code where it has them).

    Attributes:
      step: Adam steps taken (0-dim; the first call only builds the preconditioner, as the official
        code, so it is one less than the number of calls).
      initialized: 0-dim bool, set by the first call (the official code's ``"Q" in state``).
      exp_avg: first moment, in the eigenbasis (shape of the parameter).
      exp_avg_sq: second moment, in the eigenbasis (shape of the parameter).
      GG_L, GG_R: EMA of ``G Gᵀ`` and ``Gᵀ G`` of the (merged) matrix view (the official code's
        ``GG``; ``()`` for a dimension without a preconditioner, or for ``R`` of a vector view).
      Q_L, Q_R: their eigenbases (the official code's ``Q``; same placeholders).
    """

    step: Any
    initialized: Any
    exp_avg: Any
    exp_avg_sq: Any
    GG_L: Any
    GG_R: Any
    Q_L: Any
    Q_R: Any


def soap_view_shape(
    shape: Sequence[int], max_precond_dim: int = 10000, merge_dims: bool = False
) -> tuple[int, ...]:
    """The shape SOAP preconditions a parameter of ``shape`` as (1 or 2 dimensions).

    Without ``merge_dims`` the parameter's own shape; with it, consecutive dimensions are merged
    while their product stays ``<= max_precond_dim`` (the official code's ``merge_dims``). Views of
    more than 2 dimensions are not supported (``ValueError``).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) <= 1 or not merge_dims:
        view = shape if shape else (1,)
    else:
        merged: list[int] = []
        current = 1
        for s in shape:
            if current * s > max_precond_dim:
                if current > 1:
                    merged.append(current)
                    current = s
                else:
                    merged.append(s)
                    current = 1
            else:
                current *= s
        if current > 1 or not merged:
            merged.append(current)
        view = tuple(merged)
    if len(view) > 2:
        raise ValueError(
            f"scale_by_soap: a parameter of shape {shape} is seen as {view}, more than 2 dimensions "
            f"(pass merge_dims=True, or a larger max_precond_dim than {max_precond_dim})"
        )
    return view


def _outer(x: Tensor, dim: int) -> Tensor:
    """``x`` contracted with itself over every dimension but ``dim`` (``G Gᵀ`` / ``Gᵀ G``)."""
    others = [*itertools.chain(range(dim), range(dim + 1, x.dim()))]
    return torch.tensordot(x, x, dims=[others, others])


def _rotate(x: Tensor, qs: Sequence[Tensor | None], back: bool) -> Tensor:
    """``Q_Lᵀ X Q_R`` (``back=False``) or ``Q_L X Q_Rᵀ`` (``back=True``), one dimension at a time
    as the official code (a dimension without ``Q`` is only cycled to the end)."""
    for q in qs:
        if q is None:
            x = x.permute([*range(1, x.dim()), 0])
        else:
            x = torch.tensordot(x, q, dims=[[0], [1 if back else 0]])
    return x


def _eigenbasis(gg: Tensor, work: torch.dtype) -> Tensor:
    """Eigenvectors of ``gg``, by decreasing eigenvalue (``eigh`` in ``work``, float64 fallback)."""
    m = gg.to(work)
    eye = torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
    try:
        _, q = torch.linalg.eigh(m + 1e-30 * eye)
    except torch.linalg.LinAlgError:  # pragma: no cover - ill-conditioned in ``work``
        _, q = torch.linalg.eigh(m.double() + 1e-30 * eye.double())
        q = q.to(m.dtype)
    return torch.flip(q, [1]).to(gg.dtype)


def _refresh_eigenbasis(
    ggs: list[Tensor | None], qs: list[Tensor | None], v: Tensor, work: torch.dtype
) -> tuple[list[Tensor | None], Tensor]:
    """One power iteration + QR per preconditioner, re-sorting ``Q`` (and ``v``'s axes) by the
    estimated eigenvalues (the official code's ``get_orthogonal_matrix_QR``)."""
    new_qs: list[Tensor | None] = []
    for axis, (gg, q) in enumerate(zip(ggs, qs, strict=True)):
        if gg is None or q is None:
            new_qs.append(None)
            continue
        m, o = gg.to(work), q.to(work)
        order = torch.argsort(torch.diag(o.T @ m @ o), descending=True)
        v = v.index_select(axis, order)
        q_new, _ = torch.linalg.qr(m @ o[:, order])
        new_qs.append(q_new.to(gg.dtype))
    return new_qs, v


@schedulable("b1", "b2", "shampoo_beta", "eps")
def scale_by_soap(
    b1: Hyperparam = 0.95,
    b2: Hyperparam = 0.95,
    shampoo_beta: Hyperparam = -1.0,
    eps: Hyperparam = 1e-8,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    normalize_grads: bool = False,
    correct_bias: bool = True,
    *,
    eigh_dtype: torch.dtype | None = torch.float32,
) -> GradientTransformation:
    r"""SOAP: Adam run in the eigenbasis of Shampoo's Kronecker preconditioner.

    For a matrix view ``G`` of the gradient (``m × n``; vectors have only ``L``):

    ```text
    first call:  L = (1-β_s) G Gᵀ,  R = (1-β_s) Gᵀ G,  Q_L, Q_R = eigenvectors (eigh, decreasing);
                 u = 0   (the official code never uses a gradient in its own projection)
    then, t = step + 1:
        G' = Q_Lᵀ G Q_R
        m  = β₁ m + (1-β₁) G';   v = β₂ v + (1-β₂) G'²              (both kept in the eigenbasis)
        u  = √(1-β₂ᵗ)/(1-β₁ᵗ) · Q_L (m / (√v + ε)) Q_Rᵀ     (no bias factor if not correct_bias;
             u ← u / (1e-30 + rms(u)) before the factor if normalize_grads)
        L ← β_s L + (1-β_s) G Gᵀ;   R ← β_s R + (1-β_s) Gᵀ G
        every precondition_frequency steps: Q ← QR(P Q) with Q's columns sorted by diag(Qᵀ P Q)
             (one power iteration), v's axes permuted alike, m rotated to the new basis.
    ```

    ``β_s = shampoo_beta`` if ``>= 0`` else ``b2``. A dimension larger than ``max_precond_dim``
    has no preconditioner (identity); 1-D parameters have none unless ``precondition_1d``.

    Not for ``torch.func.vmap`` / ``torch.compile(fullgraph=True)``: ``eigh``/``qr`` and the
    data-dependent first-step and refresh branches read the step counters as Python numbers.
    ``torch.func.grad`` through the update is not meaningful either (eigenvectors are not
    differentiable at repeated eigenvalues); use the plain first-order transforms for that.

    Args:
      b1, b2: Adam's betas (the official ``betas``; float, 0-dim tensor or schedule).
      shampoo_beta: EMA factor of ``L``, ``R``; ``< 0`` = use ``b2``.
      eps: added to ``√v``.
      precondition_frequency: steps between eigenbasis refreshes (power iteration + QR).
      max_precond_dim: dimensions larger than this are not preconditioned.
      merge_dims: merge consecutive dimensions while their product is ``<= max_precond_dim``
        (conv kernels). Views of more than 2 dimensions raise ``ValueError``.
      precondition_1d: precondition vectors with a full ``n × n`` ``L``.
      normalize_grads: divide the rotated-back update by its RMS.
      correct_bias: Adam's bias correction as the official code (``√(1-β₂ᵗ)/(1-β₁ᵗ)``).
      eigh_dtype: dtype of ``eigh``/``qr`` (the official code: float32 whatever the parameter's
        dtype); ``None`` = the preconditioner's dtype.

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> opt = fo.chain(fo.scale_by_soap(), fo.scale_by_learning_rate(3e-3))
      >>> params = {"w": torch.ones(3, 2)}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": torch.ones(3, 2)}, state, params)
      >>> bool(updates["w"].eq(0).all())  # the first call only builds the preconditioner
      True

    References:
      Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv:2409.11321, 2024
      (official code: github.com/nikhilvyas/SOAP).
    """
    _validation.beta("b1", b1)
    _validation.beta("b2", b2)
    _validation.nonnegative("eps", eps)
    _validation.require(lambda v: v < 1.0, shampoo_beta, f"shampoo_beta must be < 1, got {shampoo_beta}")
    if not isinstance(precondition_frequency, int) or precondition_frequency < 1:
        raise ValueError(
            f"scale_by_soap: precondition_frequency must be a positive int, got {precondition_frequency!r}"
        )
    if not isinstance(max_precond_dim, int) or max_precond_dim < 1:
        raise ValueError(f"scale_by_soap: max_precond_dim must be a positive int, got {max_precond_dim!r}")
    if eigh_dtype is not None and not (isinstance(eigh_dtype, torch.dtype) and eigh_dtype.is_floating_point):
        raise ValueError(f"scale_by_soap: eigh_dtype must be None or a floating dtype, got {eigh_dtype!r}")

    def preconditioned(view: tuple[int, ...], ndim: int) -> list[bool]:
        if ndim <= 1:
            return [precondition_1d and view[0] <= max_precond_dim]
        return [s <= max_precond_dim for s in view]

    def init_leaf(p: Tensor) -> tuple:
        view = soap_view_shape(p.shape, max_precond_dim, merge_dims)
        flags = preconditioned(view, p.dim())
        mats = [
            torch.zeros(s, s, dtype=p.dtype, device=p.device) if f else _NONE
            for s, f in zip(view, flags, strict=True)
        ]
        mats += [_NONE] * (2 - len(mats))
        qs = [torch.zeros_like(m) if isinstance(m, Tensor) else _NONE for m in mats]
        return (torch.zeros_like(p), torch.zeros_like(p), *mats, *qs)

    def init_fn(params: Params) -> ScaleBySoapState:
        leaves, spec = tree.flatten(params)
        cols: list[list[Any]] = [[] for _ in range(6)]
        for p in leaves:
            fields = init_leaf(p) if p is not None else (None,) * 6
            for c, f in zip(cols, fields, strict=True):
                c.append(f)
        exp_avg, exp_avg_sq, gg_l, gg_r, q_l, q_r = (tree.unflatten(spec, c) for c in cols)
        flags = tree.map(lambda p: None if p is None else torch.zeros((), dtype=torch.bool), params)
        return ScaleBySoapState(_steps.zeros(params), flags, exp_avg, exp_avg_sq, gg_l, gg_r, q_l, q_r)

    def update_fn(updates: Updates, state: ScaleBySoapState, params: Params | None = None, **extra: Any):
        del params, extra
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)
        sb = ops.scalar(shampoo_beta)
        sb = beta2 if sb < 0 else sb

        def leaf(g: Tensor, fields: list[Any]) -> tuple[Tensor, list[Any]]:
            step, flag, m, v, gg_l, gg_r, q_l, q_r = fields
            view = soap_view_shape(g.shape, max_precond_dim, merge_dims)
            ggs = [x if isinstance(x, Tensor) else None for x in (gg_l, gg_r)][: len(view)]
            work = eigh_dtype or g.dtype
            gv = g.reshape(view)
            new_ggs = [None if x is None else torch.lerp(x, _outer(gv, i), 1 - sb) for i, x in enumerate(ggs)]

            def pack(qs: list[Tensor | None], mats: list[Tensor | None]) -> list[Any]:
                pad = [_NONE] * (2 - len(view))
                return [
                    *(_NONE if x is None else x for x in mats),
                    *pad,
                    *(_NONE if x is None else x for x in qs),
                    *pad,
                ]

            if not bool(flag):
                qs = [None if x is None else _eigenbasis(x, work) for x in new_ggs]
                new_flag = torch.ones((), dtype=torch.bool)
                return torch.zeros_like(g), [step, new_flag, m, v, *pack(qs, new_ggs)]
            qs = [x if isinstance(x, Tensor) else None for x in (q_l, q_r)][: len(view)]
            new_step = step + 1
            t = float(new_step)
            gp = _rotate(gv, qs, back=False).reshape(g.shape)
            # torch's stub types alpha as a number; a 0-dim tensor (traced beta) works at runtime
            m = torch.add(m * beta1, gp, alpha=cast(Any, 1 - beta1))
            v = torch.add(v * beta2, gp.square(), alpha=cast(Any, 1 - beta2))
            ratio = (m / (v.sqrt() + eps_)).reshape(view)
            u = _rotate(ratio, qs, back=True).reshape(g.shape)
            if normalize_grads:
                u = u / (1e-30 + torch.mean(u**2) ** 0.5)
            if correct_bias:
                u = u * (math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t))
            if int(t) % precondition_frequency == 0:
                m_orig = _rotate(m.reshape(view), qs, back=True)
                qs, v_view = _refresh_eigenbasis(new_ggs, qs, v.reshape(view), work)
                v = v_view.reshape(g.shape)
                m = _rotate(m_orig, qs, back=False).reshape(g.shape)
            return u, [new_step, flag, m, v, *pack(qs, new_ggs)]

        def fn(grads: list[Tensor], fields: list[list[Any]], _: Any):
            outs = [leaf(g, [f[i] for f in fields]) for i, g in enumerate(grads)]
            new_fields = [[o[1][k] for o in outs] for k in range(len(fields))]
            return [o[0] for o in outs], new_fields

        new_updates, new_fields = update_leaves(
            fn, updates, list(state), name="scale_by_soap", elementwise_state=False
        )
        return new_updates, ScaleBySoapState(*new_fields)

    return GradientTransformation(init_fn, update_fn)
