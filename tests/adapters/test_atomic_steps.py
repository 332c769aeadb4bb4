"""An adapter step either completes for every group or leaves parameters and every state tensor
bit-identical (exceptions of any kind), and combinators that may keep their old state
(``apply_if_finite``, ``skip_large_updates``) are exact through the adapter's in-place state."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
import torch

import functional_optim as fo
from functional_optim import fused
from functional_optim.core import GradientTransformation

# ----------------------------------------------------------------------------- helpers

ALGORITHMS: dict[str, Callable[[], GradientTransformation]] = {
    "sgd": lambda: fo.sgd(0.05),
    "sgd_momentum_l2": lambda: fo.sgd(0.05, momentum=0.9, weight_decay=0.01, nesterov=True),
    "adam": lambda: fo.adam(0.01),
    "adam_amsgrad_l2": lambda: fo.adam(0.01, weight_decay=0.01, amsgrad=True),
    "adamw": lambda: fo.adamw(0.01),
    "adamax": lambda: fo.adamax(0.01),
    "nadam": lambda: fo.nadam(0.01, decoupled_weight_decay=True, weight_decay=0.01),
    "radam": lambda: fo.radam(0.01),
    "adagrad": lambda: fo.adagrad(0.05),
    "adadelta": lambda: fo.adadelta(1.0),
    "rmsprop": lambda: fo.rmsprop(0.01, momentum=0.9, centered=True),
    "rprop": lambda: fo.rprop(0.01),
    "asgd": lambda: fo.asgd(0.01, t0=2),
    "adafactor": lambda: fo.adafactor(0.01),
    "muon": lambda: fo.muon(0.02, ns_dtype=torch.float32),
    # rules of the modern optimizers (fused in place by the adapters)
    "lion": lambda: fo.lion(0.01, weight_decay=0.1),
    "signum": lambda: fo.signum(0.01, weight_decay=0.01),
    "sign_sgd": lambda: fo.sign_sgd(0.01),
    "adabelief": lambda: fo.adabelief(0.01, weight_decay=0.01, amsgrad=True, rectify=False),
    "adabelief_rectify_l2": lambda: fo.adabelief(0.01, weight_decay=0.01, weight_decouple=False),
    "ademamix": lambda: fo.ademamix(0.01, weight_decay=0.01),
    "laprop": lambda: fo.laprop(0.01, weight_decay=0.01, amsgrad=True),
    "adan": lambda: fo.adan(0.01, weight_decay=0.02),
    "adan_no_prox": lambda: fo.adan(0.01, weight_decay=0.02, no_prox=True),
    "lars": lambda: fo.lars(0.5, weight_decay=0.01, trust_coefficient=0.01, nesterov=True),
    "lamb": lambda: fo.lamb(0.01, weight_decay=0.01),
    # rules with group values (fused in place, their scalars computed before anything is written)
    "schedule_free_adamw": lambda: fo.schedule_free_adamw(0.01, weight_decay=0.01, warmup_steps=2),
    "schedule_free_sgd": lambda: fo.schedule_free_sgd(0.05, weight_decay=0.01),
    "prodigy": lambda: fo.prodigy(1.0, weight_decay=0.01),
    "dadapt_adamw": lambda: fo.dadapt_adamw(1.0, weight_decay=0.01),
    # (not Yogi, ADOPT, NovoGrad and DoG: a non-finite or oversized float32 gradient makes their v inf
    # with a finite update (they divide by it or clip), which is then kept, so a later skipped step
    # rightly leaves a non-finite state)
}

SKIPPING: dict[str, Callable[[GradientTransformation], GradientTransformation]] = {
    "apply_if_finite": lambda tx: fo.apply_if_finite(tx, 3),
    "skip_large_updates": lambda tx: fo.skip_large_updates(tx, 1e6),
}

BAD_GRADIENTS: dict[str, float] = {"nan": float("nan"), "inf": float("inf"), "oversized": 1e20}


def _params(name: str, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3, 5)] if name == "muon" else [(4, 3), (3,)]
    return [torch.randn(s, generator=gen) for s in shapes]


def _grads(params: list[torch.Tensor], step: int, bad: float | None) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    out = [torch.randn(p.shape, generator=gen) for p in params]
    if bad is not None:
        out[0][0, 0] = bad
    return out


def _snapshot(params: list[torch.Tensor], opt: torch.optim.Optimizer) -> tuple[list, dict]:
    def clone(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.detach().clone()
        if isinstance(v, dict):
            return {k: clone(x) for k, x in v.items()}
        return v

    return [p.detach().clone() for p in params], {id(p): clone(dict(st)) for p, st in opt.state.items()}


def _assert_identical(
    before: tuple[list, dict], params: list[torch.Tensor], opt: torch.optim.Optimizer
) -> None:
    now = _snapshot(params, opt)
    for a, b in zip(before[0], now[0], strict=True):
        assert torch.equal(a, b), "a parameter changed"
    assert before[1].keys() == now[1].keys(), "state entries were created or removed"

    def same(x: Any, y: Any) -> bool:
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        return x == y

    for key in before[1]:
        assert same(before[1][key], now[1][key]), "a state tensor changed"


def _all_finite(opt: torch.optim.Optimizer) -> bool:
    def finite(v: Any) -> bool:
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return bool(torch.isfinite(v).all())
        if isinstance(v, dict):
            return all(finite(x) for x in v.values())
        return True

    return all(finite(st) for st in opt.state.values())


# ----------------------------------------------------------------------------- skipping combinators


@pytest.mark.parametrize("bad", sorted(BAD_GRADIENTS))
@pytest.mark.parametrize("skipping", sorted(SKIPPING))
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_skipping_combinators_through_the_adapter_equal_the_pure_run_at_every_step(algorithm, skipping, bad):
    make = lambda: SKIPPING[skipping](ALGORITHMS[algorithm]())  # noqa: E731
    init = _params(algorithm)
    bad_steps = {2: BAD_GRADIENTS[bad], 3: BAD_GRADIENTS[bad]}  # two in a row, then finite again

    tx = make()
    pure = [p.clone() for p in init]
    state = tx.init(pure)
    expected, skipped = [], []
    for k in range(6):
        updates, state = tx.update(_grads(pure, k, bad_steps.get(k)), state, pure)
        new = fo.apply_updates(pure, updates)
        skipped.append(all(torch.equal(a, b) for a, b in zip(pure, new, strict=True)))
        pure = new
        expected.append([p.clone() for p in pure])
    if bad != "oversized" and skipping == "apply_if_finite":
        assert skipped[2] and skipped[3], "apply_if_finite did not skip a non-finite gradient"

    params = [torch.nn.Parameter(p.clone()) for p in init]
    opt = fo.adapters.FunctionalOptimizer(params, make())
    for k in range(6):
        for p, g in zip(params, _grads([p.detach() for p in params], k, bad_steps.get(k)), strict=True):
            p.grad = g
        opt.step()
        for p, e in zip(params, expected[k], strict=True):
            # bit-identical (an oversized finite gradient may legitimately overflow in both runs)
            torch.testing.assert_close(p.detach(), e, rtol=0, atol=0, equal_nan=True, msg=f"step {k}")
        if skipped[k]:
            assert _all_finite(opt), f"step {k} was skipped but left a non-finite state"
    if skipping == "apply_if_finite" and bad != "oversized":  # finite gradients are not skipped (optax)
        assert all(torch.isfinite(p).all() for p in params)


def test_the_fused_step_never_runs_a_combinator_that_may_keep_its_old_state():
    for make in SKIPPING.values():
        assert fused.plan(make(fo.adam(0.1))) is None
        assert fused.plan(fo.chain(fo.clip_by_global_norm(1.0), make(fo.adam(0.1)))) is None


# ----------------------------------------------------------------------------- exceptions inside a step


class _BoomError(Exception):
    pass


def _raising(exc: type[BaseException], when: Callable[[Any], bool]) -> GradientTransformation:
    """A stateless transform that raises ``exc`` when ``when(updates)`` holds."""

    def init_fn(params: Any) -> tuple:
        return ()

    def update_fn(updates: Any, state: Any, params: Any = None, **extra: Any) -> tuple[Any, Any]:
        if when(updates):
            raise exc("raised inside a step")
        return updates, state

    return GradientTransformation(init_fn, update_fn)


def _two_groups(seed: int = 0) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    gen = torch.Generator().manual_seed(seed)
    a = [
        torch.nn.Parameter(torch.randn(4, 3, generator=gen)),
        torch.nn.Parameter(torch.randn(3, generator=gen)),
    ]
    b = [
        torch.nn.Parameter(torch.randn(5, generator=gen)),
        torch.nn.Parameter(torch.randn(2, 2, generator=gen)),
    ]
    return a, b


def _fill_grads(params: list[torch.nn.Parameter], step: int) -> None:
    for i, p in enumerate(params):
        p.grad = torch.full_like(p, 0.1 * (step + 1) + 0.01 * i)


def _run_then_fail(
    opt: torch.optim.Optimizer,
    params: list,
    fail: Callable[[], None],
    steps: int = 3,
    setup: Callable[[], None] | None = None,
) -> None:
    for k in range(steps):
        _fill_grads(params, k)
        opt.step()
    _fill_grads(params, steps)
    if setup is not None:
        setup()
    before = _snapshot(params, opt)
    fail()
    _assert_identical(before, params, opt)


def _is_second_group(updates: Any) -> bool:
    return any(u is not None and u.shape == (5,) for u in updates)


def _adam_groups(a: list, b: list, **group_b: Any) -> list[dict]:
    return [{"params": a}, {"params": b, **group_b}]


# aliases whose core the adapters fuse (a ``Rule`` run in place at commit)
FUSED_ALIASES: dict[str, Callable[[], GradientTransformation]] = {
    "adamw": lambda: fo.adamw(0.01),
    "lion": lambda: fo.lion(0.01, weight_decay=0.1),
    "signum": lambda: fo.signum(0.01, weight_decay=0.01),
    "adabelief": lambda: fo.adabelief(0.01, weight_decay=0.01),
    "yogi": lambda: fo.yogi(0.01, weight_decay=0.01),
    "adopt": lambda: fo.adopt(0.01, weight_decay=0.01, decouple=True),
    "ademamix": lambda: fo.ademamix(0.01, weight_decay=0.01),
    "laprop": lambda: fo.laprop(0.01, weight_decay=0.01),
    "adan": lambda: fo.adan(0.01, weight_decay=0.02),
    "mars_adamw": lambda: fo.mars_adamw(0.01, weight_decay=0.1, optimize_1d=True),
    "novograd": lambda: fo.novograd(0.01, weight_decay=0.01),
    "lars": lambda: fo.lars(0.5, weight_decay=0.01, trust_coefficient=0.01),
    "lamb": lambda: fo.lamb(0.01, weight_decay=0.01),
    "schedule_free_adamw": lambda: fo.schedule_free_adamw(0.01, weight_decay=0.01, warmup_steps=2),
    "schedule_free_sgd": lambda: fo.schedule_free_sgd(0.05, weight_decay=0.01),
    "prodigy": lambda: fo.prodigy(1.0, weight_decay=0.01),
    "dog": lambda: fo.dog(weight_decay=0.01),
    "dadapt_adamw": lambda: fo.dadapt_adamw(1.0, weight_decay=0.01),
}


@pytest.mark.parametrize("alias", sorted(FUSED_ALIASES))
@pytest.mark.parametrize("exc", [_BoomError, KeyboardInterrupt], ids=["exception", "keyboard_interrupt"])
def test_a_transform_raising_in_a_later_group_changes_nothing(exc, alias):
    a, b = _two_groups()
    calls = {"n": 0}

    def when(updates: Any) -> bool:
        if _is_second_group(updates):
            calls["n"] += 1
            return calls["n"] > 3
        return False

    tx = fo.chain(_raising(exc, when), FUSED_ALIASES[alias]())  # fused: the rule runs in place
    assert fused.plan(tx) is not None and fused.plan(tx).rule is not None
    opt = fo.adapters.FunctionalOptimizer(a + b, tx)
    opt.param_groups[0]["params"] = a  # two groups with the same transform
    opt.add_param_group({"params": b})

    def fail() -> None:
        with pytest.raises(exc):
            opt.step()

    _run_then_fail(opt, a + b, fail)


def test_a_schedule_raising_in_a_later_group_changes_nothing():
    a, b = _two_groups()

    def schedule(count: Any) -> float:
        if int(count) >= 3:
            raise _BoomError("schedule failed")
        return 0.01

    opt = fo.adapters.FunctionalOptimizer(_adam_groups(a, b, lr=schedule), fo.adamw, lr=0.01)

    def fail() -> None:
        with pytest.raises(_BoomError):
            opt.step()

    _run_then_fail(opt, a + b, fail)


def test_a_step_pre_hook_raising_changes_nothing():
    a, b = _two_groups()
    opt = fo.adapters.AdamW(_adam_groups(a, b), lr=0.01)
    for k in range(2):
        _fill_grads(a + b, k)
        opt.step()

    def hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        raise _BoomError("pre-hook")

    opt.register_step_pre_hook(hook)

    def fail() -> None:
        with pytest.raises(_BoomError):
            opt.step()

    _run_then_fail(opt, a + b, fail, steps=0)


@pytest.mark.parametrize("dropin", ["Adam", "AdamW", "NAdam", "RAdam", "Adamax"])
def test_an_invalid_hyperparameter_in_a_later_group_changes_nothing(dropin):
    a, b = _two_groups()
    opt = getattr(fo.adapters, dropin)(_adam_groups(a, b), lr=0.01)

    def setup() -> None:
        opt.param_groups[1]["betas"] = (0.9, 1.5)

    def fail() -> None:
        with pytest.raises(ValueError, match="beta"):
            opt.step()

    _run_then_fail(opt, a + b, fail, setup=setup)


@pytest.mark.parametrize(
    ("dropin", "key"), [("AdamW", "exp_avg_sq"), ("Adagrad", "sum"), ("RMSprop", "square_avg")]
)
def test_a_missing_state_key_is_reported_before_anything_is_written(dropin, key):
    a, b = _two_groups()
    opt = getattr(fo.adapters, dropin)(_adam_groups(a, b), lr=0.01)

    def setup() -> None:
        del opt.state[b[1]][key]

    def fail() -> None:
        with pytest.raises(KeyError, match=key):
            opt.step()

    _run_then_fail(opt, a + b, fail, setup=setup)


def test_a_keyboard_interrupt_during_the_writes_is_held_until_the_step_is_complete(monkeypatch):
    a, b = _two_groups()
    ref_a, ref_b = _two_groups()
    ref = fo.adapters.AdamW(_adam_groups(ref_a, ref_b), lr=0.01)
    opt = fo.adapters.AdamW(_adam_groups(a, b), lr=0.01)
    for k in range(2):
        _fill_grads(a + b, k)
        _fill_grads(ref_a + ref_b, k)
        opt.step()
        ref.step()
    commit = fused.commit
    calls = {"n": 0}

    def interrupted_commit(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C after the first group's writes began
        return commit(*args, **kwargs)

    monkeypatch.setattr(fused, "commit", interrupted_commit)
    _fill_grads(a + b, 2)
    _fill_grads(ref_a + ref_b, 2)
    with pytest.raises(KeyboardInterrupt):
        opt.step()
    assert calls["n"] == 2  # both groups were written
    monkeypatch.setattr(fused, "commit", commit)
    ref.step()
    for p, q in zip(a + b, ref_a + ref_b, strict=True):
        assert torch.equal(p, q)
        assert torch.equal(opt.state[p]["exp_avg"], ref.state[q]["exp_avg"])


def test_new_parameters_get_no_state_entry_when_the_step_fails():
    a, b = _two_groups()
    opt = fo.adapters.AdamW(_adam_groups(a, b), lr=0.01)
    _fill_grads(a + b, 0)
    opt.param_groups[1]["betas"] = (0.9, 1.5)
    with pytest.raises(ValueError):
        opt.step()
    assert len(opt.state) == 0


# ----------------------------------------------------------------------------- exactness regained


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_sgd_with_l2_decay_and_no_momentum_is_torchs_sgd_bit_for_bit(dtype):
    gen = torch.Generator().manual_seed(0)
    init = torch.randn(1000, generator=gen).to(dtype)
    grads = [torch.randn(1000, generator=gen).to(dtype) for _ in range(5)]
    ours = torch.nn.Parameter(init.clone())
    theirs = torch.nn.Parameter(init.clone())
    opt = fo.adapters.SGD([ours], lr=0.1, weight_decay=0.1)
    ref = torch.optim.SGD([theirs], lr=0.1, weight_decay=0.1, foreach=False)
    for g in grads:
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
        assert torch.equal(ours, theirs)
