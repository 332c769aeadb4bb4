"""SWA / EMA of real training runs of a BatchNorm model: functional optimizer + fo.averaging versus
torch.optim + torch.optim.swa_utils, step by step."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.optim import swa_utils as tsu

import functional_optim as fo
from tests.averaging._models import inputs, make_model

FA = fo.averaging
DTYPES = [torch.float32, torch.float64]
STEPS, SWA_START = 12, 5


def _loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (model(x) - 0.5).square().mean()


def _functional_step(model, opt, state, x):
    """One step of a functional optimizer on ``model``: grads by autograd, update by ``opt``,
    new parameters written back into the module (BN buffers move in the forward pass)."""
    model.zero_grad()
    _loss(model, x).backward()
    params = {k: v.detach() for k, v in model.named_parameters()}
    grads = {k: v.grad for k, v in model.named_parameters()}
    updates, state = opt.update(grads, state, params)
    new = fo.apply_updates(params, updates)
    with torch.no_grad():
        for k, v in model.named_parameters():
            v.copy_(new[k])
    return state


def _torch_step(model, opt, x):
    opt.zero_grad()
    _loss(model, x).backward()
    opt.step()


def _assert_params_close(averaged: dict, module: torch.nn.Module, **tol) -> None:
    for k, v in module.named_parameters():
        torch.testing.assert_close(averaged[k], v.detach(), **tol, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_swa_of_fo_sgd_run_with_swa_lr_matches_torch_sgd_swalr_and_averaged_model(dtype):
    base, swa_lr, anneal = 0.05, 0.01, 3
    model_t = make_model(dtype)
    model_f = copy.deepcopy(model_t)
    opt_t = torch.optim.SGD(model_t.parameters(), lr=base, momentum=0.9, foreach=False)
    swalr = tsu.SWALR(opt_t, swa_lr=swa_lr, anneal_epochs=anneal)
    swa_t = tsu.AveragedModel(model_t)

    anneal_schedule = fo.schedules.swa_lr(base, swa_lr, anneal_epochs=anneal)

    def lr(count):  # SWALR starts stepping after step SWA_START
        return anneal_schedule(max(0, int(count) - SWA_START))

    opt_f = FA.with_average(fo.sgd(lr=lr, momentum=0.9), FA.swa(start_step=SWA_START))
    state = opt_f.init({k: v.detach() for k, v in model_f.named_parameters()})
    swa_f = FA.AveragedModel(model_f)

    for step, x in enumerate(inputs(STEPS, dtype, seed=7)):
        _torch_step(model_t, opt_t, x)
        state = _functional_step(model_f, opt_f, state, x)
        if step >= SWA_START:
            swa_t.update_parameters(model_t)
            swa_f.update_parameters(model_f)
            swalr.step()
    _assert_params_close({k: v.detach() for k, v in model_f.named_parameters()}, model_t)
    # the in-optimizer SWA and our AveragedModel agree with torch's AveragedModel
    _assert_params_close(FA.averaged_params(state), swa_t.module)
    assert int(state.average_state.n_averaged) == int(swa_t.n_averaged) == STEPS - SWA_START
    for key, value in swa_t.state_dict().items():
        torch.testing.assert_close(swa_f.state_dict()[key], value, msg=lambda m, k=key: f"{k}: {m}")
    # BN statistics of the averaged model, recomputed by update_bn on both sides
    loader = inputs(4, dtype, seed=8)
    tsu.update_bn(loader, swa_t)
    FA.update_bn(loader, swa_f)
    for key, value in swa_t.state_dict().items():
        torch.testing.assert_close(swa_f.state_dict()[key], value, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_ema_of_fo_adam_run_matches_torch_adam_and_ema_averaged_model_with_buffers(dtype):
    model_t = make_model(dtype)
    model_f = copy.deepcopy(model_t)
    opt_t = torch.optim.Adam(model_t.parameters(), lr=0.01, foreach=False)
    ema_t = tsu.AveragedModel(model_t, multi_avg_fn=tsu.get_ema_multi_avg_fn(0.8), use_buffers=True)
    opt_f = FA.with_average(fo.adam(lr=0.01), FA.ema(0.8))
    state = opt_f.init({k: v.detach() for k, v in model_f.named_parameters()})
    ema_f = FA.AveragedModel(model_f, multi_avg_fn=FA.get_ema_multi_avg_fn(0.8), use_buffers=True)
    for x in inputs(STEPS, dtype, seed=11):
        _torch_step(model_t, opt_t, x)
        state = _functional_step(model_f, opt_f, state, x)
        ema_t.update_parameters(model_t)
        ema_f.update_parameters(model_f)
    _assert_params_close(FA.averaged_params(state), ema_t.module)
    for key, value in ema_t.state_dict().items():
        torch.testing.assert_close(ema_f.state_dict()[key], value, msg=lambda m, k=key: f"{k}: {m}")
    x = inputs(1, dtype, seed=12)[0]
    torch.testing.assert_close(ema_f.eval()(x), ema_t.eval()(x))


def test_pure_ema_beside_a_plain_torch_optimizer_matches_torch_averaged_model_exactly():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    ema_t = tsu.AveragedModel(model, multi_avg_fn=tsu.get_ema_multi_avg_fn(0.9))
    avg = FA.ema(0.9)
    avg_state = avg.init(dict(model.named_parameters()))
    for x in inputs(8, seed=13):
        _torch_step(model, opt, x)
        avg_state = avg.update(dict(model.named_parameters()), avg_state)
        ema_t.update_parameters(model)
    assert not any(v.requires_grad for v in FA.averaged_params(avg_state).values())
    _assert_params_close(FA.averaged_params(avg_state), ema_t.module, rtol=0.0, atol=0.0)


@pytest.mark.skipif(not hasattr(fo.adapters, "SGD"), reason="functional_optim.adapters.SGD not available")
def test_averaged_model_with_the_sgd_adapter_matches_torch_sgd_run():
    model_t = make_model()
    model_a = copy.deepcopy(model_t)
    opt_t = torch.optim.SGD(model_t.parameters(), lr=0.05, momentum=0.9, foreach=False)
    opt_a = fo.adapters.SGD(model_a.parameters(), lr=0.05, momentum=0.9)
    swa_t, swa_a = tsu.AveragedModel(model_t), FA.AveragedModel(model_a)
    for x in inputs(STEPS, seed=14):
        _torch_step(model_t, opt_t, x)
        _torch_step(model_a, opt_a, x)
        swa_t.update_parameters(model_t)
        swa_a.update_parameters(model_a)
    for key, value in swa_t.state_dict().items():
        torch.testing.assert_close(swa_a.state_dict()[key], value, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.skipif(
    not hasattr(fo.adapters, "FunctionalOptimizer"), reason="functional_optim.adapters not available"
)
def test_with_average_inside_the_adapter_exposes_the_ema_per_parameter_like_torch_averaged_model():
    model_t = make_model()
    model_a = copy.deepcopy(model_t)
    opt_t = torch.optim.SGD(model_t.parameters(), lr=0.05, momentum=0.9, foreach=False)
    ema_t = tsu.AveragedModel(model_t, multi_avg_fn=tsu.get_ema_multi_avg_fn(0.8))
    opt_a = fo.adapters.FunctionalOptimizer(
        model_a.parameters(), FA.with_average(fo.sgd(lr=0.05, momentum=0.9), FA.ema(0.8))
    )
    for x in inputs(STEPS, seed=15):
        _torch_step(model_t, opt_t, x)
        _torch_step(model_a, opt_a, x)
        ema_t.update_parameters(model_t)
    averaged = {k: opt_a.state[p]["average"] for k, p in model_a.named_parameters()}
    _assert_params_close(averaged, ema_t.module)
