"""Every transform family on DTensor parameters (2 and 4 gloo ranks) against the unsharded run, the
divided Newton–Schulz of ``fo.muon(distributed=True)``, FSDP2 (``fully_shard``) drop-ins, and DCP
checkpoints that change world size. Each test is one process group (or three) running many checks:
starting processes is the cost."""

from __future__ import annotations

import pytest
import torch

from functional_optim.transforms.orthogonalize_distributed import ns_cost
from tests.distributed import _workers
from tests.distributed._harness import run_ranks

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available"),
]


@pytest.mark.parametrize("world", [2, 4])
def test_every_transform_family_on_dtensors_and_fsdp2_matches_the_unsharded_run(world: int) -> None:
    results = run_ranks(_workers.check_all, world, timeout=600)
    functional, fsdp, muon = (results[0][k] for k in ("functional", "fsdp", "muon"))
    assert len(functional) == 2 * len(_workers.functional_algorithms())
    bad = {k: v for k, v in functional.items() if not v <= 1e-12}
    assert not bad, f"float64 Shard(0)/Shard(1) DTensor parameters differ from the unsharded run: {bad}"
    bad = {k: v for k, v in fsdp.items() if not v <= 1e-6}
    assert not bad, f"drop-ins on a fully_shard model differ from the same drop-in unsharded: {bad}"

    # distributed Muon: same numbers as the single-process fo.muon, in the input's layout
    tol = {"torch.float64": 1e-12, "torch.float32": 1e-6}
    checks = {k: v for k, v in muon.items() if k != "share"}
    assert len(checks) == 12
    bad = {k: v for k, v in checks.items() if not (v[0] <= tol[k.split()[0]] and v[1])}
    assert not bad, f"fo.muon(distributed=True) differs from the single-process fo.muon: {bad}"
    for r in results[1:]:
        assert {k: v for k, v in r["muon"].items() if k != "share"} == checks

    # and the Newton-Schulz work is divided: shares sum to 1, the largest within LPT's 4/3 bound
    shares = [r["muon"]["share"] for r in results]
    costs = [ns_cost(s) for s in _workers.MUON_SHAPES]
    assert sum(shares) == pytest.approx(1.0)
    assert max(shares) <= 4 / 3 * max(1 / world, max(costs) / sum(costs)) + 1e-12
    assert min(shares) > 0


def test_dcp_checkpoint_saved_on_2_ranks_resumes_on_1_and_4_ranks_with_the_same_numbers(tmp_path) -> None:
    root = str(tmp_path)
    expected = run_ranks(_workers.dcp_save, 2, root, timeout=600)[0]
    assert set(expected) == set(_workers.checkpointed())
    for world in (1, 4):
        got = run_ranks(_workers.dcp_resume, world, root, timeout=600)[0]
        assert set(got) == set(expected)
        diffs = {
            name: max((got[name][k] - v).abs().max().item() for k, v in expected[name].items())
            for name in expected
        }
        bad = {k: v for k, v in diffs.items() if not v <= 1e-6}
        assert not bad, f"resumed on {world} rank(s), the next steps differ from the 2-rank run: {bad}"
