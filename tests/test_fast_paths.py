"""The fast paths of the shared infrastructure give the same numbers as the plain ones and never
write where they must not: in-place ops on temporaries, donated buffers, released updates,
``apply_updates``'s foreach path and the cached step values."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from functional_optim import ops
from functional_optim.core import GradientTransformation
from functional_optim.transforms import _steps


def _lists(n: int = 3, numel: int = 6, seed: int = 0, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(numel, generator=gen, dtype=torch.float64).to(dtype) + 0.5 for _ in range(n)]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b, strict=True)
    )


INPLACE_CASES = {
    "add_tensor": (ops.add, ops.add_, lambda y, z: (y,), {"alpha": 0.3}),
    "add_scalar": (ops.add, ops.add_, lambda y, z: (0.7,), {}),
    "sub": (ops.sub, ops.sub_, lambda y, z: (y,), {}),
    "mul_scalar_list": (ops.mul, ops.mul_, lambda y, z: ([0.5, 2.0, 3.0],), {}),
    "mul_tensor_list": (ops.mul, ops.mul_, lambda y, z: (y,), {}),
    "div_scalar": (ops.div, ops.div_, lambda y, z: (3.0,), {}),
    "lerp": (ops.lerp, ops.lerp_, lambda y, z: (y, 0.1), {}),
    "addcmul": (ops.addcmul, ops.addcmul_, lambda y, z: (y, z, 0.25), {}),
    "addcdiv": (ops.addcdiv, ops.addcdiv_, lambda y, z: (y, z, [0.1, 0.2, 0.3]), {}),
    "maximum": (ops.maximum, ops.maximum_, lambda y, z: (y,), {}),
    "clamp": (ops.clamp, ops.clamp_, lambda y, z: (0.6, 1.2), {}),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(INPLACE_CASES))
def test_inplace_variant_writes_into_temporaries_with_identical_numbers(case, dtype):
    plain, inplace, args, kw = INPLACE_CASES[case]
    xs, ys, zs = _lists(seed=0, dtype=dtype), _lists(seed=1, dtype=dtype), _lists(seed=2, dtype=dtype)
    ref = plain(xs, *args(ys, zs), **kw)
    tmp = [x.clone() for x in xs]
    out = inplace(tmp, *args(ys, zs), **kw)
    assert _same(out, ref)
    assert all(o is t for o, t in zip(out, tmp, strict=True))


@pytest.mark.parametrize("numel", [6, 50_000])
def test_rdiv_writes_the_quotient_into_the_denominator_with_identical_numbers(numel):
    xs, ys = _lists(numel=numel, seed=0), _lists(numel=numel, seed=1)
    ref = ops.div(xs, ys)
    tmp = [y.clone() for y in ys]
    assert _same(ops.rdiv_(tmp, xs), ref)
    assert _same(ops.sqrt_([x.clone() for x in xs]), ops.sqrt(xs))


def test_inplace_variants_compute_out_of_place_when_autograd_records():
    xs = [x.requires_grad_() for x in _lists()]
    before = [x.detach().clone() for x in xs]
    out = ops.mul_(xs, 2.0)
    assert all(o is not x for o, x in zip(out, xs, strict=True))
    assert _same([x.detach() for x in xs], before)
    out[0].sum().backward()
    assert torch.equal(xs[0].grad, torch.full_like(xs[0], 2.0))


def test_donate_without_a_donating_block_never_writes():
    xs, ys = _lists(seed=0), _lists(seed=1)
    before = [x.clone() for x in xs]
    out = ops.lerp(xs, ys, 0.1, donate=True)
    assert _same(xs, before)
    assert all(o is not x for o, x in zip(out, xs, strict=True))


def test_donated_buffers_are_written_once_with_identical_numbers():
    xs, ys = _lists(seed=0), _lists(seed=1)
    ref = ops.mul(ops.lerp(xs, ys, 0.1), 3.0)
    bufs = [x.clone() for x in xs]
    with ops.donating(bufs):
        first = ops.lerp(bufs, ys, 0.1, donate=True)
        assert all(f is b for f, b in zip(first, bufs, strict=True))
        second = ops.mul(first, 3.0, donate=True)  # already taken: must not be overwritten again
    assert all(s is not b for s, b in zip(second, bufs, strict=True))
    assert _same(second, ref)
    assert _same(bufs, ops.lerp(xs, ys, 0.1))


def test_a_tensor_listed_twice_is_never_donated():
    shared = torch.zeros(())
    own = torch.zeros(())
    with ops.donating([shared, shared, own]):
        out = _steps.increment([shared, own], donate=True)
    assert shared.item() == 0.0 and out[0] is not shared
    assert own.item() == 0.0 and out[1] is not own  # a list is taken only if all of it is donated
    with ops.donating([own]):
        out = _steps.increment([own], donate=True)
    assert out[0] is own and own.item() == 1.0


def _release_and_keep() -> GradientTransformation:
    """A transform that returns fresh updates, releases them, and also keeps them in its state."""

    def init_fn(params):
        return (torch.zeros(()),)

    def update_fn(updates, state, params=None, **extra):
        out = ops.mul(list(updates), 2.0)
        ops.release(out)
        return out, (out[0],)

    return GradientTransformation(init_fn, update_fn)


def test_chain_withdraws_released_updates_that_a_transform_keeps_in_its_state():
    grads = _lists(n=2)
    opt = fo.chain(_release_and_keep(), fo.scale_by_learning_rate(0.5))
    state = opt.init(grads)
    with ops.donating([]):
        updates, new_state = opt.update(grads, state)
    kept = new_state[0][0]
    assert torch.equal(kept, grads[0] * 2.0)  # not scaled in place by the next transform
    assert torch.equal(updates[0], grads[0] * 2.0 * -0.5)


def test_released_updates_inside_a_donating_block_give_the_same_numbers_and_spare_the_grads():
    grads = _lists(n=2)
    opt = fo.chain(fo.scale(3.0), fo.add_decayed_weights(0.1), fo.scale_by_learning_rate(0.5))
    params = _lists(n=2, seed=5)
    state = opt.init(params)
    ref, _ = opt.update(grads, state, params)
    g_before = [g.clone() for g in grads]
    with ops.donating([]):
        out, _ = opt.update(grads, state, params)
    assert _same(out, ref)
    assert _same(grads, g_before)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad", "rmsprop"])
def test_update_inside_a_donating_block_of_other_tensors_leaves_its_inputs_untouched(name):
    kw = {"momentum": 0.9} if name == "sgd" else {}
    opt = getattr(fo, name)(lr=0.1, **kw)
    params, grads = _lists(seed=3), _lists(seed=4)
    state = opt.init(params)
    for _ in range(2):
        _, state = opt.update(grads, state, params)
    snapshot = [t.clone() for t in fo.tree.leaves(state) if isinstance(t, torch.Tensor)]
    ref, ref_state = opt.update(grads, state, params)
    with ops.donating([torch.zeros(3)]):
        out, new_state = opt.update(grads, state, params)
    assert _same([t for t in fo.tree.leaves(state) if isinstance(t, torch.Tensor)], snapshot)
    assert _same(out, ref)
    assert _same(fo.tree.leaves(new_state), fo.tree.leaves(ref_state))


def test_donated_state_gives_the_same_numbers_as_the_pure_update():
    opt = fo.adamw(lr=0.1, amsgrad=True)
    params, grads = _lists(seed=3), _lists(seed=4)
    state = opt.init(params)
    _, state = opt.update(grads, state, params)
    ref_u, ref_state = opt.update(grads, state, params)
    owned = [t.clone() for t in fo.tree.leaves(state)]
    donated_state = fo.tree.unflatten(fo.tree.structure(state), owned)
    with ops.donating(owned):
        u, new_state = opt.update(grads, donated_state, params)
    assert _same(u, ref_u)
    assert _same(fo.tree.leaves(new_state), fo.tree.leaves(ref_state))
    assert any(a is b for a, b in zip(fo.tree.leaves(new_state), owned, strict=True))  # written in place


def test_apply_updates_fast_path_matches_the_per_leaf_sum():
    params = {"a": torch.ones(3), "b": [torch.ones(2, dtype=torch.float64), torch.zeros(1)], "c": None}
    updates = {"a": torch.full((3,), 0.5), "b": [torch.full((2,), 0.25), None], "c": None}
    out = fo.apply_updates(params, updates)
    assert torch.equal(out["a"], torch.full((3,), 1.5))
    assert out["b"][0].dtype == torch.float64 and torch.equal(
        out["b"][0], torch.full((2,), 1.25, dtype=torch.float64)
    )
    assert out["b"][1] is params["b"][1] and out["c"] is None
    with pytest.raises(ValueError):
        fo.apply_updates(params, {"a": updates["a"]})


def test_apply_updates_keeps_autograd_for_parameters_that_require_grad():
    p = [torch.ones(3, requires_grad=True)]
    out = fo.apply_updates(p, [torch.full((3,), 2.0)])
    out[0].sum().backward()
    assert torch.equal(p[0].grad, torch.ones(3))


def test_cached_step_values_see_an_in_place_increment():
    steps = [torch.tensor(1.0), torch.tensor(1.0)]
    assert _steps.coefficients(steps, lambda t: t) == [1.0, 1.0]
    torch._foreach_add_(steps, 1.0)
    assert _steps.coefficients(steps, lambda t: t) == [2.0, 2.0]
    steps[1] = torch.tensor(5.0)
    assert _steps.coefficients(steps, lambda t: t) == [2.0, 5.0]


def test_inplace_variant_under_vmap_with_a_batched_operand_computes_out_of_place():
    xs = _lists(n=1, numel=4)
    batched = torch.rand(3, 4)

    def f(y: torch.Tensor) -> torch.Tensor:
        tmp = ops.mul(xs, 2.0)  # a temporary that is not batched
        return ops.addcmul_(tmp, [y], [y], 0.5)[0]

    out = torch.func.vmap(f)(batched)
    torch.testing.assert_close(out, torch.addcmul(xs[0] * 2.0, batched, batched, value=0.5), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["AdamW", "SGD", "Adagrad", "RMSprop"])
def test_adapter_writes_its_state_in_place_with_the_same_numbers_as_without_donation(name):
    from functional_optim import adapters

    base = [torch.randn(5, 4, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    kw = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    key = {"AdamW": "exp_avg", "SGD": "momentum_buffer", "Adagrad": "sum", "RMSprop": "square_avg"}[name]

    def run(donate: bool):
        ps = [torch.nn.Parameter(b.clone()) for b in base]
        opt = getattr(adapters, name)(ps, lr=0.1, **kw)
        opt.donate_state = donate
        first = None
        for k in range(3):
            for i, p in enumerate(ps):
                p.grad = torch.full_like(p, 0.1 * (k + 1 + i))
            opt.step()
            first = opt.state[ps[0]][key] if first is None else first
        return ps, opt.state[ps[0]][key], first

    ps_d, last_d, first_d = run(True)
    ps_f, last_f, first_f = run(False)
    assert _same([p.detach() for p in ps_d], [p.detach() for p in ps_f])
    assert torch.equal(last_d, last_f)
    assert last_d is first_d  # donated: the same buffer, updated in place as torch.optim does
    assert last_f is not first_f


@pytest.mark.parametrize("dtypes", [(torch.float32,), (torch.float64,), (torch.float32, torch.float64)])
@pytest.mark.parametrize("op", ["add", "mul", "div"])
def test_python_scalars_of_cpu_foreach_ops_give_the_numbers_of_the_per_tensor_ops(op, dtypes):
    # the scalar goes in as one 0-dim tensor of the lists' dtype (or stays a Python number for
    # mixed dtypes): the same values as ``x.add(s)`` etc.
    xs = [x.to(dtypes[i % len(dtypes)]) for i, x in enumerate(_lists(n=4, seed=5, dtype=torch.float64))]
    for value in (0.1, 3, 1e-8, [0.3, 0.3, 0.3, 0.3], [0.1, 0.2, 0.3, 0.4]):
        out = getattr(ops, op)(xs, value)
        values = value if isinstance(value, list) else [value] * len(xs)
        ref = [getattr(torch, op)(x, v) for x, v in zip(xs, values, strict=True)]
        assert _same(out, ref), (op, value)


def test_assign_writes_into_donated_buffers_only():
    xs, ys = _lists(seed=6), _lists(seed=7)
    kept = [x.clone() for x in xs]
    out = ops.assign(xs, ys, donate=True)  # nothing donated: copies
    assert _same(out, ys) and _same(xs, kept) and all(o is not x for o, x in zip(out, xs, strict=True))
    with ops.donating(xs):
        out = ops.assign(xs, ys, donate=True)
        assert all(o is x for o, x in zip(out, xs, strict=True)) and _same(xs, ys)
        assert not ops.take_donated(xs)  # taken once


def test_take_donated_needs_every_tensor_donated():
    xs = _lists(seed=8)
    with ops.donating(xs[:2]):
        assert not ops.take_donated(xs)
        assert ops.take_donated(xs[:2])
