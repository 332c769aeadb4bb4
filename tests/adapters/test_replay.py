"""The adapters' CPU commit replays a replayable rule's recorded calls on the chunks of one tensor
(`functional_optim._replay`): the numbers must be those of the rule run on every chunk, bit for
bit, whatever the chunks hold (mixed dtypes and shapes, counters at different steps, bad
gradients), and a step must stay all-or-nothing. The chunk budget is lowered so that small
tensors make chunks of one tensor, as 1 MB tensors do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
import torch

import functional_optim as fo
from functional_optim import _replay, fused, rules

A = fo.adapters

REPLAYABLE: dict[str, tuple[Callable[..., torch.optim.Optimizer], dict[str, Any]]] = {
    "Adam": (A.Adam, dict(lr=1e-2, weight_decay=0.1)),
    "Adam-amsgrad": (A.Adam, dict(lr=1e-2, amsgrad=True)),
    "AdamW": (A.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    "SGD": (A.SGD, dict(lr=1e-2, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "SGD-nesterov": (A.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True, maximize=True)),
    "Adagrad": (A.Adagrad, dict(lr=1e-2, lr_decay=0.01, weight_decay=0.1)),
    "RMSprop": (A.RMSprop, dict(lr=1e-2)),
    "RMSprop-centered": (A.RMSprop, dict(lr=1e-2, momentum=0.9, centered=True)),
    "Adadelta": (A.Adadelta, dict(lr=1.0, weight_decay=0.1)),
    "Adamax": (A.Adamax, dict(lr=1e-2)),
    "NAdam": (A.NAdam, dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=0.1)),
    "RAdam": (A.RAdam, dict(lr=1e-2)),
    "ASGD": (A.ASGD, dict(lr=1e-2, t0=2.0)),
}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of about 1 KB: every tensor below of 1 KB or more is a chunk of its own."""
    monkeypatch.setattr(fused, "_CHUNK_BYTES", 1024)
    monkeypatch.setattr(fused, "_ALONE_BYTES", 1024)
    monkeypatch.setattr(fused, "_IN_PLACE_CHUNK_BYTES", 4096)
    monkeypatch.setattr(_replay, "MIN_SHARED", 2)  # the tensors below share signatures in pairs


class _Counted:
    """Counts the replayed chunks and the recordings (so that no test passes without replay)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.replayed = self.recorded = 0
        program = _replay._program
        recorder_init = _replay._Recorder.__init__

        def counting_program(*args: Any) -> Callable[..., Any]:
            fn = program(*args)

            def counted(*a: Any) -> Any:
                self.replayed += 1
                return fn(*a)

            return counted

        def counting_init(recorder: Any, *args: Any) -> None:
            self.recorded += 1
            recorder_init(recorder, *args)

        monkeypatch.setattr(_replay, "_program", counting_program)
        monkeypatch.setattr(_replay._Recorder, "__init__", counting_init)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> _Counted:
    return _Counted(monkeypatch)


def _without_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_replay.Replays, "applies", staticmethod(lambda fields: False))


def _params(dtypes: tuple[torch.dtype, ...] = (torch.float32,), seed: int = 0) -> list[torch.Tensor]:
    """Tensors of 1 KB and more (chunks of their own; three of one shape), a small one (shares a
    chunk) and a non-contiguous one, in each dtype."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for dtype in dtypes:
        out += [
            torch.randn(16, 17, generator=gen, dtype=dtype),
            torch.randn(400, generator=gen, dtype=dtype),
            torch.randn(16, 17, generator=gen, dtype=dtype),
            torch.randn(3, generator=gen, dtype=dtype),
            torch.randn(30, 20, generator=gen, dtype=dtype).t(),
            torch.randn(16, 17, generator=gen, dtype=dtype),
        ]
    return [t.requires_grad_() for t in out]


def _gradients(params: list[torch.Tensor], steps: int, seed: int = 1) -> Iterator[list[torch.Tensor | None]]:
    """Per step the gradients; the third tensor misses a few steps (its counters fall behind those
    of the two other tensors of its shape: a signature of its own, by its counters' values), and
    step 4 brings a NaN, an inf and a huge value."""
    gen = torch.Generator().manual_seed(seed)
    for k in range(steps):
        grads: list[torch.Tensor | None] = [
            torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params
        ]
        if k in (1, 2):
            grads[2] = None
        if k == 4:
            g = grads[0]
            assert g is not None
            g.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), 1e30])
        yield grads


def _train(
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer], params: list[torch.Tensor], steps: int = 7
):
    opt = make(params)
    for grads in _gradients(params, steps):
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
    return opt


