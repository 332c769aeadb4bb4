"""The adapters' fast path (``functional_optim.fused`` + the step cache) gives torch.optim's exact
numbers, falls back where it must, and follows changes made to ``opt.state`` between steps."""

from __future__ import annotations

import sys

import pytest
import torch

import functional_optim as fo
from functional_optim import fused
from functional_optim.rules import Term, apply_terms

# torch.optim.X -> options; on these the adapter applies the chain's tail as torch does
# (p.mul_(1 - lr*wd), p.add_(u, alpha=-lr) or p.addcdiv_(num, den, value)): bitwise equal.
EXACT = [
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "maximize": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 0.1, "weight_decay": 0.01}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("Adamax", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adadelta", {"lr": 0.5}),
    ("ASGD", {"lr": 0.01}),
    ("ASGD", {"lr": 0.05, "t0": 3, "lambd": 0.01}),  # averaging from step 4
    ("Rprop", {"lr": 0.01}),
    ("Rprop", {"lr": 0.01, "etas": (0.3, 1.5), "step_sizes": (1e-4, 1.0), "maximize": True}),
]


def _run_pair(name: str, options: dict, dtype: torch.dtype, steps: int = 8):
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (5,), ()]
    init = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    p_torch = [t.clone().requires_grad_() for t in init]
    p_fo = [t.clone().requires_grad_() for t in init]
    ref = getattr(torch.optim, name)(p_torch, foreach=False, **options)
    opt = getattr(fo.adapters, name)(p_fo, **options)
    for k in range(steps):
        for a, b in zip(p_torch, p_fo, strict=True):
            g = torch.randn(a.shape, generator=gen, dtype=dtype)
            # the last parameter has no gradient on some steps: skipped by both
            none = a.dim() == 0 and k % 3 == 1
            a.grad = None if none else g.clone()
            b.grad = None if none else g.clone()
        ref.step()
        opt.step()
    return p_torch, p_fo, ref, opt


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
@pytest.mark.parametrize(("name", "options"), EXACT, ids=[f"{n}-{sorted(o)}" for n, o in EXACT])
def test_adapter_step_is_bitwise_torch_for_loop(name, options, dtype):
    p_torch, p_fo, ref, opt = _run_pair(name, options, dtype)
    for a, b in zip(p_torch, p_fo, strict=True):
        assert torch.equal(a, b), (a - b).abs().max()
    for a, b in zip(p_torch, p_fo, strict=True):
        for key, value in ref.state[a].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt.state[b][key])), key


def test_adapter_updates_its_state_in_place_between_steps():
    p = torch.randn(6, requires_grad=True)
    opt = fo.adapters.AdamW([p], lr=0.01, weight_decay=0.1)
    p.grad = torch.randn(6)
    opt.step()
    before = {k: v for k, v in opt.state[p].items()}
    p.grad = torch.randn(6)
    opt.step()
    assert all(opt.state[p][k] is v for k, v in before.items())  # donated buffers, no new tensors


def test_a_state_tensor_replaced_between_steps_is_used_by_the_next_step():
    gen = torch.Generator().manual_seed(1)
    p_torch = torch.randn(5, generator=gen, requires_grad=True)
    p_fo = p_torch.detach().clone().requires_grad_()
    ref = torch.optim.Adam([p_torch], lr=0.1, foreach=False)
    opt = fo.adapters.Adam([p_fo], lr=0.1)
    for k in range(4):
        g = torch.randn(5, generator=gen)
        p_torch.grad, p_fo.grad = g.clone(), g.clone()
        if k == 2:  # a user resets the first moment (a new tensor) and the step counter
            ref.state[p_torch]["exp_avg"] = torch.zeros(5)
            opt.state[p_fo]["exp_avg"] = torch.zeros(5)
            ref.state[p_torch]["step"] = torch.tensor(0.0)
            opt.state[p_fo]["step"] = torch.tensor(0.0)
        ref.step()
        opt.step()
        assert torch.equal(p_torch, p_fo)


