"""``load_state_dict`` of every drop-in refuses a checkpoint it could not step from — another
class's checkpoint, missing or extra keys, wrong shapes or dtypes, bad step values, sparse or meta
tensors, truncated groups — before it changes anything, with a message naming the parameter and
the key; a checkpoint torch itself loads correctly still loads with torch's numbers."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch

import functional_optim as fo

DROP_INS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 0.05, "momentum": 0.9},
    "Adam": {"lr": 0.01},
    "AdamW": {"lr": 0.01},
    "Adamax": {"lr": 0.01},
    "NAdam": {"lr": 0.01},
    "RAdam": {"lr": 0.01},
    "Adagrad": {"lr": 0.05},
    "Adadelta": {"lr": 0.5},
    "RMSprop": {"lr": 0.01, "momentum": 0.9},
    "Rprop": {"lr": 0.01},
    "ASGD": {"lr": 0.01},
    "Adafactor": {"lr": 0.01},
    "Muon": {"lr": 0.01},
}


def _params(name: str) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (3, 5)] if name == "Muon" else [(4, 3), (3,)]
    return [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]


def _trained(name: str, steps: int = 2) -> tuple[torch.optim.Optimizer, list[torch.nn.Parameter]]:
    params = _params(name)
    opt = getattr(fo.adapters, name)(params, **DROP_INS[name])
    for k in range(steps):
        for p in params:
            p.grad = torch.full_like(p, 0.1 * (k + 1))
        opt.step()
    return opt, params


def _snapshot(opt: torch.optim.Optimizer) -> dict[str, Any]:
    return copy.deepcopy(opt.state_dict())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _first_tensor_key(sd: dict[str, Any]) -> str:
    st = sd["state"][0]
    return next(k for k, v in st.items() if isinstance(v, torch.Tensor) and v.dim() > 0)


Corruption = Callable[[dict[str, Any]], str]


def _another_class(sd: dict[str, Any]) -> str:
    other = "Adagrad" if "exp_avg" in sd["state"][0] else "Adam"
    opt, _ = _trained(other)
    foreign = opt.state_dict()
    sd["state"] = foreign["state"]
    return "another optimizer|does not keep|lacks"


def _missing_key(sd: dict[str, Any]) -> str:
    key = _first_tensor_key(sd)
    st = sd["state"][1 if key in sd["state"][1] else 0]
    if len(st) == 1:
        pytest.skip("the state has one key: without it the state is empty, a fresh one (as torch)")
    del st[key]
    return key


def _extra_key(sd: dict[str, Any]) -> str:
    sd["state"][0]["exp_avg_zz"] = torch.zeros(1)
    return "exp_avg_zz"


def _wrong_shape(sd: dict[str, Any]) -> str:
    key = _first_tensor_key(sd)
    sd["state"][0][key] = torch.zeros(7, 7)
    return key


def _integer_dtype(sd: dict[str, Any]) -> str:
    key = _first_tensor_key(sd)
    sd["state"][0][key] = torch.zeros_like(sd["state"][0][key], dtype=torch.int64)
    return key


def _sparse_tensor(sd: dict[str, Any]) -> str:
    key = _first_tensor_key(sd)
    sd["state"][0][key] = sd["state"][0][key].to_sparse()
    return key


def _meta_tensor(sd: dict[str, Any]) -> str:
    key = _first_tensor_key(sd)
    sd["state"][0][key] = torch.empty_like(sd["state"][0][key], device="meta")
    return key


def _step(value: Any) -> Corruption:
    def corrupt(sd: dict[str, Any]) -> str:
        if "step" not in sd["state"][0]:
            pytest.skip("this optimizer keeps no step")
        sd["state"][0]["step"] = value
        return "step"

    return corrupt


def _truncated_group(sd: dict[str, Any]) -> str:
    sd["param_groups"][0]["params"] = sd["param_groups"][0]["params"][:1]
    return "group 0"


def _missing_group(sd: dict[str, Any]) -> str:
    sd["param_groups"] = []
    return "number of parameter groups"


CORRUPTIONS: dict[str, Corruption] = {
    "another_class": _another_class,
    "missing_key": _missing_key,
    "extra_key": _extra_key,
    "wrong_shape": _wrong_shape,
    "integer_dtype": _integer_dtype,
    "sparse_tensor": _sparse_tensor,
    "meta_tensor": _meta_tensor,
    "step_none": _step(None),
    "step_string": _step("3"),
    "step_negative": _step(torch.tensor(-1.0)),
    "step_nan": _step(float("nan")),
    "truncated_group": _truncated_group,
    "missing_group": _missing_group,
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
@pytest.mark.parametrize("name", sorted(DROP_INS))
def test_a_corrupted_checkpoint_is_refused_and_nothing_changes(name, corruption):
    source, _ = _trained(name, steps=3)
    sd = copy.deepcopy(source.state_dict())
    expected = CORRUPTIONS[corruption](sd)
    target, params = _trained(name, steps=1)
    before = _snapshot(target)
    with pytest.raises(ValueError, match=expected) as err:
        target.load_state_dict(sd)
    if corruption not in ("truncated_group", "missing_group"):
        assert "parameter" in str(err.value)
    assert _same(before, _snapshot(target))
    # and it still steps as before
    for p in params:
        p.grad = torch.ones_like(p)
    target.step()


@pytest.mark.parametrize("name", sorted(set(DROP_INS) - {"Muon"}))
def test_a_checkpoint_of_torch_optim_loads_and_continues_with_torchs_numbers(name):
    params = _params(name)
    theirs = getattr(torch.optim, name)(
        [p.detach().clone().requires_grad_() for p in params], **DROP_INS[name]
    )
    ours_params = [p.detach().clone().requires_grad_() for p in params]
    ours = getattr(fo.adapters, name)(ours_params, **DROP_INS[name])
    for k in range(3):
        for p in theirs.param_groups[0]["params"]:
            p.grad = torch.full_like(p, 0.1 * (k + 1))
        theirs.step()
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))  # as from a file: no shared tensors
    with torch.no_grad():
        for p, q in zip(ours_params, theirs.param_groups[0]["params"], strict=True):
            p.copy_(q)
    for k in range(3):
        for p, q in zip(ours_params, theirs.param_groups[0]["params"], strict=True):
            p.grad = torch.full_like(p, 0.05 * (k + 2))
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
    for p, q in zip(ours_params, theirs.param_groups[0]["params"], strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
