"""SOAP, NorMuon and AdaMuon: the maths against independent formulas, the library's contract
(purity, ``None`` gradients, schedules, bad input) and the drop-ins (alias equality, checkpoints).

Parity with the authors' / reference code is in ``tests/reference/cases_matrix.py``.
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


def _run(tx: fo.GradientTransformation, params: dict, steps: int, seed0: int = 0) -> dict:
    state = tx.init(params)
    for t in range(steps):
        dtype = next(iter(params.values())).dtype
        shapes = {k: tuple(v.shape) for k, v in params.items()}
        updates, state = tx.update(_grads(seed0 + t, shapes, dtype), state, params)
        params = fo.apply_updates(params, updates)
    return params


# ----------------------------------------------------------------------------- SOAP


@pytest.mark.slow  # the first torch.optim step of a process imports torch._dynamo (~5 s)
def test_soap_without_preconditioner_is_adam_started_one_step_late() -> None:
    # Every dimension above max_precond_dim: no rotation, so SOAP = Adam (eps = 0, where SOAP's eps
    # placement and torch's agree) on gradients 2..n; the first call only builds the preconditioner.
    p0 = {"w": torch.randn(5, 4, dtype=torch.float64)}
    ours = _run(fo.soap(lr=1e-2, eps=0.0, weight_decay=0.0, max_precond_dim=1), p0, 8)
    w = p0["w"].clone().requires_grad_(True)
    adam = torch.optim.Adam([w], lr=1e-2, betas=(0.95, 0.95), eps=0.0)
    for t in range(1, 8):
        w.grad = _grads(t, {"w": (5, 4)})["w"]
        adam.step()
    torch.testing.assert_close(ours["w"], w.detach(), rtol=0, atol=1e-12)


def test_soap_first_step_builds_eigenbasis_of_gradient_outer_products() -> None:
    g = torch.randn(4, 3, dtype=torch.float64)
    tx = fo.scale_by_soap(b2=0.9, eigh_dtype=None)
    updates, state = tx.update({"w": g}, tx.init({"w": torch.zeros(4, 3, dtype=torch.float64)}))
    assert torch.equal(updates["w"], torch.zeros_like(g))
    torch.testing.assert_close(state.GG_L["w"], 0.1 * g @ g.T)
    torch.testing.assert_close(state.GG_R["w"], 0.1 * g.T @ g)
    q = state.Q_L["w"]
    evals = torch.diag(q.T @ state.GG_L["w"] @ q)
    torch.testing.assert_close(q.T @ q, torch.eye(4, dtype=torch.float64))
    assert torch.all(evals[:-1] >= evals[1:] - 1e-12)  # decreasing, as the official code flips eigh


def test_soap_second_step_is_adam_in_the_eigenbasis() -> None:
    g1, g2 = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    tx = fo.scale_by_soap(b1=0.9, b2=0.99, eps=1e-8, eigh_dtype=None)
    _, state = tx.update({"w": g1}, tx.init({"w": torch.zeros(4, 3, dtype=torch.float64)}))
    ql, qr = state.Q_L["w"], state.Q_R["w"]
    updates, _ = tx.update({"w": g2}, state)
    gp = ql.T @ g2 @ qr
    m, v = 0.1 * gp, 0.01 * gp**2
    expected = math.sqrt(1 - 0.99) / (1 - 0.9) * (ql @ (m / (v.sqrt() + 1e-8)) @ qr.T)
    torch.testing.assert_close(updates["w"], expected)


@pytest.mark.parametrize(
    ("shape", "max_dim", "view"),
    [((64, 3, 3, 3), 10000, (1728,)), ((512, 512, 3, 3), 10000, (512, 4608)), ((7,), 3, (7,))],
)
def test_soap_merge_dims_merges_while_product_fits(shape, max_dim, view) -> None:
    assert fo.soap_view_shape(shape, max_dim, merge_dims=True) == view


def test_soap_rejects_views_of_more_than_two_dims() -> None:
    with pytest.raises(ValueError, match=r"\(3, 4, 5\).*merge_dims=True"):
        fo.soap().init({"w": torch.zeros(3, 4, 5)})
    with pytest.raises(ValueError, match="precondition_frequency must be a positive int, got 0"):
        fo.scale_by_soap(precondition_frequency=0)
    with pytest.raises(ValueError, match=r"data_format must be 'channels_first'.*'channels_last'"):
        fo.adapters.SOAP([torch.zeros(2, 2, requires_grad=True)], data_format="channels_last")


# ----------------------------------------------------------------------------- NorMuon / AdaMuon


def test_neuron_norm_equalises_row_rms_and_keeps_frobenius_norm() -> None:
    o = torch.randn(6, 5, dtype=torch.float64) * torch.arange(1, 7, dtype=torch.float64)[:, None]
    tx = fo.scale_by_neuron_norm(beta2=0.9, eps=0.0)
    u, state = tx.update({"w": o}, tx.init({"w": o}))
    row_rms = u["w"].square().mean(dim=1).sqrt()
    torch.testing.assert_close(row_rms, row_rms.mean().expand(6))
    torch.testing.assert_close(torch.linalg.vector_norm(u["w"]), torch.linalg.vector_norm(o))
    torch.testing.assert_close(state.second_momentum_buffer["w"], 0.1 * o.square().mean(dim=1, keepdim=True))


def test_adamuon_first_step_follows_the_official_formula() -> None:
    p = torch.randn(4, 6, dtype=torch.float64)
    g = torch.randn(4, 6, dtype=torch.float64)
    mu, lr, wd, eps = 0.95, 0.02, 0.01, 1e-8
    tx = fo.adamuon(lr=lr, weight_decay=wd, momentum=mu, eps=eps, ns_dtype=torch.float64)
    updates, _ = tx.update({"w": g}, tx.init({"w": p}), {"w": p})
    buf = (1 - mu) * g
    ortho = fo.orthogonalize(ns_dtype=torch.float64)
    o = ortho.update({"w": torch.sign(torch.lerp(g, buf, mu))}, ortho.init({"w": g}))[0]["w"]
    o = o / ((1 - mu) * o * o).sqrt().add(eps)
    o = o * (0.2 * math.sqrt(24) / (o.norm() + eps))
    torch.testing.assert_close(p + updates["w"], p * (1 - lr * wd) - lr * o)


def test_update_second_moment_works_under_vmap_and_grad() -> None:
    xs = torch.randn(3, 4, 5, dtype=torch.float64)
    tx = fo.scale_by_update_second_moment(0.9, bias_correction=True)

    def one(x: torch.Tensor) -> torch.Tensor:
        return tx.update({"w": x}, tx.init({"w": x}))[0]["w"]

    torch.testing.assert_close(torch.func.vmap(one)(xs), torch.stack([one(x) for x in xs]))

    def loss(beta2: torch.Tensor) -> torch.Tensor:
        t = fo.scale_by_update_second_moment(beta2)
        state = t.init({"w": xs[0]})
        _, state = t.update({"w": xs[0]}, state)
        return t.update({"w": xs[1]}, state)[0]["w"].sum()

    assert torch.isfinite(torch.func.grad(loss)(torch.tensor(0.9, dtype=torch.float64)))


def test_neuron_norm_rejects_vectors() -> None:
    with pytest.raises(ValueError, match=r"needs >= 2 dims.*\[3\]"):
        fo.normuon().init({"b": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"needs matrices.*\(3,\)"):
        fo.scale_by_neuron_norm().init({"b": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"NorMuon only supports parameters with >= 2 dims.*\(3,\)"):
        fo.adapters.NorMuon([torch.zeros(3, requires_grad=True)])


# ----------------------------------------------------------------------------- contract

_ALIASES = {
    "soap": lambda **kw: fo.soap(precondition_1d=True, **kw),
    "normuon": lambda **kw: fo.normuon(ns_dtype=torch.float64, weight_decay=0.1, **kw),
    "adamuon": lambda **kw: fo.adamuon(ns_dtype=torch.float64, **kw),
}


@pytest.mark.parametrize("name", list(_ALIASES))
def test_alias_is_pure_and_leaves_none_gradients_alone(name: str) -> None:
    params = {"a": torch.randn(4, 3, dtype=torch.float64), "b": torch.randn(3, 5, dtype=torch.float64)}
    tx = _ALIASES[name]()
    state = tx.init(params)
    for t in range(3):
        updates, state = tx.update(_grads(t, {"a": (4, 3), "b": (3, 5)}), state, params)
        params = fo.apply_updates(params, updates)
    before = copy.deepcopy((params, state))
    grads = {"a": torch.randn(4, 3, dtype=torch.float64), "b": None}
    grads_before = copy.deepcopy(grads)
    updates, new_state = tx.update(grads, state, params)
    assert updates["b"] is None and updates["a"] is not None
    torch.testing.assert_close((params, state, grads), (*before, grads_before), rtol=0, atol=0)
    old_b, new_b = _entries(state, "b"), _entries(new_state, "b")
    assert old_b and all(o is n for o, n in zip(old_b, new_b, strict=True))


def _entries(state, key: str) -> list:
    """Every per-parameter state entry of parameter ``key`` (depth-first)."""
    out, stack = [], [state]
    while stack:
        s = stack.pop()
        if isinstance(s, dict):
            out.append(s[key])
        elif isinstance(s, tuple | list):
            stack.extend(s)
    return out


@pytest.mark.parametrize("name", list(_ALIASES))
def test_alias_accepts_a_learning_rate_schedule(name: str) -> None:
    params = {"a": torch.randn(4, 3, dtype=torch.float64)}
    fixed = _run(_ALIASES[name](lr=1e-2), params, 3)
    scheduled = _run(_ALIASES[name](lr=lambda count: 1e-2 + 0 * count), params, 3)
    torch.testing.assert_close(scheduled, fixed)


@pytest.mark.parametrize(
    ("cls", "alias"),
    [
        (fo.adapters.SOAP, lambda: fo.soap()),
        (fo.adapters.NorMuon, lambda: fo.normuon(ns_dtype=torch.bfloat16)),
        (fo.adapters.AdaMuon, lambda: fo.adamuon(ns_dtype=torch.bfloat16)),
    ],
)
def test_dropin_equals_alias_and_resumes_from_its_state_dict(cls, alias) -> None:
    p0 = [torch.randn(6, 4), torch.randn(4, 5)]
    ps = [p.clone().requires_grad_(True) for p in p0]
    opt = cls(ps)
    for t in range(4):
        for p, g in zip(ps, _grads(t, {"0": (6, 4), "1": (4, 5)}, torch.float32).values(), strict=True):
            p.grad = g
        opt.step()
        if t == 1:
            saved = copy.deepcopy(opt.state_dict())
            at2 = [p.detach().clone() for p in ps]
    pure = _run(alias(), {"0": p0[0], "1": p0[1]}, 4)
    torch.testing.assert_close([p.detach() for p in ps], list(pure.values()), rtol=0, atol=1e-6)
    qs = [p.clone().requires_grad_(True) for p in at2]
    resumed = cls(qs)
    resumed.load_state_dict(saved)
    for t in range(2, 4):
        for q, g in zip(qs, _grads(t, {"0": (6, 4), "1": (4, 5)}, torch.float32).values(), strict=True):
            q.grad = g
        resumed.step()
    torch.testing.assert_close([q.detach() for q in qs], [p.detach() for p in ps], rtol=0, atol=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: fo.scale_by_neuron_norm(0.9),
        lambda: fo.scale_to_rms(0.2),
        lambda: fo.scale_by_lmo("ColNorm"),
        lambda: fo.scale_by_lmo("Sign"),
    ],
    ids=["neuron_norm", "scale_to_rms", "lmo_colnorm", "lmo_sign"],
)
def test_elementwise_matrix_transforms_batch_under_vmap(make) -> None:
    xs = torch.randn(3, 4, 5, dtype=torch.float64)
    tx = make()

    def one(x: torch.Tensor) -> torch.Tensor:
        return tx.update({"w": x}, tx.init({"w": x}))[0]["w"]

    torch.testing.assert_close(torch.func.vmap(one)(xs), torch.stack([one(x) for x in xs]))


def test_normuon_update_is_differentiable_in_beta2() -> None:
    g = torch.randn(4, 6, dtype=torch.float64)

    def loss(beta2: torch.Tensor) -> torch.Tensor:
        tx = fo.scale_by_neuron_norm(beta2)
        state = tx.init({"w": g})
        _, state = tx.update({"w": g}, state)
        return (tx.update({"w": g.flip(0)}, state)[0]["w"][0] ** 3).sum()  # row 0 depends on beta2

    beta2 = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(beta2), beta2)
    eps = 1e-6
    numeric = (loss(beta2.detach() + eps) - loss(beta2.detach() - eps)) / (2 * eps)
    assert abs(float(grad)) > 1e-3
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "kw", [{}, {"precondition_1d": True, "max_precond_dim": 5}], ids=["default", "1d_maxdim"]
)
def test_soap_checkpoints_move_between_the_official_class_and_the_dropin(kw) -> None:
    soap = pytest.importorskip(
        "soap", reason="official SOAP (github.com/nikhilvyas/SOAP soap.py) not on the path"
    )
    shapes = [(6, 4), (5,), (4, 3)]
    gen = torch.Generator().manual_seed(0)
    p0 = [torch.randn(s, generator=gen) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(16)]
    kw = {"precondition_frequency": 3, **kw}

    def run(opt, ps, steps) -> None:
        for t in steps:
            for p, g in zip(ps, grads[t], strict=True):
                p.grad = g.clone()
            opt.step()

    def fresh(src) -> list[torch.Tensor]:
        return [x.detach().clone().requires_grad_(True) for x in src]

    official_ps, ours_ps = fresh(p0), fresh(p0)
    official, ours = soap.SOAP(official_ps, **kw), fo.adapters.SOAP(ours_ps, **kw)
    run(official, official_ps, range(8))
    run(ours, ours_ps, range(8))
    to_ours_ps, to_official_ps = fresh(official_ps), fresh(ours_ps)
    to_ours, to_official = fo.adapters.SOAP(to_ours_ps, **kw), soap.SOAP(to_official_ps, **kw)
    to_ours.load_state_dict(copy.deepcopy(official.state_dict()))
    to_official.load_state_dict(copy.deepcopy(ours.state_dict()))
    for opt, ps in (
        (official, official_ps),
        (ours, ours_ps),
        (to_ours, to_ours_ps),
        (to_official, to_official_ps),
    ):
        run(opt, ps, range(8, 16))
    torch.testing.assert_close(
        [p.detach() for p in to_ours_ps], [p.detach() for p in official_ps], rtol=0, atol=1e-5
    )
    torch.testing.assert_close(
        [p.detach() for p in to_official_ps], [p.detach() for p in ours_ps], rtol=0, atol=1e-5
    )
