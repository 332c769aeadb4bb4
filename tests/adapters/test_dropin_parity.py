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


@pytest.mark.parametrize("name", [*ALL, "SparseAdam"])
def test_dropin_signature_and_defaults_equal_torch(name):
    t_cls, f_cls = getattr(torch.optim, name), getattr(fo.adapters, name)
    f_sig, t_sig = inspect.signature(f_cls.__init__), inspect.signature(t_cls.__init__)
    f_params, t_params = list(f_sig.parameters.values()), list(t_sig.parameters.values())
    assert f_params[: len(t_params)] == t_params and f_sig.return_annotation == t_sig.return_annotation
    extra = f_params[len(t_params) :]  # library options only after torch's, keyword-only, defaulted
    assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in extra)
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


def test_a_hyperparameter_edited_in_place_mid_run_follows_torch():
    """``betas`` as a list, changed in place after 3 steps (the group holds the same list object):
    the new value is used, as torch reads it at every step. The adapter reuses a group's transform
    while its hyperparameters are the very same objects only when none of them can change in
    place."""

    def setup(opt):
        for group in opt.param_groups:
            group["betas"] = [0.9, 0.999]
        return opt

    def edit(opt, step):
        if step == 2:
            for group in opt.param_groups:
                group["betas"][0] = 0.5

    run_side_by_side("Adam", {"lr": 0.05}, setup=setup, after_step=edit)
