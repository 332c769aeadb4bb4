"""``blockwise``: run a transform on blocks of each parameter (Distributed Shampoo's blocking)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import tree
from functional_optim.core import Combinator, GradientTransformation, Params, Updates

__all__ = ["BlockwiseState", "block_shapes", "blockwise", "merge_small_dims"]


class BlockwiseState(NamedTuple):
    """State of [`blockwise`][].

    Attributes:
      num_blocks: per parameter, a 0-dim int64 tensor: how many blocks it is cut into (read only
        for a parameter whose gradient is ``None``, to pass ``None`` for each of its blocks).
      inner_state: the wrapped transform's state, built for the flat list of every parameter's
        blocks (parameter by parameter, blocks in row-major order).
    """

    num_blocks: Any
    inner_state: Any


def merge_small_dims(shape: Sequence[int], max_dim: int | float) -> tuple[int, ...]:
    """Distributed Shampoo's ``merge_small_dims`` (target dimensionality 1): dimensions of size 1
    are dropped, then neighbouring dimensions are merged, from the last one backwards, while their
    product stays ``<= max_dim``. ``()`` becomes ``(1,)``; a shape with a 0 becomes ``(0,)``.

    Example:
      >>> fo.merge_small_dims((1, 2, 5, 1), 10), fo.merge_small_dims((32, 3, 64, 64), 8192)
      ((10,), (96, 4096))
    """
    shape = tuple(int(s) for s in shape)
    if 0 in shape:
        return (0,)
    squeezed = [s for s in reversed(shape) if s != 1] or [1]
    merged = [squeezed[0]]
    for s in squeezed[1:]:
        if merged[-1] * s <= max_dim:
            merged[-1] *= s
        else:
            merged.append(s)
    return tuple(reversed(merged))


def block_shapes(view: Sequence[int], max_dim: int | float) -> list[tuple[int, ...]]:
    """The shapes of the blocks of a tensor of shape ``view`` cut into chunks of at most
    ``max_dim`` along every dimension (Distributed Shampoo's ``multi_dim_split``), row-major."""
    per_dim = [
        [s]
        if math.isinf(max_dim) or s <= max_dim
        else [*([int(max_dim)] * (s // int(max_dim))), s % int(max_dim)]
        for s in view
    ]
    per_dim = [[c for c in chunks if c > 0] or [0] for chunks in per_dim]
    shapes: list[tuple[int, ...]] = [()]
    for chunks in per_dim:
        shapes = [(*s, c) for s in shapes for c in chunks]
    return shapes


def _split(x: Tensor, view: tuple[int, ...], max_dim: int | float) -> list[Tensor]:
    blocks = [x.reshape(view)]
    if math.isinf(max_dim):
        return blocks
    for d in range(len(view)):
        blocks = [b for t in blocks for b in torch.split(t, int(max_dim), dim=d)]
    return blocks


def _join(blocks: list[Tensor], view: tuple[int, ...], max_dim: int | float) -> Tensor:
    """The inverse of `_split` (``torch.cat`` from the last dimension back)."""
    if len(blocks) == 1:
        return blocks[0]
    counts = [1 if math.isinf(max_dim) else max(1, -(-s // int(max_dim))) for s in view]
    for d in reversed(range(len(view))):
        n = counts[d]
        blocks = [torch.cat(blocks[i : i + n], dim=d) for i in range(0, len(blocks), n)]
    return blocks[0]


def blockwise(
    inner: GradientTransformation, max_dim: int | float = 1024, merge_dims: bool = True
) -> GradientTransformation:
    r"""Run ``inner`` on blocks of every parameter, as Distributed Shampoo does (Shi et al. 2023).

    Each tensor (gradient, parameter, and the ``apply_to`` extra if given) is viewed as
    [`merge_small_dims`][] of its shape (with ``merge_dims``), then cut into blocks of at most
    ``max_dim`` along every dimension; ``inner`` sees the flat list of all blocks as its tree
    (so a per-tensor rule inside, such as [`graft`][functional_optim.graft], acts per block) and
    the blocks of its update are put back together:

    $$
    u = \operatorname{join}\big(T(\operatorname{split}(g))\big)
    $$

    A parameter cut into one block is passed as a view (no copy). A ``None`` gradient gives
    ``None`` for each of its blocks.

    Args:
      inner: the transform run on the blocks.
      max_dim: the largest block dimension (``math.inf``: no blocking).
      merge_dims: merge small dimensions first (else only dimensions of size 1 are kept as they are
        and every dimension is cut).

    Example:
      >>> opt = fo.blockwise(fo.scale_by_shampoo(), max_dim=4)
      >>> params = {"w": torch.ones(6, 3)}
      >>> updates, state = opt.update({"w": torch.randn(6, 3)}, opt.init(params), params)
      >>> updates["w"].shape, [m.shape for m in state.inner_state.factor_matrices[1]]
      (torch.Size([6, 3]), [torch.Size([2, 2]), torch.Size([3, 3])])

    References:
      Shi et al., "A Distributed Data-Parallel PyTorch Implementation of the Distributed Shampoo
      Optimizer for Training Neural Networks At-Scale", arXiv:2309.06497, 2023
      (github.com/facebookresearch/optimizers).
    """
    if not isinstance(inner, GradientTransformation):
        raise ValueError(f"blockwise: inner must be a GradientTransformation, got {type(inner).__name__}")
    if not (max_dim == math.inf or (isinstance(max_dim, int) and max_dim >= 1)):
        raise ValueError(f"blockwise: max_dim must be a positive int or math.inf, got {max_dim!r}")

    def view_of(shape: Sequence[int]) -> tuple[int, ...]:
        return merge_small_dims(shape, max_dim) if merge_dims else (tuple(int(s) for s in shape) or (1,))

    def split(x: Tensor | None) -> list[Any]:
        return [None] if x is None else _split(x, view_of(x.shape), max_dim)

    def init_fn(params: Params) -> BlockwiseState:
        leaves, spec = tree.flatten(params)
        blocks = [b for p in leaves if p is not None for b in split(p)]
        counts = [
            None if p is None else torch.tensor(len(block_shapes(view_of(p.shape), max_dim))) for p in leaves
        ]
        return BlockwiseState(tree.unflatten(spec, counts), inner.init(blocks))

    def update_fn(updates: Updates, state: BlockwiseState, params: Params | None = None, **extra: Any):
        leaves, spec = tree.flatten(updates)
        counts = tree.flatten_like(spec, state.num_blocks, "blockwise: state")
        param_leaves = None if params is None else tree.flatten_like(spec, params, "blockwise: params")
        apply_to = extra.pop("apply_to", None)
        other_leaves = None if apply_to is None else tree.flatten_like(spec, apply_to, "blockwise: apply_to")
        blocks: list[Any] = []
        p_blocks: list[Any] = []
        a_blocks: list[Any] = []
        sizes: list[int] = []
        for i, (g, n) in enumerate(zip(leaves, counts, strict=True)):
            if n is None:  # a leaf that init saw as None
                continue
            gb = [None] * int(n) if g is None else split(g)
            if len(gb) != int(n):
                raise ValueError(
                    f"blockwise: leaf {tree.leaf_names(spec)[i]} of shape {tuple(g.shape)} is cut into "
                    f"{len(gb)} blocks, its state has {int(n)} (built for another shape)"
                )
            sizes.append(len(gb))
            blocks += gb
            if param_leaves is not None:
                p = param_leaves[i]
                p_blocks += [None] * len(gb) if p is None or g is None else split(p)
            if other_leaves is not None:
                a = other_leaves[i]
                a_blocks += [None] * len(gb) if a is None or g is None else split(a)
        if other_leaves is not None:
            extra["apply_to"] = a_blocks
        new_blocks, new_inner = inner.update(
            blocks, state.inner_state, None if param_leaves is None else p_blocks, **extra
        )
        out: list[Any] = []
        k = 0
        sizes_iter = iter(sizes)
        for g, n in zip(leaves, counts, strict=True):
            if n is None:
                out.append(g)
                continue
            size = next(sizes_iter)
            part = new_blocks[k : k + size]
            k += size
            if g is None:
                out.append(None)
            else:
                out.append(_join(list(part), view_of(g.shape), max_dim).reshape(g.shape))
        return tree.unflatten(spec, out), BlockwiseState(state.num_blocks, new_inner)

    return GradientTransformation(init_fn, update_fn, Combinator((inner,), keeps_old_state=False))
