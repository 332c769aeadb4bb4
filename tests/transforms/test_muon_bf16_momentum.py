"""``state_dtype=torch.bfloat16`` for Muon's EMA momentum (`fo.scale_by_ema_momentum`, `fo.muon`,
``fo.adapters.Muon``): buffers stored in bfloat16 with stochastic rounding, maths in float32."""

from __future__ import annotations

import io

import pytest
import torch

import functional_optim as fo


def test_float32_buffers_become_bfloat16_with_a_step_and_the_update_is_the_float32_maths():
    gen = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(16, 8, generator=gen), "h": torch.randn(4, dtype=torch.float64)}
    grads = [
        {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()} for _ in range(3)
    ]
    low = fo.scale_by_ema_momentum(0.9, state_dtype=torch.bfloat16)
    full = fo.scale_by_ema_momentum(0.9)
    s_low, s_full = low.init(params), full.init(params)
    assert s_low.momentum_buffer["w"].dtype == torch.bfloat16
    assert s_low.momentum_buffer["h"].dtype == torch.float64  # only float32 parameters go low
    assert s_full.step == ()  # torch.optim.Muon's state: the buffer only
    for g in grads:
        # the float32 maths from the widened stored buffer: the update uses the float32 B_t
        widened = s_low.momentum_buffer["w"].float()
        b = torch.lerp(widened, g["w"], 1 - 0.9)
        expected = torch.lerp(g["w"], b, 0.9)
        u_low, s_low = low.update(g, s_low, params)
        u_full, s_full = full.update(g, s_full, params)
        assert torch.equal(u_low["w"], expected)
        assert torch.equal(u_low["h"], u_full["h"])  # float64: the plain maths
        # stored: one of the two bfloat16 neighbours of the float32 value
        stored = s_low.momentum_buffer["w"].float()
        assert torch.all((stored - b).abs() <= b.abs() * 2**-7 + 1e-30)
    assert float(s_low.step["w"]) == 3.0
    torch.testing.assert_close(
        s_low.momentum_buffer["w"].float(), s_full.momentum_buffer["w"], rtol=0, atol=1e-2
    )


def test_the_stored_buffer_is_unbiased_where_round_to_nearest_stalls():
    # B ← 0.999·B + 0.001·1 from B = 0.97: each increment (≈3e-5) is far below half a bfloat16
    # ulp at 0.97 (2^-9), so round to nearest never moves; stochastic rounding does on average
    n, steps = 4096, 40
    tx = fo.scale_by_ema_momentum(0.999, nesterov=False, state_dtype=torch.bfloat16)
    params = [torch.zeros(n)]
    start = torch.full((n,), 0.97).to(torch.bfloat16)
    state = tx.init(params)._replace(momentum_buffer=[start])
    exact = start.double()
    for _ in range(steps):
        _, state = tx.update([torch.ones(n)], state, params)
        exact = 0.999 * exact + 0.001
    assert abs(state.momentum_buffer[0].double().mean().item() - exact.mean().item()) < 2e-4
    assert abs(start.double().mean().item() - exact.mean().item()) > 1e-3


def test_bfloat16_muon_is_deterministic_leaves_the_global_generator_alone_and_tracks_float32():
    gen = torch.Generator().manual_seed(1)
    params = [torch.randn(32, 16, generator=gen), torch.randn(16, 16, generator=gen)]
    grads_seq = [[torch.randn_like(p) for p in params] for _ in range(6)]

    def run(tx):
        ps, state = list(params), tx.init(params)
        for grads in grads_seq:
            updates, state = tx.update(grads, state, ps)
            ps = fo.apply_updates(ps, updates)
        return ps, state

    rng = torch.get_rng_state()
    a, sa = run(fo.muon(0.02, ns_dtype=torch.float32, state_dtype=torch.bfloat16))
    assert torch.equal(torch.get_rng_state(), rng)
    b, _ = run(fo.muon(0.02, ns_dtype=torch.float32, state_dtype=torch.bfloat16))
    full, _ = run(fo.muon(0.02, ns_dtype=torch.float32))
    for x, y, z in zip(a, b, full, strict=True):
        assert torch.equal(x, y)
        torch.testing.assert_close(x, z, rtol=0, atol=2e-3)
    assert all(t.dtype == torch.bfloat16 for t in sa[0].momentum_buffer)
    with pytest.raises(ValueError, match="state_dtype must be None"):
        fo.muon(0.02, state_dtype=torch.float16)


def _steps(opt, params, grads_seq):
    for grads in grads_seq:
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()


def test_the_muon_adapter_halves_its_state_and_resumes_a_bfloat16_checkpoint_bit_identically():
    gen = torch.Generator().manual_seed(2)
    init = [torch.randn(32, 16, generator=gen), torch.randn(16, 24, generator=gen)]
    grads_seq = [[torch.randn(t.shape, generator=gen) for t in init] for _ in range(6)]
    hp = {"lr": 0.02, "ns_dtype": torch.float32}
    p_full = [t.clone().requires_grad_() for t in init]
    full = fo.adapters.Muon(p_full, **hp)
    p_run = [t.clone().requires_grad_() for t in init]
    run = fo.adapters.Muon(p_run, **hp, state_dtype=torch.bfloat16)
    _steps(full, p_full, grads_seq[:3])
    _steps(run, p_run, grads_seq[:3])
    assert set(full.state[p_full[0]]) == {"momentum_buffer"}  # torch's state, unchanged
    assert set(run.state[p_run[0]]) == {"momentum_buffer", "step"}

    def buffer_bytes(opt):
        return sum(st["momentum_buffer"].nbytes for st in opt.state.values())

    assert 2 * buffer_bytes(run) == buffer_bytes(full)
    buffer = io.BytesIO()
    torch.save(run.state_dict(), buffer)
    p_new = [t.detach().clone().requires_grad_() for t in p_run]
    resumed = fo.adapters.Muon(p_new, **hp, state_dtype=torch.bfloat16)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer))
    assert all(resumed.state[p]["momentum_buffer"].dtype == torch.bfloat16 for p in p_new)
    _steps(run, p_run, grads_seq[3:])
    _steps(resumed, p_new, grads_seq[3:])
    for a, b in zip(p_run, p_new, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(run.state[a]["momentum_buffer"], resumed.state[b]["momentum_buffer"])


def test_the_chunked_muon_step_keeps_bfloat16_buffers_and_stays_all_or_nothing():
    # 6 matrices of 2**16 elements: stepped in chunks of 2**18 elements (the chunked commit)
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(256, 256, generator=gen) for _ in range(6)]
    grads_seq = [[torch.randn(256, 256, generator=gen) for _ in init] for _ in range(2)]
    ps = [t.clone().requires_grad_() for t in init]
    opt = fo.adapters.Muon(ps, lr=0.02, ns_dtype=torch.float32, state_dtype=torch.bfloat16)
    _steps(opt, ps, grads_seq)
    assert {opt.state[p]["momentum_buffer"].dtype for p in ps} == {torch.bfloat16}
    del opt.state[ps[4]]["step"]  # a state this optimizer cannot step from, in a later chunk
    before = [p.detach().clone() for p in ps]
    buffers = [opt.state[p]["momentum_buffer"].clone() for p in ps]
    with pytest.raises(KeyError, match=r"index 4\) has no \['step'\]"):
        _steps(opt, ps, grads_seq[:1])
    for p, b, buf in zip(ps, before, buffers, strict=True):
        assert torch.equal(p, b) and torch.equal(opt.state[p]["momentum_buffer"], buf)
