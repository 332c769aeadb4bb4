"""Property tests over random trees, shapes and dtypes.

- ``update`` never mutates its inputs (grads, state, params), for every algorithm;
- ``chain`` is associative and ``identity`` is its unit;
- ``apply_updates`` keeps the tree structure and each leaf's dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import functional_optim as fo
from functional_optim import tree
from tests._catalog import available

DTYPES = [torch.float32, torch.float64]


class Pair(NamedTuple):
    first: object
    second: object


@st.composite
def tensors(draw, dtype=None):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    dtype = dtype or draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def trees(leaves):
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3),
            st.tuples(children, children),
            st.dictionaries(st.sampled_from(list("abcde")), children, min_size=1, max_size=3),
            st.builds(Pair, children, children),
        ),
        max_leaves=5,
    )


@st.composite
def params_and_grads(draw):
    params = draw(trees(tensors()))
    leaves, spec = tree.flatten(params)
    drop = draw(st.lists(st.booleans(), min_size=len(leaves), max_size=len(leaves)))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    grads = [
        None
        if (d and len(leaves) > 1)
        else torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
        for p, d in zip(leaves, drop, strict=False)
    ]
    return params, tree.unflatten(spec, grads)


def _snapshot(t):
    return tree.map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, t)


def _assert_bitwise_equal(a, b):
    la, sa = tree.flatten(a)
    lb, sb = tree.flatten(b)
    assert sa == sb
    for x, y in zip(la, lb, strict=False):
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y)
        else:
            assert x == y


ALGORITHMS = available()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=params_and_grads())
def test_update_never_mutates_its_inputs(name, data):
    params, grads = data
    opt = ALGORITHMS[name]()
    state = opt.init(params)
    _, state = opt.update(grads, state, params)  # a second step exercises non-initial state
    before = (_snapshot(grads), _snapshot(state), _snapshot(params))
    updates, new_state = opt.update(grads, state, params)
    _assert_bitwise_equal((grads, state, params), before)
    assert tree.structure(new_state) == tree.structure(state)
    for u, g in zip(tree.leaves(updates), tree.leaves(grads), strict=False):
        assert (u is None) == (g is None)


def _transform_pool():
    return [fo.scale(0.5), fo.scale_by_adam(), fo.add_decayed_weights(0.1), fo.scale_by_learning_rate(0.1)]


@settings(max_examples=25, deadline=None)
@given(data=params_and_grads(), order=st.permutations(range(4)))
def test_chain_is_associative_and_identity_is_its_unit(data, order):
    params, grads = data
    a, b, c, _ = (_transform_pool()[i] for i in order)
    variants = [
        fo.chain(a, fo.chain(b, c)),
        fo.chain(fo.chain(a, b), c),
        fo.chain(a, b, c),
        fo.chain(fo.identity(), a, b, fo.identity(), c, fo.identity()),
    ]
    results = []
    for opt in variants:
        state = opt.init(params)
        p = params
        for _ in range(3):
            updates, state = opt.update(grads, state, p)
            p = fo.apply_updates(p, updates)
        results.append(p)
    for other in results[1:]:
        _assert_bitwise_equal(results[0], other)


@settings(max_examples=40, deadline=None)
@given(params=trees(tensors()), update_dtype=st.sampled_from([*DTYPES, torch.bfloat16]))
def test_apply_updates_keeps_structure_and_dtypes(params, update_dtype):
    updates = tree.map(lambda p: torch.ones(p.shape, dtype=update_dtype), params)
    new = fo.apply_updates(params, updates)
    assert tree.structure(new) == tree.structure(params)
    for p, q in zip(tree.leaves(params), tree.leaves(new), strict=False):
        assert q.dtype == p.dtype and q.shape == p.shape
        torch.testing.assert_close(q, p + torch.ones((), dtype=p.dtype))