def _state_tensors(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for st in opt.state.values() for v in fo.tree.leaves(st) if isinstance(v, torch.Tensor)]


def _assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert torch.equal(x, y) or torch.allclose(x, y, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtypes", [(torch.float32,), (torch.float64,), (torch.float32, torch.float64)])
@pytest.mark.parametrize("case", sorted(REPLAYABLE))
def test_a_replayed_step_is_the_rule_run_on_every_chunk_bit_for_bit(
    case: str,
    dtypes: tuple[torch.dtype, ...],
    small_chunks: None,
    counted: _Counted,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cls, kwargs = REPLAYABLE[case]
    ours = _params(dtypes)
    opt = _train(lambda ps: cls(ps, **kwargs), ours)
    assert counted.replayed > 0, "no chunk was replayed"
    with monkeypatch.context() as m:
        _without_replay(m)
        reference = _params(dtypes)
        ref = _train(lambda ps: cls(ps, **kwargs), reference)
    _assert_same(ours, reference)
    _assert_same(_state_tensors(opt), _state_tensors(ref))


@pytest.mark.parametrize("case", ["Adam", "SGD", "Adagrad", "RMSprop", "NAdam", "ASGD"])
def test_a_replayed_step_gives_torchs_numbers(case: str, small_chunks: None, counted: _Counted) -> None:
    """The replayed adapter against ``torch.optim``'s for-loop (float64, within rounding)."""
    cls, kwargs = REPLAYABLE[case]
    torch_cls = getattr(torch.optim, cls.__name__)
    ours, theirs = _params((torch.float64,)), _params((torch.float64,))
    _train(lambda ps: cls(ps, **kwargs), ours)
    _train(lambda ps: torch_cls(ps, foreach=False, **kwargs), theirs)
    assert counted.replayed > 0
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_a_step_that_raises_in_a_later_group_leaves_the_replayed_group_untouched(
    small_chunks: None, counted: _Counted
) -> None:
    params = _params()
    bad = torch.zeros(3, requires_grad=True)
    opt = A.Adam([{"params": params}, {"params": [bad]}], lr=1e-2)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        bad.grad = torch.randn_like(bad)
        opt.step()
    assert counted.replayed > 0
    before_params = [p.detach().clone() for p in params]
    before_state = [t.clone() for t in _state_tensors(opt)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt.param_groups[1]["lr"] = -1.0  # invalid: the later group's transform raises
    with pytest.raises(ValueError, match="learning rate"):
        opt.step()
    _assert_same([p.detach() for p in params], before_params)
    _assert_same(_state_tensors(opt), before_state)


class _State(NamedTuple):
    buf: Any
    step: Any


def _rule_chain(rule_step: Callable[..., rules.RuleStep], lr: float = 0.1) -> fo.GradientTransformation:
    """A replayable rule with one per-element field, ``step`` given, then the learning rate."""
    from functional_optim.transforms._steps import zeros

    def init(params: Any) -> _State:
        return _State(fo.tree.map(torch.zeros_like, params), zeros(params))

    rule = rules.Rule(
        "test_rule",
        rule_step,
        lambda state: [state.buf, state.step],
        lambda new: _State(*new),
        state_type=_State,
        replayable=True,
    )
    return fo.chain(rules.rule_transform(init, rule), fo.scale_by_learning_rate(lr))


def _momentum_step(grads, fields, _, *, in_place):
    from functional_optim import ops
    from functional_optim.transforms import _steps

    bufs, steps = fields
    steps = _steps.increment(steps, in_place=in_place)
    bufs = ops.add_(ops.mul(bufs, 0.5, in_place=in_place), grads)
    return rules.RuleStep([bufs, steps], [rules.Term(bufs, None, rules.unscaled)])


def _value_reading_step(grads, fields, params, *, in_place):
    """Reads a gradient's value in Python (the sign of its sum, which differs from chunk to chunk,
    decides a factor): not replayable however it is declared; the recording must see it and step
    every chunk with the rule (a replay would give every chunk the first chunk's factor)."""
    result = _momentum_step(grads, fields, params, in_place=in_place)
    factor = 2.0 if grads[0].sum().item() > 0 else 1.0
    return rules.RuleStep(result.fields, [rules.Term(result.fields[0], None, lambda s: s * factor)])


def _shape_reading_step(grads, fields, params, *, in_place):
    """Decides a factor by the gradient's number of dimensions: shapes are not in a signature
    (`_replay._QUERIES`), so the recording must refuse the query (a replay would give the 1-D
    tensors the 2-D tensors' factor)."""
    result = _momentum_step(grads, fields, params, in_place=in_place)
    factor = 2.0 if grads[0].dim() == 2 else 1.0
    return rules.RuleStep(result.fields, [rules.Term(result.fields[0], None, lambda s: s * factor)])


def _stride_reading_step(grads, fields, params, *, in_place):
    """Decides a factor by the parameter's contiguity (strides are not in a signature either)."""
    result = _momentum_step(grads, fields, params, in_place=in_place)
    factor = 2.0 if params[0].is_contiguous() else 1.0
    return rules.RuleStep(result.fields, [rules.Term(result.fields[0], None, lambda s: s * factor)])


def _piece_counting_step(grads, fields, params, *, in_place):
    """Decides a factor by how many pieces ``split`` cuts the gradient into: a Python number that
    comes from the shape through a list's length, not a query (the recording must refuse it)."""
    result = _momentum_step(grads, fields, params, in_place=in_place)
    factor = float(len(grads[0].split(100)))
    return rules.RuleStep(result.fields, [rules.Term(result.fields[0], None, lambda s: s * factor)])


@pytest.mark.parametrize(
    ("rule_step", "replays"),
    [
        (_momentum_step, True),
        (_value_reading_step, False),
        (_shape_reading_step, False),
        (_stride_reading_step, False),
        (_piece_counting_step, False),
    ],
)
def test_a_rule_that_reads_a_tensors_value_is_not_replayed(
    rule_step: Callable[..., rules.RuleStep],
    replays: bool,
    small_chunks: None,
    counted: _Counted,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tx = _rule_chain(rule_step)
    ours = _params()
    opt = _train(lambda ps: fo.adapters.FunctionalOptimizer(ps, tx), ours)
    assert (counted.replayed > 0) is replays
    with monkeypatch.context() as m:
        _without_replay(m)
        reference = _params()
        ref = _train(lambda ps: fo.adapters.FunctionalOptimizer(ps, tx), reference)
    _assert_same(ours, reference)
    _assert_same(_state_tensors(opt), _state_tensors(ref))


def test_the_recorder_refuses_value_reads_and_writes_into_constants() -> None:
    g = torch.randn(4)
    counter = torch.zeros(())
    recorder = _replay._Recorder([g, counter])
    with recorder:
        counter.item()  # a 0-dim input: its value is part of the signature
    assert recorder.refused is None
    with recorder:
        g.sum().item()
    assert recorder.refused is not None and "item" in recorder.refused
    recorder = _replay._Recorder([g])
    with recorder:
        c = torch.scalar_tensor(2.0)
        c.add_(g.sum())
    assert recorder.refused is not None and "writes into a tensor made from constants" in recorder.refused
    # one tensor in two roles would get one name: another chunk's two tensors taken for one
    assert _replay._Recorder([g, g]).refused == "a tensor given twice"


@pytest.mark.parametrize(
    "query",
    [
        lambda g: g.shape,
        lambda g: g.dim(),
        lambda g: len(g),
        lambda g: g.numel(),
        lambda g: g.stride(),
        lambda g: g.is_contiguous(),
        lambda g: g.unbind(0),
        lambda g: g.split(2),
        lambda g: list(g),
        lambda g: g.requires_grad,  # not in a signature either (autograd is off in the commit)
        lambda g: g.is_leaf,
    ],
)
def test_the_recorder_refuses_what_depends_on_shapes_and_strides(
    query: Callable[[torch.Tensor], Any],
) -> None:
    """A signature holds no shapes or strides (one recording serves every shape): a query of
    them, or a list of tensors whose length comes from a shape, refuses the recording."""
    g = torch.randn(4, 3)
    recorder = _replay._Recorder([g])
    with recorder:
        query(g)
    assert recorder.refused is not None


def test_a_signature_is_the_dtypes_and_the_0_dim_values() -> None:
    """Shapes, strides and ``requires_grad`` do not split a signature; a dtype or a counter's
    value does; columns without 0-dim tensors and of one dtype leave one signature for all."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (12,), (3, 4), (2, 2, 3), (5,), (7, 1)]
    params = [torch.randn(s, generator=gen).requires_grad_(k % 2 == 0) for k, s in enumerate(shapes)]
    params[2] = params[2].t()  # another layout
    grads = [torch.randn(p.shape, generator=gen) for p in params]
    bufs = [torch.zeros_like(p) for p in params]
    plain = _replay.Replays(params, grads, [bufs])
    assert len(set(plain._signature_of)) == 1 and plain.shared(0)
    counters = [torch.tensor(3.0) for _ in params]
    counters[1] = torch.tensor(4.0)
    bufs[5] = bufs[5].double()
    split = _replay.Replays(params, grads, [bufs, counters])
    assert split._signature_of == [0, 1, 0, 0, 0, 2]


def test_the_recorder_takes_foreach_results_and_views() -> None:
    g = torch.randn(4, 3)
    recorder = _replay._Recorder([g])
    with recorder:
        torch._foreach_add_([g], 1.0)
        torch._foreach_abs([g])
        g.T.abs()
        torch._foreach_addcdiv_([g], [g], [g.abs() + 1], [0.5])
    assert recorder.refused is None


@pytest.mark.parametrize(("shared", "records"), [(1, False), (5, False), (6, True)])
def test_a_signature_is_recorded_only_when_enough_tensors_share_it(
    shared: int, records: bool, monkeypatch: pytest.MonkeyPatch, counted: _Counted
) -> None:
    """A recording costs about as much as the rule's Python on several chunks: a signature that
    fewer than ``MIN_SHARED`` (6) tensors share is stepped by the rule."""
    monkeypatch.setattr(fused, "_CHUNK_BYTES", 1024)
    monkeypatch.setattr(fused, "_ALONE_BYTES", 1024)
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(16 + k, 17, generator=gen).requires_grad_() for k in range(shared)]  # shapes differ
    # another signature (float64), three tensors: not recorded
    params += [torch.randn(18, 17, generator=gen, dtype=torch.float64).requires_grad_() for _ in range(3)]
    _train(lambda ps: A.Adam(ps, lr=1e-2), params, steps=3)
    assert (counted.recorded > 0) is records
    assert (counted.replayed > 0) is records


def _mid_sized() -> list[torch.Tensor]:
    """Six float32 tensors of 1088 B (one signature) around two float64 ones of their own (2448 B
    and 2584 B) and a small one; with 4 KB chunks: ``[s, u1, small, u2]``, ``[s, s, s, s]``,
    ``[s]``."""
    gen = torch.Generator().manual_seed(0)
    f32, f64 = torch.float32, torch.float64
    kinds = [((16, 17), f32), ((18, 17), f64), ((3,), f32), ((19, 17), f64)] + [((16, 17), f32)] * 5
    return [torch.randn(s, generator=gen, dtype=d).requires_grad_() for s, d in kinds]


@pytest.mark.parametrize(
    ("case", "alone_bytes", "expected", "replayed"),
    [
        ("Adam", 1024, [1, 3], 5),  # the six alone, the first recorded (once per step: its counters)
        ("Adam", 2048, [4, 4, 1], 0),
        ("SGD", 1024, [9], 0),  # in place: one pass, only tensors of a whole chunk alone
    ],
)
def test_tensors_below_a_chunk_are_alone_when_their_signature_is_replayed(
    case: str,
    alone_bytes: int,
    expected: list[int],
    replayed: int,
    monkeypatch: pytest.MonkeyPatch,
    counted: _Counted,
) -> None:
    """A replayable rule with temporaries: its tensors of ``_ALONE_BYTES`` or more are chunks of
    their own when ``MIN_SHARED`` (6) of them share a signature, and are replayed; the others stay
    in their chunks, as every tensor of a rule whose ops all write in place does (its tensors
    below a whole chunk). The numbers are those of the chunks without replay."""
    monkeypatch.setattr(fused, "_CHUNK_BYTES", 4096)
    monkeypatch.setattr(fused, "_IN_PLACE_CHUNK_BYTES", 4096)
    monkeypatch.setattr(fused, "_ALONE_BYTES", alone_bytes)
    stepped: list[int] = []
    rule_step = fused._rule_step
    monkeypatch.setattr(fused, "_rule_step", lambda *a: stepped.append(len(a[4])) or rule_step(*a))
    cls, kwargs = REPLAYABLE[case]

    def train(params: list[torch.Tensor]) -> None:
        opt = cls(params, **kwargs)
        for k in range(3):
            for p in params:
                p.grad = torch.full_like(p, 0.5 - k) + p.detach()
            opt.step()

    ours = _mid_sized()
    train(ours)
    assert stepped == expected * 3
    assert counted.replayed == replayed * 3
    with monkeypatch.context() as m:
        _without_replay(m)
        reference = _mid_sized()
        train(reference)
    _assert_same(ours, reference)


def _uniform(n: int = 8, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(16, 17, generator=gen, dtype=dtype).requires_grad_() for _ in range(n)]


@pytest.mark.parametrize(
    ("case", "per_step"),
    [("SGD", False), ("RMSprop", False), ("Adadelta", False), ("Adam", True), ("Adagrad", True)],
)
def test_a_recording_that_read_no_changing_value_is_kept_across_steps(
    case: str, per_step: bool, small_chunks: None, counted: _Counted
) -> None:
    """SGD's momentum (its ``started`` flag is read, but is 1 from the second step on), RMSprop and
    Adadelta (counters only incremented) record once and replay at every later step; Adam and
    Adagrad read their counters' values for their coefficients: one recording per step."""
    cls, kwargs = REPLAYABLE[case]
    steps = 5
    _train(lambda ps: cls(ps, **kwargs), _uniform(), steps=steps)
    first = 2 if case == "SGD" else 1  # SGD's first step starts its momentum (another program)
    assert counted.recorded == (steps if per_step else first)


_ANOTHER_VALUE = {
    "SGD": ("momentum", 0.5),
    "RMSprop": ("alpha", 0.9),
    "Adadelta": ("rho", 0.8),
    "Adam": ("betas", (0.8, 0.99)),
}


@pytest.mark.parametrize("case", sorted(_ANOTHER_VALUE))
@pytest.mark.parametrize("change", ["lr", "hyperparameter", "dtype"])
def test_a_kept_recording_is_not_replayed_after_a_change(
    case: str, change: str, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bit for bit the rule run on every chunk when, between steps, the learning rate changes (a
    scheduler), a hyperparameter changes (another rule) or the parameters' dtype changes (other
    kinds)."""
    cls, kwargs = REPLAYABLE[case]

    def train(params: list[torch.Tensor]) -> torch.optim.Optimizer:
        opt = cls(params, **kwargs)
        gen = torch.Generator().manual_seed(1)
        for k in range(6):
            if k == 3:
                group = opt.param_groups[0]
                if change == "lr":
                    group["lr"] *= 0.5
                elif change == "hyperparameter":
                    key, value = _ANOTHER_VALUE[case]
                    group[key] = value
                else:
                    for p in params:
                        p.data = p.data.double()
                    for state in opt.state.values():
                        for key, value in state.items():
                            if isinstance(value, torch.Tensor) and value.dim() > 0:
                                state[key] = value.double()
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            opt.step()
        return opt

    ours = _uniform()
    opt = train(ours)
    with monkeypatch.context() as m:
        _without_replay(m)
        reference = _uniform()
        ref = train(reference)
    _assert_same(ours, reference)
    _assert_same(_state_tensors(opt), _state_tensors(ref))


def test_the_kept_recordings_do_not_keep_a_rule_alive(small_chunks: None) -> None:
    import gc
    import weakref

    params = _uniform()
    opt = _train(lambda ps: A.RMSprop(ps, lr=1e-2), params, steps=3)
    rules_kept = list(_replay._STORES.keys())
    assert rules_kept, "nothing was kept"
    refs = [weakref.ref(rule) for rule in rules_kept]
    del opt, rules_kept
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_a_kept_recording_is_for_its_step_scale(small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fused.commit` with one plan and two step scales (the adapters build a new transform for a
    new learning rate; a direct caller may not): the second scale is not replayed with the
    first one's numbers."""

    def run(replay: bool) -> list[torch.Tensor]:
        with monkeypatch.context() as m:
            if not replay:
                _without_replay(m)
            tx = fo.rmsprop(1.0)
            plan = fused.plan(tx)
            assert plan is not None and plan.rule is not None and plan.rule.replayable
            params = [p.detach() for p in _uniform()]
            state = tx.init(params)
            gen = torch.Generator().manual_seed(1)
            with torch.no_grad():
                for scale in (-1e-2, -1e-2, -1e-3, -1e-3):
                    grads = [torch.randn(p.shape, generator=gen) for p in params]
                    prepared = fused.prepare(plan, grads, state, params, {})
                    state = fused.commit(plan, prepared, params, scale, 1.0).state
            return params

    _assert_same(run(replay=True), run(replay=False))


def test_the_recordings_kept_for_a_rule_stay_bounded(small_chunks: None) -> None:
    """Adam's recordings read its counters: one is kept per step under its values, none is ever
    replayed again; the store of its rule is cleared when it reaches ``_MAX_KEPT``."""
    params = _uniform()
    opt = _train(lambda ps: A.Adam(ps, lr=1e-2), params, steps=_replay._MAX_KEPT + 6)
    stores = [kept for rule, kept in _replay._STORES.items() if rule.name == "scale_by_adam"]
    assert stores and all(0 < len(kept) <= _replay._MAX_KEPT for kept in stores)
    del opt
