"""``warn_if_growing_graph``: warns once for the leaking pattern, never for the wanted graphs."""

from __future__ import annotations

import warnings

import pytest
import torch

from functional_optim import _warnings


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_warnings, "_warned", False)


def _caught(fn) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [w for w in caught if issubclass(w.category, _warnings.GrowingGraphWarning)]


def test_parameters_requiring_grad_with_plain_updates_warn_once() -> None:
    params = {"w": torch.ones(3, requires_grad=True), "b": torch.zeros(1)}
    updates = {"w": torch.ones(3), "b": None}
    first = _caught(lambda: _warnings.warn_if_growing_graph(params, updates))
    second = _caught(lambda: _warnings.warn_if_growing_graph(params, updates))
    assert len(first) == 1 and "detach" in str(first[0].message)
    assert second == []


def test_no_warning_under_no_grad_or_without_requires_grad() -> None:
    params = {"w": torch.ones(3, requires_grad=True)}
    with torch.no_grad():
        assert _caught(lambda: _warnings.warn_if_growing_graph(params, {"w": torch.ones(3)})) == []
    plain = {"w": torch.ones(3)}
    assert _caught(lambda: _warnings.warn_if_growing_graph(plain, {"w": torch.ones(3)})) == []


def test_no_warning_when_the_update_is_differentiated_through() -> None:
    lr = torch.tensor(0.1, requires_grad=True)
    params = {"w": torch.ones(3, requires_grad=True)}
    updates = {"w": -lr * torch.ones(3)}
    assert _caught(lambda: _warnings.warn_if_growing_graph(params, updates)) == []


def test_no_warning_inside_a_torch_func_transform() -> None:
    outer = torch.ones(3, requires_grad=True)
    seen = []

    def inner(w: torch.Tensor) -> torch.Tensor:
        seen.append(_warnings.growing_graph({"w": outer}, {"w": torch.ones(3)}))
        return (w * 2).sum()

    torch.func.grad(inner)(torch.ones(3))
    assert seen == [False]
    assert _warnings.growing_graph({"w": outer}, {"w": torch.ones(3)})  # the same call outside


def test_the_detached_vmap_ensemble_does_not_grow_a_graph() -> None:
    from torch.func import stack_module_state

    models = [torch.nn.Linear(2, 2) for _ in range(3)]
    stacked, _ = stack_module_state(models)
    updates = {k: torch.zeros_like(v) for k, v in stacked.items()}
    assert _warnings.growing_graph(stacked, updates)  # what the example did
    detached = {k: v.detach() for k, v in stacked.items()}
    assert not _warnings.growing_graph(detached, updates)  # what it does now
