"""[`fo.compile_step`][functional_optim.compile_step]'s elementwise mode for a rule in two passes.

A rule with `Rule.settle` (Prodigy, D-Adaptation) needs sums over every tensor between its two
passes: the estimate ``d`` needs ``‖s‖₁`` of the new ``s``, and the step needs the new ``d``.
Each pass on its own works per tensor, so each is compiled as the elementwise mode compiles a
step: the tensors flattened to 1-D views (a tensor is never split), grouped by dtype and device,
``group_size`` at a time through one function with dynamic sizes. One step:

1. `Rule.begin`, eagerly (nothing written): the numbers of the first pass;
2. the first pass (``rule.step``), compiled, chunk by chunk: the state fields written in place,
   each tensor's sums returned;
3. ``rule.settle``, eagerly, on the sums of every tensor in parameter order: the numbers of
   the second pass and the group's new values (its ``d``, counters);
4. the second pass (``rule.move``), compiled, chunk by chunk: the rule's terms applied to the
   parameters in place;
5. the per-parameter step counters and the group values written.

The numbers the passes read (`functional_optim.rules.PassContext.values`) change at every step;
they are inputs of the compiled code, 0-dim float64 tensors written before each pass, so a step
compiles once per layout. The maths is the rule's own ``step``, ``settle`` and ``move``, the
functions the pure update and the adapters' eager step run.

It applies to a transform whose roles are exactly such a rule, one that includes the learning
rate (``fo.prodigy``, ``fo.dadapt_adam``; `applies`). A parameter that is not a 1-D view of at
least 2 elements with per-parameter state entries of its size (or 0-dim counters), such as a
1-element bias, runs both passes eagerly beside the chunks, its sums counted with theirs; where no
parameter is such a view (Prodigy's ``slice_p > 1``), `compile_step` compiles the whole step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _flat, _layout, fused, ops, rules, tree
from functional_optim.core import GradientTransformation, Params, State
from functional_optim.rules import PassContext, Rule

__all__ = ["TwoPassPlan", "applies", "make_plan", "run"]

MakeVariant = Callable[[tuple, Callable[..., Any], Any, Any], Any]
"""``(key, pass function, what it computes with, state structure) -> compiled pass``
(`functional_optim.compiled.CompiledStep`'s dynamic variants)."""


def two_pass_plan(transform: GradientTransformation) -> fused.FusedPlan | None:
    """The fused plan of ``transform`` if it is exactly a rule in two passes that includes the
    learning rate (nothing before it, no decay after it), else ``None``."""
    plan = fused.plan(transform)
    if plan is None or plan.rule is None or plan.rule.settle is None or plan.rule.move is None:
        return None
    if plan.pre or plan.learning_rate != fused.UNIT_STEP or plan.weight_decay is not None:
        return None
    return plan if plan.proximal_decay is None else None


def applies(transform: GradientTransformation) -> bool:
    """Whether ``transform`` is a rule in two passes (see `two_pass_plan`)."""
    return two_pass_plan(transform) is not None


class _Chunk(NamedTuple):
    layout: tuple  # dtypes, device, field kinds and size: the compiled passes' key
    params: list[Tensor]  # 1-D views, padded to the chunk size
    columns: list[list[Tensor]]  # per field: the 1-D views (0-dim counters as they are), padded
    grad_index: list[int]  # the gradient leaves it steps
    order: list[int]  # their positions among the leaves with a gradient
    pad_grads: list[Tensor]
    counters: tuple[int, ...]  # the fields whose entries are 0-dim (the passes return them)


class TwoPassPlan(NamedTuple):
    """A rule in two passes over one layout of parameters, state and gradients."""

    plan: fused.FusedPlan
    rule: Rule
    chunks: list[_Chunk]
    present: list[int]  # the leaves with a gradient
    params: list[Tensor]  # those leaves' parameters
    fields: list[list[Any]]  # per field: their state entries
    rest: list[int]  # the leaves with a gradient that no chunk takes (eager passes)
    rest_order: list[int]  # their positions among the leaves with a gradient
    values: tuple[dict[str, Tensor], dict[str, Tensor]]  # each pass's numbers, its inputs
    make_variant: MakeVariant
    cache: dict[Any, Any]  # gradient views and the chunks' bound passes, once made


def make_plan(
    transform: GradientTransformation,
    params: Params,
    grad_leaves: list[Any],
    state: State,
    group_size: int,
    make_variant: MakeVariant,
) -> TwoPassPlan | None:
    """The chunks of a rule in two passes. A parameter with a gradient that is not a 1-D view
    of at least 2 elements with state entries of its size (or 0-dim) runs both passes eagerly,
    in turn with the chunks (its sums count as the others'). ``None`` (the caller compiles the
    whole step) where no parameter is such a view. Gradients, parameters and state that do not
    fit each other raise the pure update's errors here, before anything is written."""
    plan = two_pass_plan(transform)
    assert plan is not None and plan.rule is not None
    rule = plan.rule
    param_leaves, spec = tree.flatten(params)
    rule_state = fused.get_path(state, plan.rule_path)
    field_leaves = [tree.flatten_like(spec, f, f"{rule.name}: state") for f in rule.fields(rule_state)]
    # the pure update's checks, with its messages, before anything is written
    checked_fields = field_leaves if rule.elementwise_state else []
    _layout.check_leaves(rule.name, spec, grad_leaves, param_leaves, checked_fields, rule.sparse)
    present = [i for i, g in enumerate(grad_leaves) if g is not None]
    groups: dict[tuple, list[tuple[int, Tensor, list[Tensor]]]] = {}
    rest: list[int] = []
    for i in present:
        p, g = param_leaves[i], grad_leaves[i]
        p_view = _flat.flat_view(p)
        views = [_flat.field_view(f[i], p) for f in field_leaves]
        checked = [v for v in views if v is not None]
        if p_view is None or len(checked) != len(views):  # (shapes and dtypes: checked above)
            rest.append(i)
            continue
        key = (p.device, g.dtype, p.dtype, *((v.dtype, v.dim()) for v in checked))
        groups.setdefault(key, []).append((i, p_view, checked))
    position = {i: n for n, i in enumerate(present)}
    chunks = []
    for key, members in groups.items():
        k = min(group_size, len(members))
        counters = tuple(j for j, (_, n) in enumerate(key[3:]) if n == 0)
        for padded in _flat.padded_chunks(key, members, k):
            order = [position[i] for i in padded.leaves]
            chunks.append(
                _Chunk(
                    (key, k), padded.params, padded.columns, padded.leaves, order, padded.pad_grads, counters
                )
            )
    if rest and not chunks:
        return None  # nothing to compile pass by pass
    return TwoPassPlan(
        plan,
        rule,
        chunks,
        present,
        [param_leaves[i] for i in present],
        [[f[i] for i in present] for f in field_leaves],
        rest,
        [position[i] for i in rest],
        ({}, {}),
        make_variant,
        {},
    )


def _write_fields(columns: list[list[Tensor]], new: list[list[Any]], counters: tuple[int, ...]) -> None:
    """Write the new per-element fields into the chunk's views (in the compiled pass; Inductor
    turns each copy into the store of the kernel that computes it)."""
    for j, (olds, news) in enumerate(zip(columns, new, strict=True)):
        if j not in counters:
            _flat.write_back(olds, news)


def _new_counters(
    columns: list[list[Tensor]], new: list[list[Any]], counters: tuple[int, ...]
) -> list[Tensor]:
    """The new 0-dim counters, returned to be written eagerly (Inductor (torch 2.13) drops a
    ``copy_`` into a 0-dim float64 input)."""
    return [n if n is not o else o.clone() for j in counters for o, n in zip(columns[j], new[j], strict=True)]


def _first_pass(rule: Rule, counters: tuple[int, ...]) -> Callable[..., list[Tensor]]:
    """``rule.step`` on a chunk: its fields written, its sums returned (kind by kind). The
    first pass of a rule in two passes leaves its 0-dim fields (counters) as they are: ``move``
    advances them (`functional_optim.rules.Rule.settle`)."""

    def first_pass(params: list[Tensor], grads: list[Tensor], state: Any) -> list[Tensor]:
        columns, values = state
        result = rules.run(rule, grads, columns, params, in_place=False, context=PassContext(values))
        assert result.sums is not None
        for j in counters:
            if any(n is not o for o, n in zip(columns[j], result.fields[j], strict=True)):
                raise ValueError(
                    f"compile_step: the first pass of {rule.name} changed a 0-dim state field; "
                    "a rule in two passes advances its counters in its second pass (move)"
                )
        _write_fields(columns, result.fields, counters)
        return [x for kind in result.sums for x in kind]

    return first_pass


def _second_pass(rule: Rule, counters: tuple[int, ...]) -> Callable[..., list[Tensor]]:
    """``rule.move`` on a chunk: its terms applied to the parameters (step scale 1: the rule
    includes the learning rate), its fields written, its new counters returned."""
    move = rule.move
    assert move is not None

    def second_pass(params: list[Tensor], grads: list[Tensor], state: Any) -> list[Tensor]:
        columns, values = state
        result = move(grads, columns, params, in_place=False, context=PassContext(values))
        _flat.write_back(params, rules.apply_terms(ops.clone(params), rules.step_terms(result), 1.0))
        _write_fields(columns, result.fields, counters)
        return _new_counters(columns, result.fields, counters)

    return second_pass


def _set_values(buffers: dict[str, Tensor], context: Any, which: str) -> None:
    """Write a `PassContext`'s values into the pass's 0-dim float64 inputs (made on first use)."""
    if not isinstance(context, PassContext):
        raise TypeError(
            f"compile_step: {which} of a rule in two passes must return a PassContext, "
            f"got {type(context).__name__}"
        )
    values = context.values
    if not buffers:
        buffers.update((name, torch.zeros((), dtype=torch.float64)) for name in values)
    if buffers.keys() != values.keys():
        raise ValueError(
            f"compile_step: {which} gave the values {sorted(values)}; "
            f"its compiled pass reads {sorted(buffers)}"
        )
    for name, value in values.items():
        target = buffers[name]
        if isinstance(value, Tensor):
            target.copy_(value)
        else:
            target.fill_(value)


_PASSES = {1: _first_pass, 2: _second_pass}


def _run_pass(plan: TwoPassPlan, which: int, grads: list[list[Tensor]]) -> list[list[Tensor]]:
    """One pass over every chunk (compiled on its first call); returns each chunk's outputs."""
    values = plan.values[which - 1]
    outs = []
    for chunk, chunk_grads_ in zip(plan.chunks, grads, strict=True):
        bound = plan.cache.get((id(chunk), which))
        if bound is not None:
            outs.append(bound(chunk_grads_))
            continue
        state = (chunk.columns, values)
        leaves = tree.leaves(state)
        key = ("two-pass", which, chunk.layout, tuple(values))
        pass_fn = _PASSES[which](plan.rule, chunk.counters)
        fn = plan.make_variant(key, pass_fn, (plan.rule.step, plan.rule.move), tree.structure(state))
        outs.append(fn(chunk.params, chunk_grads_, state, leaves))
        plan.cache[id(chunk), which] = fn.bind(chunk.params, chunk_grads_, leaves) or _Call(
            fn, chunk.params, state, leaves
        )
    return outs


class _Call(NamedTuple):
    """A compiled pass with the chunk's fixed inputs (where it is not a loaded step module)."""

    fn: Any
    params: list[Tensor]
    state: Any
    leaves: list[Any]

    def __call__(self, grads: list[Tensor]) -> Any:
        return self.fn(self.params, grads, self.state, self.leaves)


def _write_counters(plan: TwoPassPlan, outs: list[list[Tensor]]) -> None:
    """Write the new 0-dim counters the chunks' second pass returned."""
    olds: list[Tensor] = []
    news: list[Tensor] = []
    for chunk, out in zip(plan.chunks, outs, strict=True):
        n, k = len(chunk.grad_index), len(chunk.params)
        for c, j in enumerate(chunk.counters):
            at = c * k
            olds.extend(chunk.columns[j][:n])
            news.extend(out[at : at + n])
    if olds:
        _flat.write_back_eager(olds, news)


def _ordered_sums(
    plan: TwoPassPlan, outs: list[list[Tensor]], rest: list[list[Tensor]] | None
) -> list[list[Tensor]]:
    """The first pass's sums, kind by kind, in the order of the leaves with a gradient (the
    chunks' outputs, and ``rest``: the eager pass's sums)."""
    kinds = len(rest) if rest is not None else len(outs[0]) // len(plan.chunks[0].params)
    sums: list[list[Any]] = [[None] * len(plan.present) for _ in range(kinds)]
    for chunk, out in zip(plan.chunks, outs, strict=True):
        k = len(chunk.params)
        for kind, ordered in enumerate(sums):
            for t, position in enumerate(chunk.order):
                ordered[position] = out[kind * k + t]
    for ordered, values in zip(sums, rest or (), strict=False):  # no rest: no values
        for position, value in zip(plan.rest_order, values, strict=True):
            ordered[position] = value
    return sums


def _rest_first(plan: TwoPassPlan, grads: list[Tensor], context: Any) -> list[list[Tensor]] | None:
    """The first pass on the leaves no chunk takes, eagerly (``None``: there are none); returns
    its sums."""
    if not plan.rest:
        return None
    fields = [[f[j] for j in plan.rest_order] for f in plan.fields]
    params = [plan.params[j] for j in plan.rest_order]
    result = rules.run(plan.rule, grads, fields, params, in_place=False, context=context)
    for olds, news in zip(fields, result.fields, strict=True):
        _flat.write_back_eager(olds, news)
    assert result.sums is not None
    return result.sums


def _rest_second(plan: TwoPassPlan, grads: list[Tensor], context: Any) -> None:
    """The second pass on the leaves no chunk takes, eagerly."""
    if not plan.rest:
        return
    move = plan.rule.move
    assert move is not None
    fields = [[f[j] for j in plan.rest_order] for f in plan.fields]
    params = [plan.params[j] for j in plan.rest_order]
    result = move(grads, fields, params, in_place=False, context=context)
    _flat.write_back_eager(params, rules.apply_terms(ops.clone(params), rules.step_terms(result), 1.0))
    for olds, news in zip(fields, result.fields, strict=True):
        _flat.write_back_eager(olds, news)


def run(
    transform: GradientTransformation,
    plan: TwoPassPlan,
    params: Params,
    grads: Any,
    grad_leaves: list[Any],
    state: State,
) -> None:
    """One step of the rule in two passes (see the module docstring), in place."""
    rule = plan.rule
    if not plan.present:  # no gradient at all: the pure update advances the group values
        _, new_state = transform.update(grads, state, params)
        _flat.write_back_eager(tree.leaves(state), tree.leaves(new_state))
        return
    assert rule.begin is not None and rule.settle is not None
    rule_state = fused.get_path(state, plan.plan.rule_path)
    present = [grad_leaves[i] for i in plan.present]
    begun = rule.begin(rule_state, present, plan.fields, plan.params if rule.needs_params else None)
    _set_values(plan.values[0], begun.context, "begin")
    grads_by_chunk = _flat.chunk_grads(plan.cache, plan.chunks, grad_leaves)
    rest_grads = [grad_leaves[i] for i in plan.rest]
    outs = _run_pass(plan, 1, grads_by_chunk)
    sums = _ordered_sums(plan, outs, _rest_first(plan, rest_grads, begun.context))
    settled = rule.settle(begun.context, sums)
    _set_values(plan.values[1], settled.context, "settle")
    _write_counters(plan, _run_pass(plan, 2, grads_by_chunk))
    _rest_second(plan, rest_grads, settled.context)
    _write_group(rule, rule_state, settled.group)


def _write_group(rule: Rule, rule_state: Any, group: Any) -> None:
    """Write the rule's new group values into its state's tensors (the entries of the state that
    changed: the per-parameter fields are the same objects)."""
    new = rule.state(rule.fields(rule_state), group)
    if type(new) is not type(rule_state) or not isinstance(new, tuple):
        _flat.write_back_eager(tree.leaves(rule_state), tree.leaves(new))
        return
    olds: list[Any] = []
    news: list[Any] = []
    for old, entry in zip(rule_state, new, strict=True):
        if old is not entry:
            olds.extend(tree.leaves(old))
            news.extend(tree.leaves(entry))
    _flat.write_back_eager(olds, news)
