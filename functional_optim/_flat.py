"""The 1-D views and write-backs of [`fo.compile_step`][functional_optim.compile_step]'s
elementwise mode: its compiled chunks take every tensor as a flat view (a tensor is never split),
write their results back into the given tensors, and take the gradients' views from a cache
while the same gradients come back."""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

__all__ = [
    "Padded",
    "chunk_grads",
    "field_view",
    "flat_grad",
    "flat_view",
    "padded_chunks",
    "write_back",
    "write_back_eager",
]


def write_back(olds: list[Any], news: list[Any]) -> None:
    """``old.copy_(new)`` for every tensor that changed (in compiled code: Inductor turns each
    copy into the store of the kernel that computes ``new``). Not one ``torch._foreach_copy_``:
    Inductor (torch 2.13) miscompiles it when a copied value is also read by the rest of the
    graph (RMSprop's momentum buffer, which is also the update, came out wrong)."""
    for o, n in zip(olds, news, strict=True):
        if isinstance(o, Tensor) and o is not n:
            o.copy_(n)


def write_back_eager(olds: list[Any], news: list[Any]) -> None:
    """`write_back` outside compiled code: one ``torch._foreach_copy_``."""
    pairs = [(o, n) for o, n in zip(olds, news, strict=True) if isinstance(o, Tensor) and o is not n]
    if pairs:
        torch._foreach_copy_([o for o, _ in pairs], [n for _, n in pairs])


def flat_view(t: Any) -> Tensor | None:
    """A contiguous 1-D view of ``t`` (in-place writes reach ``t``; no autograd), or ``None``."""
    if not isinstance(t, Tensor) or t.numel() < 2:
        return None
    try:
        v = t.detach().view(-1)
    except RuntimeError:
        return None
    return v if v.is_contiguous() else None


def field_view(t: Any, param: Tensor) -> Tensor | None:
    """A per-parameter state entry as the compiled chunk takes it: a 1-D view of an entry with
    the parameter's size, or a 0-dim tensor (a per-parameter step count) as it is."""
    if isinstance(t, Tensor) and t.dim() == 0 and t.device == param.device:
        return t.detach()
    v = flat_view(t)
    return v if v is not None and v.numel() == param.numel() and v.device == param.device else None


def flat_grad(g: Tensor) -> Tensor:
    """A gradient as a 1-D tensor (a view when it is contiguous)."""
    g = g.detach()  # a view of a gradient that requires grad would require grad, even under no_grad
    return g.view(-1) if g.is_contiguous() else g.reshape(-1).contiguous()


class GradChunk(Protocol):
    """A compiled chunk as `chunk_grads` reads it: which gradient leaves it steps, and the
    zero gradients of its padding."""

    @property
    def grad_index(self) -> list[int]: ...

    @property
    def pad_grads(self) -> list[Tensor]: ...


def chunk_grads(
    cache: dict[str, Any], chunks: Sequence[GradChunk], grad_leaves: list[Any]
) -> list[list[Tensor]]:
    """The gradients of each chunk as 1-D tensors (and the padding). When the gradients are the
    same tensors at the same addresses as at the previous call (gradients kept between steps,
    e.g. ``zero_grad(set_to_none=False)``), the views made then are used again (the caller has
    checked shapes, strides and offsets; only contiguous gradients, whose 1-D forms are views,
    not copies). Gradients are remembered by weak references until they are seen twice, so
    that new gradients at every step are not kept alive by this ``cache`` (the plan's)."""
    refs = cache.get("refs")
    same = (
        refs is not None
        and len(refs) == len(grad_leaves)
        and all(map(operator.is_, map(_call, refs), grad_leaves))
        and tuple(map(Tensor.data_ptr, grad_leaves)) == cache["pointers"]
    )
    if same and "views" in cache:
        return cache["views"]
    views = [[flat_grad(grad_leaves[i]) for i in chunk.grad_index] + chunk.pad_grads for chunk in chunks]
    cache.pop("views", None)
    cache.pop("refs", None)
    if all(isinstance(g, Tensor) and g.is_contiguous() for g in grad_leaves):
        cache["refs"] = list(map(weakref.ref, grad_leaves))
        cache["pointers"] = tuple(map(Tensor.data_ptr, grad_leaves))
        if same:
            cache["views"] = views
    return views


def _call(ref: Callable[[], Any]) -> Any:
    return ref()


class Padded(NamedTuple):
    """One chunk of a layout group (`padded_chunks`)."""

    leaves: list[int]  # the leaves it steps
    params: list[Tensor]  # their 1-D views, then the padding
    columns: list[list[Tensor]]  # per state field: the entries' views, then the padding
    pad_grads: list[Tensor]  # the padding's zero gradients


def padded_chunks(key: tuple, members: list[tuple[int, Tensor, list[Tensor]]], size: int) -> Iterator[Padded]:
    """The chunks of the tensors of one layout (``key``: device, gradient dtype, parameter dtype,
    then ``(dtype, dim)`` per state field; ``members``: leaf index, parameter view, field views),
    ``size`` at a time; the last is padded with 2-element zeros (0-dim ones for 0-dim fields)."""
    device, g_dtype, p_dtype, *field_kinds = key
    pad_params = [torch.zeros(2, dtype=p_dtype, device=device) for _ in range(size)]
    pad_fields = [
        [torch.zeros((2,) * n, dtype=d, device=device) for _ in range(size)] for d, n in field_kinds
    ]
    for start in range(0, len(members), size):
        part = members[start : start + size]
        n_pad = size - len(part)
        yield Padded(
            [i for i, _, _ in part],
            [v for _, v, _ in part] + pad_params[:n_pad],
            [[fv[j] for _, _, fv in part] + pad_fields[j][:n_pad] for j in range(len(pad_fields))],
            [torch.zeros(2, dtype=g_dtype, device=device) for _ in range(n_pad)],
        )
