"""``fo.compile_step``: the compiled in-place step equals the pure loop, and a change of layout
(new gradient strides, ``None`` gradients, replaced tensors) compiles a new variant instead of
running kernels made for another layout."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo


def _reference(tx, params, grads_seq):
    params = {k: v.clone() for k, v in params.items()}
    state = tx.init(params)
    for grads in grads_seq:
        updates, state = tx.update(grads, state, params)
        params = fo.apply_updates(params, updates)
    return params, state


def _compiled_equals_reference(tx, params, grads_seq, rtol, atol, **compile_options):
    """Run ``compile_step(tx, elementwise=True, torch_kernels=False, **compile_options)`` over
    ``grads_seq`` in place and compare parameters and state with the pure loop; returns the step."""
    expected, expected_state = _reference(tx, params, grads_seq)
    state = tx.init(params)
    step = fo.compile_step(tx, elementwise=True, torch_kernels=False, **compile_options)
    for grads in grads_seq:
        step(params, grads, state)
    for k in params:
        torch.testing.assert_close(params[k].detach(), expected[k].detach(), rtol=rtol, atol=atol)
    for a, b in zip(fo.tree.leaves(state), fo.tree.leaves(expected_state), strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    return step


def test_compile_step_updates_params_and_state_in_place_like_the_pure_loop():
    gen = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(4, 3, generator=gen), "b": torch.randn(3, generator=gen)}
    grads_seq = [
        {"w": torch.randn(4, 3, generator=gen), "b": None if k == 2 else torch.randn(3, generator=gen)}
        for k in range(5)
    ]
    tx = fo.adamw(1e-2, weight_decay=0.1)
    expected, expected_state = _reference(tx, params, grads_seq)

    state = tx.init(params)
    buffers = fo.tree.leaves(state)
    step = fo.compile_step(tx, torch_kernels=False)  # the compiled path, not torch's kernel
    for grads in grads_seq[:2]:
        step(params, grads, state)
    assert step.compilations == 1
    for grads in grads_seq[2:]:
        step(params, grads, state)
    assert step.compilations == 2  # the None gradient of step 2 is another variant; then back
    for k in params:
        torch.testing.assert_close(params[k], expected[k], rtol=1e-6, atol=1e-7)
    assert all(a is b for a, b in zip(fo.tree.leaves(state), buffers, strict=True))  # in place
    for a, b in zip(fo.tree.leaves(state), fo.tree.leaves(expected_state), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)

    # gradients with other strides (a transposed view) must not reuse kernels made for others
    g = {"w": torch.randn(3, 4, generator=gen).t(), "b": torch.randn(3, generator=gen)}
    ref_p = {k: v.clone() for k, v in params.items()}
    ref_s = fo.tree.map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, state)
    updates, _ = tx.update(g, ref_s, ref_p)
    ref_p = fo.apply_updates(ref_p, updates)
    step(params, g, state)
    assert step.compilations == 3
    for k in params:
        torch.testing.assert_close(params[k], ref_p[k], rtol=1e-6, atol=1e-7)


def test_compile_step_rejects_what_is_not_a_transform():
    with pytest.raises(TypeError, match="GradientTransformation"):
        fo.compile_step(fo.adam)  # the factory, not a transform


# -- layout guards: a layout change behind the same tensor objects ------------------------------

_TOL = {"rtol": 1e-5, "atol": 1e-6}


def _to_double(t):
    t.data = t.data.double()


def _to_new_shape(t):
    t.data = torch.linspace(-1.0, 1.0, 10, dtype=t.dtype).reshape(5, 2)


def _to_strided(t):
    t.data = t.data.t().contiguous().t()  # same shape and values, column-major strides


def _to_offset(t):
    base = torch.zeros(t.numel() + 3, dtype=t.dtype)
    base[3:] = t.data.reshape(-1)
    t.data = base[3:].view(t.shape)  # same values, storage offset 3


def _run_layout_changes(step, tx, changes, gen):
    """Steps ``step`` and the pure loop side by side; before some steps, ``changes[k]`` changes
    the layout of tensors of both (through ``.data``: the objects stay the same)."""
    params = {"w": torch.randn(5, 2, generator=gen), "b": torch.randn(3, generator=gen)}
    state = tx.init(params)
    ref_params = {k: v.clone() for k, v in params.items()}
    ref_state = fo.tree.map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, state)
    for change in changes:
        if change is not None:
            change(params, state)
            change(ref_params, ref_state)
        grads = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}
        step(params, grads, state)
        updates, ref_state = tx.update(grads, ref_state, ref_params)
        ref_params = fo.apply_updates(ref_params, updates)
        # the pure loop returns new tensors: carry the changed layouts over for the next change
        for k in params:
            torch.testing.assert_close(params[k], ref_params[k].to(params[k].dtype), **_TOL)
        for a, b in zip(fo.tree.leaves(state), fo.tree.leaves(ref_state), strict=True):
            torch.testing.assert_close(a, b.to(a.dtype), **_TOL)
        ref_params = {k: v.clone() for k, v in params.items()}  # same values, the compiled layout
        ref_state = fo.tree.map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, state)
    return params, state


def _param_and_state(fn, name):
    """Apply ``fn`` to parameter ``name`` and to every state entry of its shape."""

    def change(params, state):
        shape = params[name].shape
        for leaf in fo.tree.leaves(state):
            if isinstance(leaf, torch.Tensor) and leaf.shape == shape:
                fn(leaf)
        fn(params[name])

    return change


def _state_only(fn, name):
    def change(params, state):
        for leaf in fo.tree.leaves(state):
            if isinstance(leaf, torch.Tensor) and leaf.shape == params[name].shape:
                fn(leaf)

    return change


def _param_only(fn, name):
    def change(params, state):
        fn(params[name])

    return change


LAYOUT_CHANGES = [
    None,
    _param_and_state(_to_double, "w"),  # dtype of a parameter and its state
    _param_only(_to_strided, "b"),  # strides of a parameter (1-D: same; the 2-D one below)
    _param_and_state(_to_strided, "w"),  # strides of a parameter and its state
    _state_only(_to_offset, "b"),  # storage offset of a state entry
    _param_and_state(_to_new_shape, "b"),  # shape of a parameter and its state
]
# (a state entry of another dtype than its parameter is refused by the update itself: tested in
# tests/test_bad_input_pure.py)


@pytest.mark.slow
def test_whole_step_compiles_a_new_variant_for_each_layout_change_of_params_and_state():
    gen = torch.Generator().manual_seed(1)
    tx = fo.sgd(0.1, momentum=0.9)
    step = fo.compile_step(tx, torch_kernels=False)  # the compiled path, not torch's kernel
    _run_layout_changes(step, tx, LAYOUT_CHANGES, gen)
    # the 1-D strided change leaves the layout as it was; every other change is a new variant
    assert step.compilations == 5


@pytest.mark.slow
def test_elementwise_step_follows_layout_changes_of_params_and_state():
    gen = torch.Generator().manual_seed(2)
    tx = fo.sgd(0.1, momentum=0.9)
    step = fo.compile_step(tx, elementwise=True, torch_kernels=False)
    _run_layout_changes(step, tx, LAYOUT_CHANGES, gen)
    # sizes and offsets are dynamic; a non-contiguous tensor is stepped eagerly; each new
    # combination of dtypes compiles a group variant
    assert step.compilations == 3


@pytest.mark.slow
def test_a_layout_change_beyond_max_variants_raises_and_changes_nothing():
    gen = torch.Generator().manual_seed(3)
    tx = fo.sgd(0.1, momentum=0.9)
    step = fo.compile_step(tx, max_variants=1, torch_kernels=False)
    params, state = _run_layout_changes(step, tx, [None], gen)
    _param_and_state(_to_double, "w")(params, state)
    before = [t.clone() for t in fo.tree.leaves((params, state))]
    grads = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}
    with pytest.raises(RuntimeError, match="max_variants=1"):
        step(params, grads, state)
    for a, b in zip(fo.tree.leaves((params, state)), before, strict=True):
        assert torch.equal(a, b)


# -- elementwise mode ---------------------------------------------------------------------------


@pytest.mark.slow
def test_elementwise_step_equals_the_pure_loop_with_padding_none_grads_and_eager_leftovers():
    gen = torch.Generator().manual_seed(4)
    params = {f"p{i}": torch.randn(3 + i, 2, generator=gen).requires_grad_() for i in range(5)}
    params["scalar"] = torch.randn((), generator=gen)  # fewer than 2 elements: eager
    params["t"] = torch.randn(4, 3, generator=gen).t()  # not viewable as 1-D: eager
    tx = fo.adamw(1e-2, weight_decay=0.1)  # per-parameter step counts in the state
    grads_seq = [
        {
            k: None if (s == 1 and k == "p1") else torch.randn(v.shape, generator=gen)
            for k, v in params.items()
        }
        for s in range(3)
    ]
    # 5 tensors: chunks 2, 2, 1 + padding
    step = _compiled_equals_reference(tx, params, grads_seq, 1e-6, 1e-7, group_size=2)
    assert step.compilations == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        lambda: fo.lars(0.1, weight_decay=1e-4, momentum=0.9),
        lambda: fo.lamb(1e-2, weight_decay=0.01),
        lambda: fo.novograd(1e-2, weight_decay=0.01),
    ],
    ids=["lars", "lamb", "novograd"],
)
def test_elementwise_step_of_per_tensor_norms_equals_the_pure_loop(make):
    """LARS', LAMB's and NovoGrad's updates use norms over each whole tensor: the elementwise mode
    never splits a tensor (each is one 1-D view of a chunk, of its own size), so they compile in
    it: tensors of several shapes and sizes in one chunk, a padded last chunk (7 tensors, chunks
    of 4), a tensor without a gradient at one step."""
    gen = torch.Generator().manual_seed(5)
    shapes = [(8, 5), (13,), (4, 4, 3), (7,), (30,), (6, 6), (3,)]
    params = {f"p{i}": torch.randn(s, generator=gen) for i, s in enumerate(shapes)}
    tx = make()
    grads_seq = [
        {
            k: None if (s == 1 and k == "p2") else torch.randn(p.shape, generator=gen)
            for k, p in params.items()
        }
        for s in range(4)
    ]
    step = _compiled_equals_reference(tx, params, grads_seq, 1e-6, 1e-6)
    assert step.compilations <= 2  # one layout, and the step whose gradient is missing


TWO_PASS = {
    "prodigy": lambda: fo.prodigy(1.0, weight_decay=0.01),
    "prodigy-no-momentum-coupled": lambda: fo.prodigy(
        1.0, betas=(0.0, 0.99), weight_decay=0.01, decouple=False, d_coef=2.0, use_bias_correction=True
    ),
    "dadapt-adamw": lambda: fo.dadapt_adam(1.0, weight_decay=0.01, decouple=True),
    "dadapt-adam": lambda: fo.dadapt_adam(1.0, weight_decay=0.01, use_bias_correction=True),
}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(TWO_PASS))
def test_elementwise_step_of_a_rule_in_two_passes_equals_the_pure_loop(name, dtype):
    """Prodigy's and D-Adaptation's estimate ``d`` needs sums over every tensor between the two
    passes of their rule: the elementwise mode compiles each pass (two variants, whatever ``d``
    does from step to step) and settles eagerly in between. Tensors of several shapes, a padded
    chunk, a 1-element tensor (stepped eagerly beside the chunks, its sums counted with theirs),
    a tensor without a gradient at one step; float64 with float64 step counters."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        gen = torch.Generator().manual_seed(7)
        shapes = [(8, 5), (13,), (4, 4, 3), (1,), (30,), (6, 6), (3,)]
        params = {f"p{i}": torch.randn(s, generator=gen) for i, s in enumerate(shapes)}
        grads_seq = [
            {
                k: None if (s == 1 and k == "p2") else torch.randn(p.shape, generator=gen)
                for k, p in params.items()
            }
            for s in range(5)
        ]
        step = _compiled_equals_reference(TWO_PASS[name](), params, grads_seq, 1e-5, 1e-6)
    finally:
        torch.set_default_dtype(previous)
    assert step.compilations == 2  # the first and the second pass, once each


