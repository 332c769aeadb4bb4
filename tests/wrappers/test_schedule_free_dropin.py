"""The Schedule-Free drop-ins: ``eval()`` puts the evaluation point in the parameters,
``train()`` restores the training point exactly, and a checkpoint saved in either mode continues
with the same numbers as never saving."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import functional_optim as fo
from functional_optim import fused
from tests.wrappers._bitwise import assert_steps_equal

DROPINS = {
    "AdamWScheduleFree": (
        lambda ps: fo.adapters.AdamWScheduleFree(ps, lr=1e-2, warmup_steps=3, weight_decay=0.01),
        lambda: fo.schedule_free_adamw(lr=1e-2, warmup_steps=3, weight_decay=0.01),
    ),
    "SGDScheduleFree": (
        lambda ps: fo.adapters.SGDScheduleFree(ps, lr=0.05, weight_decay=0.01),
        lambda: fo.schedule_free_sgd(lr=0.05, weight_decay=0.01),
    ),
}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2)).double()


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(16, 4, generator=gen, dtype=torch.float64), torch.randn(
        16, 2, generator=gen, dtype=torch.float64
    )


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for step in steps:
        x, y = _batch(step)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _roundtrip(obj: dict) -> dict:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def _within_an_ulp(a: torch.Tensor, b: torch.Tensor, before: torch.Tensor) -> bool:
    """``|a - b|`` at most an ulp of the larger of ``|b|`` and ``|before|`` (the rounding of
    ``b - before``, which is exact when ``b`` is within a factor 2 of ``before``)."""
    m = torch.maximum(b.abs(), before.abs())
    return bool(((a - b).abs() <= torch.nextafter(m, torch.full_like(m, torch.inf)) - m).all())


@pytest.mark.parametrize("name", sorted(DROPINS))
@pytest.mark.parametrize("edit", [False, True], ids=["as_is", "count_reset"])
def test_dropin_matches_the_pure_alias_and_eval_gives_the_eval_params(name: str, edit: bool) -> None:
    """The drop-in moves ``y`` in place as the package (``y.lerp_(z, c)``, ``y.add_(d, a)``);
    the pure update is the difference ``y' - y``, so ``y + u`` is ``y'`` up to the rounding of
    that difference (exact where ``y'`` is within a factor 2 of ``y``; here, an ulp where ``y``
    changes sign); ``z`` is the same bit for bit."""
    make, alias = DROPINS[name]
    model = _model()
    names = [n for n, _ in model.named_parameters()]
    opt = make(model.parameters())
    pure = alias()
    state = pure.init(dict(zip(names, _params(model), strict=True)))
    exact = 0
    for step in range(5):
        if edit and step == 3:  # a group value replaced between steps is what the next step reads
            first = next(iter(model.parameters()))
            opt.state[first]["functional_state"]["count"] = torch.tensor(0)
            state = state._replace(count=torch.tensor(0))
        x, y = _batch(step)
        before = dict(zip(names, _params(model), strict=True))
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        grads = dict(zip(names, (p.grad for p in model.parameters()), strict=True))
        updates, state = pure.update(grads, state, before)
        params = fo.apply_updates(before, updates)
        for n, p in model.named_parameters():
            assert _within_an_ulp(params[n], p.detach(), before[n]), n
            exact += int(torch.equal(params[n], p.detach()))
            assert torch.equal(state.z[n], opt.state[p]["z"]), n
        params = dict(zip(names, _params(model), strict=True))
    if not edit:  # (the reset's first step moves y to z: many entries change sign)
        assert exact >= len(names) * 5 // 2  # most tensors are equal outright
    y_before = _params(model)
    opt.eval()
    expected = fo.schedule_free_eval_params(state, params)
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), expected[n])
    # the package's train(), y = lerp(x, z, 1 - b1), is off by an ulp on some entries here...
    b1 = (
        opt.param_groups[0]["betas"][0] if "betas" in opt.param_groups[0] else opt.param_groups[0]["momentum"]
    )
    recomputed = [torch.lerp(p.detach(), opt.state[p]["z"], 1 - b1) for p in model.parameters()]
    assert not all(torch.equal(r, y) for r, y in zip(recomputed, y_before, strict=True))
    opt.train()
    for p, y in zip(model.parameters(), y_before, strict=True):
        assert torch.equal(p.detach(), y)  # ...ours restores exactly the training point


@pytest.mark.parametrize("name", sorted(DROPINS))
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_checkpoint_saved_in_either_mode_continues_as_never_saving(name: str, mode: str) -> None:
    make, _ = DROPINS[name]
    reference = _model()
    ref_opt = make(reference.parameters())
    _train(reference, ref_opt, range(8))

    model = _model()
    opt = make(model.parameters())
    _train(model, opt, range(4))
    if mode == "eval":
        opt.eval()  # the package's documented checkpointing mode
    ckpt = _roundtrip({"model": model.state_dict(), "opt": opt.state_dict()})

    resumed = _model()
    resumed_opt = make(resumed.parameters())
    resumed.load_state_dict(ckpt["model"])
    resumed_opt.load_state_dict(ckpt["opt"])
    assert resumed_opt.param_groups[0]["train_mode"] == (mode == "train")
    resumed_opt.train()
    _train(resumed, resumed_opt, range(4, 8))
    for p, q in zip(resumed.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)


def test_step_in_eval_mode_raises_and_changes_nothing() -> None:
    model = _model()
    opt = fo.adapters.AdamWScheduleFree(model.parameters())
    _train(model, opt, range(2))
    opt.eval()
    before = _params(model)
    state = copy.deepcopy(opt.state_dict())
    with pytest.raises(RuntimeError, match="train mode"):
        _train(model, opt, range(2, 3))
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    assert str(opt.state_dict()) == str(state)


def test_eval_and_train_before_any_step_change_nothing() -> None:
    model = _model()
    opt = fo.adapters.SGDScheduleFree(model.parameters())
    before = _params(model)
    opt.eval()
    opt.train()
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_momentum_outside_0_1_is_rejected_naming_it() -> None:
    with pytest.raises(ValueError, match="Momentum"):
        fo.adapters.SGDScheduleFree(_model().parameters(), momentum=1.0)


@pytest.mark.parametrize("name", sorted(DROPINS))
def test_dropin_takes_the_fused_in_place_step(name: str) -> None:
    """Schedule-Free is one rule with group values: the drop-in updates ``z`` (and AdamW's
    ``exp_avg_sq``) in place, as the package, instead of replacing them with a pure step's."""
    make, alias = DROPINS[name]
    plan = fused.plan(alias())
    assert plan is not None and plan.rule is not None and plan.rule.begin is not None
    model = _model()
    opt = make(model.parameters())
    _train(model, opt, range(2))
    buffers = {
        (id(p), k): v for p, st in opt.state.items() for k, v in st.items() if k in ("z", "exp_avg_sq")
    }
    assert buffers
    _train(model, opt, range(2, 4))
    for p, st in opt.state.items():
        for k, v in st.items():
            if (id(p), k) in buffers:
                assert v is buffers[id(p), k], k


REFERENCE_KWARGS = {
    "AdamWScheduleFree": dict(lr=1e-2, warmup_steps=3, weight_decay=0.01, betas=(0.9, 0.99)),
    "SGDScheduleFree": dict(lr=0.05, warmup_steps=3, weight_decay=0.01, momentum=0.8),
}


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(REFERENCE_KWARGS))
def test_dropin_equals_the_schedulefree_package_bit_for_bit(
    name: str, dtype: torch.dtype, foreach: bool
) -> None:
    """The drop-in runs the package's in-place ops in its order (``y.lerp_(z, c)``, ``y.add_(d,
    a)``, ``z.sub_(d, lr)``, scalars in Python double): the same parameters and ``z``, bit for
    bit, for the package's for-loop and foreach paths."""
    schedulefree = pytest.importorskip("schedulefree", reason="the reference extra is not installed")
    kwargs = REFERENCE_KWARGS[name]

    def theirs(ps: list[torch.Tensor]) -> torch.optim.Optimizer:
        ref = getattr(schedulefree, name)(ps, foreach=foreach, **kwargs)
        ref.train()
        return ref

    assert_steps_equal(lambda ps: getattr(fo.adapters, name)(ps, **kwargs), theirs, dtype, state_keys=("z",))