def test_scheduled_learning_rate_keeps_the_fast_path_and_torch_numbers():
    gen = torch.Generator().manual_seed(2)
    p_torch = torch.randn(4, 3, generator=gen, requires_grad=True)
    p_fo = p_torch.detach().clone().requires_grad_()
    ref = torch.optim.AdamW([p_torch], lr=0.1, weight_decay=0.05, foreach=False)
    opt = fo.adapters.AdamW([p_fo], lr=0.1, weight_decay=0.05)
    s_ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref, T_max=5)
    s_fo = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    for _ in range(6):
        g = torch.randn(4, 3, generator=gen)
        p_torch.grad, p_fo.grad = g.clone(), g.clone()
        ref.step()
        opt.step()
        s_ref.step()
        s_fo.step()
        assert torch.equal(p_torch, p_fo)


def _pure_loop(tx, init, grads_seq):
    params = [t.clone() for t in init]
    state = tx.init(params)
    for grads in grads_seq:
        updates, state = tx.update(grads, state, params)
        params = fo.apply_updates(params, updates)
    return params


@pytest.mark.parametrize(
    "make",
    [
        # core without terms, decoupled decay and lr in the tail
        lambda: fo.chain(
            fo.clip_by_global_norm(1.0),
            fo.scale_by_radam(),
            fo.add_decayed_weights(0.1),
            fo.scale_by_learning_rate(0.05),
        ),
        # only the tail: plain gradient descent with decay
        lambda: fo.chain(fo.add_decayed_weights(0.1), fo.scale_by_learning_rate(0.05)),
        # a scheduled learning rate: not concrete, the adapter runs the whole chain
        lambda: fo.chain(fo.scale_by_adam(), fo.scale_by_learning_rate(lambda count: 0.05 / (1 + count))),
        # a tensor weight decay that requires grad: not concrete either
        lambda: fo.chain(
            fo.scale_by_adam(),
            fo.add_decayed_weights(torch.tensor(0.1, requires_grad=True)),
            fo.scale_by_learning_rate(0.05),
        ),
        # proximal decay: the terms, then p.div_(1 + lr·wd)
        lambda: fo.chain(
            fo.scale_by_adan(),
            fo.add_decayed_weights(0.1),
            fo.scale_by_proximal_decay(0.05, 0.1),
            fo.scale_by_learning_rate(0.05),
        ),
        # a proximal decay whose lr is not the chain's: not fused as one (pure tail)
        lambda: fo.chain(
            fo.scale_by_adam(),
            fo.add_decayed_weights(0.1),
            fo.scale_by_proximal_decay(0.2, 0.1),
            fo.scale_by_learning_rate(0.05),
        ),
        # MARS-AdamW on every tensor: the correction runs purely before the Adam rule in place
        lambda: fo.mars_adamw(0.01, weight_decay=0.1, optimize_1d=True),
    ],
    ids=["radam-core", "tail-only", "scheduled-lr", "traced-decay", "proximal", "proximal-other-lr", "mars"],
)
def test_custom_chains_in_the_adapter_equal_the_pure_loop(make):
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(4, 3, generator=gen), torch.randn(3, generator=gen)]
    grads_seq = [[torch.randn_like(t) for t in init] for _ in range(6)]
    expected = _pure_loop(make(), init, grads_seq)
    params = [t.clone().requires_grad_() for t in init]
    opt = fo.adapters.FunctionalOptimizer(params, make())
    for grads in grads_seq:
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-7)