def test_a_rule_in_two_passes_refuses_a_misfit_gradient_before_writing_anything():
    """A gradient of another shape or dtype: the pure update's error, naming the parameter and
    both values, raised before the first pass writes (the moments and ``d`` stay as they were)."""
    params = {"w": torch.ones(3, 2), "b": torch.ones(2)}
    tx = fo.dadapt_adam(1.0, weight_decay=0.01, decouple=True)
    state = tx.init(params)
    step = fo.compile_step(tx, elementwise=True)
    before = [x.clone() for x in fo.tree.leaves((params, state))]
    with pytest.raises(
        ValueError, match=r"gradient of parameter 'w' has shape \(2, 3\) but the parameter has shape \(3, 2\)"
    ):
        step(params, {"w": torch.ones(2, 3), "b": torch.ones(2)}, state)
    with pytest.raises(TypeError, match=r"gradient of parameter 'w' has dtype torch\.float64"):
        step(params, {"w": torch.ones(3, 2, dtype=torch.float64), "b": torch.ones(2)}, state)
    assert all(torch.equal(a, b) for a, b in zip(fo.tree.leaves((params, state)), before, strict=True))


def test_a_rule_in_two_passes_whose_state_is_not_elementwise_compiles_the_whole_step():
    """Prodigy with ``slice_p=2`` keeps ``s`` and ``p0`` on every second element: no pass over
    1-D views of the parameters, so the elementwise mode compiles the whole step (one variant),
    with the pure loop's numbers."""
    gen = torch.Generator().manual_seed(3)
    params = {"w": torch.randn(4, 3, generator=gen), "b": torch.randn(3, generator=gen)}
    grads_seq = [{k: torch.randn(p.shape, generator=gen) for k, p in params.items()} for _ in range(3)]
    step = _compiled_equals_reference(fo.prodigy(1.0, slice_p=2), params, grads_seq, 1e-5, 1e-6)
    assert step.compilations == 1


