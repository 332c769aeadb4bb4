"""The pure averagers (swa, ema), with_average and averaged_params."""

from __future__ import annotations

import pytest
import torch
from torch.optim import swa_utils as tsu

import functional_optim as fo

FA = fo.averaging
EXACT = {"rtol": 0.0, "atol": 0.0}


def _param_sets(n: int, dtype: torch.dtype = torch.float64) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    return [
        {"w": torch.randn(4, 3, generator=gen, dtype=dtype), "b": torch.randn(3, generator=gen, dtype=dtype)}
        for _ in range(n)
    ]


def _run(averager: FA.Averager, sets: list[dict]) -> FA.AverageState:
    state = averager.init(sets[0])
    for p in sets:
        state = averager.update(p, state)
    return state


def _torch_average(sets: list[dict], **kw) -> dict:
    """torch's AveragedModel over the same parameter sets (a ParameterDict holds them)."""
    module = torch.nn.ParameterDict({k: torch.nn.Parameter(v.clone()) for k, v in sets[0].items()})
    averaged = tsu.AveragedModel(module, **kw)
    for p in sets:
        with torch.no_grad():
            for k, v in p.items():
                module[k].copy_(v)
        averaged.update_parameters(module)
    return {k: v.detach() for k, v in averaged.module.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_swa_is_the_equal_weight_mean_and_matches_torch_averaged_model_exactly(dtype):
    sets = _param_sets(9, dtype)
    state = _run(FA.swa(), sets)
    assert int(state.n_averaged) == 9 and int(state.count) == 9
    expected = _torch_average(sets)
    for k in expected:
        torch.testing.assert_close(state.average[k], expected[k], **EXACT)
        torch.testing.assert_close(state.average[k], torch.stack([p[k] for p in sets]).mean(0))


@pytest.mark.parametrize(("start_step", "period"), [(0, 1), (3, 1), (2, 3), (0, 4)])
def test_swa_averages_only_the_selected_steps(start_step, period):
    sets = _param_sets(11)
    state = _run(FA.swa(start_step=start_step, period=period), sets)
    chosen = [p for k, p in enumerate(sets) if k >= start_step and (k - start_step) % period == 0]
    assert int(state.n_averaged) == len(chosen) and int(state.count) == 11
    expected = _torch_average(chosen)
    for k in expected:
        torch.testing.assert_close(state.average[k], expected[k], **EXACT)


def test_swa_before_start_step_keeps_the_initial_copy():
    sets = _param_sets(3)
    state = _run(FA.swa(start_step=5), sets)
    assert int(state.n_averaged) == 0
    torch.testing.assert_close(FA.averaged_params(state)["w"], sets[0]["w"], **EXACT)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_ema_matches_torch_get_ema_multi_avg_fn_exactly(dtype):
    sets = _param_sets(8, dtype)
    state = _run(FA.ema(0.8), sets)
    expected = _torch_average(sets, multi_avg_fn=tsu.get_ema_multi_avg_fn(0.8))
    for k in expected:
        torch.testing.assert_close(state.average[k], expected[k], **EXACT)


def _zero_init_ema(sets: list[dict], decays: list[float]) -> dict:
    """Reference: e_t = d_t e_{t-1} + (1-d_t) p_t from e_0 = 0, divided by 1 - prod(d)."""
    out = {}
    for k in sets[0]:
        e, prod = torch.zeros_like(sets[0][k]), 1.0
        for p, d in zip(sets, decays, strict=True):
            e = d * e + (1 - d) * p[k]
            prod *= d
        out[k] = e / (1 - prod)
    return out


def test_ema_debias_equals_zero_initialised_ema_divided_by_one_minus_decay_power():
    sets = _param_sets(6)
    state = _run(FA.ema(0.9, debias=True), sets)
    expected = _zero_init_ema(sets, [0.9] * 6)
    for k in expected:
        torch.testing.assert_close(state.average[k], expected[k])
    torch.testing.assert_close(state.decay_product, torch.tensor(0.9**6, dtype=torch.float64))


def test_ema_warmup_uses_min_decay_one_plus_n_over_ten_plus_n():
    sets = _param_sets(30)
    state = _run(FA.ema(0.5, warmup=True), sets)
    expected = {k: v.clone() for k, v in sets[0].items()}  # the first average copies
    for n, p in enumerate(sets[1:], start=1):
        d = min(0.5, (1 + n) / (10 + n))
        expected = {k: d * expected[k] + (1 - d) * p[k] for k in expected}
    for k in expected:
        torch.testing.assert_close(state.average[k], expected[k])


def test_ema_warmup_with_debias_normalises_the_time_varying_weights():
    sets = _param_sets(7)
    state = _run(FA.ema(0.95, warmup=True, debias=True), sets)
    decays = [min(0.95, (1 + n) / (10 + n)) for n in range(7)]
    expected = _zero_init_ema(sets, decays)
    for k in expected:
        torch.testing.assert_close(state.average[k], expected[k])


def test_averagers_do_not_mutate_inputs_and_skip_none_leaves():
    params = {"w": torch.ones(3), "none": None}
    avg = FA.ema(0.5)
    state0 = avg.init(params)
    state1 = avg.update({"w": torch.full((3,), 3.0), "none": None}, state0)
    state2 = avg.update({"w": torch.full((3,), 5.0), "none": None}, state1)
    torch.testing.assert_close(state0.average["w"], torch.ones(3), **EXACT)
    torch.testing.assert_close(state1.average["w"], torch.full((3,), 3.0), **EXACT)
    torch.testing.assert_close(state2.average["w"], torch.full((3,), 4.0), **EXACT)
    assert state2.average["none"] is None and int(state0.n_averaged) == 0


def test_averager_dtype_option_keeps_a_float32_average_of_bfloat16_params():
    sets = [{k: v.to(torch.bfloat16) for k, v in p.items()} for p in _param_sets(5, torch.float32)]
    state = _run(FA.ema(0.9, dtype=torch.float32), sets)
    assert state.average["w"].dtype == torch.float32
    ref = _run(FA.ema(0.9), [{k: v.float() for k, v in p.items()} for p in sets])
    torch.testing.assert_close(state.average["w"], ref.average["w"], **EXACT)


def test_averagers_under_vmap_with_batched_state_match_the_per_member_results():
    """Each ensemble member carries its own counters (traced under vmap, so the tensor code path
    runs); the results agree with the concrete per-member path up to rounding (lerp vs division)."""
    sets = _param_sets(5)
    members = 3
    for averager in (FA.swa(start_step=1), FA.ema(0.7, debias=True, warmup=True)):
        batched = {k: torch.stack([sets[0][k] * (m + 1) for m in range(members)]) for k in sets[0]}
        state = averager.init(batched)
        state = state._replace(
            count=torch.zeros(members, dtype=torch.int64),
            n_averaged=torch.zeros(members, dtype=torch.int64),
            decay_product=()
            if isinstance(state.decay_product, tuple)
            else torch.ones(members, dtype=torch.float64),
        )
        for p in sets:
            pb = {k: torch.stack([p[k] * (m + 1) for m in range(members)]) for k in p}
            state = torch.func.vmap(averager.update)(pb, state)
        for m in range(members):
            ref = _run(averager, [{k: v * (m + 1) for k, v in p.items()} for p in sets])
            for k in ref.average:
                torch.testing.assert_close(state.average[k][m], ref.average[k])
            assert int(state.n_averaged[m]) == int(ref.n_averaged)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FA.swa(start_step=-1), "start_step"),
        (lambda: FA.swa(period=0), "period"),
        (lambda: FA.swa(period=1.5), "period"),
        (lambda: FA.ema(1.5), "Invalid decay value"),
        (lambda: FA.ema(-0.1), "Invalid decay value"),
        (lambda: FA.ema(lambda n: 0.9), "decay"),
        (lambda: FA.ema(torch.tensor([0.9, 0.8])), "decay"),
        (lambda: FA.with_average(fo.adam(), fo.adam()), "averager"),
        (lambda: FA.with_average(FA.ema(), FA.ema()), "transform"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_parameter(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_update_with_params_of_another_shape_raises_a_value_error():
    avg = FA.swa()
    state = avg.init({"w": torch.zeros(3)})
    with pytest.raises(ValueError, match="'w'"):
        avg.update({"w": torch.zeros(4)}, state)


def test_with_average_tracks_params_plus_updates_and_leaves_updates_unchanged():
    params = _param_sets(1)[0]
    opt = FA.with_average(fo.adam(0.1), FA.swa())
    plain = fo.adam(0.1)
    state, plain_state = opt.init(params), plain.init(params)
    trajectory = []
    for step in range(6):
        grads = {k: torch.sin(v) + step for k, v in params.items()}
        updates, state = opt.update(grads, state, params)
        plain_updates, plain_state = plain.update(grads, plain_state, params)
        for k in updates:
            torch.testing.assert_close(updates[k], plain_updates[k], **EXACT)
        params = fo.apply_updates(params, updates)
        trajectory.append(params)
    averaged = FA.averaged_params(state)
    for k in params:
        torch.testing.assert_close(averaged[k], torch.stack([p[k] for p in trajectory]).mean(0))
    with pytest.raises(ValueError, match="needs the parameters"):
        opt.update(grads, state)


def test_averaged_params_finds_the_average_inside_chains_and_inject_hyperparams():
    params = {"w": torch.ones(2)}
    opt = fo.chain(
        fo.scale_by_learning_rate(0.1), FA.with_average(fo.inject_hyperparams(fo.adam)(lr=0.1), FA.ema())
    )
    state = opt.init(params)
    assert FA.averaged_params(state)["w"] is state[1].average_state.average["w"]
    with pytest.raises(ValueError, match="no AverageState"):
        FA.averaged_params(fo.adam().init(params))
    with pytest.raises(ValueError, match="2 AverageStates"):
        FA.averaged_params((state, state))


def test_functional_call_with_averaged_params_evaluates_the_averaged_model():
    model = torch.nn.Linear(3, 2)
    params = {k: v.detach() for k, v in model.named_parameters()}
    avg = FA.ema(0.5)
    state = avg.update({k: v + 2.0 for k, v in params.items()}, avg.init(params))
    state = avg.update({k: v + 4.0 for k, v in params.items()}, state)
    x = torch.randn(5, 3)
    out = torch.func.functional_call(model, FA.averaged_params(state), (x,))
    torch.testing.assert_close(out, x @ (params["weight"] + 3.0).T + params["bias"] + 3.0)
