"""``benchmarks/run.py`` states the spread of the adapter's ratio: per-repeat ratios to the best
non-fused torch path (by median), each taken within one repeat."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def run_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _path(repeats: list[float]) -> dict:
    ordered = sorted(repeats)
    return {"ms_per_step": ordered[len(ordered) // 2], "extra_peak_mib": 0.0, "ms_repeats": repeats}


def test_the_adapters_spread_is_taken_per_repeat_against_the_best_non_fused_path(run_module) -> None:
    res = {
        "torch_forloop": _path([10.0, 20.0, 10.0, 20.0, 10.0]),  # median 10: the best non-fused
        "torch_foreach": _path([30.0, 30.0, 30.0, 30.0, 30.0]),
        "adapter": _path([11.0, 20.0, 9.0, 22.0, 10.0]),  # ratios 1.1, 1.0, 0.9, 1.1, 1.0
    }
    q = run_module.ratios(res)
    assert q["adapter_vs_torch_nonfused"] == pytest.approx(1.1)  # medians: 11 / 10
    assert q["adapter_vs_torch_nonfused_q1"] == pytest.approx(0.95)
    assert q["adapter_vs_torch_nonfused_q3"] == pytest.approx(1.1)
    (row,) = [
        t for t in run_module.check_targets([{"algo": "sgd", "size": "small", "ratios": q}]) if "spread" in t
    ]
    assert row["spread"] == [pytest.approx(0.95), pytest.approx(1.1)] and not row["met"]


def test_a_json_without_per_repeat_times_has_no_spread(run_module) -> None:
    res = {
        "torch_forloop": {"ms_per_step": 10.0, "extra_peak_mib": 0.0},
        "adapter": {"ms_per_step": 9.0, "extra_peak_mib": 0.0},
    }
    q = run_module.ratios(res)
    assert q["adapter_vs_torch_nonfused"] == pytest.approx(0.9)
    assert "adapter_vs_torch_nonfused_q1" not in q
