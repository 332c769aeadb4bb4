"""``benchmarks/constant_ab.py`` times the adapter with a constant of ``functional_optim.fused``
changed, and gives the library's value back afterwards."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from functional_optim import fused

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def constant_ab():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("constant_ab")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_a_changed_constant_is_timed_and_given_back(constant_ab, capsys: pytest.CaptureFixture[str]) -> None:
    library = fused._ALONE_BYTES
    argv = ["Adagrad", "--shape", "300", "--count", "8", "--set", "_ALONE_BYTES=1024", "--turns", "2"]
    constant_ab.main(argv)
    out = capsys.readouterr().out
    assert "Adagrad on 8 x 300" in out and "with _ALONE_BYTES=1024" in out and "set / library" in out
    assert fused._ALONE_BYTES == library  # noqa: SIM300 (the constant is what is checked)


def test_an_unknown_constant_is_refused(constant_ab) -> None:
    with pytest.raises(SystemExit, match="no '_NO_SUCH'"):
        constant_ab.main(["SGD", "--set", "_NO_SUCH=1"])
