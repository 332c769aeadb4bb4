"""Shampoo (with grafting) and PSGD Kron: the maths against independent formulas, the pure
contract (no input mutation, ``None`` gradients, determinism of the random probes), the drop-ins
(alias equality, state_dict round trip, validation) and the references' own quirks.

Parity with Distributed Shampoo and kron_torch over 100 steps is in ``tests/reference/cases_matrix.py``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

import functional_optim as fo


def _grads(seed: int, shapes: dict[str, tuple[int, ...]], dtype=torch.float64) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen, dtype=dtype) for k, s in shapes.items()}


def _run(tx: fo.GradientTransformation, params: dict, steps: int) -> tuple[dict, object]:
    state = tx.init(params)
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    dtype = next(iter(params.values())).dtype
    for t in range(steps):
        updates, state = tx.update(_grads(t, shapes, dtype), state, params)
        params = fo.apply_updates(params, updates)
    return params, state


def _root(a: torch.Tensor, p: float, eps: float) -> torch.Tensor:
    lam, q = torch.linalg.eigh(a + eps * torch.eye(a.shape[0], dtype=a.dtype))
    return q @ torch.diag(lam ** (-1 / p)) @ q.T


# ----------------------------------------------------------------------------- blocking


@pytest.mark.parametrize(
    ("shape", "max_dim", "view"),
    [
        ((1, 2, 5, 1), 10, (10,)),  # the reference's docstring examples
        ((1, 2, 5, 1), 1, (2, 5)),
        ((32, 3, 64, 64), 8192, (96, 4096)),
        ((), 4, (1,)),
        ((8, 16), 1024, (128,)),
        ((16, 4), 8, (16, 4)),
        ((3, 0), 4, (0,)),
    ],
)
def test_merge_small_dims_matches_distributed_shampoo(shape, max_dim, view) -> None:
    assert fo.merge_small_dims(shape, max_dim) == view


def test_blockwise_cuts_merges_and_puts_back_every_block() -> None:
    seen = []

    def spy_init(params):
        seen.append([tuple(p.shape) for p in params])
        return ()

    spy = fo.GradientTransformation(
        spy_init, lambda u, s, p=None, **e: ([None if x is None else 2 * x for x in u], s)
    )
    tx = fo.blockwise(spy, max_dim=4)
    params = {"a": torch.randn(6, 9), "b": torch.randn(3), "c": torch.randn(1, 5, 1)}
    state = tx.init(params)
    assert seen == [[(4, 4), (4, 4), (4, 1), (2, 4), (2, 4), (2, 1), (3,), (4,), (1,)]]
    assert [int(n) for n in state.num_blocks.values()] == [6, 1, 2]
    grads = {"a": torch.randn(6, 9), "b": None, "c": torch.randn(1, 5, 1)}
    updates, _ = tx.update(grads, state, params)
    assert updates["b"] is None
    torch.testing.assert_close(updates["a"], 2 * grads["a"], rtol=0, atol=0)
    torch.testing.assert_close(updates["c"], 2 * grads["c"], rtol=0, atol=0)


# ----------------------------------------------------------------------------- Shampoo maths


def test_shampoo_first_step_is_inverse_fourth_roots_on_both_sides() -> None:
    g = torch.randn(5, 3, dtype=torch.float64)
    tx = fo.scale_by_shampoo(epsilon=1e-3, factor_matrix_dtype=None)
    u, state = tx.update({"w": g}, tx.init({"w": g}))
    expected = _root(g @ g.T, 4, 1e-3) @ g @ _root(g.T @ g, 4, 1e-3)
    torch.testing.assert_close(u["w"], expected)
    torch.testing.assert_close(state.factor_matrices["w"][1], g.T @ g)


def test_shampoo_ema_bias_correction_and_frequency() -> None:
    gs = [torch.randn(4, 2, dtype=torch.float64) for _ in range(3)]
    tx = fo.scale_by_shampoo(b2=0.9, epsilon=1e-2, precondition_frequency=2, factor_matrix_dtype=None)
    state = tx.init({"w": gs[0]})
    outs = []
    for g in gs:
        u, state = tx.update({"w": g}, state)
        outs.append(u["w"])
    torch.testing.assert_close(outs[0], gs[0])  # identity before the first root (step 2)
    left = 0.9 * 0.1 * gs[0] @ gs[0].T + 0.1 * gs[1] @ gs[1].T
    right = 0.9 * 0.1 * gs[0].T @ gs[0] + 0.1 * gs[1].T @ gs[1]
    bc = 1 - 0.9**2
    expected = _root(left / bc, 4, 1e-2) @ gs[2] @ _root(right / bc, 4, 1e-2)  # step 3 reuses step 2's roots
    torch.testing.assert_close(outs[2], expected)


def test_shampoo_inverse_exponent_override_switches_dimensions_off() -> None:
    assert fo.shampoo_inverse_exponents(1) == (0.5,)
    assert fo.shampoo_inverse_exponents(2, {2: 0.5}) == (0.5, 0.5)
    g = torch.randn(4, 3, dtype=torch.float64)
    tx = fo.scale_by_shampoo(epsilon=1e-3, inverse_exponent_override={2: {1: 0.0}}, factor_matrix_dtype=None)
    u, state = tx.update({"w": g}, tx.init({"w": g}))
    assert len(state.factor_matrices["w"]) == 1  # only the rows
    torch.testing.assert_close(u["w"], _root(g @ g.T, 4, 1e-3) @ g)


def test_matrix_inverse_root_shifts_a_matrix_that_is_not_positive_definite() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, -0.5]], dtype=torch.float64)
    # eigenvalues 1, -0.5 (+eps): the smallest is below eps, so all are shifted by eps - λ_min
    x = fo.matrix_inverse_root(a, 2, 1e-2)
    torch.testing.assert_close(
        x, torch.diag(torch.tensor([(1.5 + 1e-2) ** -0.5, 1e-2**-0.5], dtype=torch.float64))
    )


def test_graft_warmup_returns_the_magnitude_rule_first() -> None:
    tx = fo.graft(fo.scale(2.0), fo.scale(-1.0), warmup=2)
    state = tx.init({"w": torch.ones(2)})
    g = {"w": torch.tensor([3.0, 4.0])}
    outs = []
    for _ in range(3):
        u, state = tx.update(g, state)
        outs.append(u["w"])
    torch.testing.assert_close(outs[0], 2 * g["w"])
    torch.testing.assert_close(outs[1], 2 * g["w"])
    torch.testing.assert_close(outs[2], -2 * g["w"])  # direction of -g, norm of 2g


def test_precondition_momentum_fits_on_gradients_and_applies_to_filtered_gradient() -> None:
    g1, g2 = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    tx = fo.precondition_momentum(fo.scale_by_diagonal_preconditioner(eps=1e-10), b1=0.9, b3=0.5)
    state = tx.init({"w": g1})
    _, state = tx.update({"w": g1}, state)
    u, _ = tx.update({"w": g2}, state)
    m1 = 0.1 * g1
    filtered = (0.5 * m1 + 0.5 * g2) / (1 - 0.5 * 0.9)
    torch.testing.assert_close(u["w"], filtered / ((g1**2 + g2**2).sqrt() + 1e-10))


def test_shampoo_grafting_keeps_the_graft_norm_per_block() -> None:
    params = {"w": torch.randn(6, 4, dtype=torch.float64)}
    tx = fo.shampoo(lr=1.0, betas=(0.0, 1.0), grafting="adagrad", max_preconditioner_dim=4, epsilon=1e-4)
    g = _grads(0, {"w": (6, 4)})
    u, _ = tx.update(g, tx.init(params), params)
    step = -u["w"]
    for rows in (slice(0, 4), slice(4, 6)):  # blocks (4, 4) and (2, 4); AdaGrad's first step is g/|g|
        graft_norm = (g["w"][rows] / (g["w"][rows].abs() + 1e-10)).norm()
        torch.testing.assert_close(step[rows].norm(), graft_norm)


# ----------------------------------------------------------------------------- Kron maths


@pytest.mark.parametrize(
    ("shape", "merged"),
    [((64, 3, 3, 3), (576, 3)), ((2, 3, 4, 100), (24, 100)), ((5, 6), (5, 6)), ((7,), (7,))],
)
def test_kron_merged_shape(shape, merged) -> None:
    assert fo.kron_merged_shape(shape) == merged


def test_kron_factors_follow_size_and_memory_save_mode() -> None:
    params = {"m": torch.zeros(3, 20), "v": torch.zeros(5), "s": torch.zeros(4, 4)}
    q = fo.scale_by_kron(max_size_triangular=10).init(params).Q
    assert [t.dim() for t in q["m"]] == [2, 1] and [t.dim() for t in q["v"]] == [1]
    q = fo.scale_by_kron(memory_save_mode="smart_one_diag").init(params).Q
    assert [t.dim() for t in q["m"]] == [2, 1] and [t.dim() for t in q["s"]] == [2, 2]
    q = fo.scale_by_kron(memory_save_mode="all_diag", precond_init_scale=4.0).init(params).Q
    torch.testing.assert_close(q["s"][0], torch.full((4,), 2.0))  # 4 ** (1/2) per factor


def test_kron_update_probability_decides_when_q_moves() -> None:
    params = {"w": torch.zeros(3, 2)}
    tx = fo.scale_by_kron(preconditioner_update_probability=0.5)
    state = tx.init(params)
    moved = []
    for t in range(4):
        before = state.Q["w"][0]
        _, state = tx.update(_grads(t, {"w": (3, 2)}, torch.float32), state)
        moved.append(not torch.equal(before, state.Q["w"][0]))
    assert moved == [False, True, False, True]
    schedule = fo.precond_update_prob_schedule()
    assert float(schedule(torch.tensor(10))) == 1.0 and float(
        schedule(torch.tensor(10_000))
    ) == pytest.approx(0.03)


def test_kron_probes_are_a_pure_function_of_the_state() -> None:
    params = {"w": torch.zeros(4, 3), "b": torch.zeros(3)}
    g = _grads(0, {"w": (4, 3), "b": (3,)}, torch.float32)
    tx = fo.kron(lr=0.1, seed=3)
    state = tx.init(params)
    u1, s1 = tx.update(g, state, params)
    u2, s2 = tx.update(g, state, params)  # same state, same step
    torch.testing.assert_close((u1, s1), (u2, s2), rtol=0, atol=0)
    u3, _ = fo.kron(lr=0.1, seed=4).update(g, fo.kron(lr=0.1, seed=4).init(params), params)
    assert not torch.equal(u1["w"], u3["w"])  # another seed, other probes
    torch.manual_seed(3)
    forked = fo.kron(lr=0.1, seed=None).init(params)
    assert torch.equal(forked[0].inner_state.rng, torch.Generator().manual_seed(3).get_state())


def test_kron_clips_the_update_rms() -> None:
    tx = fo.scale_by_kron()
    g = {"w": 1e3 * torch.randn(6, 5)}
    u, _ = tx.update(g, tx.init(g))
    assert float(u["w"].square().mean().sqrt()) == pytest.approx(1.1, rel=1e-5)


# ----------------------------------------------------------------------------- contract

_ALIASES = {
    "shampoo": lambda **kw: fo.shampoo(
        grafting="adam", max_preconditioner_dim=3, epsilon=1e-4, factor_matrix_dtype=None, **kw
    ),
    "shampoo-l2-momentum": lambda **kw: fo.shampoo(
        weight_decay=0.1, weight_decay_type="l2", momentum=0.9, use_nesterov=True, epsilon=1e-4, **kw
    ),
    "kron": lambda **kw: fo.kron(weight_decay=0.1, precond_dtype=torch.float64, **kw),
}


@pytest.mark.parametrize("name", list(_ALIASES))
def test_alias_is_pure_and_leaves_none_gradients_alone(name: str) -> None:
    params = {"a": torch.randn(4, 3, dtype=torch.float64), "b": torch.randn(3, 5, dtype=torch.float64)}
    tx = _ALIASES[name]()
    params, state = _run(tx, params, 3)
    before = copy.deepcopy((params, state))
    grads = {"a": torch.randn(4, 3, dtype=torch.float64), "b": None}
    grads_before = copy.deepcopy(grads)
    updates, _ = tx.update(grads, state, params)
    assert updates["b"] is None and updates["a"] is not None and torch.isfinite(updates["a"]).all()
    torch.testing.assert_close((params, state, grads), (*before, grads_before), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(_ALIASES))
def test_alias_accepts_a_learning_rate_schedule(name: str) -> None:
    params = {"a": torch.randn(4, 3, dtype=torch.float64)}
    fixed, _ = _run(_ALIASES[name](lr=1e-2), params, 3)
    scheduled, _ = _run(_ALIASES[name](lr=lambda count: 1e-2 + 0 * count), params, 3)
    torch.testing.assert_close(scheduled, fixed)


@pytest.mark.parametrize(
    ("make_dropin", "alias"),
    [
        (
            lambda ps: fo.adapters.Shampoo(
                ps,
                grafting_config="adagrad",
                max_preconditioner_dim=4,
                precondition_frequency=2,
                epsilon=1e-6,
            ),
            lambda: fo.shampoo(
                grafting="adagrad", max_preconditioner_dim=4, precondition_frequency=2, epsilon=1e-6
            ),
        ),
        (
            lambda ps: fo.adapters.Kron(ps, lr=1e-2, weight_decay=0.1, seed=0),
            lambda: fo.kron(lr=1e-2, weight_decay=0.1, seed=0),
        ),
    ],
    ids=["Shampoo", "Kron"],
)
def test_dropin_equals_alias_and_resumes_from_its_state_dict(make_dropin, alias) -> None:
    shapes = {"0": (6, 5), "1": (5,), "2": (5, 3)}
    p0 = [torch.randn(s) for s in shapes.values()]
    ps = [p.clone().requires_grad_(True) for p in p0]
    opt = make_dropin(ps)
    for t in range(5):
        for p, g in zip(ps, _grads(t, shapes, torch.float32).values(), strict=True):
            p.grad = g
        opt.step()
        if t == 2:
            saved = copy.deepcopy(opt.state_dict())
            at3 = [p.detach().clone() for p in ps]
    # the pure alias on a list (the drop-in's leaf order)
    tx = alias()
    params, state = list(p0), tx.init(list(p0))
    for t in range(5):
        updates, state = tx.update(list(_grads(t, shapes, torch.float32).values()), state, params)
        params = fo.apply_updates(params, updates)
    torch.testing.assert_close([p.detach() for p in ps], params, rtol=0, atol=1e-6)
    qs = [p.clone().requires_grad_(True) for p in at3]
    resumed = make_dropin(qs)
    resumed.load_state_dict(saved)
    for t in range(3, 5):
        for q, g in zip(qs, _grads(t, shapes, torch.float32).values(), strict=True):
            q.grad = g
        resumed.step()
    torch.testing.assert_close([q.detach() for q in qs], [p.detach() for p in ps], rtol=0, atol=0)


def test_dropins_take_param_groups() -> None:
    a, b = torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)
    opt = fo.adapters.Shampoo(
        [{"params": [a], "lr": 0.1}, {"params": [b], "grafting_config": "sgd"}], lr=1e-2
    )
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["grafting"] == "sgd"
    a.grad, b.grad = torch.randn(4, 3), torch.randn(3)
    opt.step()
    kron = fo.adapters.Kron([{"params": [a]}, {"params": [b], "b1": 0.0}])
    kron.step()
    assert kron.param_groups[1]["b1"] == 0.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: fo.shampoo(grafting="adamw"),
            r"grafting must be None or one of \['adagrad', 'adam', 'rmsprop', 'sgd'\], got 'adamw'",
        ),
        (
            lambda: fo.shampoo(weight_decay_type="corrected"),
            "weight_decay_type must be 'decoupled' or 'l2', got 'corrected'",
        ),
        (
            lambda: fo.shampoo(precondition_frequency=0),
            "precondition_frequency must be a positive int, got 0",
        ),
        (
            lambda: fo.shampoo(max_preconditioner_dim=2.5),
            "max_preconditioner_dim must be a positive int or math.inf, got 2.5",
        ),
        (lambda: fo.shampoo(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
        (lambda: fo.shampoo(epsilon=0.0), "Invalid epsilon value: 0.0"),
        (
            lambda: fo.shampoo(grafting="adagrad", grafting_beta2=0.9),
            "grafting_beta2 has no meaning for AdaGrad",
        ),
        (lambda: fo.shampoo(use_nesterov=True), "use_nesterov needs a momentum > 0"),
        (
            lambda: fo.scale_by_shampoo(inverse_exponent_override={2: -0.5}),
            "inverse_exponent_override must map",
        ),
        (lambda: fo.kron(b1=1.0), r"Invalid b1 \(momentum\) value: 1.0"),
        (lambda: fo.kron(memory_save_mode="two_diag"), "memory_save_mode must be one of .*got 'two_diag'"),
        (
            lambda: fo.kron(preconditioner_update_probability=0.0),
            r"must be in \(0, 1\], a callable or None, got 0.0",
        ),
        (lambda: fo.kron(precond_lr=-1.0), "precond_lr must be > 0, got -1.0"),
        (
            lambda: fo.adapters.Kron([torch.zeros(2, requires_grad=True)], mu_dtype=torch.bfloat16),
            "mu_dtype=torch.bfloat16 is not supported",
        ),
        (
            lambda: fo.adapters.Shampoo([torch.zeros(2, requires_grad=True)], grafting_config=object()),
            "grafting_config must be None, one of",
        ),
        (
            lambda: fo.adapters.Shampoo([torch.zeros(2, requires_grad=True)], lr=-1.0),
            "Invalid learning rate: -1.0",
        ),
    ],
)
def test_bad_hyperparameters_raise_clear_errors(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_shampoo_dropin_reads_distributed_shampoo_config_objects() -> None:
    ds = pytest.importorskip(
        "distributed_shampoo", reason="Distributed Shampoo (facebookresearch/optimizers) not installed"
    )
    types = pytest.importorskip("distributed_shampoo.shampoo_types")
    a = torch.randn(5, 4, requires_grad=True)
    opt = fo.adapters.Shampoo(
        [a],
        grafting_config=ds.AdamPreconditionerConfig(beta2=0.99, epsilon=1e-8),
        weight_decay_type=ds.WeightDecayType.L2,
        iterate_averaging_config=types.ClassicMomentumConfig(momentum=0.5, use_nesterov=True),
        preconditioner_config=types.RootInvShampooPreconditionerConfig(
            inverse_exponent_override={2: 0.5},
            factor_matrix_dtype=torch.float64,
            inv_factor_matrix_dtype=torch.float64,
        ),
    )
    group = opt.param_groups[0]
    assert (group["grafting"], group["grafting_beta2"], group["grafting_epsilon"]) == ("adam", 0.99, 1e-8)
    assert (group["weight_decay_type"], group["momentum"], group["use_nesterov"]) == ("l2", 0.5, True)
    assert group["inverse_exponent_override"] == {2: 0.5} and group["factor_matrix_dtype"] == torch.float64


# ----------------------------------------------------------------------------- the references' quirks


@pytest.mark.slow  # importing torch._dynamo (the reference compiles its kernels) takes ~5-10 s
def test_kron_torch_adds_its_probe_noise_to_the_tensors_it_is_given() -> None:
    # kron_torch 0.3.3 adds sqrt(eps)·mean|G|·V to G *in place*: with momentum_into_precond_update
    # (the default) G is the debiased momentum, which it then preconditions (its update carries the
    # probe noise); without it, G is ``p.grad`` itself. The paper's fitting pair (V, G + noise)
    # leaves both alone, as our transform does; the parity cases patch the reference accordingly.
    kron = pytest.importorskip("kron_torch.kron", reason="kron-torch not installed")
    dynamo = pytest.importorskip("torch._dynamo")
    p = torch.zeros(4, 3, requires_grad=True)
    g = torch.randn(4, 3)
    with dynamo.config.patch(disable=True):
        opt = kron.Kron([p], momentum_into_precond_update=False)
        p.grad = g.clone()
        opt.step()
    assert not torch.equal(p.grad, g)  # the user's gradient was changed by the step
    assert math.isclose(float((p.grad - g).abs().mean() / g.abs().mean()), 3.45e-4, rel_tol=0.5)


@pytest.mark.parametrize(
    "make",
    [lambda: fo.shampoo(grafting="adam", max_preconditioner_dim=8), lambda: fo.kron(seed=0)],
    ids=["shampoo", "kron"],
)
def test_conv_kernels_scalars_and_empty_tensors(make) -> None:
    params = {"conv": torch.randn(4, 3, 3, 3), "scalar": torch.tensor(1.0), "empty": torch.zeros(3, 0)}
    params, _ = _run(make(), params, 3)
    assert {k: tuple(v.shape) for k, v in params.items()} == {
        "conv": (4, 3, 3, 3),
        "scalar": (),
        "empty": (3, 0),
    }
    assert all(torch.isfinite(v).all() for v in params.values())
