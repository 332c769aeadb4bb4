"""The adapters' fused step: a chain applied in place, derived from the transforms' roles.

A chain whose flattened transforms end in ::

    *pre, [rule], [add_decayed_weights(wd, decoupled=True)], scale_by_learning_rate(lr)

(with a concrete ``lr`` and ``wd``) moves the parameters by ``p ← (1 - lr·wd)·p + (-lr)·rule_update``.
``torch.optim`` applies exactly this in place: ``p.mul_(1 - lr * wd)`` (decoupled weight decay)
and one ``p.add_(u, alpha=-lr)`` or, for the adaptive methods, ``p.addcdiv_(num, den, value)``
that never materialises the update. A chain that ends in ::

    *pre, [rule], add_decayed_weights(wd), scale_by_proximal_decay(lr, wd), scale_by_learning_rate(lr)

(the same Python numbers ``lr`` and ``wd``) is the proximal step ``p ← (p + (-lr)·rule_update) /
(1 + lr·wd)`` (Adan): the terms, then ``p.div_(1 + lr * wd)``, as the authors' code.
A chain that ends in ``*pre, rule`` where the rule includes the learning rate
(`Rule.includes_learning_rate`: LARS, whose learning rate is inside its momentum) moves the
parameters by the rule's terms at step scale 1, ``p ← p + rule_update``, its pure update.
`plan` recognises such chains by the **roles** the transforms declare
(`functional_optim.core.LearningRate`, `DecoupledWeightDecay`,
`L2Regularization` with `ProximalDecay`,
`Rule`, `Chain`) — never by position
alone or by function attributes.

A fused step has two phases, so that an adapter step is all-or-nothing:

1. `prepare` (may raise; writes nothing): runs the ``pre`` transforms through their pure
   ``update`` (new tensors) — e.g. ``negate`` for ``maximize``, an L2 ``add_decayed_weights``,
   clipping, a momentum that is not the rule;
2. `commit` (writes; runs library kernels only): the rule's step with ``in_place=True``
   (its state buffers updated in place, as ``torch.optim``), then its terms applied to the
   parameters (`functional_optim.rules.apply_terms`).

The rule's maths is the same function the pure ``update`` evaluates (`fo.rules`),
so the two paths cannot disagree. Everything else (schedules, ``inject_hyperparams``, combinators
that may keep an old state such as ``apply_if_finite``, unknown transforms at the end of a chain)
is not fused: the adapters run the pure ``update`` and write its result.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import sys
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from functional_optim import _replay, ops
from functional_optim.core import (
    Chain,
    DecoupledWeightDecay,
    GradientTransformation,
    L2Regularization,
    LearningRate,
    ProximalDecay,
)
from functional_optim.rules import Begun, Rule, Term, apply_terms, run, step_terms, unscaled

__all__ = ["Committed", "FusedPlan", "chunks", "commit", "concrete", "plan", "prepare"]

Path = tuple[int, ...]
"""Where a transform's state sits in the (nested tuple) state of a chain."""


class FusedPlan(NamedTuple):
    """How to run a chain with its end applied in place.

    Attributes:
      pre: the transforms run purely before the rule, with the path of each one's state.
      rule: the core's `Rule` (``None``: the updates of ``pre``
        are applied as they are, ``p.add_(u, alpha=-lr)``).
      rule_path: the path of the rule's state.
      learning_rate: the learning-rate hyperparameter (read at every step); `UNIT_STEP` for a
        chain that ends in its rule (the rule's terms are the whole move).
      weight_decay: the decoupled weight decay hyperparameter, or ``None``.
      proximal_decay: the proximal weight decay ``wd`` (a Python number), or ``None``: the
        parameters are divided by ``1 + lr·wd`` after the terms.
    """

    pre: tuple[tuple[GradientTransformation, Path], ...]
    rule: Rule | None
    rule_path: Path
    learning_rate: Any
    weight_decay: Any
    proximal_decay: float | None = None


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NO_PLAN = object()


