"""The ``Example:`` doctests of the wrapper, parameter-free and schedule modules run as written
(given only ``import torch`` and ``import functional_optim as fo``)."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

import functional_optim as fo

MODULES = [
    "functional_optim.transforms.bias_corrected_rms",
    "functional_optim.transforms.cautious",
    "functional_optim.transforms.cautious_weight_decay",
    "functional_optim.transforms.clip_by_rms",
    "functional_optim.transforms.dadapt_adam",
    "functional_optim.transforms.dog",
    "functional_optim.transforms.grafting",
    "functional_optim.transforms.mars",
    "functional_optim.transforms.prodigy",
    "functional_optim.transforms.schedule_free",
    "functional_optim.stochastic_rounding",
    "functional_optim.optimizers.cautious_adamw",
    "functional_optim.optimizers.dadapt_adam",
    "functional_optim.optimizers.dog",
    "functional_optim.optimizers.mars",
    "functional_optim.optimizers.prodigy",
    "functional_optim.optimizers.schedule_free",
    "functional_optim.adapters.schedule_free",
    "functional_optim.adapters.parameter_free",
    "functional_optim.schedules.wsd",
    "functional_optim.schedules.rex",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run_as_written(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, globs={"torch": torch, "fo": fo}) if t.examples]
    assert tests, f"{name} has no examples"
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {name}"