def test_fused_plan_reads_the_declared_roles():
    plan = fused.plan(fo.adamw(1e-3, weight_decay=0.1))
    assert plan.weight_decay == 0.1 and plan.learning_rate == 1e-3
    assert plan.rule is not None and plan.rule.name == "scale_by_adam" and plan.pre == ()
    plan = fused.plan(fo.adam(1e-3, weight_decay=0.1, maximize=True))  # L2 + negate before the rule
    assert plan.weight_decay is None and len(plan.pre) == 2 and plan.rule.name == "scale_by_adam"
    # an L2 decay right before the learning rate is *not* decoupled decay: it stays a pure pre step
    plan = fused.plan(fo.sgd(0.1, weight_decay=0.1))
    assert plan.weight_decay is None and plan.rule is None and len(plan.pre) == 1
    # nested chains are flattened; the state paths follow the nesting
    plan = fused.plan(fo.chain(fo.clip_by_global_norm(1.0), fo.adamw(1e-3)))
    assert plan.rule.name == "scale_by_adam" and plan.rule_path == (1, 0) and plan.pre[0][1] == (0,)
    tx = fo.sgd(0.1)
    assert fused.plan(tx) is fused.plan(tx)
    assert fused.plan(fo.chain(fo.scale_by_adam(), fo.scale(-0.1))) is None  # no learning rate role
    assert fused.plan(fo.chain(fo.scale_by_learning_rate(0.1, flip_sign=False))) is None
    assert fused.plan(fo.scale_by_adam()) is None  # no learning rate
    assert fused.plan(fo.apply_if_finite(fo.adam(0.1), 3)) is None  # may keep its old state
    # Adan's proximal decay: L2(wd), ProximalDecay(lr, wd), LearningRate(lr) with equal numbers
    plan = fused.plan(fo.adan(1e-3, weight_decay=0.02))
    assert plan.rule.name == "scale_by_adan" and plan.proximal_decay == 0.02 and plan.weight_decay is None
    plan = fused.plan(fo.adan(1e-3, weight_decay=0.02, no_prox=True))
    assert plan.proximal_decay is None and plan.weight_decay == 0.02
    other_lr = fo.chain(
        fo.scale_by_adan(),
        fo.add_decayed_weights(0.02),
        fo.scale_by_proximal_decay(1e-2, 0.02),
        fo.scale_by_learning_rate(1e-3),
    )
    assert fused.plan(other_lr).proximal_decay is None and fused.plan(other_lr).rule is None
    assert fused.concrete(torch.tensor(0.5)) == 0.5
    assert fused.concrete(torch.tensor(0.5, requires_grad=True)) is None
    assert fused.concrete(lambda c: 0.1) is None and fused.concrete(True) is None


def test_apply_terms_is_torch_optims_in_place_update():
    gen = torch.Generator().manual_seed(4)
    p = [torch.randn(5, generator=gen), torch.randn(3, generator=gen)]
    num = [torch.randn(5, generator=gen), torch.randn(3, generator=gen)]
    den = [torch.rand(5, generator=gen) + 0.5, torch.rand(3, generator=gen) + 0.5]
    expected = [
        (q * 0.9).addcdiv(n, d, value=-0.1 / c) for q, n, d, c in zip(p, num, den, (0.5, 0.25), strict=True)
    ]
    expected = [e.add(n, alpha=-0.1) for e, n in zip(expected, num, strict=True)]
    terms = [
        Term(None, None, lambda s: 0.9),
        Term(num, den, lambda s: [s / 0.5, s / 0.25]),
        Term(num, None, lambda s: s),
    ]
    apply_terms(p, terms, step_scale=-0.1)
    for a, b in zip(p, expected, strict=True):
        assert torch.equal(a, b)


