"""fo.averaging.AveragedModel / update_bn / get_*_fn match torch.optim.swa_utils on a BatchNorm model.

Every comparison is exact (``rtol=atol=0``): the same expressions run on the same tensors.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim import swa_utils as tsu

import functional_optim as fo
from tests.averaging._models import inputs, make_model, max_abs_diff, perturb

FA = fo.averaging
DTYPES = [torch.float32, torch.float64]
EXACT = {"rtol": 0.0, "atol": 0.0}


def _custom_avg_fn(avg: torch.Tensor, cur: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    return 0.7 * avg + 0.3 * cur + 0.01 * n


def _custom_multi_avg_fn(avg: list, cur: list, n: torch.Tensor) -> None:
    for a, c in zip(avg, cur, strict=True):
        if a.is_floating_point():
            a.mul_(0.6).add_(c, alpha=0.4).add_(n.to(a.dtype))
        else:
            a.add_(c).add_(n)


# name -> (kwargs for torch's AveragedModel, kwargs for ours)
AVERAGING = {
    "swa_default": ({}, {}),
    "ema_multi_avg_fn": (
        {"multi_avg_fn": tsu.get_ema_multi_avg_fn(0.9)},
        {"multi_avg_fn": FA.get_ema_multi_avg_fn(0.9)},
    ),
    "ema_avg_fn": ({"avg_fn": tsu.get_ema_avg_fn(0.9)}, {"avg_fn": FA.get_ema_avg_fn(0.9)}),
    "swa_multi_avg_fn": (
        {"multi_avg_fn": tsu.get_swa_multi_avg_fn()},
        {"multi_avg_fn": FA.get_swa_multi_avg_fn()},
    ),
    "swa_avg_fn": ({"avg_fn": tsu.get_swa_avg_fn()}, {"avg_fn": FA.get_swa_avg_fn()}),
    "custom_avg_fn": ({"avg_fn": _custom_avg_fn}, {"avg_fn": _custom_avg_fn}),
    "custom_multi_avg_fn": ({"multi_avg_fn": _custom_multi_avg_fn}, {"multi_avg_fn": _custom_multi_avg_fn}),
}


def _run_both(kind: str, use_buffers: bool, dtype: torch.dtype, updates: int = 7):
    model = make_model(dtype)
    torch_kw, our_kw = AVERAGING[kind]
    theirs = tsu.AveragedModel(model, use_buffers=use_buffers, **torch_kw)
    ours = FA.AveragedModel(model, use_buffers=use_buffers, **our_kw)
    for step in range(updates):
        perturb(model, step)
        theirs.update_parameters(model)
        ours.update_parameters(model)
    return model, theirs, ours


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("use_buffers", [False, True], ids=["params", "params+buffers"])
@pytest.mark.parametrize("kind", list(AVERAGING))
def test_averaged_model_matches_torch_weights_and_buffers(kind, use_buffers, dtype):
    if kind == "swa_multi_avg_fn" and use_buffers:
        # torch's get_swa_multi_avg_fn fails on the int64 num_batches_tracked buffer (addcdiv of
        # integers); ours raises the same error rather than inventing numbers.
        for cls, kw in ((tsu.AveragedModel, 0), (FA.AveragedModel, 1)):
            model = make_model(dtype)
            avg = cls(model, use_buffers=True, **AVERAGING[kind][kw])
            avg.update_parameters(model)
            with pytest.raises(RuntimeError, match="Integer division with addcdiv"):
                avg.update_parameters(model)
        return
    _, theirs, ours = _run_both(kind, use_buffers, dtype)
    expected, got = theirs.state_dict(), ours.state_dict()
    assert list(got) == list(expected)
    for key in expected:
        assert got[key].dtype == expected[key].dtype, key
        torch.testing.assert_close(got[key], expected[key], **EXACT, msg=lambda m, k=key: f"{k}: {m}")
    assert int(ours.n_averaged) == 7


@pytest.mark.parametrize("use_buffers", [False, True])
def test_averaged_buffers_are_averaged_or_copied_like_torch(use_buffers):
    model, _, ours = _run_both("swa_default", use_buffers, torch.float64)
    ours_mean = ours.module[1].running_mean
    if use_buffers:
        assert not torch.equal(ours_mean, model[1].running_mean)  # an average, not the last value
    else:
        torch.testing.assert_close(ours_mean, model[1].running_mean, **EXACT)


def test_averaged_model_forward_delegates_to_the_averaged_module():
    _, theirs, ours = _run_both("ema_multi_avg_fn", True, torch.float32)
    x = inputs(1, seed=9)[0]
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x), **EXACT)
    torch.testing.assert_close(ours(x), ours.module(x), **EXACT)


@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_state_dict_interchanges_with_torch_averaged_model(direction):
    model, theirs, ours = _run_both("swa_default", False, torch.float32, updates=3)
    src, dst_cls = (theirs, FA.AveragedModel) if direction == "torch_to_ours" else (ours, tsu.AveragedModel)
    fresh_model = make_model(seed=5)
    dst = dst_cls(fresh_model)
    dst.load_state_dict(src.state_dict())
    assert int(dst.n_averaged) == 3
    # continuing from the loaded checkpoint gives the same numbers as never stopping
    for step in range(3, 6):
        perturb(model, step)
        src.update_parameters(model)
        dst.update_parameters(model)
    for key, value in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[key], value, **EXACT)


def test_averaged_model_device_argument_and_deepcopy():
    model = make_model()
    ours = FA.AveragedModel(model, device="cpu")
    assert ours.n_averaged.dtype == torch.long and ours.n_averaged.device.type == "cpu"
    assert ours.module is not model
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert not torch.equal(next(model.parameters()), next(ours.module.parameters()))


def test_averaged_model_rejects_both_avg_fn_and_multi_avg_fn_like_torch():
    kw = {"avg_fn": FA.get_swa_avg_fn(), "multi_avg_fn": FA.get_swa_multi_avg_fn()}
    with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn"):
        tsu.AveragedModel(nn.Linear(2, 2), **kw)
    with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn"):
        FA.AveragedModel(nn.Linear(2, 2), **kw)
    with pytest.raises(ValueError, match="avg_fn"):
        FA.AveragedModel(nn.Linear(2, 2), **kw)


@pytest.mark.parametrize("factory", ["get_ema_multi_avg_fn", "get_ema_avg_fn"])
@pytest.mark.parametrize("decay", [-0.1, 1.5])
def test_ema_factories_reject_decay_outside_unit_interval_like_torch(factory, decay):
    with pytest.raises(ValueError, match="Invalid decay value"):
        getattr(tsu, factory)(decay)
    with pytest.raises(ValueError, match="Invalid decay value"):
        getattr(FA, factory)(decay)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [0, 3, torch.tensor(4)], ids=["n=0", "n=3", "n=tensor4"])
def test_avg_fn_factories_match_torch_numerics(n, dtype):
    gen = torch.Generator().manual_seed(0)
    avg = [torch.randn(5, 3, generator=gen, dtype=dtype), torch.randn(7, generator=gen, dtype=dtype)]
    cur = [torch.randn(5, 3, generator=gen, dtype=dtype), torch.randn(7, generator=gen, dtype=dtype)]
    for name in ["get_ema_avg_fn", "get_swa_avg_fn"]:
        args = (0.95,) if "ema" in name else ()
        f_t, f_o = getattr(tsu, name)(*args), getattr(FA, name)(*args)
        for a, c in zip(avg, cur, strict=True):
            torch.testing.assert_close(f_o(a, c, n), f_t(a, c, n), **EXACT)
    for name in ["get_ema_multi_avg_fn", "get_swa_multi_avg_fn"]:
        args = (0.95,) if "ema" in name else ()
        a_t, a_o = [a.clone() for a in avg], [a.clone() for a in avg]
        getattr(tsu, name)(*args)(a_t, cur, n)
        getattr(FA, name)(*args)(a_o, cur, n)
        for x, y in zip(a_o, a_t, strict=True):
            torch.testing.assert_close(x, y, **EXACT)
        assert not torch.equal(a_o[0], avg[0])  # updated in place, like torch


def test_multi_avg_fns_on_integer_tensors_match_torch():
    avg = [torch.tensor([10, 20, 31]), torch.tensor([7])]
    cur = [torch.tensor([13, 2, 40]), torch.tensor([100])]
    a_t, a_o = [a.clone() for a in avg], [a.clone() for a in avg]
    tsu.get_ema_multi_avg_fn(0.9)(a_t, cur, 2)
    FA.get_ema_multi_avg_fn(0.9)(a_o, cur, 2)
    for x, y in zip(a_o, a_t, strict=True):
        assert x.dtype == torch.int64
        torch.testing.assert_close(x, y, **EXACT)
    # torch's SWA multi-tensor function rejects integer tensors (alpha / addcdiv); so does ours
    for n, message in [(2, "alpha must not be a floating point"), (torch.tensor(2), "addcdiv")]:
        for fn in (tsu.get_swa_multi_avg_fn(), FA.get_swa_multi_avg_fn()):
            with pytest.raises(RuntimeError, match=message):
                fn([a.clone() for a in avg], cur, n)


# ----------------------------------------------------------------------------- update_bn


def _loader(kind: str, dtype: torch.dtype) -> list:
    xs = inputs(5, dtype, seed=42)
    if kind == "tensors":
        return xs
    if kind == "tuples":
        return [(x, torch.zeros(4)) for x in xs]
    return [[x, torch.zeros(4)] for x in xs]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("batches", ["tensors", "tuples", "lists"])
def test_update_bn_matches_torch_statistics(batches, dtype):
    model = make_model(dtype)
    for step in range(3):
        perturb(model, step)
    model[1].momentum = 0.3
    model.eval()
    ours, theirs = FA.AveragedModel(model).eval(), tsu.AveragedModel(model).eval()
    loader = _loader(batches, dtype)
    FA.update_bn(loader, ours)
    tsu.update_bn(loader, theirs)
    got, expected = ours.state_dict(), theirs.state_dict()
    assert not torch.equal(got["module.1.running_mean"], model.state_dict()["1.running_mean"])
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], **EXACT, msg=lambda m, k=key: f"{k}: {m}")
    assert ours.module[1].momentum == 0.3 and ours.module[5].momentum == 0.1  # momenta restored
    assert not ours.training  # training mode restored


def test_update_bn_moves_inputs_to_device_and_is_a_noop_without_batchnorm():
    model = make_model()
    FA.update_bn(inputs(2, seed=3), model, device=torch.device("cpu"))
    assert model[1].num_batches_tracked.item() == 2
    plain = nn.Linear(3, 1)
    before = {k: v.clone() for k, v in plain.state_dict().items()}

    def never_read():
        raise AssertionError("the loader must not be read without BatchNorm layers")
        yield  # pragma: no cover

    FA.update_bn(never_read(), plain)
    assert max_abs_diff(before, plain.state_dict()) == 0.0
