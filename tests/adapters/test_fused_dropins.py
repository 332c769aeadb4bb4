"""``fused=True`` on the drop-ins of elementwise algorithms: the group's step runs through
``fo.compile_step(tx, elementwise=True)`` (torch's fused kernel where the algorithm has one,
Inductor's code otherwise), with the learning rate as an input (an LR scheduler recompiles
nothing), and the step stays all-or-nothing (what it needs is compiled before anything is written)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import functional_optim as fo

A = fo.adapters


def _params(dtype: torch.dtype = torch.float32, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(30, 20), (20,), (7, 3, 2), (1,)]
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


def _train(
    opt: torch.optim.Optimizer, params: list[torch.Tensor], steps: int, seed: int = 1, scheduler: bool = True
) -> None:
    gen = torch.Generator().manual_seed(seed)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7) if scheduler else None
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        opt.step()
        if sched is not None:
            sched.step()


TORCH_FUSED: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "Adam": (torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1)),
    "Adam-amsgrad": (torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
    "AdamW": (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    "SGD": (torch.optim.SGD, dict(lr=1e-2, momentum=0.9, weight_decay=0.01)),
    "SGD-plain": (torch.optim.SGD, dict(lr=1e-2)),
    "Adagrad": (torch.optim.Adagrad, dict(lr=1e-2, lr_decay=0.01)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(TORCH_FUSED))
def test_fused_true_runs_torchs_fused_kernel_bit_for_bit(case: str, dtype: torch.dtype) -> None:
    """Adam, AdamW, SGD and Adagrad with ``fused=True``: torch's fused kernel, nothing compiled,
    the numbers of ``torch.optim.<Name>(fused=True)`` bit for bit under an LR scheduler."""
    torch_cls, kwargs = TORCH_FUSED[case]
    ours, theirs = _params(dtype), _params(dtype)
    opt = getattr(A, torch_cls.__name__)(ours, fused=True, **kwargs)
    ref = torch_cls(theirs, fused=True, **kwargs)
    _train(opt, ours, 5)
    _train(ref, theirs, 5)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    compiled = opt._fo_compiled[0].step
    assert compiled.uses_torch_kernel and compiled.compilations == 0
    for p, q in zip(ours, theirs, strict=True):
        for key, value in ref.state[q].items():
            assert torch.equal(opt.state[p][key], value), key


def test_fused_true_compiles_the_others_once_whatever_the_learning_rate() -> None:
    """RMSprop (no torch kernel) with ``fused=True`` in its param group: compiled once, the
    learning rate changed by a scheduler at every step without a new compilation, and the numbers
    within an ulp or two of torch's for-loop (Inductor orders some operations differently)."""
    ours, theirs = _params(), _params()
    opt = A.RMSprop([{"params": ours, "fused": True}], lr=1e-2, momentum=0.5, centered=True)
    ref = torch.optim.RMSprop(theirs, lr=1e-2, momentum=0.5, centered=True, foreach=False)
    _train(opt, ours, 6)
    _train(ref, theirs, 6)
    compiled = opt._fo_compiled[0].step
    assert compiled.compilations == 1 and not compiled.uses_torch_kernel
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    for p, q in zip(ours, theirs, strict=True):
        for key, value in ref.state[q].items():
            torch.testing.assert_close(opt.state[p][key], value, rtol=1e-6, atol=1e-6)


INDUCTOR: dict[str, dict[str, Any]] = {
    "Adadelta": dict(lr=0.5, weight_decay=0.01),
    "Adamax": dict(lr=1e-2, weight_decay=0.01),
    "NAdam": dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=0.01),
    "RAdam": dict(lr=1e-2),
    "ASGD": dict(lr=1e-2, t0=2),
    "Rprop": dict(lr=1e-2),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(INDUCTOR))
def test_fused_true_on_every_other_elementwise_dropin_is_torchs_step(name: str) -> None:
    """The other drop-ins that declare `elementwise`, with ``fused=True`` in their param group:
    compiled once under an LR scheduler, within an ulp or two of torch's for-loop."""
    kwargs = INDUCTOR[name]
    ours, theirs = _params(), _params()
    opt = getattr(A, name)([{"params": ours, "fused": True}], **kwargs)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kwargs)
    _train(opt, ours, 4)
    _train(ref, theirs, 4)
    assert opt._fo_compiled[0].step.compilations >= 1
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


