"""Small shared helpers for the combinator tests."""

from __future__ import annotations

import torch

from functional_optim import tree


def make_params(seed: int = 0, dtype: torch.dtype = torch.float32) -> dict:
    gen = torch.Generator().manual_seed(seed)
    shapes = {"w1": (4, 3), "b1": (3,), "w2": (3, 2, 2), "s": ()}
    return {k: torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for k, s in shapes.items()}


def make_grads(params: dict, step: int, seed: int = 100) -> dict:
    gen = torch.Generator().manual_seed(seed + step)
    return {
        k: torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) for k, p in params.items()
    }


def assert_trees_equal(a, b, exact: bool = True) -> None:
    la, sa = tree.flatten(a)
    lb, sb = tree.flatten(b)
    assert sa == sb, f"structures differ: {sa} vs {sb}"
    for x, y in zip(la, lb, strict=True):
        if x is None or y is None:
            assert x is None and y is None
        elif isinstance(x, torch.Tensor):
            if exact:
                assert x.dtype == y.dtype and x.shape == y.shape
                same_nans = torch.equal(x.isnan(), y.isnan())
                assert same_nans and torch.equal(x.nan_to_num(), y.nan_to_num()), (x, y)
            else:
                torch.testing.assert_close(x, y)
        else:
            assert x == y
