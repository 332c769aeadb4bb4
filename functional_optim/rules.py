"""Explicit update rules: an algorithm's per-step maths, written once.

A `Rule` is the whole step of an algorithm's core (Adam's moments, RMSprop's averages,
ASGD's descent and average...) as one function::

    rule.step(grads, fields, params, in_place=...) -> RuleStep(new_fields, terms)

over flat lists of tensors: the gradients, the per-parameter state fields the rule reads (in the
order of `Rule.fields`), and the parameters (when the rule needs them). It returns the new
state fields and the update described as `Term` s, e.g. Adam's update is the single term
``(m, √v̂ + ε)`` with coefficient ``s / (1 - β₁ᵗ)``: applied with a step scale ``s`` it moves the
parameters by ``s · m / ((√v̂ + ε) · (1 - β₁ᵗ))``.

Two callers derive everything else from that one function, so they cannot disagree:

* the pure ``update`` of the transform (`rule_transform`) calls it with ``in_place=False``
  (every new state field is a new tensor) and turns the terms into the update tensor
  (`materialize`);
* the adapters' fused step (`fo.fused`) calls it with ``in_place=True`` on
  state buffers it owns (the same kernels write into them, as ``torch.optim`` does) and applies
  the terms to the parameters in place with ``torch.optim``'s kernels (``p.addcdiv_(m, denom,
  value=-lr / bc1)``), never materialising the update.

``in_place`` only changes *where* the state ops write (``ops.lerp(m, g, w, in_place=in_place)``),
never what they compute. A rule validates its inputs (e.g. sparse gradients) before its first
write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from functional_optim import _layout, ops
from functional_optim._leafwise import state_field_names, update_leaves
from functional_optim.core import GradientTransformation, InitFn, Params, Role, State, Updates

__all__ = [
    "After",
    "Begun",
    "Lerp",
    "PassContext",
    "Rule",
    "RuleStep",
    "Term",
    "TorchKernel",
    "divided",
    "materialize",
    "rule_transform",
    "run",
    "step_terms",
    "unscaled",
]


class Term(NamedTuple):
    """One term of a parameter update applied with step scale ``s`` (``-lr`` for descent).

    * ``num`` and ``den`` given: ``p ← p + coefficient(s) · num / den``;
    * ``den`` is ``None``: ``p ← p + coefficient(s) · num``;
    * both ``None``: ``p ← coefficient(s) · p`` (a decay of the parameters, e.g. ASGD's
      ``1 - λη``, applied before the terms that follow it).

    ``coefficient(s)`` returns a scalar or one scalar per tensor, computed the way
    ``torch.optim`` computes its step sizes (e.g. ``s / bc1``); it must be affine in ``s``
    (``a + b·s`` with ``a = 1`` for a decay term and ``a = 0`` otherwise). ``num``/``den`` are
    lists of real tensors matching the parameters (complex parameters are seen as real views).
    """

    num: list[Tensor] | None
    den: list[Tensor] | None
    coefficient: Callable[[Any], Any]


class After(NamedTuple):
    """A callback run with the updated parameters (real views) once the terms before it are
    applied (e.g. ASGD's average of the new parameters); it stores its results itself, in the
    state lists the rule returned."""

    fn: Callable[[list[Tensor]], None]


class Lerp(NamedTuple):
    """A move of the parameters toward ``end``: ``p ← lerp(p, end, weight)`` (``p.lerp_(end,
    weight)``), applied where it appears among the terms. Its weight does not scale with the step
    scale: it is meant for rules that include the learning rate (`Rule.includes_learning_rate`,
    e.g. Schedule-Free's ``y.lerp_(z, c)``). ``end`` holds real tensors matching the parameters
    (real views for complex ones); ``weight`` is a Python number or a 0-dim tensor."""

    end: list[Tensor]
    weight: Any


class Begun(NamedTuple):
    """What `Rule.begin` returns: once per step, before any per-parameter maths.

    Attributes:
      context: what `Rule.step` reads (e.g. Schedule-Free's interpolation weight and step
        sizes), passed to it as ``context=``.
      group: the rule's new group values (counters, running scalars), given back to
        `Rule.state` with the new per-parameter fields.
    """

    context: Any
    group: Any


class PassContext(NamedTuple):
    """The context of a rule in two passes (`Rule.settle`), as its `Rule.begin` and ``settle``
    return it.

    Attributes:
      values: the numbers its passes (``step`` and ``move``) read, by name: Python numbers or
        0-dim tensors. The passes compute with them and never branch on them:
        [`fo.compile_step`][functional_optim.compile_step] gives each to its compiled passes as
        a 0-dim float64 tensor input, written before every pass, so that a new value (the
        estimate ``d`` moves at every step) compiles nothing again.
      carry: what ``settle`` reads besides the sums (the state, the group's scalars); the passes
        do not read it.
    """

    values: dict[str, Any]
    carry: Any = None


class RuleStep(NamedTuple):
    """What `Rule.step` returns.

    Attributes:
      fields: the new per-parameter state fields (same order as the fields it was given).
      terms: the update as terms (`Term`, `Lerp`, `After`), or ``None`` when the update
        cannot be written as terms (then ``update`` holds it, e.g. Adagrad's sparse gradients).
      update: the update itself, when ``terms`` is ``None``.
      sums: the first pass of a rule with `Rule.settle`: per-tensor values (one list per kind,
        e.g. Prodigy's dot products and ``‖s‖₁``) that ``settle`` reduces.
    """

    fields: list[list[Any]]
    terms: Sequence[Term | Lerp | After] | None = None
    update: list[Tensor] | None = None
    sums: list[list[Tensor]] | None = None


class TorchKernel(NamedTuple):
    """``torch.optim``'s fused multi-tensor kernel for a rule's step, and its options.

    A rule that computes exactly the step of one of ``torch.optim``'s fused kernels
    (``torch._fused_adam_`` / ``_fused_adamw_``, ``torch._fused_sgd_``, ``torch._fused_adagrad_``)
    declares it with its current hyperparameters, e.g. ``TorchKernel("adam", {"beta1": 0.9,
    "beta2": 0.999, "eps": 1e-8, "amsgrad": False})``. [`fo.compile_step`][functional_optim.compile_step] then
    runs that kernel on a chain whose roles are exactly ``[L2 decay], rule, [decoupled decay],
    learning rate`` instead of compiling it (see `functional_optim._torch_kernels`).

    Attributes:
      name: ``"adam"``, ``"sgd"`` or ``"adagrad"``.
      options: the kernel's keyword arguments that come from the rule's hyperparameters.
    """

    name: str
    options: dict[str, Any]


class StepFn(Protocol):
    def __call__(
        self,
        grads: list[Tensor],
        fields: list[list[Any]],
        params: list[Tensor] | None,
        /,
        *,
        in_place: bool,
    ) -> RuleStep: ...


class GroupStepFn(Protocol):
    """The step of a rule with group values (`Rule.begin`): also given ``begin``'s context."""

    def __call__(
        self,
        grads: list[Tensor],
        fields: list[list[Any]],
        params: list[Tensor] | None,
        /,
        *,
        in_place: bool,
        context: Any,
    ) -> RuleStep: ...


@dataclass(frozen=True)
class Rule(Role):
    """An algorithm's per-step maths as one explicit object (and the role of its transform).

    Attributes:
      name: the transform's name (error messages), e.g. ``"scale_by_adam"``.
      step: the maths, see the module docstring.
      fields: ``state -> [per-parameter state trees]`` in the order ``step`` reads them.
      state: ``[per-parameter state trees] -> state``, the inverse of ``fields``.
      needs_params: ``step`` reads the parameters.
      state_type: the transform's state class: a state of another class is refused with the
        transform's name (``None``: not checked).
      sparse: ``True`` if ``step`` handles sparse gradients, else ``False`` or the message the
        refusal gives (``"RMSprop"`` → ``"RMSprop does not support sparse gradients"``).
      kernel: ``() -> TorchKernel | None``: the ``torch.optim`` fused kernel that computes this
        step with the current hyperparameters (``None`` when they are not concrete numbers).
      low_precision_state: the state fields of float32 parameters may be bfloat16
        (``state_dtype=torch.bfloat16``, `functional_optim._low_precision`).
      includes_learning_rate: the terms are the parameters' whole move, learning rate and sign
        included (LARS: the momentum of the ``-lr``-scaled steps, ``p ← p + b``): a chain that
        ends in this rule is fused with step scale 1 (`functional_optim.fused`).
      begin: ``(state, grads, fields, params) -> Begun`` for a rule with group values
        (Schedule-Free's step counter and weight sum, DoG's distance and gradient sum): run once
        per step on the whole group, before ``step``, which then runs per chunk of parameters
        with ``context=begun.context``; it may read the gradients, the per-parameter fields and
        the parameters (lists of the present leaves, as ``step`` gets them) but writes nothing.
        Such a rule's ``state`` takes ``(fields, begun.group)``. ``None``: a rule of
        per-parameter fields only.
      elementwise_state: every state field holds one value per element of its parameter
        (checked against it); ``False`` for fields of other shapes (Prodigy's sliced ``s``).
      settle: with ``move``, a rule in two passes, for group values that need sums over the
        state's update (Prodigy's and D-Adaptation's ``d`` needs ``‖s‖₁`` of the new ``s``, and
        their step needs the new ``d``): ``step`` is the first pass (the state updated, in place
        in the fused step, chunk by chunk, and ``RuleStep.sums`` returned, no terms);
        ``settle(begun.context, sums)`` (the sums of every tensor, in order) returns the second
        pass's context and the group values (both contexts are `PassContext` s);
        ``move(grads, fields, params, in_place=..., context=...)`` is the second pass (the
        terms; fields it advances: the step counters, which the first pass leaves as they are).
        The fused step writes in its first pass, so ``settle`` must not raise (library maths on
        the sums only).
      temporaries: the step allocates update-sized temporaries (Adam's denominator): the CPU
        commit then runs it in chunks of about 1 MB, so that they stay in the cache and are
        reused by the next chunk (`functional_optim.fused.commit`); a replayable one's tensors of
        64 KB or more are then replayed in chunks of their own when enough share a kind.
        ``False`` (SGD's momentum ``b ← μ·b + g``, ``p ← p - lr·b``: every op in place): one
        pass for a replayable rule (its tensors of 1 MB or more alone, replayed), else chunks of
        4 MB: fewer calls.
      replayable: ``step`` (with its terms applied) decides which torch calls it makes, and with
        which Python numbers, from its tensors' dtypes, the values of its 0-dim state fields
        (step counters) and its hyperparameters only (a query of a shape, a stride or
        ``requires_grad`` refuses the recording); it reads no other tensor value and keeps nothing between
        calls. The CPU commit then records
        the calls of the first chunk of each kind and replays them on the others
        (`functional_optim._replay`): the same calls, so the same numbers, without the rule's
        Python per chunk. Only for rules without group values (`begin`).
    """

    name: str
    step: StepFn | GroupStepFn
    fields: Callable[[Any], list[Any]]
    state: Callable[..., Any]
    needs_params: bool = False
    state_type: type | None = None
    sparse: bool | str = True
    kernel: Callable[[], TorchKernel | None] | None = None
    low_precision_state: bool = False
    includes_learning_rate: bool = False
    begin: Callable[[Any, list[Tensor], list[list[Any]], list[Tensor] | None], Begun] | None = None
    elementwise_state: bool = True
    settle: Callable[[Any, list[list[Tensor]]], Begun] | None = None
    move: GroupStepFn | None = None
    temporaries: bool = True
    replayable: bool = False


def run(
    rule: Rule,
    grads: list[Tensor],
    fields: list[list[Any]],
    params: list[Tensor] | None,
    *,
    in_place: bool,
    context: Any = None,
) -> RuleStep:
    """``rule.step`` on these lists (with `Rule.begin`'s ``context`` for a rule with group
    values)."""
    step: Any = rule.step
    if rule.begin is None:
        return step(grads, fields, params, in_place=in_place)
    return step(grads, fields, params, in_place=in_place, context=context)


def unscaled(step_scale: Any) -> Any:
    """The coefficient of a term applied with the step scale itself (``p.add_(u, alpha=-lr)``)."""
    return step_scale


def divided(divisors: Sequence[Any]) -> Callable[[Any], list[Any]]:
    """The coefficient ``step_scale / c`` per tensor (torch's ``-lr / bias_correction``)."""
    return lambda step_scale: [step_scale / c for c in divisors]


def _is_one(c: Any) -> bool:
    if isinstance(c, list | tuple):
        return all(isinstance(v, float | int) and v == 1 for v in c)
    return isinstance(c, float | int) and c == 1


def _simple(terms: Sequence[Term | Lerp | After]) -> bool:
    return all(isinstance(t, Term) and t.num is not None for t in terms)


def materialize(
    terms: Sequence[Term | Lerp | After], params: list[Tensor] | None, *, includes_learning_rate: bool = False
) -> list[Tensor]:
    """The update tensor (real views) that the terms describe: ``u`` with ``p + s·u`` equal to
    the terms applied with step scale ``s``.

    Additive terms give ``u = Σ coefficient(1) · num / den`` (new tensors; nothing given is
    written). Rules whose terms decay or move the parameters or read the new parameters
    (`After`, `Lerp`: ASGD, Schedule-Free) are evaluated on a copy of the parameters, in the
    terms' own op order: as a unit descent step, ``p' = terms(p, s=-1)``, ``u = p - p'`` (such a
    rule's update is meant for ``scale_by_learning_rate(1.0)``, as ASGD's alias uses it), or, for
    a rule that ``includes_learning_rate``, as its whole move, ``p' = terms(p, s=1)``,
    ``u = p' - p`` (then ``p + u`` is ``p'`` wherever ``p'`` is within a factor 2 of ``p``,
    where the difference is exact, and within an ulp of it elsewhere).
    """
    if _simple(terms):
        out: list[Tensor] | None = None
        owned = False  # ``out`` is a temporary made here (else it may be a state field: not written)
        for term in terms:
            assert isinstance(term, Term) and term.num is not None
            c = term.coefficient(1.0)
            if out is None:
                if term.den is None:
                    out, owned = (term.num, False) if _is_one(c) else (ops.mul(term.num, c), True)
                else:
                    out, owned = ops.div(term.num, term.den), True
                    if not _is_one(c):
                        out = ops.mul_(out, c)
            elif term.den is None:
                y = term.num if _is_one(c) else ops.mul(term.num, c)
                out, owned = (ops.add_(out, y) if owned else ops.add(out, y)), True
            else:
                out = (
                    ops.addcdiv_(out, term.num, term.den, c)
                    if owned
                    else ops.addcdiv(out, term.num, term.den, c)
                )
                owned = True
        if out is None:
            raise ValueError("materialize: a rule returned no terms")
        return out
    if params is None:
        raise ValueError("materialize: terms that decay or read the parameters need the parameters")
    if includes_learning_rate:
        return ops.sub(apply_terms(ops.clone(params), terms, 1.0), ops.view_as_real(params))
    new_p = apply_terms(ops.clone(params), terms, -1.0)
    return ops.sub(ops.view_as_real(params), new_p)


def step_terms(result: RuleStep) -> Sequence[Term | Lerp | After]:
    """A `RuleStep`'s terms (its update as one term when it has no terms)."""
    if result.terms is None:
        assert result.update is not None
        return [Term(result.update, None, unscaled)]
    return result.terms


def apply_terms(params: list[Tensor], terms: Sequence[Term | Lerp | After], step_scale: Any) -> list[Tensor]:
    """``p ← terms(p, step_scale)`` with ``torch.optim``'s kernels: ``mul_``, ``add_(num,
    alpha=c)`` or ``addcdiv_(num, den, c)``; `After` callbacks run where they appear (with
    the real views of the new parameters). Returns the new parameters (real views).

    The parameters are written in place when `functional_optim.ops.writable` allows (the
    adapters' fused step, or a copy made by `materialize`); otherwise (autograd recording,
    ``torch.func``) new tensors are returned. Complex parameters are written through their real
    views, except by a term whose ``num`` is complex itself (native complex arithmetic, e.g. SGD's
    momentum: ``torch.optim``'s complex ``add_``)."""
    has_complex = not ops.all_real(params)
    params = list(params)
    for term in terms:
        params_r = ops.view_as_real(params) if has_complex else params  # real: no views to take
        if isinstance(term, After):
            term.fn(params_r)
            continue
        if isinstance(term, Lerp):
            params_r = _lerp_all(params_r, term.end, term.weight)
            params = ops.view_as_complex_like(params_r, params) if has_complex else params_r
            continue
        value = term.coefficient(step_scale)
        if term.num is None:
            params_r = ops.mul_(params_r, value)
        elif term.den is not None:
            params_r = ops.addcdiv_(params_r, term.num, term.den, value)
        elif has_complex and any(n.is_complex() for n in term.num):
            params = [
                _add_scaled(p, n, v)
                for p, n, v in zip(params, term.num, _per_tensor(value, params), strict=True)
            ]
            continue
        else:
            params_r = _add_scaled_all(params_r, term.num, value)
        params = ops.view_as_complex_like(params_r, params) if has_complex else params_r
    return ops.view_as_real(params) if has_complex else params


def _lerp_all(xs: list[Tensor], ends: list[Tensor], weight: Any) -> list[Tensor]:
    """``x.lerp_(end, weight)`` per tensor (new tensors where `functional_optim.ops.writable`
    refuses); a tensor ``weight`` (traced) in the parameters' dtype, as torch takes it."""
    if isinstance(weight, Tensor):
        if ops.writable(xs, ends, weight):
            return [x.lerp_(e, weight.to(x.dtype)) for x, e in zip(xs, ends, strict=True)]
        return [torch.lerp(x, e, weight.to(x.dtype)) for x, e in zip(xs, ends, strict=True)]
    return ops.lerp(xs, ends, weight, in_place=ops.writable(xs, ends))


def _per_tensor(value: Any, xs: Sequence[Any]) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else [value] * len(xs)


def _add_to(p: Tensor, y: Tensor, v: Any) -> Tensor:
    """``p + v·y`` where ``y`` is complex (native complex arithmetic) or the real view of ``p``'s update."""
    if p.is_complex() and not y.is_complex():
        return torch.view_as_complex(_add_scaled(torch.view_as_real(p), y, v))
    return _add_scaled(p, y, v)


def _add_scaled(x: Tensor, y: Tensor, v: Any) -> Tensor:
    """``x.add_(y, alpha=v)`` (written into ``x`` when `functional_optim.ops.writable`)."""
    if ops.writable([x], [y]):
        return x.add_(y, alpha=v) if isinstance(v, float | int) else x.add_(v * y)
    return torch.add(x, y, alpha=v) if isinstance(v, float | int) else x + v * y


def _add_scaled_all(xs: list[Tensor], ys: list[Tensor], value: Any) -> list[Tensor]:
    """``x.add_(y, alpha=v)`` per tensor: the fused multiply-add of ``torch.optim``'s ``add_``."""
    if not isinstance(value, list | tuple):
        return ops.add_(xs, ys, alpha=value)
    if all(isinstance(v, float | int) for v in value) and len(set(value)) == 1:
        return ops.add_(xs, ys, alpha=value[0])
    return [_add_scaled(x, y, v) for x, y, v in zip(xs, ys, value, strict=True)]


def rule_transform(init_fn: InitFn, rule: Rule) -> GradientTransformation:
    """The pure transform of ``rule``: ``update`` runs ``rule.step(..., in_place=False)`` on the
    leaves that have a gradient and returns `materialize` of its terms. Its role is the rule
    itself, which the adapters' fused step runs in place instead. A rule with group values
    (`Rule.begin`) runs ``begin`` first, on the same leaves (on none when no leaf has a
    gradient: its group values still advance)."""

    def finish(result: RuleStep, grads: list[Tensor], params: list[Tensor] | None):
        if result.terms is None:
            assert result.update is not None
            return result.update, result.fields
        update = materialize(result.terms, params, includes_learning_rate=rule.includes_learning_rate)
        return ops.view_as_complex_like(update, grads), result.fields

    def leaf_step(grads: list[Tensor], fields: list[list[Any]], params: list[Tensor] | None):
        params = params if rule.needs_params else None
        return finish(run(rule, grads, fields, params, in_place=False), grads, params)

    def checked_init(params: Params) -> State:
        _layout.check_optimizable(params, rule.name)
        state = init_fn(params)
        if rule.begin is None:
            # ``update`` names the fields of leaves without a gradient by the NamedTuple's fields:
            # a state it would refuse is refused here, before the adapters' fused step (which
            # needs no names until a gradient is missing) could run it
            state_field_names(state, rule.fields(state), rule.name)
        return state

    def update_fn(updates: Updates, state: State, params: Params | None = None, **extra: Any):
        del extra
        if rule.state_type is not None:
            _layout.expect_state(state, rule.state_type, rule.name)
        if rule.begin is None:
            new_updates, new_fields = _leaves(leaf_step, updates, state, params, checked=True)
            return new_updates, rule.state(new_fields)
        begin, begun = rule.begin, []

        def group_step(grads: list[Tensor], fields: list[list[Any]], params: list[Tensor] | None):
            params = params if rule.needs_params else None
            begun.append(begin(state, grads, fields, params))
            result = run(rule, grads, fields, params, in_place=False, context=begun[0].context)
            if rule.settle is not None:  # two passes: the sums of the first give the second's scalars
                assert rule.move is not None and result.sums is not None
                begun[0] = rule.settle(begun[0].context, result.sums)
                result = rule.move(grads, result.fields, params, in_place=False, context=begun[0].context)
            return finish(result, grads, params)

        new_updates, new_fields = _leaves(group_step, updates, state, params, checked=False)
        if not begun:  # no leaf has a gradient
            no_fields: list[list[Any]] = [[] for _ in rule.fields(state)]
            begun.append(begin(state, [], no_fields, [] if rule.needs_params else None))
        group = begun[0].group
        return new_updates, rule.state(new_fields, group)

    def _leaves(fn: Any, updates: Updates, state: State, params: Params | None, *, checked: bool):
        return update_leaves(
            fn,
            updates,
            rule.fields(state),
            params,
            name=rule.name,
            need_params=rule.needs_params,
            sparse=rule.sparse,
            state=state if checked else None,  # group values are not per-parameter fields
            low_precision=rule.low_precision_state,
            elementwise_state=rule.elementwise_state,
        )

    return GradientTransformation(checked_init, update_fn, rule)
