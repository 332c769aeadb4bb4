"""Bad input raises clear errors: load_state_dict validates everything before changing anything."""

from __future__ import annotations

import copy

import pytest
import torch

import functional_optim as fo


def _trained():
    a = torch.nn.Parameter(torch.ones(3, 2))
    b = torch.nn.Parameter(torch.ones(4))
    opt = fo.adapters.Adam([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=0.01)
    a.grad, b.grad = torch.ones(3, 2), torch.ones(4)
    opt.step()
    return opt, a, b


def _snapshot(opt):
    return copy.deepcopy(opt.state_dict())


def _assert_unchanged(opt, before):
    after = opt.state_dict()
    assert [{k: v for k, v in g.items()} for g in after["param_groups"]] == before["param_groups"]
    assert after["state"].keys() == before["state"].keys()
    for i, st in before["state"].items():
        for k, v in st.items():
            assert torch.equal(after["state"][i][k], v), k


def test_load_state_dict_with_another_number_of_groups_raises_and_changes_nothing():
    opt, _, _ = _trained()
    before = _snapshot(opt)
    sd = copy.deepcopy(before)
    sd["param_groups"] = sd["param_groups"][:1]
    sd["param_groups"][0]["lr"] = 123.0
    with pytest.raises(ValueError, match="different number of parameter groups: 1 in the state dict, 2"):
        opt.load_state_dict(sd)
    _assert_unchanged(opt, before)


def test_load_state_dict_with_another_group_size_raises_naming_the_group():
    opt, _, _ = _trained()
    before = _snapshot(opt)
    sd = copy.deepcopy(before)
    sd["param_groups"][1]["params"] = [1, 2]
    with pytest.raises(ValueError, match="group 1 has 2 parameters in the state dict and 1 in the optimizer"):
        opt.load_state_dict(sd)
    _assert_unchanged(opt, before)


def test_load_state_dict_with_a_wrong_state_shape_raises_naming_the_parameter_and_changes_nothing():
    opt, _, _ = _trained()
    before = _snapshot(opt)
    sd = copy.deepcopy(before)
    sd["param_groups"][0]["lr"] = 5.0  # would be applied if validation came after mutation
    sd["state"][1]["exp_avg_sq"] = torch.zeros(5)
    with pytest.raises(
        ValueError, match=r"group 1, index 0\) has 'exp_avg_sq' of shape \(5,\), expected \(4,\)"
    ):
        opt.load_state_dict(sd)
    _assert_unchanged(opt, before)


def test_wrong_state_shape_error_names_named_parameters():
    m = torch.nn.Linear(2, 3)
    opt = fo.adapters.SGD(m.named_parameters(), lr=0.1, momentum=0.9)
    m(torch.ones(1, 2)).sum().backward()
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["momentum_buffer"] = torch.zeros(2, 3)
    with pytest.raises(
        ValueError, match=r"parameter 'weight' \(group 0, index 0\) has 'momentum_buffer' of shape"
    ):
        opt.load_state_dict(sd)


def test_a_parameter_given_twice_raises():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="more than once"):
        fo.adapters.SGD([p, p])
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        fo.adapters.SGD([{"params": [p]}, {"params": [p]}])


def test_muon_rejects_non_matrix_parameters_at_construction():
    with pytest.raises(ValueError, match=r"Muon only supports 2D parameters .* torch.Size\(\[3\]\)"):
        fo.adapters.Muon([torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(3))])


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        ("Adam", {"lr": -1.0}, "Invalid learning rate"),
        ("Adam", {"betas": (1.0, 0.9)}, "Invalid beta parameter at index 0"),
        ("SGD", {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
        ("RMSprop", {"alpha": -0.1}, "Invalid alpha value"),
        ("Rprop", {"etas": (1.5, 1.2)}, "Invalid eta values"),
    ],
)
def test_invalid_hyperparameters_raise_torchs_errors(cls, kwargs, message):
    p = [torch.nn.Parameter(torch.ones(2))]
    with pytest.raises(ValueError, match=message):
        getattr(torch.optim, cls)(p, **kwargs)
    with pytest.raises(ValueError, match=message):
        getattr(fo.adapters, cls)(p, **kwargs)


def test_generic_adapter_rejects_unknown_hyperparameters_and_non_transforms():
    p = [torch.nn.Parameter(torch.ones(2))]
    with pytest.raises(TypeError, match="has no hyperparameter"):
        fo.adapters.FunctionalOptimizer(p, fo.adamw, learning_rate=0.1)
    with pytest.raises(TypeError, match="ready-made GradientTransformation"):
        fo.adapters.FunctionalOptimizer(p, fo.adamw(), weight_decay=0.1)
    with pytest.raises(TypeError, match="needs a GradientTransformation"):
        fo.adapters.FunctionalOptimizer(p, 3)
