"""Doctests of the package (``pytest --doctest-modules functional_optim``) see ``torch`` and ``fo``."""

import pytest
import torch

import functional_optim as fo

# type-checker inputs, never imported (wrong_call.py fails on purpose)
collect_ignore_glob = ["tests/typing/*"]


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest) -> None:
    if not isinstance(request.node, pytest.DoctestItem):
        return
    torch.manual_seed(0)
    namespace = request.getfixturevalue("doctest_namespace")
    namespace["torch"] = torch
    namespace["fo"] = fo