def flatten(transform: GradientTransformation, path: Path = ()) -> list[tuple[GradientTransformation, Path]]:
    """The transforms of a (nested) chain in order, each with the path of its state."""
    role = transform.role
    if isinstance(role, Chain):
        out: list[tuple[GradientTransformation, Path]] = []
        for i, child in enumerate(role.children):
            out.extend(flatten(child, (*path, i)))
        return out
    return [(transform, path)]


def plan(transform: GradientTransformation) -> FusedPlan | None:
    """The `FusedPlan` of a transform, or ``None`` when it cannot be fused (cached)."""
    cached = _PLANS.get(transform.update, None)
    if cached is None:
        cached = _make_plan(transform)
        _PLANS[transform.update] = _NO_PLAN if cached is None else cached
    return None if cached is _NO_PLAN else cached


def _make_plan(transform: GradientTransformation) -> FusedPlan | None:
    flat = flatten(transform)
    if not flat:
        return None
    last, _ = flat[-1]
    if isinstance(last.role, Rule) and last.role.includes_learning_rate:
        return _rule_last_plan(flat)
    if not isinstance(last.role, LearningRate) or not last.role.flip_sign:
        return None
    rest = flat[:-1]
    weight_decay = proximal = None
    if rest and isinstance(rest[-1][0].role, DecoupledWeightDecay):
        weight_decay = rest[-1][0].role.weight_decay
        rest = rest[:-1]
    elif _is_proximal(rest, last.role.learning_rate):
        proximal = float(cast(ProximalDecay, rest[-1][0].role).weight_decay)  # checked by _is_proximal
        rest = rest[:-2]
    rule: Rule | None = None
    rule_path: Path = ()
    if rest and isinstance(rest[-1][0].role, Rule):
        rule, rule_path = rest[-1][0].role, rest[-1][1]
        rest = rest[:-1]
    return FusedPlan(tuple(rest), rule, rule_path, last.role.learning_rate, weight_decay, proximal)


UNIT_STEP = -1.0
"""The `FusedPlan.learning_rate` of a chain that ends in its rule: the adapters' step scale
``-lr`` is then 1."""


def _rule_last_plan(flat: list[tuple[GradientTransformation, Path]]) -> FusedPlan:
    """The plan of a chain that *ends* in a rule that includes the learning rate (e.g. LARS,
    whose learning rate is inside its momentum): its update is the rule's terms at step scale 1
    (`functional_optim.rules.materialize`), which the parameters receive whole, so the fused
    step applies the terms with step scale 1 (``learning_rate`` `UNIT_STEP`)."""
    rule, path = flat[-1]
    assert isinstance(rule.role, Rule)
    return FusedPlan(tuple(flat[:-1]), rule.role, path, UNIT_STEP, None)


def _is_proximal(rest: list[tuple[GradientTransformation, Path]], learning_rate: Any) -> bool:
    """``rest`` ends in ``L2Regularization(wd), ProximalDecay(lr, wd)`` with the learning rate's
    ``lr``, all Python numbers (a schedule or tensor is not fused)."""
    if len(rest) < 2:
        return False
    l2, prox = rest[-2][0].role, rest[-1][0].role
    if not isinstance(l2, L2Regularization) or not isinstance(prox, ProximalDecay):
        return False
    values = (l2.weight_decay, prox.weight_decay, prox.learning_rate, learning_rate)
    if not all(isinstance(v, float | int) and not isinstance(v, bool) for v in values):
        return False
    return l2.weight_decay == prox.weight_decay and prox.learning_rate == learning_rate


