"""Every reference case (``tests/reference/cases_*.py``) for a short run, every dtype it supports.

The references are optional test dependencies (the ``reference`` extra, installed by the README's
test command); a case whose reference is not installed is skipped and says which module is missing.
``python benchmarks/reference_parity.py`` runs the same cases for 100 steps and prints the table.
"""

from __future__ import annotations

import pytest
import torch

from tests.reference._framework import all_cases, max_abs_diff

STEPS = 20

_PARAMS = [
    pytest.param(case, dtype, id=f"{case.name}-{str(dtype).removeprefix('torch.')}")
    for case in all_cases()
    for dtype in case.dtypes
]


@pytest.mark.parametrize(("case", "dtype"), _PARAMS)
def test_matches_reference_step_by_step(case, dtype: torch.dtype) -> None:
    missing = case.missing()
    if missing:
        pytest.skip(f"reference {case.reference!r} not installed (missing: {', '.join(missing)})")
    ours, ref = case.run(dtype, STEPS)
    assert max_abs_diff(ours, ref) <= case.atol[dtype], case.note