MODERN: dict[str, dict[str, Any]] = {
    "Lion": dict(lr=1e-3, weight_decay=0.1),
    "Signum": dict(lr=1e-3, weight_decay=0.01),
    "Yogi": dict(lr=1e-2),
    "ADOPT": dict(lr=1e-2),
    "AdEMAMix": dict(lr=1e-2, weight_decay=0.01),
    "Adan": dict(lr=1e-2, weight_decay=0.02),
    "LaProp": dict(lr=1e-2),
    "LARS": dict(lr=0.1, weight_decay=1e-4),  # per-tensor norms (`elementwise` per tensor)
    "Lamb": dict(lr=1e-2, weight_decay=0.01),
    "Novograd": dict(lr=1e-2, weight_decay=0.01),
    "AdaBelief": dict(lr=1e-2, weight_decay=0.01, rectify=False),  # elementwise when not rectified
    "SGDScheduleFree": dict(lr=0.1, weight_decay=0.01),
    "AdamWScheduleFree": dict(lr=1e-2, weight_decay=0.01, warmup_steps=2),
    # rules in two passes (sums over every tensor between them): compiled pass by pass
    "Prodigy": dict(weight_decay=0.01),
    "DAdaptAdam": dict(weight_decay=0.01, decouple=True),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODERN))
def test_fused_true_on_the_modern_elementwise_dropins_is_their_eager_step(name: str) -> None:
    """The modern drop-ins that declare `elementwise`, with ``fused=True`` in their param group:
    compiled once under an LR scheduler, within an ulp or two of their eager step (whose
    parity with the authors' code is tested in tests/reference)."""
    kwargs = MODERN[name]
    ours, theirs = _params(), _params()
    opt = getattr(A, name)([{"params": ours, "fused": True}], **kwargs)
    eager = getattr(A, name)(theirs, **kwargs)
    _train(opt, ours, 4)
    _train(eager, theirs, 4)
    assert opt._fo_compiled[0].step.compilations >= 1 and eager._fo_compiled == {}
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if name.endswith("ScheduleFree"):  # the evaluation point, swapped in by eval()
        opt.eval()  # type: ignore[attr-defined]
        eager.eval()  # type: ignore[attr-defined]
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_rectified_adabelief_group_with_fused_runs_its_eager_step() -> None:
    """AdaBelief declares itself `elementwise` per group: a rectified group (the default) needs
    concrete step counters, so ``"fused": True`` runs its eager step, the same numbers."""
    ours, theirs = _params(), _params()
    opt = A.AdaBelief([{"params": ours, "fused": True}], lr=1e-2)
    eager = A.AdaBelief(theirs, lr=1e-2)
    with pytest.warns(UserWarning, match="AdaBelief: fused=True compiles only the steps of elementwise"):
        _train(opt, ours, 6)
    _train(eager, theirs, 6)
    assert opt._fo_compiled == {}
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_fused_on_a_group_of_a_non_elementwise_dropin_warns_once_and_runs_eagerly() -> None:
    """Prodigy with ``slice_p=2`` keeps ``s`` and ``p0`` on every second element: its passes are
    not over 1-D views of the parameters, so ``"fused": True`` cannot compile them. The user is
    told once (when the group's layout is built), and the step is the eager one."""
    ours, theirs = _params(), _params()
    opt = A.Prodigy([{"params": ours, "fused": True}], slice_p=2)
    eager = A.Prodigy(theirs, slice_p=2)
    with pytest.warns(UserWarning, match="Prodigy: fused=True compiles only") as record:
        _train(opt, ours, 3, scheduler=False)
    warned = [w for w in record if "fused=True" in str(w.message)]
    assert len(warned) == 1 and warned[0].filename == __file__  # points at the caller of step()
    _train(eager, theirs, 3, scheduler=False)
    assert opt._fo_compiled == {}
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_a_fused_step_compiles_before_it_writes_and_only_when_it_must(monkeypatch) -> None:
    """What the step needs is compiled in the first phase (``_compiled_group.prepare``, on copies):
    a failure there leaves parameters and state as they were. Once the step has run, the next
    ones compile nothing and warm nothing up."""
    params = _params()
    opt = A.Adam(params, lr=1e-2, fused=True)
    _train(opt, params, 2, scheduler=False)
    warmups: list[int] = []
    real = fo.CompiledStep.warmup
    monkeypatch.setattr(fo.CompiledStep, "warmup", lambda self, *a: warmups.append(1) or real(self, *a))
    _train(opt, params, 3, scheduler=False)
    assert warmups == []  # ready: the same tensors in the same layouts

    def failing(self: Any, *args: Any) -> None:
        raise RuntimeError("compilation failed")

    monkeypatch.setattr(fo.CompiledStep, "warmup", failing)
    fresh = _params()
    opt2 = A.Adam(fresh, lr=1e-2, fused=True)
    for p in fresh:
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in fresh]
    with pytest.raises(RuntimeError, match="compilation failed"):
        opt2.step()
    assert all(torch.equal(p, b) for p, b in zip(fresh, before, strict=True))
    assert not opt2.state  # no state was created


