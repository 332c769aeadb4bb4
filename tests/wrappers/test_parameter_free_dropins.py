"""The parameter-free drop-ins: checkpoints continue with the same numbers, the group estimates
live in ``functional_state``, bad input is refused naming the parameter."""

from __future__ import annotations

import io

import pytest
import torch

import functional_optim as fo
from tests.wrappers._bitwise import assert_steps_equal

DROPINS = {
    "Prodigy": lambda ps: fo.adapters.Prodigy(ps, weight_decay=0.01),
    "DAdaptAdam": lambda ps: fo.adapters.DAdaptAdam(ps, weight_decay=0.01, decouple=True),
    "DoG": lambda ps: fo.adapters.DoG(ps, reps_rel=1e-4),
}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for step in steps:
        gen = torch.Generator().manual_seed(step)
        x, y = torch.randn(16, 4, generator=gen), torch.randn(16, 2, generator=gen)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("name", sorted(DROPINS))
def test_checkpoint_continues_with_the_same_numbers(name: str) -> None:
    make = DROPINS[name]
    reference = _model()
    ref_opt = make(reference.parameters())
    _train(reference, ref_opt, range(6))
    model = _model()
    opt = make(model.parameters())
    _train(model, opt, range(3))
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    resumed = _model()
    resumed_opt = make(resumed.parameters())
    resumed.load_state_dict(ckpt["model"])
    resumed_opt.load_state_dict(ckpt["opt"])
    _train(resumed, resumed_opt, range(3, 6))
    for p, q in zip(resumed.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)


def test_prodigy_keeps_its_estimate_in_functional_state_and_packages_state_names() -> None:
    model = _model()
    opt = fo.adapters.Prodigy(model.parameters())
    _train(model, opt, range(20))
    first = opt.state[next(iter(model.parameters()))]
    assert {"s", "p0", "exp_avg", "exp_avg_sq", "step"} <= set(first)
    glob = first["functional_state"]
    d = [v for k, v in glob.items() if k.endswith(".d")]
    assert len(d) == 1 and float(d[0]) > 1e-6  # grown from d0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda ps: fo.adapters.Prodigy(ps, betas=(1.0, 0.999)), "beta"),
        (lambda ps: fo.adapters.Prodigy(ps, d0=0.0), "d0"),
        (lambda ps: fo.adapters.Prodigy(ps, slice_p=0), "slice_p"),
        (lambda ps: fo.adapters.Prodigy(ps, fsdp_in_use=True), "fsdp_in_use"),
        (lambda ps: fo.adapters.DAdaptAdam(ps, eps=-1.0), "epsilon"),
        (lambda ps: fo.adapters.DoG(ps, lr=0.0), "learning rate"),
        (lambda ps: fo.adapters.DoG(ps, init_eta=-1.0), "init_eta"),
        (lambda ps: fo.adapters.AdamWScheduleFree(ps, warmup_steps=-1), "warmup_steps"),
    ],
)
def test_bad_hyperparameters_are_refused_naming_them(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(_model().parameters())


# (drop-in, reference module and class, constructor arguments): the drop-ins run the packages'
# in-place ops in their order, with the group scalars computed as theirs
REFERENCES = {
    "Prodigy": (
        "prodigyopt",
        "Prodigy",
        [{}, {"weight_decay": 0.01}, {"weight_decay": 0.01, "decouple": False}],
    ),
    "DoG": ("dog", "DoG", [{}, {"weight_decay": 0.01}]),
    "DAdaptAdam": (
        "dadaptation",
        "DAdaptAdam",
        [{}, {"weight_decay": 0.01, "decouple": True}, {"weight_decay": 0.01, "use_bias_correction": True}],
    ),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_dropin_equals_the_authors_package_bit_for_bit(name: str, dtype: torch.dtype) -> None:
    module, cls, variants = REFERENCES[name]
    package = pytest.importorskip(module, reason="the reference extra is not installed")
    for kwargs in variants:
        assert_steps_equal(
            lambda ps, kw=kwargs: getattr(fo.adapters, name)(ps, **kw),
            lambda ps, kw=kwargs: getattr(package, cls)(ps, **kw),
            dtype,
        )


@pytest.mark.parametrize("name", sorted(DROPINS))
def test_dropin_takes_the_fused_in_place_step(name: str) -> None:
    """A rule with group values: the estimate is computed before anything is written, then the
    state buffers are updated in place (the same tensors after every step)."""
    model = _model()
    opt = DROPINS[name](model.parameters())
    _train(model, opt, range(2))
    buffers = {
        (id(p), k): v
        for p, st in opt.state.items()
        for k, v in st.items()
        if isinstance(v, torch.Tensor) and v.dim() > 0 and k != "init_buffer"
    }
    _train(model, opt, range(2, 4))
    assert buffers or name == "DoG"  # DoG keeps only x0, which never changes
    for p, st in opt.state.items():
        for k, v in st.items():
            if (id(p), k) in buffers:
                assert v is buffers[id(p), k], k


def test_a_step_reads_its_scalars_on_the_host_when_autograd_does_not_record(monkeypatch) -> None:
    """A model's parameters require grad, but the drop-in's step runs under ``torch.no_grad()``:
    Prodigy's group values are read as Python doubles there (the package's arithmetic, and no
    chain of 0-dim tensor ops per step). While autograd records, they stay tensors."""
    model = _model()
    opt = fo.adapters.Prodigy(model.parameters(), weight_decay=0.01)
    calls = []
    real_total = fo.transforms._scalars.total
    monkeypatch.setattr(fo.transforms._scalars, "total", lambda v: calls.append(1) or real_total(v))
    _train(model, opt, range(3))
    assert calls == []
    weight = next(model.parameters())
    assert fo.ops.is_traced(weight)
    with torch.no_grad():
        assert not fo.ops.is_traced(weight)
    tx = fo.prodigy(weight_decay=0.01)  # while autograd records: 0-dim tensor maths
    params = [torch.ones(3, requires_grad=True)]
    tx.update([torch.ones(3)], tx.init(params), params)
    assert calls
