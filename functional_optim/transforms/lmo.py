"""``scale_by_lmo``: the linear minimisation oracle of a norm ball (Scion's per-layer directions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Params, Updates
from functional_optim.transforms.orthogonalize import orthogonalize

__all__ = ["LMO_NORMS", "scale_by_lmo"]

_EPS = 1e-8

LMO_NORMS: dict[str, dict[str, Any]] = {
    # name -> keyword arguments and their defaults (the official Scion classes')
    "Auto": {},
    "Spectral": {"max": False, "normalized": True, "steps": 5},
    "SpectralConv": {"steps": 5},
    "Sign": {"zero_init": False, "normalized": True},
    "ColNorm": {"normalized": False, "transpose": False},
    "RowNorm": {"normalized": True, "transpose": False},
    "BiasRMS": {},
}


def _col_norm(g: Tensor, normalized: bool, transpose: bool) -> Tensor:
    x = g.transpose(0, 1) if transpose else g
    rms = torch.sqrt(torch.sum(x**2, dim=0, keepdim=True)) * (1 / math.sqrt(x.size(0)))
    if normalized:
        rms = rms * x.size(1)
    x = x / (rms + _EPS)
    return x.transpose(0, 1) if transpose else x


def _row_norm(g: Tensor, normalized: bool, transpose: bool) -> Tensor:
    x = g.transpose(0, 1) if transpose else g
    rms = torch.sqrt(torch.sum(x**2, dim=-1, keepdim=True))
    if normalized:
        rms = rms * math.sqrt(x.size(-1))
    x = x / (rms + _EPS)
    return x.transpose(0, 1) if transpose else x


def _bias_rms(g: Tensor) -> Tensor:
    return g / (torch.sqrt(torch.mean(g**2, dim=0, keepdim=True)) + _EPS)


def _sign(g: Tensor, normalized: bool) -> Tensor:
    return torch.sign(g) * (1 / g.size(1)) if normalized else torch.sign(g)


def _spectral_scale(shape: torch.Size, kind: str, kw: dict[str, Any]) -> float:
    if kind == "SpectralConv":
        d_out, d_in, *kernel = shape
        return (d_out / d_in) ** 0.5 / math.prod(kernel) if kernel else 1.0
    d_out, d_in = shape
    scale = (d_out / d_in) ** 0.5 if kw["normalized"] else d_out**0.5
    return max(1.0, scale) if kw["max"] else scale


def _kind(norm: str, g: Tensor) -> str:
    if norm != "Auto":
        return norm
    if g.ndim in (3, 4):
        return "SpectralConv"
    if g.ndim == 2:
        return "Spectral"
    if g.ndim in (0, 1):
        return "BiasRMS"
    raise ValueError(
        f"scale_by_lmo: norm='Auto' has no oracle for a {g.ndim}-D parameter of shape {tuple(g.shape)}"
    )


def scale_by_lmo(
    norm: str = "Auto", *, ns_dtype: torch.dtype | None = None, **norm_kwargs: Any
) -> GradientTransformation:
    r"""Replace each update by the linear minimisation oracle (LMO) direction of a norm ball.

    ``u = -lmo(g) = argmax_{‖d‖ ≤ 1} ⟨g, d⟩`` (the sign flip is left to the learning rate), with the
    official Scion norms (``d_out × d_in`` = the matrix's shape):

    ```text
    Spectral      U Vᵀ (Newton–Schulz) · √(d_out/d_in)   (√d_out if not normalized; max(1, ·) if max)
    SpectralConv  U Vᵀ of the (out, in·k...) view · √(d_out/d_in) / (kernel size)
    Sign          sign(g) / d_in                          (sign(g) if not normalized)
    ColNorm       g_{:,j} / (‖g_{:,j}‖/√d_out · (d_in if normalized) + 1e-8)
    RowNorm       g_{i,:} / (‖g_{i,:}‖ · (√d_in if normalized) + 1e-8)
    BiasRMS       g / (rms(g) + 1e-8)
    Auto          SpectralConv for 3-/4-D, Spectral for 2-D, BiasRMS for 0-/1-D
    ```

    Args:
      norm: one of [`LMO_NORMS`][] (the official class names).
      ns_dtype: dtype of Newton–Schulz (``None``: bf16 where fast, else float32; the official code
        always uses bf16).
      **norm_kwargs: the official class's arguments (``normalized``, ``transpose``, ``max``,
        ``steps``; ``zero_init`` only matters for initialisation and is accepted and ignored).

    Pure maths (the spectral oracles as [`orthogonalize`][]): ``torch.func.grad`` and ``vmap``
    apply as to ``orthogonalize``.

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> tx = fo.scale_by_lmo("Sign")
      >>> u, _ = tx.update({"w": torch.tensor([[2.0, -3.0]])}, tx.init({"w": torch.zeros(1, 2)}))
      >>> u["w"].tolist()
      [[0.5, -0.5]]

    References:
      Pethick et al., "Training Deep Learning Models with Norm-Constrained LMOs", ICML 2025
      (official code: github.com/LIONS-EPFL/scion).
    """
    if norm not in LMO_NORMS:
        raise ValueError(f"scale_by_lmo: norm must be one of {sorted(LMO_NORMS)}, got {norm!r}")
    unknown = set(norm_kwargs) - set(LMO_NORMS[norm])
    if unknown:
        raise ValueError(
            f"scale_by_lmo: norm={norm!r} takes {sorted(LMO_NORMS[norm]) or 'no arguments'}, "
            f"got {sorted(unknown)}"
        )
    kw = {**LMO_NORMS[norm], **norm_kwargs}
    steps = kw.get("steps", 5)
    ortho = orthogonalize("keller", steps, ns_dtype=ns_dtype, reshape="flatten")

    def oracle(g: Tensor) -> Callable[[Tensor], Tensor] | None:
        kind = _kind(norm, g)
        if kind == "ColNorm":
            return lambda x: _col_norm(x, kw["normalized"], kw["transpose"])
        if kind == "RowNorm":
            return lambda x: _row_norm(x, kw["normalized"], kw["transpose"])
        if kind == "BiasRMS":
            return _bias_rms
        if kind == "Sign":
            return lambda x: _sign(x, kw["normalized"])
        return None  # spectral

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra

        def fn(grads: list[Tensor], fields: list, _: Any):
            del fields
            out: list[Tensor | None] = [None] * len(grads)
            spectral = []
            for i, g in enumerate(grads):
                f = oracle(g)
                if f is None:
                    spectral.append(i)
                else:
                    out[i] = f(g)
            if spectral:
                orth, _ = ortho.update([grads[i] for i in spectral], EmptyState())
                for i, o in zip(spectral, orth, strict=True):
                    kind = _kind(norm, grads[i])
                    defaults = {**LMO_NORMS["Spectral"], **kw} if kind == "Spectral" else kw
                    out[i] = o * _spectral_scale(grads[i].shape, kind, defaults)
            return out, []

        new_updates, _ = update_leaves(fn, updates, [], name="scale_by_lmo")
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)