RAISING: dict[str, Callable[[list[torch.Tensor], list[torch.Tensor]], torch.optim.Optimizer]] = {
    # torch's fused kernel
    "SGD": lambda first, second: A.SGD(
        [{"params": first}, {"params": second, "momentum": 0.9}], lr=0.1, momentum=0.5, fused=True
    ),
    # rules in two passes, compiled pass by pass (the estimate d in functional_state)
    "Prodigy": lambda first, second: A.Prodigy(
        [{"params": first, "fused": True}, {"params": second}], **MODERN["Prodigy"]
    ),
    "DAdaptAdam": lambda first, second: A.DAdaptAdam(
        [{"params": first, "fused": True}, {"params": second}], **MODERN["DAdaptAdam"]
    ),
}


@pytest.mark.parametrize("name", sorted(RAISING))
def test_a_fused_group_and_a_raising_group_step_all_or_nothing(name: str) -> None:
    """A later group whose step raises: the fused group (prepared first) writes nothing either,
    neither its parameters nor any state tensor (moments, Prodigy's and D-Adaptation's ``d``)."""
    first, second = _params(seed=0), _params(seed=1)
    opt = RAISING[name](first, second)
    _train(opt, first + second, 2, scheduler=False)
    snapshot = [p.detach().clone() for p in first + second]
    states = {id(p): _cloned(opt.state[p]) for p in first + second}
    opt.param_groups[1]["lr"] = -1.0  # invalid: the transform of the second group raises
    for p in first + second:
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="learning rate"):
        opt.step()
    for p, before in zip(first + second, snapshot, strict=True):
        assert torch.equal(p, before)
        assert _same(states[id(p)], opt.state[p])


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


CHECKPOINTED: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
    "AdamW": lambda ps: A.AdamW(ps, lr=1e-2, weight_decay=0.1, fused=True),  # torch's kernel
    # rules in two passes: the estimate d (functional_state) is saved and loaded with the moments
    "Prodigy": lambda ps: A.Prodigy([{"params": ps, "fused": True}], **MODERN["Prodigy"]),
    "DAdaptAdam": lambda ps: A.DAdaptAdam([{"params": ps, "fused": True}], **MODERN["DAdaptAdam"]),
}


@pytest.mark.parametrize("name", sorted(CHECKPOINTED))
def test_a_fused_state_dict_continues_bit_for_bit(name: str) -> None:
    """A checkpoint of a ``fused=True`` optimizer, loaded into a new one, continues as the run
    that was not interrupted, bit for bit."""
    make = CHECKPOINTED[name]
    straight = _params()
    opt = make(straight)
    _train(opt, straight, 5, scheduler=False)

    first = _params()
    opt1 = make(first)
    _train(opt1, first, 3, scheduler=False)
    second = [p.detach().clone().requires_grad_() for p in first]
    opt2 = make(second)
    opt2.load_state_dict(opt1.state_dict())
    gen_state = torch.Generator().manual_seed(1)
    for _ in range(3):  # the gradients of steps 1-3, then 4-5 for the resumed run
        for p in second:
            torch.randn(p.shape, generator=gen_state)
    for _ in range(2):
        for p in second:
            p.grad = torch.randn(p.shape, generator=gen_state)
        opt2.step()
    for a, b in zip(straight, second, strict=True):
        assert torch.equal(a, b)


def test_fused_is_the_eager_step_where_the_algorithm_is_not_declared_elementwise() -> None:
    """``fused=True`` on an optimizer that does not declare `elementwise` (a factory given to
    `FunctionalOptimizer`; Muon; LAMB...) keeps the eager in-place step."""
    params = _params()
    opt = A.FunctionalOptimizer(params, fo.adam, lr=1e-2, fused=True)
    _train(opt, params, 2)
    assert opt._fo_compiled == {}


@pytest.mark.slow
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e20], ids=["nan", "inf", "oversized"])
@pytest.mark.parametrize("name", ["Prodigy", "DAdaptAdam"])
def test_a_two_pass_fused_step_with_a_bad_gradient_is_the_eager_step(name: str, bad: float) -> None:
    """Prodigy and D-Adaptation with ``fused=True`` (their passes compiled, their sums settled
    eagerly between them) given a non-finite or oversized gradient at the second step: the same
    parameters and state as their eager step, non-finite values where it has them."""
    kwargs = MODERN[name]
    ours, theirs = _params(), _params()
    opt = getattr(A, name)([{"params": ours, "fused": True}], **kwargs)
    eager = getattr(A, name)(theirs, **kwargs)
    for step in range(4):
        gen = torch.Generator().manual_seed(10 + step)
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        if step == 1:
            grads[0][0, 0] = bad
        for params, o in ((ours, opt), (theirs, eager)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            o.step()
    assert opt._fo_compiled[0].step.compilations == 2
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
    for p, q in zip(ours, theirs, strict=True):
        for key, value in eager.state[q].items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(opt.state[p][key], value, rtol=1e-5, atol=1e-6, equal_nan=True)
