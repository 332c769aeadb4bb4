"""Behaviours of torch.optim that PyTorch's own optimizer tests rely on, checked on the drop-ins:
param groups that round-trip, no state entries for stateless steps, ``fused=True`` checks,
``lr=inf``, LBFGS restoring its parameters when the closure raises, and checkpoints of a stateful
chain that lack its functional state."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import functional_optim as fo
from functional_optim.adapters import FunctionalOptimizer

ALGOS = [
    "SGD",
    "Adam",
    "AdamW",
    "Adagrad",
    "RMSprop",
    "Adamax",
    "NAdam",
    "RAdam",
    "Adadelta",
    "ASGD",
    "Rprop",
]


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    torch.manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]


@pytest.mark.parametrize("name", ["Adafactor", "LBFGS", "SparseAdam", "Muon", "AdamW", "SGD"])
def test_param_groups_round_trip_through_load_deepcopy_and_pickle(name):
    torch_cls, fo_cls = getattr(torch.optim, name), getattr(fo.adapters, name)
    params = [torch.nn.Parameter(torch.randn(3, 3))]
    expected = sorted(torch_cls(params).param_groups[0])
    opt = fo_cls(params)
    assert sorted(opt.param_groups[0]) == expected
    for _ in range(2):
        opt.load_state_dict(opt.state_dict())
    assert sorted(opt.param_groups[0]) == expected
    copied = copy.deepcopy(copy.deepcopy(opt))
    unpickled = pickle.loads(pickle.dumps(copied))
    assert sorted(copied.param_groups[0]) == expected
    assert sorted(unpickled.param_groups[0]) == expected
    assert copied.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1}, {"momentum": 0.9}])
def test_sgd_keeps_state_entries_exactly_when_torch_does(kwargs):
    runs = {}
    for cls in (torch.optim.SGD, fo.adapters.SGD):
        params = _params()
        opt = cls(params, lr=0.1, **kwargs)
        params[0].grad = torch.ones(4, 3)  # the second parameter has no gradient
        opt.step()
        opt.step()
        runs[cls] = (len(opt.state), sorted(opt.state_dict()["state"]), [p.detach().clone() for p in params])
    (n_t, keys_t, p_t), (n_f, keys_f, p_f) = runs.values()
    assert (n_f, keys_f) == (n_t, keys_t)
    for a, b in zip(p_t, p_f, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD"])
@pytest.mark.parametrize("kind", ["meta", "int"])
def test_fused_refuses_params_torch_refuses_at_step(name, kind):
    p = (
        torch.nn.Parameter(torch.randn(3, device="meta"))
        if kind == "meta"
        else torch.zeros(3, dtype=torch.int64)
    )
    for cls in (getattr(torch.optim, name), getattr(fo.adapters, name)):
        opt = cls([p], lr=0.1, fused=True)
        p.grad = torch.zeros_like(p)
        with pytest.raises(RuntimeError, match="`fused=True` requires all the params to be floating point"):
            opt.step()


@pytest.mark.parametrize("name", ALGOS)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_infinite_learning_rate_gives_torchs_numbers(name, weight_decay):
    kwargs = {"lr": float("inf")}
    if name != "Rprop":
        kwargs["weight_decay"] = weight_decay
    elif weight_decay:
        pytest.skip("Rprop has no weight_decay")
    out = []
    for cls in (getattr(torch.optim, name), getattr(fo.adapters, name)):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(4))
        p.grad = torch.randn(4)
        opt = cls([p], **kwargs)
        opt.step()
        opt.step()
        out.append(p.detach().clone())
    torch.testing.assert_close(out[1], out[0], equal_nan=True, rtol=0, atol=0)


def test_lbfgs_puts_parameters_back_when_the_closure_raises():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    opt = fo.adapters.LBFGS([w], lr=0.5, line_search_fn="strong_wolfe")
    calls, fail_at = [0], [None]

    def closure():
        calls[0] += 1
        if calls[0] == fail_at[0]:
            raise RuntimeError("closure failed")
        opt.zero_grad()
        loss = ((w - 1) ** 2).sum() + (w**4).sum() * 0.1
        loss.backward()
        return loss

    opt.step(closure)
    before = w.detach().clone()
    state_before = copy.deepcopy(opt.state_dict()["state"])
    calls[0], fail_at[0] = 0, 3  # the third evaluation: inside the line search
    with pytest.raises(RuntimeError, match="closure failed"):
        opt.step(closure)
    assert torch.equal(w.detach(), before)
    assert _same(opt.state_dict()["state"], state_before)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _scheduled_chain() -> fo.GradientTransformation:
    return fo.inject_hyperparams(fo.adamw)(lr=fo.schedules.linear(5.0, 0.001, 10))


def test_a_checkpoint_without_the_functional_state_of_a_stateful_chain_is_refused():
    params = _params()
    torch_opt = torch.optim.AdamW(params, lr=0.1)
    for p in params:
        p.grad = torch.ones_like(p)
    for _ in range(3):
        torch_opt.step()
    written_by_torch = torch_opt.state_dict()

    opt = FunctionalOptimizer(params, _scheduled_chain())
    with pytest.raises(ValueError, match=r"no 'functional_state'.*fresh_functional_state=True"):
        opt.load_state_dict(written_by_torch)
    assert len(opt.state) == 0  # nothing loaded

    opt.load_state_dict(written_by_torch, fresh_functional_state=True)  # the explicit opt-in
    opt.step()
    assert opt.state[params[0]]["functional_state"]["count"] == 1

    # the library's own checkpoint restores the count; another transform's is refused
    restored = FunctionalOptimizer(params, _scheduled_chain())
    restored.load_state_dict(opt.state_dict())
    assert restored.state[params[0]]["functional_state"]["count"] == 1
    other = FunctionalOptimizer(
        params, fo.chain(fo.scale_by_adam(), fo.scale_by_learning_rate(fo.schedules.linear(0.1, 0.01, 10)))
    )
    with pytest.raises(ValueError, match="functional_state' of group 0 has"):
        other.load_state_dict(opt.state_dict())


def test_a_fresh_checkpoint_of_a_stateful_chain_loads():
    params = _params()
    opt = FunctionalOptimizer(params, _scheduled_chain())
    FunctionalOptimizer(params, _scheduled_chain()).load_state_dict(opt.state_dict())