CHUNKED = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "AdamW": {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
    "NAdam": {"lr": 0.01},
    "RAdam": {"lr": 0.01},
    "ASGD": {"lr": 0.05, "t0": 2},
    "Rprop": {"lr": 0.01},
    "Lion": {"lr": 0.01, "weight_decay": 0.1},
    "Signum": {"lr": 0.01},
    "AdaBelief": {"lr": 0.01, "weight_decay": 0.01},
    "Adan": {"lr": 0.01, "weight_decay": 0.02},
    "Novograd": {"lr": 0.01, "weight_decay": 0.01},
    # rules with group values: their scalars once per step, their step chunk by chunk
    "AdamWScheduleFree": {"lr": 0.01, "weight_decay": 0.01, "warmup_steps": 2},
    "SGDScheduleFree": {"lr": 0.05, "weight_decay": 0.01},
    "Prodigy": {"weight_decay": 0.01},
    "DoG": {"weight_decay": 0.01},
    "DAdaptAdam": {"weight_decay": 0.01, "decouple": True},
}


@pytest.mark.parametrize("name", sorted(CHUNKED))
def test_a_commit_in_chunks_equals_one_commit_bit_for_bit(name, monkeypatch):
    """CPU commits run the rule chunk by chunk (rules work per tensor): the same parameters and
    state as one commit of every tensor, bit for bit."""
    gen = torch.Generator().manual_seed(5)
    init = [torch.randn(s, generator=gen) for s in [(7, 5), (40,), (3, 3), (16,), ()]]
    grads = [[torch.randn(t.shape, generator=gen) for t in init] for _ in range(7)]

    def run(chunk_bytes: int) -> tuple[list[torch.Tensor], torch.optim.Optimizer]:
        monkeypatch.setattr(fused, "_CHUNK_BYTES", chunk_bytes)
        params = [torch.nn.Parameter(t.clone()) for t in init]
        opt = getattr(fo.adapters, name)(params, **CHUNKED[name])
        for k, step in enumerate(grads):
            for i, (p, g) in enumerate(zip(params, step, strict=True)):
                p.grad = None if i == 1 and k % 3 == 1 else g.clone()  # some steps skip a tensor
            opt.step()
        return params, opt

    assert len(fused.chunks([torch.zeros(s) for s in [(7, 5), (40,), (3, 3)]])) == 1
    monkeypatch.setattr(fused, "_CHUNK_BYTES", 100)
    # 140 B, 160 B, 36 B + 4 B: a chunk ends once it holds 100 B
    assert fused.chunks([torch.zeros(s) for s in [(7, 5), (40,), (3, 3), ()]]) == [
        slice(0, 1),
        slice(1, 2),
        slice(2, 4),
    ]
    chunked, opt_c = run(100)
    whole, opt_w = run(1 << 30)
    for a, b in zip(chunked, whole, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(chunked, whole, strict=True):
        for key, value in opt_w.state[b].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, opt_c.state[a][key]), key


@pytest.mark.parametrize(("name", "options"), EXACT[:1] + EXACT[-6:-5])
def test_the_fused_commit_runs_its_ops_unchecked_for_module_parameters(name, options, monkeypatch):
    """A module's parameters (``nn.Parameter``), their gradients and the rule's state pass the
    one check of `ops.verified_dense`: the parity tests above run the ops' unchecked path, and
    their numbers are torch's for-loop's. From the second step on, the rule's state fields (the
    same tensors, checked by the first) are trusted: only parameters and gradients are
    looked at."""
    import contextlib

    from functional_optim import ops

    seen: list[tuple[bool, int]] = []
    real = ops.verified_dense

    @contextlib.contextmanager
    def recording(*lists):
        with real(*lists) as verified:
            seen.append((verified, len(lists)))
            yield verified

    monkeypatch.setattr(ops, "verified_dense", recording)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = getattr(fo.adapters, name)(model.parameters(), **options)
    for _ in range(3):
        model(torch.randn(5, 4)).square().sum().backward()
        opt.step()
    assert [verified for verified, _ in seen] == [True, True, True]
    (_, first_checked), *later = seen
    assert first_checked > 2  # parameters, gradients and the fields
    assert later == [(True, 2)] * 2  # parameters and gradients; the fields trusted


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_state_fields_are_trusted_only_while_they_are_the_tensors_last_checked(dtype, monkeypatch):
    """A state tensor replaced between steps makes the next step check every list again (and the
    one after trusts the new tensors); the fields of complex parameters (viewed as real by the
    ops) are never trusted. The numbers are torch's throughout."""
    import contextlib

    from functional_optim import ops

    seen: list[int] = []
    real = ops.verified_dense

    @contextlib.contextmanager
    def recording(*lists):
        with real(*lists) as verified:
            assert verified
            seen.append(len(lists) - 2)  # the state fields checked (after parameters, gradients)
            yield verified

    monkeypatch.setattr(ops, "verified_dense", recording)
    torch.manual_seed(0)
    ours = [torch.randn(3, dtype=dtype) for _ in range(2)]
    theirs = [p.clone() for p in ours]
    opt = fo.adapters.Adam(ours, lr=0.1)
    ref = torch.optim.Adam(theirs, lr=0.1, foreach=False)
    for step in range(4):
        for a, b in zip(ours, theirs, strict=True):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        opt.step()
        ref.step()
        if step == 1:  # the same values in a new tensor, in both
            opt.state[ours[0]]["exp_avg"] = opt.state[ours[0]]["exp_avg"].clone()
            ref.state[theirs[0]]["exp_avg"] = ref.state[theirs[0]]["exp_avg"].clone()
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a, b), step
    fields = 3  # exp_avg, exp_avg_sq, step
    assert seen == ([fields, 0, fields, 0] if dtype == torch.float32 else [fields] * 4)


