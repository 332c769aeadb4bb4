"""The drop-in classes follow torch.optim's trajectories (foreach=False) for every algorithm and its
options: two parameter groups with different hyperparameters, a parameter whose grad is None on
some steps, parameters and full per-parameter state compared (keys, dtypes, shapes, values)."""

from __future__ import annotations

import inspect

import pytest
import torch

import functional_optim as fo
from tests.adapters._cases import CASES, run_side_by_side

ALL = sorted(CASES)
PARAMS = [(n, o) for n in ALL for o in CASES[n]]


@pytest.mark.parametrize(
    ("name", "opts"), PARAMS, ids=[f"{n}-{i}" for n in ALL for i in range(len(CASES[n]))]
)
def test_dropin_trajectory_and_state_equal_torch(name, opts):
    run_side_by_side(name, opts)


@pytest.mark.parametrize("name", ["Adam", "SGD", "NAdam", "Adagrad", "RMSprop"])
def test_dropin_float64_trajectory_equals_torch(name):
    run_side_by_side(name, CASES[name][-1], dtype=torch.float64)


def test_adam_tensor_lr_equals_torch():
    run_side_by_side("Adam", {"lr": torch.tensor(0.01), "weight_decay": 0.1})


DOCUMENTED_KEYWORD_ONLY_EXTENSIONS = {"Muon": {"ns_dtype"}}


@pytest.mark.parametrize("name", [*ALL, "SparseAdam"])
def test_dropin_signature_and_defaults_equal_torch(name):
    t_cls, f_cls = getattr(torch.optim, name), getattr(fo.adapters, name)
    sig = inspect.signature(f_cls.__init__)
    extensions = DOCUMENTED_KEYWORD_ONLY_EXTENSIONS.get(name, set())
    assert all(sig.parameters[n].kind is inspect.Parameter.KEYWORD_ONLY for n in extensions)
    torch_part = [p for n, p in sig.parameters.items() if n not in extensions]
    assert sig.replace(parameters=torch_part) == inspect.signature(t_cls.__init__)
    shape = (3, 2)
    t = t_cls([torch.nn.Parameter(torch.zeros(shape))])
    f = f_cls([torch.nn.Parameter(torch.zeros(shape))])
    assert list(f.defaults.items()) == list(t.defaults.items())
    assert isinstance(f, torch.optim.Optimizer)
    assert repr(f).replace(name, "X", 1) == repr(t).replace(name, "X", 1)


@pytest.mark.parametrize("name", ["Adam", "SGD", "RMSprop", "Adagrad", "Rprop", "NAdam"])
def test_dropin_complex_parameters_follow_torch(name):
    run_side_by_side(name, CASES[name][-1], dtype=torch.complex64, steps=6)


def test_changing_a_structural_hyperparameter_mid_run_follows_torch():
    """SGD momentum switched on after 3 steps: the state layout is rebuilt and the buffer starts
    with torch's first-step rule (``buf = g``)."""

    def switch(opt, step):
        if step == 2:
            for group in opt.param_groups:
                group["momentum"] = 0.9

    run_side_by_side("SGD", {"lr": 0.05}, setup=lambda o: o, after_step=switch)
