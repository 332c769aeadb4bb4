"""The fast paths of the shared infrastructure give the same numbers as the plain ones and never
write where they must not: in-place ops on temporaries, state ops with ``in_place=True``, a rule's
in-place step against its pure step, ``apply_updates``'s foreach path and the cached step values."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from functional_optim import fused, ops, rules
from functional_optim.transforms import _steps
from tests._catalog import ELEMENTWISE, FUSED_RULES


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


def test_in_place_state_ops_write_into_the_buffers_with_identical_numbers():
    xs, ys = _lists(seed=0), _lists(seed=1)
    ref = ops.lerp(xs, ys, 0.1)
    bufs = [x.clone() for x in xs]
    out = ops.lerp(bufs, ys, 0.1, in_place=True)
    assert all(o is b for o, b in zip(out, bufs, strict=True))
    assert _same(out, ref)
    before = [x.clone() for x in xs]
    out = ops.lerp(xs, ys, 0.1)  # the default never writes
    assert _same(xs, before) and all(o is not x for o, x in zip(out, xs, strict=True))


def test_in_place_state_ops_compute_out_of_place_when_autograd_records():
    xs = [x.requires_grad_() for x in _lists()]
    out = ops.mul(xs, 2.0, in_place=True)
    assert all(o is not x for o, x in zip(out, xs, strict=True))


@pytest.mark.parametrize(
    "name",
    ["adam", "adamw", "sgd", "adagrad", "rmsprop", "nadam", "adamax", "radam", "adadelta", "asgd", "rprop"],
)
def test_rule_step_in_place_and_pure_give_the_same_state_and_terms(name):
    kw = {"momentum": 0.9} if name in ("sgd", "rmsprop") else {}
    opt = getattr(fo, name)(lr=0.1, **kw)
    plan = fused.plan(opt)
    assert plan is not None and plan.rule is not None, name
    params, grads = _lists(seed=3), _lists(seed=4)
    state = opt.init(params)
    for _ in range(2):
        _, state = opt.update(grads, state, params)
    rule = plan.rule
    fields = rule.fields(fused.get_path(state, plan.rule_path))
    owned = [[t.clone() for t in f] for f in fields]
    snapshot = [[t.clone() for t in f] for f in fields]
    pure = rule.step(grads, fields, params, in_place=False)
    inplace = rule.step(grads, owned, params, in_place=True)
    p1 = rules.apply_terms([p.clone() for p in params], pure.terms, -0.1)
    p2 = rules.apply_terms([p.clone() for p in params], inplace.terms, -0.1)  # After callbacks run here
    assert _same(p1, p2)
    for a, b in zip(pure.fields, inplace.fields, strict=True):
        assert _same(list(a), list(b))
    assert all(_same(list(f), s) for f, s in zip(fields, snapshot, strict=True))  # pure: nothing written
    written = [
        x is y for new, old in zip(inplace.fields, owned, strict=True) for x, y in zip(new, old, strict=True)
    ]
    assert any(written)  # the in-place step updated the buffers themselves


# rules outside the catalogue (which lists what vmap and compile too): configurations that need
# concrete step counters
EXTRA_RULES = {
    "adabelief_rectify": lambda: fo.adabelief(lr=0.01, weight_decay=0.01, rectify=True),
}
RULES = {**{name: ELEMENTWISE[name] for name in FUSED_RULES}, **EXTRA_RULES}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(RULES))
def test_catalogue_rules_fused_in_place_equal_their_pure_step_bit_for_bit(name, dtype):
    """Every catalogue algorithm with a rule: the adapters' plan finds it, and 7 steps of the rule
    run in place (state buffers written, terms applied in place) equal the pure step bit for bit:
    the state and the parameters; the pure step writes nothing it was given."""
    tx = RULES[name]()
    plan = fused.plan(tx)
    assert plan is not None and plan.rule is not None, name
    rule = plan.rule
    params, grads_seq = _lists(seed=3, dtype=dtype), [_lists(seed=4 + k, dtype=dtype) for k in range(7)]
    state = tx.init(params)
    fields = rule.fields(fused.get_path(state, plan.rule_path))
    owned = [[t.clone() for t in f] for f in fields]
    p_pure, p_fused = [p.clone() for p in params], [p.clone() for p in params]
    for k, grads in enumerate(grads_seq):
        snapshot = [[t.clone() for t in f] for f in fields]
        pure = rule.step(grads, fields, p_pure, in_place=False)
        inplace = rule.step(grads, owned, p_fused, in_place=True)
        assert all(_same(list(f), s) for f, s in zip(fields, snapshot, strict=True)), "pure step wrote"
        p_pure = rules.apply_terms(p_pure, pure.terms, -0.1)
        p_fused = rules.apply_terms(p_fused, inplace.terms, -0.1)
        assert _same(p_pure, p_fused)
        for a, b in zip(pure.fields, inplace.fields, strict=True):
            assert _same(list(a), list(b))
        written = [
            x is y
            for new, old in zip(inplace.fields, owned, strict=True)
            for x, y in zip(new, old, strict=True)
            if isinstance(x, torch.Tensor) and x.dim() > 0
        ]
        # (from the second step: SGD's first step clones the gradient into its buffer, as torch)
        assert k == 0 or all(written), "the in-place step allocated a new state buffer"
        fields, owned = [list(f) for f in pure.fields], [list(f) for f in inplace.fields]


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_states_share_no_buffer(name):
    """The adapters update a rule's state in place: no two state tensors may share memory (Yogi
    once started both moments as the same tensor)."""
    tx = RULES[name]()
    state = tx.init(_lists(seed=3))
    tensors = [t for t in fo.tree.leaves(state) if isinstance(t, torch.Tensor)]
    assert len({t.untyped_storage().data_ptr() for t in tensors}) == len(tensors)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad", "rmsprop"])
def test_update_never_writes_its_inputs(name):
    kw = {"momentum": 0.9} if name == "sgd" else {}
    opt = getattr(fo, name)(lr=0.1, **kw)
    params, grads = _lists(seed=3), _lists(seed=4)
    state = opt.init(params)
    for _ in range(2):
        _, state = opt.update(grads, state, params)
    snapshot = [t.clone() for t in fo.tree.leaves(state) if isinstance(t, torch.Tensor)]
    g_before, p_before = [g.clone() for g in grads], [p.clone() for p in params]
    opt.update(grads, state, params)
    assert _same([t for t in fo.tree.leaves(state) if isinstance(t, torch.Tensor)], snapshot)
    assert _same(grads, g_before) and _same(params, p_before)


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
def test_adapter_writes_its_state_in_place_with_the_same_numbers_as_the_pure_step(name):
    from functional_optim import adapters

    base = [torch.randn(5, 4, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    kw = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    key = {"AdamW": "exp_avg", "SGD": "momentum_buffer", "Adagrad": "sum", "RMSprop": "square_avg"}[name]

    def run(fuse: bool):
        ps = [torch.nn.Parameter(b.clone()) for b in base]
        opt = getattr(adapters, name)(ps, lr=0.1, **kw)
        opt.fuse = fuse
        first = None
        for k in range(3):
            for i, p in enumerate(ps):
                p.grad = torch.full_like(p, 0.1 * (k + 1 + i))
            opt.step()
            first = opt.state[ps[0]][key] if first is None else first
        return ps, opt.state[ps[0]][key], first

    ps_d, last_d, first_d = run(True)
    ps_f, last_f, first_f = run(False)
    # the state is computed by the same rule with the same kernels: bit-identical; the parameters
    # differ by rounding only (torch's p.addcdiv_ against the pure p + (-lr·u))
    assert torch.equal(last_d, last_f)
    for a, b in zip(ps_d, ps_f, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-7)
    assert last_d is first_d  # fused: the same buffer, updated in place as torch.optim does
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


def test_assign_writes_into_the_buffers_only_in_place():
    xs, ys = _lists(seed=6), _lists(seed=7)
    kept = [x.clone() for x in xs]
    out = ops.assign(xs, ys)
    assert _same(out, ys) and _same(xs, kept) and all(o is not x for o, x in zip(out, xs, strict=True))
    out = ops.assign(xs, ys, in_place=True)
    assert all(o is x for o, x in zip(out, xs, strict=True)) and _same(xs, ys)


def _all_ops(xs, ys, zs):
    """Every op with a verified fast path, out of place and in place (on clones)."""
    out = {}
    for case, (plain, inplace, args, kw) in INPLACE_CASES.items():
        out[case] = plain(xs, *args(ys, zs), **kw)
        out[case + "_"] = inplace([x.clone() for x in xs], *args(ys, zs), **kw)
        out[case + " in_place"] = plain([x.clone() for x in xs], *args(ys, zs), in_place=True, **kw)
    out["sqrt"], out["sqrt_"] = ops.sqrt(xs), ops.sqrt_([x.clone() for x in xs])
    out["abs"], out["sign"], out["neg"] = ops.abs(xs), ops.sign(xs), ops.neg(xs)
    out["add_0dim"] = ops.add(xs, torch.tensor(0.25), alpha=2.0)
    out["mul_int"] = ops.mul(xs, 3)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ops_in_a_verified_block_give_the_numbers_of_the_checked_ops(dtype):
    xs, ys, zs = (_lists(seed=s, dtype=dtype) for s in (0, 1, 2))
    with torch.no_grad():
        checked = _all_ops(xs, ys, zs)
        with ops.verified_dense(xs, ys, zs) as verified:
            assert verified
            fast = _all_ops(xs, ys, zs)
    assert checked.keys() == fast.keys()
    for case in checked:
        assert _same(fast[case], checked[case]), case


class _Subclass(torch.Tensor):
    pass


def test_a_verified_block_is_entered_only_where_the_checks_hold():
    xs = _lists()
    with torch.no_grad():
        with ops.verified_dense(xs) as verified:
            assert verified and ops.use_foreach([torch.ones(2).to_sparse()])  # skipped inside
            with ops.verified_dense(xs) as nested:  # one block at a time
                assert not nested
        assert not ops.use_foreach([torch.ones(2).to_sparse()])  # checked again after it
        with ops.verified_dense(xs, [torch.nn.Parameter(torch.ones(2))]) as verified:
            assert verified  # a module's parameters
        for bad in ([torch.ones(2).to_sparse()], [_Subclass(torch.ones(2))], [None]):
            with ops.verified_dense(xs, bad) as verified:
                assert not verified
    with ops.verified_dense(xs) as verified:  # autograd on
        assert not verified
    with pytest.raises(ZeroDivisionError), torch.no_grad(), ops.verified_dense(xs) as verified:
        assert verified
        raise ZeroDivisionError  # the block ends on an exception
    assert not ops.use_foreach([torch.ones(2).to_sparse()])
    with torch.no_grad(), ops.verified_dense(xs) as verified:
        assert verified


def test_a_verified_block_of_real_lists_knows_every_list_is_real():
    """Inside a block whose lists are all real, `ops.all_real` (and so `view_as_real`) does not
    look at the tensors again; a block given a complex list, and code after a block, look."""
    xs, complex_list = _lists(), [torch.ones(2, dtype=torch.complex64)]
    with torch.no_grad():
        with ops.verified_dense(xs) as verified:
            assert verified and ops.all_real(complex_list)  # not looked at: no such list in the block
        assert not ops.all_real(complex_list)
        with ops.verified_dense(xs, complex_list) as verified:
            assert verified and not ops.all_real(complex_list)
            assert ops.view_as_real(complex_list)[0].shape == (2, 2)
            assert ops.all_real(xs)


def test_a_verified_block_holds_for_its_own_thread_only():
    import threading

    seen: list[bool] = []
    inside, done = threading.Event(), threading.Event()

    def other() -> None:
        inside.wait()
        with torch.no_grad():
            seen.append(ops.use_foreach([torch.ones(2).to_sparse()]))
            with ops.verified_dense(_lists()) as verified:
                seen.append(verified)
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with torch.no_grad(), ops.verified_dense(_lists()) as verified:
        assert verified
        inside.set()
        done.wait(10)
    thread.join(10)
    assert seen == [False, False]


def test_cached_scalar_operands_are_made_again_once_written():
    xs = _lists()
    outside = ops._cpu_scalar_tensor(0.125, xs)
    assert outside is not None and ops._cpu_scalar_tensor(0.125, xs) is not outside  # not cached
    with torch.no_grad(), ops.verified_dense(xs):
        first = ops._cpu_scalar_tensor(0.125, xs)
        assert first is not None and ops._cpu_scalar_tensor(0.125, xs) is first
        first.add_(1.0)  # a caller that wrote one: not reused
        again = ops._cpu_scalar_tensor(0.125, xs)
        assert again is not None and again is not first and again.item() == 0.125
        wide = ops._cpu_scalar_tensor(0.125, [x.double() for x in xs])
        assert wide is not None and wide.dtype == torch.float64
