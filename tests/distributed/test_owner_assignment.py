"""Owner assignment of distributed Muon (single process: no process group needed)."""

from __future__ import annotations

import itertools

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import functional_optim as fo
from functional_optim.transforms.orthogonalize_distributed import assign_owners, ns_cost


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 10_000), min_size=0, max_size=12), st.integers(1, 5))
@example(costs=[1, 1, 1, 1, 9, 9, 9, 9], world=3)  # optimum 18 (two 9s share a rank), above sum/world
def test_assign_owners_is_within_graham_bound_of_the_best_balance(costs: list[int], world: int) -> None:
    owners = assign_owners(costs, world)
    assert len(owners) == len(costs) and all(0 <= o < world for o in owners)
    loads = [sum(c for c, o in zip(costs, owners, strict=True) if o == r) for r in range(world)]
    if len(costs) <= 7:  # exhaustive optimum for small cases: Graham's LPT bound, 4/3 of it
        best = min(
            max(sum(c for c, o in zip(costs, a, strict=True) if o == r) for r in range(world))
            for a in itertools.product(range(world), repeat=len(costs))
        )
        assert max(loads, default=0) <= 4 / 3 * best + 1e-9
    else:  # no optimum to compare with: the bound of any greedy list schedule (Graham 1966)
        assert max(loads) <= sum(costs) / world + (1 - 1 / world) * max(costs) + 1e-9
    assert assign_owners(costs, world) == owners  # deterministic: every rank agrees without talking


def test_ns_cost_counts_flops_of_the_matrix_view() -> None:
    assert ns_cost((32, 16)) == 32 * 16 * 16
    assert ns_cost((16, 32)) == ns_cost((32, 16))
    assert ns_cost((3, 4, 5), reshape="batch") == 3 * 4 * 5 * 4


def test_orthogonalize_distributed_without_a_process_group_is_orthogonalize() -> None:
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(8, 5, generator=gen), None, torch.randn(4, 6, generator=gen)]
    expected, _ = fo.orthogonalize(ns_dtype=torch.float32).update(grads, fo.EmptyState())
    got, _ = fo.orthogonalize_distributed(ns_dtype=torch.float32).update(grads, fo.EmptyState())
    assert got[1] is None
    for a, b in zip(got, expected, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


def test_muon_distributed_keyword_builds_the_divided_chain_and_equals_muon_in_one_process() -> None:
    gen = torch.Generator().manual_seed(1)
    params = [torch.randn(6, 4, generator=gen)]
    grads = [torch.randn(6, 4, generator=gen)]
    a, b = fo.muon(ns_dtype=torch.float32), fo.muon(ns_dtype=torch.float32, distributed=True)
    ua, _ = a.update(grads, a.init(params), params)
    ub, _ = b.update(grads, b.init(params), params)
    assert torch.equal(ua[0], ub[0])