@pytest.mark.slow
def test_warmup_compiles_without_touching_params_or_state():
    params = [torch.ones(4), torch.ones(3)]
    tx = fo.sgd(0.5, momentum=0.9)
    state = tx.init(params)
    before = [t.clone() for t in fo.tree.leaves((params, state))]
    step = fo.compile_step(tx, elementwise=True, torch_kernels=False)
    grads = [torch.ones(4), torch.ones(3)]
    step.warmup(params, grads, state)
    assert step.compilations == 1
    for a, b in zip(fo.tree.leaves((params, state)), before, strict=True):
        assert torch.equal(a, b)
    step(params, grads, state)
    assert step.compilations == 1  # the warmed-up variant serves the real tensors


@pytest.mark.parametrize("bad", [{"group_size": 0}, {"max_variants": 0}, {"group_size": 2.0}])
def test_compile_step_rejects_bad_bounds(bad):
    name, value = next(iter(bad.items()))
    with pytest.raises(ValueError, match=f"{name} must be an int >= 1, got {value!r}"):
        fo.compile_step(fo.sgd(0.1), **bad)


# -- torch.optim's fused kernels ----------------------------------------------------------------

KERNEL_CASES = [
    ("Adam", {"lr": 0.01}, lambda: fo.adam(0.01)),
    (
        "Adam",
        {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
        lambda: fo.adam(0.01, weight_decay=0.1, amsgrad=True),
    ),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}, lambda: fo.adamw(0.01, weight_decay=0.1)),
    ("SGD", {"lr": 0.05}, lambda: fo.sgd(0.05)),
    (
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        lambda: fo.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    ),
    (
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.2},
        lambda: fo.sgd(0.05, momentum=0.9, dampening=0.2),
    ),
    (
        "Adagrad",
        {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.1},
        lambda: fo.adagrad(0.05, lr_decay=0.01, weight_decay=0.1),
    ),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("name", "options", "make"), KERNEL_CASES, ids=[f"{c[0]}-{sorted(c[1])}" for c in KERNEL_CASES]
)
def test_compile_step_runs_torchs_fused_kernel_with_its_numbers(name, options, make, dtype):
    gen = torch.Generator().manual_seed(5)
    shapes = {"w": (4, 3), "b": (5,), "s": ()}
    init = {k: torch.randn(s, generator=gen, dtype=dtype) for k, s in shapes.items()}
    p_torch = {k: v.clone().requires_grad_() for k, v in init.items()}
    ref = getattr(torch.optim, name)(list(p_torch.values()), fused=True, **options)
    tx = make()
    params = {k: v.clone().requires_grad_() for k, v in init.items()}
    state = tx.init(params)
    pure_params, pure_state = {k: v.clone() for k, v in init.items()}, tx.init(init)
    step = fo.compile_step(tx)
    for k in range(6):
        grads = {
            key: None if key == "s" and k % 3 == 1 else torch.randn(s, generator=gen, dtype=dtype)
            for key, s in shapes.items()
        }
        for key, p in p_torch.items():
            p.grad = None if grads[key] is None else grads[key].clone()
        ref.step()
        step(params, grads, state)
        updates, pure_state = tx.update(grads, pure_state, pure_params)
        pure_params = fo.apply_updates(pure_params, updates)
    assert step.uses_torch_kernel and step.compilations == 0
    for key in shapes:
        assert torch.equal(params[key], p_torch[key])  # torch's fused kernel, bit for bit
        torch.testing.assert_close(params[key], pure_params[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(fo.tree.leaves(state), fo.tree.leaves(pure_state), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_kernel_reads_a_tensor_learning_rate_at_every_step():
    gen = torch.Generator().manual_seed(6)
    lr = torch.tensor(0.1)
    tx = fo.adamw(lr, weight_decay=0.1)
    params = [torch.randn(3, generator=gen)]
    p_torch = [params[0].clone().requires_grad_()]
    ref = torch.optim.AdamW(p_torch, lr=0.1, weight_decay=0.1, fused=True)
    state = tx.init(params)
    step = fo.compile_step(tx)
    for k in range(3):
        g = torch.randn(3, generator=gen)
        p_torch[0].grad = g.clone()
        ref.step()
        step(params, [g], state)
        assert torch.equal(params[0], p_torch[0])
        lr.fill_(0.1 / (k + 2))  # a scheduler writing into the tensor
        ref.param_groups[0]["lr"] = 0.1 / (k + 2)
    assert step.uses_torch_kernel


def test_a_layout_change_rebinds_the_kernel_and_keeps_its_numbers():
    gen = torch.Generator().manual_seed(7)
    tx = fo.sgd(0.1, momentum=0.9)
    step = fo.compile_step(tx)
    dense = [c for i, c in enumerate(LAYOUT_CHANGES) if i not in (2, 3)]  # not the strided ones
    _run_layout_changes(step, tx, dense, gen)
    assert step.uses_torch_kernel and step.compilations == 0


@pytest.mark.slow
def test_tensors_the_kernel_cannot_walk_flat_are_compiled_instead():
    gen = torch.Generator().manual_seed(8)
    tx = fo.sgd(0.1, momentum=0.9)
    step = fo.compile_step(tx)
    # a column-major parameter and state with row-major gradients: compiled, not the kernel
    _run_layout_changes(step, tx, LAYOUT_CHANGES, gen)
    assert not step.uses_torch_kernel and step.compilations >= 1


def test_chains_that_are_not_exactly_a_torch_kernel_are_compiled():
    from functional_optim import _torch_kernels

    assert _torch_kernels.recipe(fo.adam(0.1)) is not None
    assert _torch_kernels.recipe(fo.sgd(0.1, momentum=0.9)) is not None
    assert _torch_kernels.recipe(fo.adam(0.1, maximize=True)) is None  # negate before the rule
    assert _torch_kernels.recipe(fo.chain(fo.clip_by_global_norm(1.0), fo.adam(0.1))) is None
    assert _torch_kernels.recipe(fo.radam(0.1)) is None  # no kernel declared
    assert _torch_kernels.recipe(fo.adam(lambda count: 0.1)) is None  # a schedule
    params = [torch.ones(2, dtype=torch.complex64)]  # complex: the kernel does not take it
    tx = fo.adam(0.1)
    assert (
        _torch_kernels.bind(
            _torch_kernels.recipe(tx), params, [torch.ones(2, dtype=torch.complex64)], tx.init(params)
        )
        is None
    )


# -- the on-disk trace cache ----------------------------------------------------------------------


def test_transform_fingerprints_follow_hyperparameters_and_refuse_what_they_cannot_see():
    from functional_optim import _graph_cache

    fp = _graph_cache.fingerprint
    assert fp(fo.rmsprop(lr=1e-2)) == fp(fo.rmsprop(lr=1e-2))  # a new process builds the same
    assert fp(fo.rmsprop(lr=1e-2)) != fp(fo.rmsprop(lr=2e-2))
    assert fp(fo.rmsprop(lr=1e-2)) != fp(fo.rmsprop(lr=1e-2, centered=True))
    assert fp(fo.adam(1e-3)) != fp(fo.adam(1e-3, amsgrad=True))
    assert fp(fo.rmsprop(lr=torch.tensor(1e-2))) is None  # a tensor: its value may change
    assert fp(fo.chain(fo.scale_by_adam(), fo.scale(-0.1))) is not None
    assert fp(fo.adam(lambda count: 0.1)) is None  # a function from outside the package


def _rmsprop_run(init, grads_seq):
    tx = fo.rmsprop(lr=1e-2, momentum=0.9)
    params = {k: v.clone() for k, v in init.items()}
    state = tx.init(params)
    step = fo.compile_step(tx, elementwise=True, torch_kernels=False)
    for grads in grads_seq:
        step(params, grads, state)
    return params, next(iter(step._variants.values()))


@pytest.mark.slow
def test_a_new_compile_step_loads_the_saved_module_with_the_same_numbers(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    gen = torch.Generator().manual_seed(9)
    init = {f"p{i}": torch.randn(5 + 7 * i, generator=gen) for i in range(3)}
    grads_seq = [{k: torch.randn(v.shape, generator=gen) for k, v in init.items()} for _ in range(3)]
    expected, _ = _reference(fo.rmsprop(lr=1e-2, momentum=0.9), init, grads_seq)
    first, compiled_variant = _rmsprop_run(init, grads_seq)  # compiles, saves trace and module
    second, loaded_variant = _rmsprop_run(init, grads_seq)  # loads the module: no torch.compile
    assert compiled_variant.from_cache and not compiled_variant.loaded
    assert loaded_variant.loaded
    cache = tmp_path / "functional_optim"
    assert len(list(cache.glob("step_*.py"))) == 1
    entries = list(cache.glob("module_*.json"))
    assert len(entries) == 1
    for k in init:
        torch.testing.assert_close(first[k], expected[k], rtol=1e-6, atol=1e-7)
        assert torch.equal(first[k], second[k])  # the same kernels
    # an entry whose kernel does not match its source is not loaded: compiled again
    entry = json.loads(entries[0].read_text())
    entry["kernels"][0]["sha"] = "0" * 64
    entries[0].write_text(json.dumps(entry))
    third, variant = _rmsprop_run(init, grads_seq)
    assert not variant.loaded
    for k in init:
        assert torch.equal(first[k], third[k])


_NEW_PROCESS = """
import sys, torch, functional_optim as fo
gen = torch.Generator().manual_seed(9)
init = {f"p{i}": torch.randn(5 + 7 * i, generator=gen) for i in range(3)}
grads = {k: torch.randn(v.shape, generator=gen) for k, v in init.items()}
tx = fo.rmsprop(lr=1e-2, momentum=0.9)
state = tx.init(init)
step = fo.compile_step(tx, elementwise=True, torch_kernels=False)
step(init, grads, state)
print(next(iter(step._variants.values())).loaded)
print("torch._inductor.compile_fx" in sys.modules, "torch._dynamo.convert_frame" in sys.modules)
torch.save(init, sys.argv[1])
"""


@pytest.mark.slow
def test_a_new_process_steps_without_torch_compile(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    outs = []
    for run in range(2):
        out = tmp_path / f"params{run}.pt"
        cmd = [sys.executable, "-c", _NEW_PROCESS, str(out)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        outs.append((proc.stdout.split(), torch.load(out)))
    assert outs[0][0] == ["False", "True", "True"]  # compiled (and saved)
    assert outs[1][0] == ["True", "False", "False"]  # loaded: neither Inductor nor Dynamo compiled
    for k, v in outs[0][1].items():
        assert torch.equal(v, outs[1][1][k])


def test_the_module_loader_refuses_graph_inputs_it_cannot_locate():
    from functional_optim import _module_cache

    names = ["L['p'][0]", "L['p'][0].size()[0]", "L['s'][2]", "L['g'][1].stride()[0]"]
    src = _module_cache._args_source(names)
    assert src is not None
    ns: dict = {}
    exec(src, ns)
    t = torch.zeros(5)
    assert ns["make_args"]([t], [t, torch.zeros(3)], [None, None, t]) == [t, 5, t, 1]
    assert _module_cache._args_source(["L['p'][0]", "G['x']"]) is None
    assert _module_cache._args_source(["L['p'][0].grad"]) is None


def test_tensors_replaced_inside_the_trees_between_calls_are_used():
    # the per-call check walks plain trees without optree: a list entry or a dict value replaced
    # by another tensor (same structure) must be seen, and the new tensor stepped
    gen = torch.Generator().manual_seed(10)
    tx = fo.adam(0.1)
    params = {"a": torch.randn(4, generator=gen), "b": torch.randn(3, generator=gen)}
    state = tx.init(params)
    ref_params = {k: v.clone() for k, v in params.items()}
    ref_state = fo.tree.map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, state)
    step = fo.compile_step(tx)
    for k in range(4):
        if k == 2:
            params["a"] = params["a"].clone() + 1.0  # a new parameter tensor under the same key
            ref_params["a"] = ref_params["a"] + 1.0
            state[1].exp_avg["b"] = torch.zeros(3)  # a reset first moment (a new tensor)
            ref_state[1].exp_avg["b"] = torch.zeros(3)
        grads = {key: torch.randn(v.shape, generator=gen) for key, v in params.items()}
        step(params, grads, state)
        updates, ref_state = tx.update(grads, ref_state, ref_params)
        ref_params = fo.apply_updates(ref_params, updates)
        for key in params:
            torch.testing.assert_close(params[key], ref_params[key], rtol=1e-5, atol=1e-6)
    assert step.uses_torch_kernel


@pytest.mark.slow
def test_gradients_kept_written_in_place_or_moved_between_steps_are_read_anew():
    # the 1-D views of the gradients are kept while the gradients are the same tensors at the
    # same addresses: new values written in place must be read, a gradient moved to new memory
    # (``set_``) or replaced must be viewed again
    gen = torch.Generator().manual_seed(11)
    init = {f"p{i}": torch.randn(4 + i, 3, generator=gen) for i in range(3)}
    tx = fo.rmsprop(lr=1e-2, momentum=0.9)
    params = {k: v.clone() for k, v in init.items()}
    state = tx.init(params)
    ref_params = {k: v.clone() for k, v in init.items()}
    ref_state = tx.init(ref_params)
    step = fo.compile_step(tx, elementwise=True, torch_kernels=False)
    grads = {k: torch.zeros_like(v) for k, v in init.items()}
    for k in range(6):
        new = {key: torch.randn(v.shape, generator=gen) for key, v in init.items()}
        if k == 5:
            grads = {key: v.clone() for key, v in new.items()}  # new tensors
        else:
            for key, g in grads.items():
                if k == 3 and key == "p1":
                    g.set_(new[key].clone())  # the same tensor in other memory
                else:
                    g.copy_(new[key])  # the same tensors, new values
        step(params, grads, state)
        updates, ref_state = tx.update(new, ref_state, ref_params)
        ref_params = fo.apply_updates(ref_params, updates)
        for key in params:
            torch.testing.assert_close(params[key], ref_params[key], rtol=1e-6, atol=1e-7)


GROUP_VALUES = {
    "schedule_free_adamw": lambda: fo.schedule_free_adamw(1e-2, weight_decay=0.01, warmup_steps=2),
    "schedule_free_sgd": lambda: fo.schedule_free_sgd(0.1),
    "prodigy": lambda: fo.prodigy(1.0),
    "dadapt_adamw": lambda: fo.dadapt_adamw(1.0),
}


@pytest.mark.parametrize("name", sorted(GROUP_VALUES))
def test_whole_compiled_step_writes_its_float64_group_values(name: str) -> None:
    """Schedule-Free's ``lr_max`` and weight sum, Prodigy's and D-Adaptation's ``d`` are 0-dim
    float64 state: the compiled step writes them (Inductor dropped a ``copy_`` into such an
    input, which left them at their first values) and follows the pure update."""
    tx = GROUP_VALUES[name]()
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(6, 3, generator=gen), torch.randn(3, generator=gen)]
    pure = [p.clone() for p in params]
    state, pure_state = tx.init(params), tx.init(pure)
    step = fo.compile_step(tx)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=gen) for p in params]
        step(params, grads, state)
        updates, pure_state = tx.update(grads, pure_state, pure)
        pure = fo.apply_updates(pure, updates)
    for a, b in zip(params, pure, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    scalars = [
        (a, b) for a, b in zip(fo.tree.leaves(state), fo.tree.leaves(pure_state), strict=True) if a.dim() == 0
    ]
    assert any(a.dtype == torch.float64 for a, _ in scalars)
    for a, b in scalars:
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
