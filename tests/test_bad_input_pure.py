"""Bad input to the pure API of every algorithm is refused before anything changes, and the error
names the parameter (the leaf path) it is about.

Cells that still need an edit in a transform owned elsewhere are listed in ``PENDING`` with the
edit; they are strict xfails, so applying the edit turns them into failures to remove from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import functional_optim as fo
from functional_optim import _layout
from functional_optim._leafwise import update_leaves
from tests._bad_inputs import (
    ALGORITHMS,
    KINDS,
    applicable,
    clone_tree,
    make_grads,
    make_params,
    mutate,
    names_leaf,
    same_tree,
    update,
)

# cells that still need an edit in a transform: (algorithm, input kind) -> the edit
PENDING: dict[tuple[str, str], str] = {}
ACCEPTED_AS_TORCH = {(name, "grad sparse") for name in ("sgd", "sgd_plain", "adagrad", "lbfgs")}

SHAPES = st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=3).map(tuple)


def _expect_refused(name: str, kind: str, shapes: Sequence[tuple[int, ...]], index: int, seed: int) -> None:
    algo = ALGORITHMS[name]
    params = make_params(algo, list(shapes), seed)
    grads = make_grads(algo, params, seed)
    params, grads, state, leaf = mutate(name, kind, params, grads, index)
    opt = algo.make()
    if state is None:  # refused at init
        with pytest.raises((TypeError, ValueError)) as err:
            opt.init(params)
        assert names_leaf(str(err.value), leaf), str(err.value)
        return
    before = clone_tree(params), clone_tree(grads), clone_tree(state)
    with pytest.raises((TypeError, ValueError, RuntimeError)) as err:
        update(algo, opt, grads, state, params)
    assert names_leaf(str(err.value), leaf), str(err.value)
    assert not isinstance(err.value, AttributeError | NotImplementedError)
    assert same_tree(before[0], params) and same_tree(before[1], grads) and same_tree(before[2], state)


CELLS = [
    (name, kind)
    for name in ALGORITHMS
    for kind in KINDS
    if applicable(name, kind) and (name, kind) not in ACCEPTED_AS_TORCH
]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        pytest.param(n, k, marks=pytest.mark.xfail(strict=True, reason=PENDING[(n, k)]))
        if (n, k) in PENDING
        else (n, k)
        for n, k in CELLS
    ],
)
def test_bad_input_is_refused_naming_the_leaf_and_nothing_changes(name, kind):
    _expect_refused(name, kind, [(2,), (3, 2), (2, 2)], index=1, seed=0)


@pytest.mark.parametrize("name", list(ALGORITHMS))
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_random_trees_and_mismatches_are_refused_naming_the_leaf(name, data):
    kinds = [
        k
        for k in KINDS
        if applicable(name, k) and (name, k) not in PENDING and (name, k) not in ACCEPTED_AS_TORCH
    ]
    kind = data.draw(st.sampled_from(kinds), label="kind")
    shapes = data.draw(st.lists(SHAPES, min_size=1, max_size=5), label="shapes")
    index = data.draw(st.integers(0, len(shapes) - 1), label="index")
    _expect_refused(name, kind, shapes, index, data.draw(st.integers(0, 2**16), label="seed"))


@pytest.mark.parametrize("name", ["sgd", "adagrad", "lbfgs"])
def test_sparse_gradients_are_accepted_where_torch_accepts_them(name):
    algo = ALGORITHMS[name]
    params = make_params(algo, [(3,), (2, 2)], 0)
    grads = fo.tree.map(lambda p: torch.ones_like(p).to_sparse(), params)
    opt = algo.make()
    updates, _ = update(algo, opt, grads, opt.init(params), params)
    assert all(
        u.shape == p.shape for u, p in zip(fo.tree.leaves(updates), fo.tree.leaves(params), strict=True)
    )


def test_adam_refuses_an_amsgrad_state_instead_of_dropping_its_maximum():
    params = {"w": torch.ones(3)}
    state = fo.scale_by_adam(amsgrad=True).init(params)
    with pytest.raises(ValueError, match="max_exp_avg_sq"):
        fo.scale_by_adam().update({"w": torch.ones(3)}, state, params)


# --- the layer itself (update_leaves / _layout), independent of any transform ----------------


def _double(grads, fields, params):
    return [g * 2 for g in grads], [[f + 1 for f in field] for field in fields]


class _TwoFields(tuple):
    pass


def test_update_leaves_refuses_a_state_field_it_does_not_use_naming_it():
    from typing import NamedTuple

    class State(NamedTuple):
        used: object
        extra: object

    params = {"w": torch.ones(2)}
    state = State(used={"w": torch.zeros(2)}, extra={"w": torch.zeros(2)})
    with pytest.raises(ValueError, match="'extra'"):
        update_leaves(_double, {"w": torch.ones(2)}, [state.used], name="toy", state=state)
    ok = State(used={"w": torch.zeros(2)}, extra=())
    out, (used,) = update_leaves(_double, {"w": torch.ones(2)}, [ok.used], params, name="toy", state=ok)
    assert torch.equal(out["w"], torch.full((2,), 2.0)) and torch.equal(used["w"], torch.ones(2))


def test_update_leaves_names_the_state_field_when_given_the_state():
    from typing import NamedTuple

    class State(NamedTuple):
        exp_avg: object

    state = State(exp_avg={"w": torch.zeros(3)})
    with pytest.raises(
        ValueError, match=r"exp_avg of parameter 'w' has shape \(3,\) but the gradient has shape \(2,\)"
    ):
        update_leaves(_double, {"w": torch.ones(2)}, [state.exp_avg], name="toy", state=state)


@pytest.mark.parametrize(
    ("sparse", "message"),
    [
        (False, "toy does not support sparse gradients"),
        ("RMSprop", "RMSprop does not support sparse gradients"),
        (
            "Adam does not support sparse gradients, please consider SparseAdam instead",
            "please consider SparseAdam",
        ),
    ],
)
def test_update_leaves_refuses_sparse_gradients_with_torchs_message(sparse, message):
    with pytest.raises(RuntimeError, match=message) as err:
        update_leaves(_double, {"emb": torch.ones(3).to_sparse()}, [], name="toy", sparse=sparse)
    assert "'emb'" in str(err.value)


def test_update_leaves_keeps_accepting_sparse_gradients_by_default():
    out, _ = update_leaves(lambda g, f, p: (g, []), [torch.ones(3).to_sparse()], [], name="toy")
    assert out[0].is_sparse


def test_a_repeated_layout_is_verified_once(monkeypatch):
    calls = []
    real = _layout._verify
    monkeypatch.setattr(_layout, "_verify", lambda *a: (calls.append(1), real(*a))[1])
    _layout._CHECKED.clear()
    params = {"a": torch.ones(2, 3), "b": [torch.ones(4)]}
    opt = fo.adam(1e-3)
    state = opt.init(params)
    grads = fo.tree.map(torch.ones_like, params)
    for _ in range(3):
        _, state = opt.update(grads, state, params)
    once = len(calls)
    assert once >= 1
    for _ in range(3):
        _, state = opt.update(fo.tree.map(torch.randn_like, params), state, params)
    assert len(calls) == once  # same layout, new values: no new verification
    with pytest.raises(ValueError, match=r"'b\.0'"):
        opt.update({"a": torch.ones(2, 3), "b": [torch.ones(5)]}, state, params)


def test_none_gradients_skip_their_checks_and_leave_their_state():
    params = {"a": torch.ones(2), "b": torch.ones(3)}
    opt = fo.adam(1e-2)
    state = opt.init(params)
    updates, new = opt.update({"a": torch.ones(2), "b": None}, state, params)
    assert updates["b"] is None
    assert new[1].exp_avg["b"] is state[1].exp_avg["b"]


def test_compiled_update_still_checks_while_tracing():
    params = {"w": torch.ones(3)}
    opt = fo.sgd(0.1, momentum=0.9)
    state = opt.init(params)
    step = torch.compile(opt.update, fullgraph=True, backend="eager")
    updates, _ = step({"w": torch.ones(3)}, state, params)
    assert torch.allclose(updates["w"], torch.full((3,), -0.1))
    with pytest.raises(Exception, match="'w'"):
        step({"w": torch.ones(4)}, state, params)


def test_integer_and_bool_parameters_are_refused_by_the_state_builders():
    with pytest.raises(TypeError, match=r"parameter 'b' has dtype torch.int64"):
        fo.tree.zeros_like({"a": torch.ones(2), "b": torch.ones(2, dtype=torch.int64)})
    with pytest.raises(TypeError, match=r"init: parameter '0' has dtype torch.bool"):
        _layout.check_optimizable([torch.ones(2, dtype=torch.bool)])
    assert (
        fo.tree.zeros_like({"n": torch.ones(2, dtype=torch.int64)}, dtype=torch.float32)["n"].dtype
        == torch.float32
    )
