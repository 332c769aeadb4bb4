"""Shared hypothesis strategies: random parameter trees, gradients and masks."""

from __future__ import annotations

import optree
import torch
from hypothesis import strategies as st

SHAPES = st.lists(st.integers(min_value=1, max_value=4), min_size=0, max_size=3).map(tuple)


@st.composite
def param_trees(draw, min_leaves: int = 1, max_leaves: int = 5, nested: bool = True) -> dict:
    """A dict (optionally with a nested dict and a list) of float32 tensors of random small shapes."""
    n = draw(st.integers(min_value=min_leaves, max_value=max_leaves))
    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    leaves = [torch.randn(draw(SHAPES), generator=gen) for _ in range(n)]
    if not nested or n < 3:
        return {f"p{i}": t for i, t in enumerate(leaves)}
    return {"a": leaves[0], "block": {"w": leaves[1], "rest": list(leaves[2:])}}


@st.composite
def grads_like(draw, params, allow_none: bool = True):
    """A gradient tree like ``params`` (random values), some leaves ``None`` if ``allow_none``."""

    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    leaves, spec = optree.tree_flatten(params, none_is_leaf=True)
    nones = draw(st.lists(st.booleans(), min_size=len(leaves), max_size=len(leaves))) if allow_none else []
    out = []
    for i, p in enumerate(leaves):
        out.append(None if allow_none and nones[i] else torch.randn(p.shape, generator=gen))
    return optree.tree_unflatten(spec, out)


@st.composite
def masks_like(draw, params):
    """A tree of Python bools with the structure of ``params``."""

    leaves, spec = optree.tree_flatten(params, none_is_leaf=True)
    flags = draw(st.lists(st.booleans(), min_size=len(leaves), max_size=len(leaves)))
    return optree.tree_unflatten(spec, flags)
