"""``trace`` (torch SGD's momentum buffer) and ``ema`` (moving average of updates), unit-tested."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo


def _run(tx, grads_seq, params=None):
    params = params if params is not None else {k: torch.zeros_like(v) for k, v in grads_seq[0].items()}
    state = tx.init(params)
    outs = []
    for grads in grads_seq:
        u, state = tx.update(grads, state, params)
        outs.append(u)
    return outs, state


def test_trace_first_step_is_the_gradient_without_dampening_then_dampened():
    g = {"w": torch.ones(2)}
    outs, state = _run(fo.trace(0.9, dampening=0.5), [g, g, g])
    torch.testing.assert_close(outs[0]["w"], torch.full((2,), 1.0))  # b1 = g, no dampening
    torch.testing.assert_close(outs[1]["w"], torch.full((2,), 1.4))  # 0.9·1 + 0.5·1
    torch.testing.assert_close(outs[2]["w"], torch.full((2,), 0.9 * 1.4 + 0.5))
    torch.testing.assert_close(state.momentum_buffer["w"], outs[2]["w"])
    assert state.started["w"].item() == 1.0


def test_trace_nesterov_update_is_gradient_plus_momentum_times_buffer():
    g1, g2 = {"w": torch.tensor([1.0, -2.0])}, {"w": torch.tensor([0.5, 3.0])}
    outs, state = _run(fo.trace(0.9, nesterov=True), [g1, g2])
    torch.testing.assert_close(outs[0]["w"], g1["w"] + 0.9 * g1["w"])
    buf = 0.9 * g1["w"] + g2["w"]
    torch.testing.assert_close(state.momentum_buffer["w"], buf)
    torch.testing.assert_close(outs[1]["w"], g2["w"] + 0.9 * buf)


def test_trace_none_gradient_keeps_buffer_and_flag_untouched():
    tx = fo.trace(0.9, dampening=0.5)
    params = {"a": torch.zeros(2), "b": torch.zeros(2)}
    state = tx.init(params)
    u, state = tx.update({"a": torch.ones(2), "b": None}, state)
    assert u["b"] is None
    assert state.started["b"].item() == 0.0 and state.started["a"].item() == 1.0
    # b's first real gradient is still treated as the first step (no dampening)
    u, state = tx.update({"a": torch.ones(2), "b": torch.full((2,), 2.0)}, state)
    torch.testing.assert_close(u["b"], torch.full((2,), 2.0))
    torch.testing.assert_close(u["a"], torch.full((2,), 1.4))


def test_trace_does_not_mutate_its_inputs():
    tx = fo.trace(0.9, dampening=0.1)
    g = {"w": torch.tensor([1.0, 2.0])}
    _, state = tx.update(g, tx.init(g))
    before = [t.clone() for t in (g["w"], state.momentum_buffer["w"], state.started["w"])]
    tx.update(g, state)
    for old, new in zip(before, (g["w"], state.momentum_buffer["w"], state.started["w"]), strict=True):
        assert torch.equal(old, new)


def test_trace_returns_a_set_started_flag_as_it_is():
    tx = fo.trace(0.9)
    g = {"w": torch.tensor([1.0, 2.0])}
    state = tx.init(g)
    _, state = tx.update(g, state)
    flag = state.started["w"]
    _, state2 = tx.update(g, state)
    assert state2.started["w"] is flag and flag.item() == 1.0 and flag._version == 0


def test_trace_with_zero_tensor_momentum_passes_updates_through_like_torch():
    tx = fo.trace(torch.tensor(0.0), dampening=0.5)
    g = {"w": torch.tensor([1.0, 2.0])}
    state = tx.init(g)
    u, new_state = tx.update(g, state)
    assert u["w"] is g["w"] and new_state is state


def test_trace_complex_uses_native_complex_arithmetic():
    g1 = {"w": torch.tensor([1 + 2j, -1j], dtype=torch.complex64)}
    g2 = {"w": torch.tensor([0.5 - 1j, 2 + 0j], dtype=torch.complex64)}
    outs, state = _run(fo.trace(0.9, dampening=0.25), [g1, g2])
    torch.testing.assert_close(outs[1]["w"], 0.9 * g1["w"] + 0.75 * g2["w"])
    assert state.momentum_buffer["w"].dtype == torch.complex64


def test_trace_sparse_gradients_give_sparse_buffers_equal_to_dense_ones():
    dense_seq = [{"w": torch.tensor([[0.0, 1.0], [2.0, 0.0]]) * (k + 1)} for k in range(3)]
    sparse_seq = [{"w": g["w"].to_sparse()} for g in dense_seq]
    dense_out, _ = _run(fo.trace(0.9, dampening=0.3), dense_seq)
    sparse_out, state = _run(fo.trace(0.9, dampening=0.3), sparse_seq)
    assert state.momentum_buffer["w"].is_sparse
    for d, s in zip(dense_out, sparse_out, strict=True):
        assert s["w"].is_sparse
        torch.testing.assert_close(s["w"].to_dense(), d["w"])


def test_trace_under_vmap_matches_eager():
    tx = fo.trace(0.9, dampening=0.5, nesterov=False)
    gs = [{"w": torch.randn(3, 4, generator=torch.Generator().manual_seed(k))} for k in range(4)]
    state = torch.func.vmap(tx.init)(gs[0])
    single = [tx.init({"w": gs[0]["w"][i]}) for i in range(3)]
    for g in gs:
        u, state = torch.func.vmap(tx.update)(g, state)
        for i in range(3):
            u_i, single[i] = tx.update({"w": g["w"][i]}, single[i])
            torch.testing.assert_close(u["w"][i], u_i["w"])


def test_trace_hypergradient_flows_to_a_tensor_momentum():
    mu = torch.tensor(0.9, requires_grad=True)
    tx = fo.trace(mu, dampening=0.5)
    g = {"w": torch.tensor([1.0, 2.0])}
    _, state = tx.update(g, tx.init(g))
    u, _ = tx.update(g, state)
    u["w"].sum().backward()
    torch.testing.assert_close(mu.grad, torch.tensor(3.0))  # d/dμ (μ·b + 0.5·g) = sum(b) = 3


def test_trace_rejects_negative_momentum():
    with pytest.raises(ValueError, match="Invalid momentum value"):
        fo.trace(-0.1)


def test_ema_is_the_moving_average_of_updates():
    seq = [{"w": torch.tensor([float(k + 1)])} for k in range(3)]
    outs, state = _run(fo.ema(0.8), seq)
    e = 0.0
    for k, out in enumerate(outs):
        e = 0.8 * e + 0.2 * (k + 1)
        torch.testing.assert_close(out["w"], torch.tensor([e]))
    torch.testing.assert_close(state.ema["w"], torch.tensor([e]))


def test_ema_debias_divides_by_one_minus_decay_power_and_keeps_raw_average_in_state():
    seq = [{"w": torch.tensor([2.0, -4.0], dtype=torch.float64)} for _ in range(4)]
    outs, state = _run(fo.ema(0.9, debias=True), seq)
    for out in outs:  # a constant input is recovered exactly by the debiased average
        torch.testing.assert_close(out["w"], seq[0]["w"])
    torch.testing.assert_close(state.ema["w"], (1 - 0.9**4) * seq[0]["w"])
    assert state.count["w"].item() == 4.0


def test_ema_debias_counts_steps_per_parameter():
    tx = fo.ema(0.5, debias=True)
    params = {"a": torch.zeros(1), "b": torch.zeros(1)}
    state = tx.init(params)
    _, state = tx.update({"a": torch.ones(1), "b": None}, state)
    u, state = tx.update({"a": torch.ones(1), "b": torch.full((1,), 3.0)}, state)
    torch.testing.assert_close(u["b"], torch.full((1,), 3.0))  # b's first step: (0.5·3)/(1-0.5)
    torch.testing.assert_close(u["a"], torch.ones(1))
    assert state.count["a"].item() == 2.0 and state.count["b"].item() == 1.0


def test_ema_accepts_a_schedule_for_decay():
    tx = fo.ema(lambda count: 0.5 if count < 1 else 0.0)
    seq = [{"w": torch.tensor([4.0])}, {"w": torch.tensor([10.0])}]
    outs, _ = _run(tx, seq)
    torch.testing.assert_close(outs[0]["w"], torch.tensor([2.0]))
    torch.testing.assert_close(outs[1]["w"], torch.tensor([10.0]))


@pytest.mark.parametrize("decay", [-0.1, 1.5])
def test_ema_rejects_decay_outside_unit_interval(decay):
    with pytest.raises(ValueError, match="decay"):
        fo.ema(decay)
