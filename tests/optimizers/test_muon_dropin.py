"""``adapters.Muon``: the ``ns_dtype`` keyword, torch's numbers in bf16, and its chunked step."""

from __future__ import annotations

import importlib
import inspect

import pytest
import torch

import functional_optim as fo
from functional_optim.transforms.orthogonalize import default_ns_dtype

optimizers_module = importlib.import_module("functional_optim.adapters.optimizers")


def _pairs(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(3)]
    return ps, grads


def _run(opt, ps, grads):
    for gs in grads:
        for p, g in zip(ps, gs, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach().clone() for p in ps]


SHAPES = [(24, 16), (16, 24), (24, 16), (16, 16), (40, 8)]


def test_signature_is_torchs_plus_keyword_only_ns_dtype():
    ours = inspect.signature(fo.adapters.Muon).parameters
    theirs = inspect.signature(torch.optim.Muon).parameters
    assert [n for n in ours if n not in ("ns_dtype", "distributed", "state_dtype")] == list(theirs)
    for name, p in theirs.items():
        assert ours[name].default == p.default, name
    for extra in ("ns_dtype", "state_dtype"):
        assert ours[extra].kind is inspect.Parameter.KEYWORD_ONLY and ours[extra].default is None


@pytest.mark.parametrize("ns_dtype", [None, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_ns_dtype_equals_the_pure_muon_with_that_dtype(ns_dtype):
    ps, grads = _pairs(SHAPES)
    got = _run(fo.adapters.Muon(ps, lr=0.02, ns_dtype=ns_dtype), ps, grads)
    params = [p.detach().clone() for p in _pairs(SHAPES)[0]]
    tx = fo.muon(lr=0.02, ns_dtype=ns_dtype or default_ns_dtype("cpu"))
    state = tx.init(params)
    for gs in grads:
        updates, state = tx.update(gs, state, params)
        params = fo.apply_updates(params, updates)
    for a, b in zip(got, params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_default_is_the_device_policy_and_bf16_gives_torchs_numbers():
    ps, grads = _pairs(SHAPES, seed=1)
    ours = _run(fo.adapters.Muon(ps, lr=0.02, ns_dtype=torch.bfloat16), ps, grads)
    ref_ps = _pairs(SHAPES, seed=1)[0]
    ref = _run(torch.optim.Muon(ref_ps, lr=0.02), ref_ps, grads)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-3)  # bf16 NS; see test_muon_parity._tol
    if default_ns_dtype("cpu") == torch.bfloat16:
        ps2 = _pairs(SHAPES, seed=1)[0]
        default = _run(fo.adapters.Muon(ps2, lr=0.02), ps2, grads)
        for a, b in zip(default, ours, strict=True):
            assert torch.equal(a, b)


def test_chunked_step_equals_one_chunk_and_keeps_the_state_tensors(monkeypatch):
    ps, grads = _pairs(SHAPES, seed=2)
    whole = _run(fo.adapters.Muon(ps, lr=0.02, ns_dtype=torch.float64), ps, grads)
    monkeypatch.setattr(optimizers_module, "_MUON_CHUNK_ELEMENTS", 1)  # one matrix per chunk
    ps2 = _pairs(SHAPES, seed=2)[0]
    opt = fo.adapters.Muon(ps2, lr=0.02, ns_dtype=torch.float64)
    assert len(optimizers_module._muon_chunks(ps2)) == len(SHAPES)
    chunked = _run(opt, ps2, grads[:1])
    chunked = _run(opt, ps2, grads[1:])
    for a, b in zip(chunked, whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    sd = opt.state_dict()
    assert sorted(sd["state"][0]) == ["momentum_buffer"]


def _step_snapshot(opt, ps):
    return [p.detach().clone() for p in ps], [opt.state[p]["momentum_buffer"].clone() for p in ps]


@pytest.mark.parametrize("fault", ["missing_key", "buffer_dtype", "buffer_shape", "sparse_grad"])
def test_chunked_step_checks_every_chunk_before_writing_anything(monkeypatch, fault):
    """The chunks are written one after another; a bad input in the *last* chunk must still
    leave every parameter and buffer as it was."""
    monkeypatch.setattr(optimizers_module, "_MUON_CHUNK_ELEMENTS", 1)  # one matrix per chunk
    ps, grads = _pairs(SHAPES, seed=3)
    opt = fo.adapters.Muon(ps, lr=0.02, ns_dtype=torch.float32)
    _run(opt, ps, grads[:1])
    params, bufs = _step_snapshot(opt, ps)
    for p, g in zip(ps, grads[1], strict=True):
        p.grad = g.clone()
    last = ps[-1]
    if fault == "missing_key":
        opt.state[last] = {"exp_avg": torch.zeros_like(last)}
    elif fault == "buffer_dtype":
        opt.state[last]["momentum_buffer"] = opt.state[last]["momentum_buffer"].double()
    elif fault == "buffer_shape":
        opt.state[last]["momentum_buffer"] = torch.zeros(last.shape[0] + 1, last.shape[1])
    else:
        last.grad = last.grad.to_sparse()
    with pytest.raises((KeyError, TypeError, RuntimeError, ValueError)):
        opt.step()
    for p, before in zip(ps, params, strict=True):
        assert torch.equal(p.detach(), before)
    for p, before in zip(ps[:-1], bufs[:-1], strict=True):
        assert torch.equal(opt.state[p]["momentum_buffer"], before)


def _extra_peak_mib(step) -> float:
    """Peak extra memory of ``step`` (the second of two profiled steps, so that the frees of the
    state tensors the first one made are seen)."""
    import itertools

    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
        with record_function("second step"):
            step()
    events = prof.profiler.kineto_results.events()
    start = next(e.start_ns() for e in events if e.name() == "second step")
    mem = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    before = sum(n for t, n in mem if t < start)
    running = itertools.accumulate((n for t, n in mem if t >= start), initial=before)
    return (max(running) - before) / 2**20


def test_chunked_step_holds_one_chunk_at_a_time(monkeypatch):
    """16 matrices of 0.25 MiB, one per chunk: a step that kept every chunk's new buffer and
    update until the end would need > 8 MiB; streaming needs about one matrix's temporaries
    (measured 1.4 MiB with float32 Newton–Schulz; torch.optim.Muon 0.66 MiB in bf16)."""
    monkeypatch.setattr(optimizers_module, "_MUON_CHUNK_ELEMENTS", 1)
    ps, grads = _pairs([(128, 512)] * 16, seed=4)
    opt = fo.adapters.Muon(ps, lr=0.02, ns_dtype=torch.float32)
    _run(opt, ps, grads[:1])
    for p, g in zip(ps, grads[1], strict=True):
        p.grad = g
    with torch.no_grad():
        extra = _extra_peak_mib(opt.step)
    assert extra < 2.0, extra
