"""Scion: each linear minimisation oracle against the norm it belongs to, the constrained and
unconstrained steps, bad input and the drop-in (parity with the official code and pytorch-optimizer
is in ``tests/reference/cases_matrix.py``)."""

from __future__ import annotations

import copy

import pytest
import torch

import functional_optim as fo


def _lmo(norm: str, g: torch.Tensor, **kw) -> torch.Tensor:
    tx = fo.scale_by_lmo(norm, ns_dtype=torch.float64, **kw)
    return tx.update({"w": g}, tx.init({"w": g}))[0]["w"]


G = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_col_norm_oracle_gives_unit_rms_columns() -> None:
    u = _lmo("ColNorm", G)
    torch.testing.assert_close(u.square().mean(dim=0).sqrt(), torch.ones(4, dtype=torch.float64))
    u_normalized = _lmo("ColNorm", G, normalized=True)
    torch.testing.assert_close(u_normalized, u / 4)


def test_row_norm_oracle_gives_rows_of_norm_one_over_sqrt_fan_in() -> None:
    u = _lmo("RowNorm", G)  # normalized=True by default: ‖row‖ = 1/√d_in
    torch.testing.assert_close(u.norm(dim=1), torch.full((6,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(_lmo("RowNorm", G, transpose=True), _lmo("RowNorm", G.T).T)


def test_sign_and_bias_oracles() -> None:
    torch.testing.assert_close(_lmo("Sign", G), torch.sign(G) / 4)
    torch.testing.assert_close(_lmo("Sign", G, normalized=False), torch.sign(G))
    b = torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(_lmo("Auto", b).square().mean(), torch.tensor(1.0, dtype=torch.float64))


def test_spectral_oracle_is_the_scaled_polar_factor() -> None:
    u = _lmo("Spectral", G, steps=30)  # many steps: singular values close to those of U Vᵀ
    sv = torch.linalg.svdvals(u)
    assert torch.all((sv / (6 / 4) ** 0.5 - 1).abs() < 0.35)  # Keller's quintic: within ~[0.7, 1.2]
    uu, _, vh = torch.linalg.svd(G, full_matrices=False)
    cos = (u * (uu @ vh)).sum() / (u.norm() * (uu @ vh).norm())
    assert cos > 0.98
    torch.testing.assert_close(_lmo("Spectral", G, normalized=False, steps=30), u * 6**0.5 / (6 / 4) ** 0.5)


@pytest.mark.parametrize("unconstrained", [False, True])
def test_scion_step_shrinks_towards_the_ball_only_when_constrained(unconstrained: bool) -> None:
    p, g = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    tx = fo.scion(lr=0.1, momentum=0.5, norm="BiasRMS", scale=3.0, unconstrained=unconstrained)
    updates, _ = tx.update({"b": g}, tx.init({"b": p}), {"b": p})
    d = 0.5 * g
    lmo = d / (d.square().mean().sqrt() + 1e-8)
    expected = (p if unconstrained else 0.9 * p) - 0.1 * 3.0 * lmo
    torch.testing.assert_close(p + updates["b"], expected)


def test_scion_bad_input_names_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"norm must be one of .*'Frobenius'"):
        fo.scion(norm="Frobenius")
    with pytest.raises(ValueError, match=r"norm='Sign' takes \['normalized', 'zero_init'\], got \['steps'\]"):
        fo.scion(norm="Sign", norm_kwargs={"steps": 3})
    with pytest.raises(ValueError, match="momentum must be in"):
        fo.scion(momentum=0.0)


def test_scion_is_pure_and_leaves_none_gradients_alone() -> None:
    params = {"w": torch.randn(4, 3, dtype=torch.float64), "b": torch.randn(3, dtype=torch.float64)}
    tx = fo.scion(lr=0.01, momentum=0.1, ns_dtype=torch.float64)
    state = tx.init(params)
    updates, state = tx.update(
        {"w": torch.randn(4, 3, dtype=torch.float64), "b": torch.ones(3, dtype=torch.float64)}, state, params
    )
    before = copy.deepcopy((params, state))
    updates, new_state = tx.update({"w": torch.randn(4, 3, dtype=torch.float64), "b": None}, state, params)
    assert updates["b"] is None
    torch.testing.assert_close((params, state), before, rtol=0, atol=0)
    assert new_state[0].momentum_buffer["b"] is state[0].momentum_buffer["b"]


def test_scion_dropin_equals_alias_with_groups_and_round_trips_its_state() -> None:
    w0, b0 = torch.randn(5, 4), torch.randn(5)
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    groups = [{"params": [w], "norm": "Spectral", "scale": 5.0}, {"params": [b], "norm": "BiasRMS"}]
    opt = fo.adapters.Scion(groups, lr=0.01, momentum=0.1)
    pure = fo.partition(
        {
            "w": fo.scion(lr=0.01, momentum=0.1, norm="Spectral", scale=5.0, ns_dtype=torch.bfloat16),
            "b": fo.scion(lr=0.01, momentum=0.1, norm="BiasRMS"),
        },
        {"w": "w", "b": "b"},
    )
    params = {"w": w0, "b": b0}
    state = pure.init(params)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        gw, gb = torch.randn(5, 4, generator=gen), torch.randn(5, generator=gen)
        w.grad, b.grad = gw, gb
        opt.step()
        updates, state = pure.update({"w": gw, "b": gb}, state, params)
        params = fo.apply_updates(params, updates)
    torch.testing.assert_close([w.detach(), b.detach()], [params["w"], params["b"]], rtol=0, atol=1e-6)
    clone = fo.adapters.Scion(
        [
            {"params": [w.detach().clone().requires_grad_(True)], "norm": "Spectral", "scale": 5.0},
            {"params": [b.detach().clone().requires_grad_(True)], "norm": "BiasRMS"},
        ],
        lr=0.01,
        momentum=0.1,
    )
    clone.load_state_dict(copy.deepcopy(opt.state_dict()))
    torch.testing.assert_close(clone.state_dict()["state"], opt.state_dict()["state"], rtol=0, atol=0)