@pytest.mark.parametrize(
    ("make", "budget"),
    [
        (lambda ps: fo.adapters.SGD(ps, lr=0.1), None),  # no rule: one p.add_(g, alpha=-lr) per tensor
        # b.mul_(μ).add_(g), p.add_(b), replayable: one pass (its whole-chunk tensors alone, replayed)
        (lambda ps: fo.adapters.SGD(ps, lr=0.1, momentum=0.9), "one pass"),
        (lambda ps: fo.adapters.SGD(ps, lr=0.1, momentum=0.9, nesterov=True), "temporaries"),  # g + μ·b
        (lambda ps: fo.adapters.SGDScheduleFree(ps, lr=0.1), "in place"),
        (lambda ps: fo.adapters.SGDScheduleFree(ps, lr=0.1, weight_decay=0.01), "temporaries"),  # g + wd·y
        (lambda ps: fo.adapters.Adam(ps, lr=0.1), "temporaries"),
    ],
)
def test_rules_commit_in_chunks_sized_by_their_temporaries(make, budget, monkeypatch):
    """Chunks keep a rule's buffers and temporaries in cache between its ops: ~1 MB for a rule
    with temporaries, larger for one whose ops all write in place (fewer calls; a step over
    more than the cache still goes chunk by chunk), one pass for such a rule that is replayed (its
    tensors of a whole chunk alone); plain SGD (one op per tensor) is not chunked.
    The numbers are the same (`test_a_commit_in_chunks_equals_one_commit_bit_for_bit`)."""
    budgets = []
    real = fused.chunks
    monkeypatch.setattr(fused, "chunks", lambda params, size=None: budgets.append(size) or real(params, size))
    monkeypatch.setattr(fused, "_CHUNK_BYTES", 100)
    monkeypatch.setattr(fused, "_IN_PLACE_CHUNK_BYTES", 200)
    params = [torch.nn.Parameter(torch.randn(40)) for _ in range(3)]
    opt = make(params)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn(40)
        opt.step()
    whole = sys.maxsize
    expected = {None: [], "one pass": [whole, whole], "in place": [200, 200], "temporaries": [None, None]}
    assert budgets == expected[budget]
    # 160 B each: chunks of one tensor (100 B), of two (200 B) or one pass
    size = {"one pass": whole, "in place": 200}.get(budget, 100)
    lengths = [part.stop - part.start for part in real(params, size)]
    assert lengths == {whole: [3], 200: [2, 1], 100: [1, 1, 1]}[size]