def concrete(value: Any) -> float | None:
    """A hyperparameter as a Python float if it is one (or a concrete 1-element tensor), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float | int):
        return float(value)
    if isinstance(value, Tensor) and value.numel() == 1 and not ops.is_traced(value):
        return value.item()
    return None


def get_path(state: Any, path: Path) -> Any:
    for i in path:
        state = state[i]
    return state


def set_path(state: Any, path: Path, value: Any) -> Any:
    """A copy of the nested tuple ``state`` with the entry at ``path`` replaced."""
    if not path:
        return value
    head, tail = path[0], path[1:]
    items = list(state)
    items[head] = set_path(state[head], tail, value)
    return tuple(items)


class Prepared(NamedTuple):
    """The result of `prepare`: the rule's input updates, the new state so far and, for a rule
    with group values, what its `Rule.begin` returned."""

    updates: list[Tensor]
    state: Any
    begun: Begun | None = None


def prepare(
    fused: FusedPlan, grads: list[Tensor], state: Any, params: list[Tensor], extra: dict[str, Any]
) -> Prepared:
    """Phase 1: run the ``pre`` transforms purely, then the rule's `Rule.begin` (nothing
    given is written)."""
    updates: Any = grads
    for transform, path in fused.pre:
        updates, new = transform.update(updates, get_path(state, path), params, **extra)
        state = set_path(state, path, new)
    rule = fused.rule
    if rule is None or rule.begin is None:
        return Prepared(list(updates), state)
    updates = list(updates)
    rule_state = get_path(state, fused.rule_path)
    begun = rule.begin(rule_state, updates, rule.fields(rule_state), params if rule.needs_params else None)
    return Prepared(updates, state, begun)


_CHUNK_BYTES = 1 << 20
"""Parameter bytes per chunk of a CPU commit (see `commit`)."""

_IN_PLACE_CHUNK_BYTES = 4 << 20
"""Parameter bytes per chunk of a rule whose ops all write in place (`Rule.temporaries` false)
and that is not replayed (`_budget`): no temporaries to keep in the cache, so fewer, larger
chunks (the 1M set of 100 tensors of 10,000 floats is one pass); a step over more than the cache
still goes chunk by chunk (SGD's momentum on 32 tensors of 512 x 512, before replay: one pass
1.12-1.14x torch's for-loop, 4 MB chunks 0.94-1.07x)."""


_REPLAYED_IN_PLACE_CHUNK_BYTES = sys.maxsize
"""Parameter bytes per chunk of a replayable rule whose ops all write in place (`_budget`): one
pass, apart from its tensors of ``_CHUNK_BYTES`` or more, which `_replay_plan` steps alone and
replays. On 80 x 50k and 40 x 100k one pass of SGD's momentum and ASGD measured 1.06-1.10x faster
than 4 MB chunks, 100 x 10k and 32 x 512² the same (one process, interleaved, a torch step between
turns: ``python benchmarks/constant_ab.py SGD --shape 50000 --count 80 --set
_REPLAYED_IN_PLACE_CHUNK_BYTES=4194304``); before replay, one pass over 32 tensors of 1 MB, none
alone, measured 1.07x slower for SGD."""


def _budget(rule: Rule) -> int | None:
    """The chunk budget of ``rule``'s CPU commit (``None``: ``_CHUNK_BYTES``, for a rule with
    temporaries; ``_REPLAYED_IN_PLACE_CHUNK_BYTES`` or ``_IN_PLACE_CHUNK_BYTES`` for one whose ops
    all write in place, replayed or not)."""
    if rule.temporaries:
        return None
    replayed = rule.replayable and rule.begin is None
    return _REPLAYED_IN_PLACE_CHUNK_BYTES if replayed else _IN_PLACE_CHUNK_BYTES


def chunks(params: list[Tensor], budget: int | None = None) -> list[slice]:
    """Consecutive runs of ``params`` that each close once they hold ``_CHUNK_BYTES`` (a tensor of
    that size or more is a run of its own): CPU tensors outside ``torch.compile`` only; otherwise
    one run. (`commit` runs a rule chunk by chunk; a rule's `Rule.begin` may walk its temporaries
    chunk by chunk too.) There are never more runs than tensors, so a step never costs more
    calls than ``torch.optim``'s for-loop, which works one tensor at a time."""
    whole = [slice(0, len(params))]
    if len(params) < 2 or params[0].device.type != "cpu" or torch.compiler.is_compiling():
        return whole
    budget = _CHUNK_BYTES if budget is None else budget
    ends = list(itertools.accumulate(map(_NBYTES, params)))  # C-level: this runs every step
    if ends[-1] <= budget:
        return whole
    out, start, base = [], 0, 0
    while start < len(params):
        # the first tensor that brings the chunk to the budget closes it
        stop = min(bisect.bisect_left(ends, base + budget, lo=start) + 1, len(params))
        out.append(slice(start, stop))
        start, base = stop, ends[stop - 1]
    return out


_NBYTES = operator.attrgetter("nbytes")

_ALONE_BYTES = 64 << 10
"""A replayable rule with temporaries (`Rule.temporaries`): its tensors of this size or more are
chunks of their own when at least `functional_optim._replay.MIN_SHARED` of them share a signature
(those chunks are replayed: the rule's Python does not run per chunk, and one tensor's buffers and
temporaries stay in the cache for all of its ops). Below it the calls per chunk cost more than the
cache gains. Stepping such tensors alone, against their 1 MB chunks, measured (1 thread, 2-core
Xeon, ``python benchmarks/constant_ab.py <algo> --shape <n> --count <k> --set _ALONE_BYTES=...``):
1.07-1.19x as slow for tensors of 40 KB, 1.01-1.14x for 48 KB, 0.92-0.99x for 64 KB (RMSprop,
whose Python is light, 1.08x), 0.91-0.93x for 100 KB and 0.89x for 200 KB (Adagrad). A rule whose
ops all write in place streams its buffers with or without the cache: its tensors alone measured
slower (SGD's momentum and ASGD on 80 x 50,000: 0.92x and 0.87x as fast), so only its tensors of
``_CHUNK_BYTES`` or more are alone."""


def _split_out(parts: list[slice], alone: list[bool]) -> list[slice]:
    """``parts`` with every tensor marked ``alone`` in a chunk of its own (the others keep their
    chunks, cut where an alone tensor was)."""
    out: list[slice] = []
    for part in parts:
        if part.stop - part.start == 1 or not any(alone[part]):
            out.append(part)
            continue
        start = part.start
        for i in range(part.start, part.stop):
            if alone[i]:
                if start < i:
                    out.append(slice(start, i))
                out.append(slice(i, i + 1))
                start = i + 1
        if start < part.stop:
            out.append(slice(start, part.stop))
    return out


class _ReplayPlan(NamedTuple):
    """The chunks of a replayable rule's commit and, per chunk, the index of its tensor among the
    ones `replays` knows (``None``: the rule steps the chunk)."""

    parts: list[slice]
    slots: list[int | None]
    replays: _replay.Replays | None


def _replay_plan(
    fused: FusedPlan,
    rule: Rule,
    parts: list[slice],
    updates: list[Tensor],
    fields: list[list[Any]],
    params: list[Tensor],
    step_scale: float,
    param_scale: float,
) -> _ReplayPlan:
    """The chunks of a replayable rule: every tensor of ``_CHUNK_BYTES`` or more, and for a rule
    with temporaries every one of ``_ALONE_BYTES`` or more whose signature
    `functional_optim._replay.MIN_SHARED` tensors share, in a chunk of its own, replayed
    (`functional_optim._replay`); in a block of plain, dense, real tensors (a chunk of several
    tensors shares its rule's Python among them already)."""
    if len(params) < 2 or params[0].device.type != "cpu" or torch.compiler.is_compiling():
        return _ReplayPlan(parts, [None] * len(parts), None)  # (`chunks`: one run there)
    sizes = list(map(_NBYTES, params))
    least = _ALONE_BYTES if rule.temporaries else _CHUNK_BYTES
    candidates = [i for i, size in enumerate(sizes) if size >= least]
    if not (
        len(candidates) >= _replay.MIN_SHARED and ops.verified_real() and _replay.Replays.applies(fields)
    ):
        parts = _split_out(parts, [size >= _CHUNK_BYTES for size in sizes])
        return _ReplayPlan(parts, [None] * len(parts), None)
    replays = _replay.Replays(
        [params[i] for i in candidates],
        [updates[i] for i in candidates],
        [[f[i] for i in candidates] for f in fields],
        _replay.store(rule),
        (step_scale, param_scale, fused.proximal_decay),
    )
    slot_of: dict[int, int] = {}
    alone = [size >= _CHUNK_BYTES for size in sizes]
    for k, i in enumerate(candidates):
        if replays.shared(k):
            slot_of[i] = k
            alone[i] = True
    parts = _split_out(parts, alone)
    slots = [slot_of.get(part.start) if part.stop - part.start == 1 else None for part in parts]
    return _ReplayPlan(parts, slots, replays)


class Committed(NamedTuple):
    """The result of `commit`.

    Attributes:
      state: the new state.
      fields_checked: the rule's new state fields are plain, dense, real tensors, known from
        `ops.verified_dense`'s check of the step (`ops.verified_real`): a next step that reuses
        the very same tensors may give ``fields_checked=True`` to `commit`.
    """

    state: Any
    fields_checked: bool


def commit(
    fused: FusedPlan,
    prepared: Prepared,
    params: Sequence[Tensor],
    step_scale: float,
    param_scale: float,
    *,
    fields_checked: bool = False,
) -> Committed:
    """Phase 2: the rule's step with its state updated in place, then
    ``p ← param_scale · p + terms(step_scale)`` in place (then ``p ← p / (1 - step_scale·wd)``
    for a proximal decay ``wd``). Returns the new state and whether its rule fields are checked.

    ``fields_checked``: the rule's state fields are tensors a previous commit returned as checked
    (`Committed.fields_checked`), the same objects (the adapters' step cache ensures it): the
    parameters and updates are checked, the fields are not looked at again.

    On the CPU the parameters are committed in consecutive chunks (`chunks`, `_budget`: about 1 MB
    for a rule that allocates temporaries, `Rule.temporaries`; for one whose ops all write in place,
    one pass if it is replayable, else 4 MB): a rule works per tensor, so the numbers are the same,
    but each chunk's buffers and temporaries stay in the cache for all of the rule's ops, and a
    chunk's temporaries are freed while the step goes on, so the next chunk reuses their memory
    instead of taking fresh pages from the system (measured on 100 tensors of 10,000 floats, 1
    thread: AdaBelief's step 2.1x, Adan's 1.9x and Lion's 1.6x faster than one chunk). The rule's
    state fields are sliced once per chunk and its new fields gathered into one list per field: the
    state is packed into the rule's state type once per step, not per chunk. A replayable rule
    (`Rule.replayable`) runs once per kind of chunk of one tensor; its recorded calls are replayed
    on the other chunks of that kind (`functional_optim._replay`); its tensors of 1 MB or more are
    chunks of their own, and so are those of 64 KB or more of a rule with temporaries when enough
    share a kind (`_replay_plan`).
    """
    params = list(params)
    state, rule, updates = prepared.state, fused.rule, prepared.updates
    if rule is None:  # p.add_(u, alpha=-lr): nothing to keep in the cache between ops
        with ops.verified_dense(params, updates):
            _apply(fused, params, [Term(updates, None, unscaled)], step_scale, param_scale)
        return Committed(state, False)
    parts = chunks(params, _budget(rule))
    fields = rule.fields(get_path(state, fused.rule_path))
    begun = prepared.begun
    context = None if begun is None else begun.context
    # fields a previous commit checked (the same tensors) are not looked at again
    checked = (params, updates) if fields_checked else (params, updates, *fields)
    with ops.verified_dense(*checked):
        new_fields, settled = _chunked_rule_step(
            fused, rule, parts, updates, fields, params, step_scale, param_scale, context
        )
        # the new fields are the checked ones (updated in place) or made from them by ops
        now_checked = ops.verified_real()
    begun = settled if settled is not None else begun
    new_state = rule.state(new_fields) if begun is None else rule.state(new_fields, begun.group)
    return Committed(set_path(state, fused.rule_path, new_state), now_checked)


def _chunked_rule_step(
    fused: FusedPlan,
    rule: Rule,
    parts: list[slice],
    updates: list[Tensor],
    fields: list[Any],
    params: list[Tensor],
    step_scale: float,
    param_scale: float,
    context: Any,
) -> tuple[list[Any], Begun | None]:
    """`_rule_step` on each chunk in turn; returns the new fields, one list each. A rule in two
    passes (`Rule.settle`): its first pass on every chunk (the state in place, the sums kept),
    ``settle`` on the sums of every tensor, then its second pass on every chunk (the terms
    applied); then also returns what ``settle`` returned."""
    plan = _ReplayPlan(parts, [None] * len(parts), None)
    if rule.settle is None and rule.replayable and rule.begin is None:
        plan = _replay_plan(fused, rule, parts, updates, fields, params, step_scale, param_scale)
    if rule.settle is None and len(plan.parts) == 1 and plan.replays is None:
        return _rule_step(fused, rule, updates, fields, params, step_scale, param_scale, context), None
    fields = [list(f) for f in fields]
    new_fields: list[list[Any]] = [[] for _ in fields]
    if rule.settle is None:
        replays = plan.replays
        for part, slot in zip(plan.parts, plan.slots, strict=True):
            out = replays.replay(slot) if replays is not None and slot is not None else None
            if out is None:

                def step(part: slice = part) -> list[list[Any]]:
                    chunk_fields = [f[part] for f in fields]
                    return _rule_step(
                        fused,
                        rule,
                        updates[part],
                        chunk_fields,
                        params[part],
                        step_scale,
                        param_scale,
                        context,
                    )

                out = replays.step(slot, step) if replays is not None and slot is not None else step()
            for acc, f in zip(new_fields, out, strict=True):
                acc.extend(f)
        return new_fields, None
    assert rule.move is not None
    firsts = [
        run(rule, updates[p], [f[p] for f in fields], params[p], in_place=True, context=context)
        for p in parts
    ]
    sums: list[list[Tensor]] = [[] for _ in firsts[0].sums or ()]
    for first in firsts:
        assert first.sums is not None
        for acc, values in zip(sums, first.sums, strict=True):
            acc.extend(values)
    settled = rule.settle(context, sums)
    for part, first in zip(parts, firsts, strict=True):
        result = rule.move(updates[part], first.fields, params[part], in_place=True, context=settled.context)
        _apply(fused, params[part], step_terms(result), step_scale, param_scale)
        for acc, f in zip(new_fields, result.fields, strict=True):
            acc.extend(f)
    return new_fields, settled


def _rule_step(
    fused: FusedPlan,
    rule: Rule,
    updates: list[Tensor],
    fields: list[Any],
    params: list[Tensor],
    step_scale: float,
    param_scale: float,
    context: Any,
) -> list[list[Any]]:
    """The rule's step on ``params`` (its fields updated in place), then its terms applied;
    returns the new fields. ``context``: `Rule.begin`'s, for a rule with group values."""
    result = run(rule, updates, fields, params, in_place=True, context=context)
    _apply(fused, params, step_terms(result), step_scale, param_scale)
    return result.fields


def _apply(
    fused: FusedPlan, params: list[Tensor], terms: Sequence[Any], step_scale: float, param_scale: float
) -> None:
    """``p ← param_scale · p``, then the terms, then the proximal decay, in place."""
    if param_scale != 1:
        ops.mul_(ops.view_as_real(params), param_scale)  # torch.optim's p.mul_(1 - lr * wd)
    new_params = apply_terms(params, terms, step_scale)
    if fused.proximal_decay is not None:  # the authors' Adan: p.div_(1 + lr * wd)
        ops.div_(new_params, 1 - step_scale * fused.proximal_decay)
