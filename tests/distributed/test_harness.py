"""The distributed test harness reports the error of every rank that fails within a few seconds
of the first one (the first to report is not always the first to fail)."""

from __future__ import annotations

import pytest
import torch

from tests.distributed import _workers
from tests.distributed._harness import run_ranks

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available"
)


def test_the_harness_reports_the_error_of_every_failing_rank() -> None:
    with pytest.raises(RuntimeError) as info:
        run_ranks(_workers.fail_on_every_rank, 2, timeout=60)
    message = str(info.value)
    assert "rank 0 of 2 fails" in message and "rank 1 of 2 fails" in message
