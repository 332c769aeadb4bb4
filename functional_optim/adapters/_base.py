"""``FunctionalOptimizer``: any ``GradientTransformation`` as a real ``torch.optim.Optimizer``.

The adapter keeps ``torch.optim``'s contract: ``param_groups`` hold the hyperparameters,
``self.state[p]`` holds each parameter's state under ``torch.optim``'s key names, and every
piece of torch machinery (schedulers, ``GradScaler``, ``state_dict``/``load_state_dict`` and
their hooks, step hooks, ``torch.distributed.checkpoint``) sees an ordinary optimizer.

At every ``step`` and for every parameter group, the adapter

1. builds the transform (``factory(**hyperparameters of the group)``, cached while the
   hyperparameters do not change, or the fixed transform it was given);
2. assembles the functional state of the parameters that have a gradient from
   ``self.state`` using a cached *layout* of the transform's state (which NamedTuple fields
   are per-parameter, which leaves are global), creating fresh state for parameters seen for
   the first time (torch's lazy initialisation);
3. runs ``update(grads, state, params)``, writes the new state tensors back into
   ``self.state[p]`` and adds the updates to the parameters in place.

A step is all-or-nothing: every group is *prepared* first (steps 1-2, the checks, and the pure
parts of step 3: nothing is written), then every group is *committed* with ``KeyboardInterrupt``
held back. Outside ``differentiable=True``, a chain whose roles the fused step recognises
(`fo.fused`: ``[rule], [decoupled decay], learning rate``) is committed as
torch.optim does it, with the same numbers: the algorithm's rule updates the state buffers in
place and the parameters move with ``p.mul_(1 - lr·wd)`` and ``p.addcdiv_``/``p.add_``; while no
state tensor was replaced between two steps, the functional state of the last step is reused.

Parameters whose ``.grad`` is ``None`` are skipped entirely (no state is created, counters do
not move), as in ``torch.optim``.

State that is not per-parameter (the ``count`` of ``inject_hyperparams``, counters of
combinators...) lives in the state of the group's **first** parameter under the key
``"functional_state"`` (``{path: value}``), as ``torch.optim.LBFGS`` keeps its state in the
first parameter's entry. ``state_dict()`` stores its 0-dim tensors as Python numbers so that
``load_state_dict``'s dtype casting cannot round them; they are turned back into tensors of
the original dtype at the next step.

Notes:
  * ``pickle`` needs a picklable transform or factory: the drop-in classes and module-level
    factories (``fo.adamw``) are; a ready-made ``GradientTransformation`` is a pair of closures
    and is not (``copy.deepcopy`` works for both).
  * ``torch.distributed.checkpoint.state_dict.set_optimizer_state_dict`` initialises an empty
    optimizer with one step on zero gradients and ``lr = 0``. With a factory (``lr`` in the
    groups) that step changes nothing, as in torch; a ready-made transform has no ``lr`` in its
    groups, so that step is a real step (harmless for e.g. Adam without weight decay, but it
    applies weight decay). Step once or ``load_state_dict`` before, or use a factory.
  * ``differentiable=True`` gives the transform clones of the parameters (so the in-place
    update does not invalidate its autograd graph) and adds the updates in place, as torch.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import operator
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT, required
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

from functional_optim import _low_precision, _validation, fused
from functional_optim.adapters import _compiled_group
from functional_optim.adapters._interrupts import interrupts_deferred
from functional_optim.adapters._layout import (
    FUNCTIONAL_STATE_KEY,
    assemble,
    build_layout,
    freeze_exact,
    freeze_structure,
    global_paths,
    has_globals,
    is_stateless,
    required_keys,
    same_tensors,
    scatter,
    split_leaves,
    to_python,
)
from functional_optim.adapters._learning_rate import exposed_learning_rate, with_learning_rate
from functional_optim.adapters._step_cache import StepCache
from functional_optim.core import GradientTransformation

__all__ = ["FUNCTIONAL_STATE_KEY", "IMPLEMENTATION_FLAGS", "FunctionalOptimizer"]

IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")
"""``torch.optim``'s implementation flags: accepted, never passed to the transform."""

_GRAD = operator.attrgetter("grad")
_NONES = itertools.repeat(None)
_LAYOUT = operator.attrgetter("layout")
_DTYPE = operator.attrgetter("dtype")


class _Gathered(NamedTuple):
    """A group's state as the step sees it (phase 1), and what the commit must insert."""

    sts: list[dict[str, Any]]  # per present parameter: functional fields (torch dicts without codec)
    fstate: Any  # the assembled functional state
    glob: dict[str, Any] | None  # the group's non-per-parameter state
    new_entries: list[tuple[Tensor, dict[str, Any]]]  # self.state entries created at commit
    new_glob: tuple[Tensor, dict[str, Any]] | None  # FUNCTIONAL_STATE_KEY entry stored at commit


class _GroupTransform(NamedTuple):
    """A group's transform and the hyperparameter values it was built from: ``key`` (their exact
    values, `freeze_exact`), ``structure`` (what may change the state's structure,
    `freeze_structure`), ``values`` (the objects themselves) and ``by_identity`` (none of them is
    mutable: the same objects next step mean the same key)."""

    transform: GradientTransformation
    key: tuple
    structure: tuple
    values: tuple
    by_identity: bool


_IMMUTABLE = (Tensor, float, int, bool, str, type(None))  # tensors: `freeze_exact` keys them by identity


def _by_identity(values: tuple) -> bool:
    """Whether the same objects always give the same `freeze_exact` key (no list, no object
    that could change in place, at any depth)."""
    return all(isinstance(v, _IMMUTABLE) or (type(v) is tuple and _by_identity(v)) for v in values)


class FunctionalOptimizer(Optimizer):
    r"""A ``torch.optim.Optimizer`` that runs a functional ``GradientTransformation``.

    For every parameter group and every ``step``::

        updates, new_state = transform.update(grads, state, params)
        p += u   (in place, for each parameter with a gradient)

    where ``state`` is assembled from (and written back to) ``self.state[p]`` with
    ``torch.optim``'s key names, so schedulers, ``GradScaler``, checkpoints and user code that
    reads ``opt.state[p]["exp_avg"]`` keep working.

    Args:
      params: an iterable of tensors, of ``(name, tensor)`` pairs, or of group dicts (per-group
        options), exactly as ``torch.optim``.
      transform_or_factory: a ``GradientTransformation`` (run on every group; when it has one
        constant learning rate — a ``scale_by_learning_rate`` reachable through chains, e.g.
        ``fo.adamw(1e-3)`` — that rate is the groups' ``lr``, so torch's LR schedulers and DCP's
        ``lr=0`` initialisation work; other transforms take no hyperparameters from the groups)
        or a factory such as ``fo.adamw``. With a
        factory the hyperparameters live in ``param_groups`` (defaults: the factory's signature
        defaults overridden by ``hyperparams``) and are read at every step: the transform of a
        group is ``factory(**hyperparameters of the group)``, rebuilt when they change (a
        scheduler changing ``lr``, a user editing ``group["weight_decay"]``...).
      **hyperparams: the factory's hyperparameters, and the implementation flags ``foreach``,
        ``fused``, ``capturable``, ``differentiable``. The flags are accepted for
        compatibility: ``differentiable=True`` runs the step with autograd enabled (so it is
        differentiable, as torch's flag); ``fused=True`` compiles the step of an optimizer that
        declares `elementwise` (the drop-ins of elementwise algorithms); the others change
        nothing because the one code path chooses its kernels itself (``torch._foreach_*`` for
        dense tensors). ``fused=True`` with ``foreach=True`` (or with ``differentiable=True``)
        raises ``RuntimeError`` as torch.

    Example::

        opt = FunctionalOptimizer(model.parameters(), fo.adamw, lr=1e-3, weight_decay=0.1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
        for x, y in data:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            sched.step()

        # any transform, e.g. a custom chain (no hyperparameters in the groups):
        opt = FunctionalOptimizer(model.parameters(), fo.chain(fo.clip_by_global_norm(1.0),
                                                               fo.scale_by_adam(), fo.scale(-1e-3)))

    Non-per-parameter state of the transform is kept in the state of each group's first
    parameter under ``"functional_state"`` (see the module docstring).
    """

    elementwise = False
    """The algorithm's update of a tensor depends only on that tensor's gradient, state and
    parameter (and on shared scalars such as the step count): elementwise, or through reductions
    over the one tensor (LARS', LAMB's and NovoGrad's norms), or a rule in two passes whose
    shared scalars come from sums over every tensor between them (Prodigy's and D-Adaptation's
    ``d``: each pass is compiled); declared by the drop-ins of such algorithms. Then a group
    with ``fused=True`` (the constructor's flag where ``torch.optim`` has one, else a key of the
    param group) runs its step compiled by
    [`fo.compile_step(tx, elementwise=True)`][functional_optim.compile_step]: ``torch.optim``'s
    fused kernel where the algorithm has one, Inductor's code (compiled once; the learning rate is
    an input, so an LR scheduler does not recompile) for the others. What it needs is compiled
    in the step's first phase, on copies: the step stays all-or-nothing. See
    `functional_optim.adapters._compiled_group`."""

    def _elementwise(self, group: dict[str, Any]) -> bool:
        """Whether this group's algorithm is `elementwise` (a drop-in whose options decide it, such
        as AdaBelief's ``rectify``, overrides this)."""
        return self.elementwise

    fuse = True
    """Run chains the fused step recognises in place (`fo.fused`: the
    algorithm's rule updates its state buffers in place and the parameters move with
    ``torch.optim``'s kernels, same numbers as the pure ``update``). ``opt.fuse = False`` runs
    the pure ``update`` and stores its new state tensors instead (e.g. when other code keeps
    references to old state tensors and needs them unchanged). Steps with
    ``differentiable=True`` never run in place."""

    # Subclasses (the drop-in classes) may convert between torch's per-parameter state format
    # and the functional one by overriding ``_decode_param_state``/``_encode_param_state`` and
    # setting ``_has_codec = True``.
    _has_codec = False
    _optional_state_keys: tuple[str, ...] = ()
    """Per-parameter keys a subclass may keep besides those of a fresh state (checked at load)."""

    def __init__(
        self,
        params: ParamsT,
        transform_or_factory: GradientTransformation | Callable[..., GradientTransformation],
        **hyperparams: Any,
    ) -> None:
        self._setup(transform_or_factory, hyperparams, exact_defaults=False)
        super().__init__(params, self._defaults_init)
        del self._defaults_init

    # ------------------------------------------------------------------ construction helpers
    def _setup(self, transform_or_factory: Any, hyperparams: dict[str, Any], *, exact_defaults: bool) -> None:
        if hyperparams.get("fused") and hyperparams.get("foreach"):
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        if hyperparams.get("fused") and hyperparams.get("differentiable"):
            raise RuntimeError("`fused` does not support `differentiable`")
        if isinstance(transform_or_factory, GradientTransformation):
            lr = exposed_learning_rate(transform_or_factory)
            allowed = IMPLEMENTATION_FLAGS if lr is None else (*IMPLEMENTATION_FLAGS, "lr")
            extra = [k for k in hyperparams if k not in allowed]
            if extra:
                raise TypeError(
                    f"FunctionalOptimizer: hyperparameters {extra} were given with a ready-made "
                    "GradientTransformation; pass a factory (e.g. fo.adamw) to keep hyperparameters "
                    "in param_groups"
                )
            self._transform: GradientTransformation | None = transform_or_factory
            self._factory = None
            self._hp_names: tuple[str, ...] = ()
            defaults = dict(hyperparams)
            if lr is not None:
                # its one constant learning rate lives in the groups (schedulers, Trainer, DCP)
                self._factory = functools.partial(with_learning_rate, transform_or_factory)
                self._hp_names = ("lr",)
                defaults.setdefault("lr", lr)
                _validation.learning_rate(defaults["lr"])
        elif callable(transform_or_factory):
            sig = inspect.signature(transform_or_factory)
            accepted = {
                n: p
                for n, p in sig.parameters.items()
                if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            }
            unknown = [k for k in hyperparams if k not in accepted and k not in IMPLEMENTATION_FLAGS]
            if unknown:
                raise TypeError(
                    f"FunctionalOptimizer: {getattr(transform_or_factory, '__name__', 'the factory')} "
                    f"has no hyperparameter(s) {unknown}"
                )
            if exact_defaults:
                defaults = dict(hyperparams)
            else:
                defaults = dict(hyperparams)
                for n, p in accepted.items():
                    if n not in defaults:
                        defaults[n] = required if p.default is inspect.Parameter.empty else p.default
            self._transform = None
            self._factory = transform_or_factory
            self._hp_names = tuple(n for n in defaults if n in accepted)
            if all(defaults[n] is not required for n in self._hp_names):
                self._factory(**{n: defaults[n] for n in self._hp_names})  # validate at construction
        else:
            raise TypeError(
                "FunctionalOptimizer needs a GradientTransformation or a factory returning one, "
                f"got {type(transform_or_factory).__name__}"
            )
        if not exact_defaults:
            defaults.setdefault("differentiable", False)
        self._defaults_init = defaults
        self._own_default_keys = tuple(defaults)
        self._reset_cache()

    def _reset_cache(self) -> None:
        # per group (by position): transform cache and layout cache
        self._fo_transforms: dict[int, _GroupTransform] = {}
        self._fo_layouts: dict[int, tuple[Any, tuple, bool, bool]] = {}
        self._fo_steps: dict[int, StepCache] = {}
        self._fo_compiled: dict[int, _compiled_group.CompiledGroup] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_transform"] = self._transform
        state["_factory"] = self._factory
        state["_hp_names"] = self._hp_names
        state["_own_default_keys"] = self._own_default_keys
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's ``Optimizer.__setstate__`` adds ``differentiable`` to ``defaults``; groups get
        # only the optimizer's own defaults (an optimizer without the flag keeps groups without it,
        # so ``state_dict`` round-trips through ``load_state_dict``, deepcopy and pickling)
        own_keys = state.get("_own_default_keys", getattr(self, "_own_default_keys", None))
        super().__setstate__(state)
        if own_keys is None:  # pickled before the keys were recorded
            own_keys = tuple(self.defaults)
        self._own_default_keys = own_keys
        for group in self.param_groups:
            for k in own_keys:
                group.setdefault(k, self.defaults[k])
        self._reset_cache()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """``torch.optim``'s ``add_param_group``; a parameter listed twice in the group raises
        ``ValueError`` (torch only warns) so that no parameter is updated twice."""
        params = param_group.get("params") if isinstance(param_group, dict) else None
        if params is not None and not isinstance(params, Tensor | set):
            params = list(params)
            param_group["params"] = params
            seen: set[int] = set()
            for j, item in enumerate(params):
                t = item[1] if isinstance(item, tuple) and len(item) == 2 else item
                if id(t) in seen:
                    raise ValueError(f"parameter at index {j} of the new group appears more than once in it")
                seen.add(id(t))
        super().add_param_group(param_group)
        if hasattr(self, "_fo_layouts"):
            self._reset_cache()

    # ------------------------------------------------------------------ per-group machinery
    def _transform_for(self, index: int, group: dict[str, Any]) -> GradientTransformation:
        return self._group_transform(index, group).transform

    def _group_transform(self, index: int, group: dict[str, Any]) -> _GroupTransform:
        """The group's transform and the keys of the hyperparameters it was built from (cached;
        rebuilt when a hyperparameter changes)."""
        if self._factory is None:
            assert self._transform is not None  # a ready-made transform was given
            return _GroupTransform(self._transform, (), (), (), True)
        names = self._hp_names
        values = tuple(group[n] for n in names)
        cached = self._fo_transforms.get(index)
        if (
            cached is not None
            and cached.by_identity
            and all(a is b for a, b in zip(values, cached.values, strict=True))
        ):
            return cached  # the very values of the last step, none of them mutable
        key = tuple(freeze_exact(v) for v in values)
        if cached is not None and cached.key == key:
            if not torch.compiler.is_compiling():  # (Dynamo: no new entry while tracing)
                self._fo_transforms[index] = cached._replace(values=values, by_identity=_by_identity(values))
            return cached
        transform = self._factory(**dict(zip(names, values, strict=True)))
        structure = tuple(freeze_structure(v) for v in values)
        made = _GroupTransform(transform, key, structure, values, _by_identity(values))
        self._fo_transforms[index] = made
        return made

    def _compiled_for(self, index: int, group: dict[str, Any], key: tuple) -> _compiled_group.CompiledGroup:
        """The group's compiled step (``fused=True``; see `elementwise`), rebuilt when a
        hyperparameter other than ``lr`` changes (``key``: `_GroupTransform.key` of this step;
        ``lr`` is left out)."""
        assert self._factory is not None
        names = self._hp_names
        at = names.index("lr")
        key = key[:at] + key[at + 1 :]
        compiled = self._fo_compiled.get(index)
        if compiled is None or compiled.key != key:
            hyperparams = {n: group[n] for n in names}
            compiled = self._fo_compiled[index] = _compiled_group.compiled_group(
                self._factory, hyperparams, key
            )
        return compiled

    def _layout_for(
        self, index: int, group: dict[str, Any], made: _GroupTransform, ids: tuple[int, ...]
    ) -> tuple[tuple, bool, bool, Any]:
        """The cached layout of the state of the group's transform (``made``); rebuilt when the
        group's parameters (``ids``: their identities) or the structure of its hyperparameters
        change. Returns (layout, has_globals, is_stateless, fresh init or None)."""
        params = group["params"]
        key = (ids, made.structure)
        cached = self._fo_layouts.get(index)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2], cached[3], None
        if group.get("fused"):
            _check_fused_params(params)
            if not self._elementwise(group):
                warnings.warn(
                    f"{type(self).__name__}: fused=True compiles only the steps of elementwise "
                    "algorithms (`FunctionalOptimizer.elementwise`); this group runs the eager step",
                    UserWarning,
                    stacklevel=6,  # step()'s caller: here, _prepare_group, step's list, step, torch's hook
                )
        init_state = made.transform.init(list(params))
        layout = build_layout(init_state, len(params))
        with_globals = has_globals(layout)
        stateless = is_stateless(layout)
        self._fo_layouts[index] = (key, layout, with_globals, stateless)
        return layout, with_globals, stateless, init_state

    def _fresh_param_states(
        self, transform: GradientTransformation, group: dict[str, Any], params: list[Tensor]
    ) -> list[dict[str, Any]]:
        """Freshly initialised functional per-parameter state for ``params`` (one dict each)."""
        init_state = transform.init(list(params))
        layout = build_layout(init_state, len(params))
        out: list[dict[str, Any]] = [{} for _ in params]
        scatter(layout, init_state, out, {})
        return out

    def _fresh_torch_states(
        self, transform: GradientTransformation, group: dict[str, Any], params: list[Tensor]
    ) -> list[dict[str, Any]]:
        """The torch-format state ``params`` start with (encoded by the codec, if any)."""
        fresh = self._fresh_param_states(transform, group, params)
        if not self._has_codec:
            return fresh
        return [self._encode_param_state(group, p, f) for p, f in zip(params, fresh, strict=True)]

    def _decode_param_state(self, group: dict[str, Any], p: Tensor, st: dict[str, Any]) -> dict[str, Any]:
        """torch-format state of ``p`` -> functional per-parameter fields (codec hook)."""
        return st

    def _encode_param_state(self, group: dict[str, Any], p: Tensor, fields: dict[str, Any]) -> dict[str, Any]:
        """Functional per-parameter fields -> torch-format state of ``p`` (codec hook)."""
        return fields

    def _is_initialized(self, group: dict[str, Any], p: Tensor, st: dict[str, Any]) -> bool:
        n = len(st)
        return n > 1 or (n == 1 and FUNCTIONAL_STATE_KEY not in st)

    def _init_group_state(
        self, group: dict[str, Any], params: list[Tensor], transform: GradientTransformation | None = None
    ) -> None:
        """Eagerly create the state of ``params`` (torch's Adagrad does this in ``__init__``)."""
        if transform is None:
            transform = self._transform_for(self._group_index(group), group)
        fresh = self._fresh_param_states(transform, group, params)
        for p, fields in zip(params, fresh, strict=True):
            st = self.state[p]
            st.update(self._encode_param_state(group, p, fields) if self._has_codec else fields)

    def _prepare_group(
        self, index: int, group: dict[str, Any], extra: dict[str, Any]
    ) -> Callable[[], None] | None:
        """Phase 1 of a step for one group: everything that may raise (building the transform from
        the group's hyperparameters, gathering and validating the state, running the pure parts of
        the transform). Nothing is written. Returns the commit (phase 2), or ``None`` when no
        parameter of the group has a gradient."""
        params = group["params"]
        compiling = torch.compiler.is_compiling()
        # C-level maps when eager (a few per step); plain loops for Dynamo to trace
        grads = [p.grad for p in params] if compiling else list(map(_GRAD, params))
        if any(g is None for g in grads) if compiling else any(map(operator.is_, grads, _NONES)):
            present = [p for p, g in zip(params, grads, strict=True) if g is not None]
            if not present:
                return None
            grads = [g for g in grads if g is not None]
        else:
            present = params
        made = self._group_transform(index, group)
        transform = made.transform
        ids = tuple(map(id, params))
        layout, has_globals, stateless, init_state = self._layout_for(index, group, made, ids)
        state = self.state
        torch_states: list[Any] = [state.get(p) for p in present]
        cache = None if compiling else self._fo_steps.get(index)
        if stateless and cache is not None:  # no entries are kept: every state is empty
            torch_states = [{} if st is None else st for st in torch_states]
        if (
            cache is not None
            and None not in torch_states
            and cache.fits(layout, ids if present is params else tuple(map(id, present)), torch_states)
            and (not has_globals or cache.fits_globals(self._group_globals(params)))
        ):
            # Nothing replaced a state tensor or a group value since the last step: reuse its
            # functional state (no decoding, no re-assembly; the tensors themselves were updated
            # in place, the group values are those the last step stored).
            sts = cache.sts if self._has_codec else torch_states
            gathered = _Gathered(sts, cache.fstate, cache.glob, [], None)
        else:
            cache = None
            gathered = self._gather_state(
                group, params, present, torch_states, transform, layout, has_globals, init_state
            )

        if torch.is_grad_enabled():
            # Differentiable steps: the transform sees clones, so the in-place update of the
            # parameters does not invalidate tensors its autograd graph saved.
            updates, new_state = transform.update(
                grads, gathered.fstate, [p.clone() for p in present], **extra
            )
            return self._commit_fn(index, group, layout, present, gathered, cache, new_state, updates, None)
        fusable = self._fusable(transform, present, grads)
        if fusable is not None:
            plan, step_scale, param_scale = fusable
            compile_it = group.get("fused") and not compiling and self._factory is not None
            if compile_it and self._elementwise(group):
                compiled = self._compiled_for(index, group, made.key)
                lr = float(group["lr"])  # not -step_scale: a rule may include the rate (ASGD, LARS)
                run = _compiled_group.prepare(compiled, lr, present, grads, gathered.fstate)
                return self._commit_fn(index, group, layout, present, gathered, cache, None, None, None, run)
            prepared = fused.prepare(plan, grads, gathered.fstate, present, extra)
            in_place = (plan, prepared, step_scale, param_scale)
            return self._commit_fn(index, group, layout, present, gathered, cache, None, None, in_place)
        updates, new_state = transform.update(grads, gathered.fstate, present, **extra)
        return self._commit_fn(index, group, layout, present, gathered, cache, new_state, updates, None)

    def _commit_fn(
        self,
        index: int,
        group: dict[str, Any],
        layout: tuple,
        present: list[Tensor],
        gathered: _Gathered,
        cache: StepCache | None,
        new_state: Any,
        updates: list[Tensor | None] | None,
        in_place: tuple[fused.FusedPlan, fused.Prepared, float, float] | None,
        compiled: Callable[[], None] | None = None,
    ) -> Callable[[], None]:
        """Phase 2 of a group's step as a closure: create the state of new parameters, run the
        fused in-place step or take the pure step's result, write the state back and move the
        parameters. Runs library code only (no user transform, schedule or hook)."""

        def commit() -> None:
            state = self.state
            for p, st in gathered.new_entries:
                state[p] = st
            if gathered.new_glob is not None:
                first, glob = gathered.new_glob
                state[first][FUNCTIONAL_STATE_KEY] = glob
            result, fields_checked = new_state, False
            if in_place is not None:
                plan, prepared, step_scale, param_scale = in_place
                reused = cache is not None and cache.fields_checked
                result, fields_checked = fused.commit(
                    plan, prepared, present, step_scale, param_scale, fields_checked=reused
                )
            elif compiled is not None:  # fused=True: the compiled step, in place
                compiled()  # updates gathered.fstate's tensors in place
                result = gathered.fstate
            self._write_back(index, group, layout, present, gathered, cache, result, fields_checked)
            for p, _ in gathered.new_entries:
                if not state[p]:  # a stateless rule (SGD without momentum): no entry, as torch
                    del state[p]
            if updates is not None:
                self._apply(present, updates)

        return commit

    def _write_back(
        self,
        index: int,
        group: dict[str, Any],
        layout: tuple,
        present: list[Tensor],
        gathered: _Gathered,
        cache: StepCache | None,
        new_state: Any,
        fields_checked: bool,
    ) -> None:
        """Store the new functional state in ``self.state`` (torch's format) and remember it for
        the next step (`StepCache`, with `fused.Committed.fields_checked`)."""
        if cache is not None:
            if new_state is cache.fstate:
                # the last step's very state, its tensors written in place (fused=True's compiled
                # step): its lists and group values are those the cache and the dict already hold
                cache.fields_checked = fields_checked
                return
            lists, values = split_leaves(layout, new_state)
            if same_tensors(lists, cache.param_lists):
                # the tensors were updated in place: nothing to store...
                cache.fstate, cache.param_lists, cache.fields_checked = new_state, lists, fields_checked
                if gathered.glob is not None:  # ...but the group's new values
                    gathered.glob.update(values)
                    cache.store_globals()
                return
        sts = gathered.sts
        scatter(layout, new_state, sts, gathered.glob)
        torch_states = [self.state[p] for p in present]
        if self._has_codec:
            for p, st, fields in zip(present, torch_states, sts, strict=True):
                encoded = self._encode_param_state(group, p, fields)
                keep = st.get(FUNCTIONAL_STATE_KEY)
                st.clear()
                st.update(encoded)
                if keep is not None:
                    st[FUNCTIONAL_STATE_KEY] = keep
        if not torch.compiler.is_compiling():
            self._fo_steps[index] = StepCache.make(
                layout, present, torch_states, sts, new_state, gathered.glob, fields_checked
            )

    def _group_globals(self, params: list[Tensor]) -> dict[str, Any] | None:
        """The group's values (its first parameter's ``FUNCTIONAL_STATE_KEY`` dict), if any."""
        first_state = self.state.get(params[0])
        return None if first_state is None else first_state.get(FUNCTIONAL_STATE_KEY)

    def _gather_state(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        present: list[Tensor],
        torch_states: list[dict[str, Any] | None],
        transform: GradientTransformation,
        layout: tuple,
        has_globals: bool,
        init_state: Any,
    ) -> _Gathered:
        """The functional per-parameter fields (decoded), the assembled functional state and the
        group's global state, with fresh state for parameters seen for the first time (inserted
        into ``self.state`` only at commit). Raises ``KeyError`` naming the parameter when a state
        entry the transform needs is missing (e.g. a checkpoint of another optimizer)."""
        gi = self._group_index(group)
        new_entries: list[tuple[Tensor, dict[str, Any]]] = []
        sts: list[dict[str, Any]] = []
        fresh_needed: list[int] = []
        for i, (p, st) in enumerate(zip(present, torch_states, strict=True)):
            if st is None:
                st = {}
                new_entries.append((p, st))
            initialized = (
                self._is_initialized(group, p, st)
                if self._has_codec
                else bool(st) and not (len(st) == 1 and FUNCTIONAL_STATE_KEY in st)
            )
            if not initialized:
                fresh_needed.append(i)
                sts.append({} if self._has_codec else st)
            else:
                sts.append(self._decode_param_state(group, p, st) if self._has_codec else st)
        if fresh_needed:
            if init_state is not None and len(present) == len(params):
                fresh_all: list[dict[str, Any]] = [{} for _ in params]
                scatter(layout, init_state, fresh_all, {})
                fresh = [fresh_all[i] for i in fresh_needed]
            else:
                fresh = self._fresh_param_states(transform, group, [present[i] for i in fresh_needed])
            fresh_set = set(fresh_needed)
        else:
            fresh, fresh_set = [], set()
        required = required_keys(layout)
        for i, st in enumerate(sts):
            if i in fresh_set:
                continue
            missing = [k for k in required if k not in st]
            if missing:
                j = next(k for k, q in enumerate(group["params"]) if q is present[i])
                raise KeyError(
                    f"state of {self._param_label(group, gi, j)} has no {missing} (it has {sorted(st)}): "
                    "was the state loaded from another optimizer?"
                )
        if fresh:
            if self._has_codec:
                for i, f in zip(fresh_needed, fresh, strict=True):
                    sts[i] = f
            else:
                # non-codec: sts[i] is the torch-state dict itself; fill a copy now, the dict at commit
                for i, f in zip(fresh_needed, fresh, strict=True):
                    merged = dict(sts[i])
                    merged.update(f)
                    target = sts[i]
                    sts[i] = merged
                    if not any(target is e for _, e in new_entries):
                        new_entries.append((present[i], merged))
                    else:
                        new_entries[:] = [(q, merged if e is target else e) for q, e in new_entries]
        glob, new_glob = None, None
        if has_globals:
            first = params[0]
            first_state = self.state.get(first)
            glob = None if first_state is None else first_state.get(FUNCTIONAL_STATE_KEY)
            if glob is None:
                if init_state is None:
                    init_state = transform.init(list(params))
                glob = {}
                scatter(layout, init_state, [{} for _ in params], glob)
                new_glob = (first, glob)
                if first_state is None and not any(q is first for q, _ in new_entries):
                    new_entries.append((first, {}))
            else:
                glob = dict(glob)  # assemble converts values in place: work on a copy
                new_glob = (first, glob)  # stored back at commit
        return _Gathered(sts, assemble(layout, sts, glob), glob, new_entries, new_glob)

    def _fusable(
        self, transform: GradientTransformation, params: list[Tensor], grads: list[Tensor]
    ) -> tuple[fused.FusedPlan, float, float] | None:
        """``(plan, -lr, 1 - lr·wd)`` when the step can run in place (`fo.fused`):
        a chain whose roles end in a descent learning rate with concrete values, dense gradients
        of their parameters' dtype."""
        if not self.fuse:
            return None
        plan = fused.plan(transform)
        if plan is None:
            return None
        lr = fused.concrete(plan.learning_rate)
        wd = 0.0 if plan.weight_decay is None else fused.concrete(plan.weight_decay)
        if lr is None or wd is None:
            return None
        # dense gradients of their parameters' dtype (checked with C-level loops: once per step)
        if torch.compiler.is_compiling():
            if any(
                g.layout != torch.strided or g.dtype != p.dtype for g, p in zip(grads, params, strict=True)
            ):
                return None
        elif not all(map(operator.is_, map(_LAYOUT, grads), itertools.repeat(torch.strided))) or not all(
            map(operator.is_, map(_DTYPE, grads), map(_DTYPE, params))
        ):
            return None
        # torch.optim's ``1 - lr * weight_decay``, applied only with weight decay (lr=inf, wd=0: 1)
        return plan, -lr, (1 - lr * wd) if wd else 1.0

    @staticmethod
    def _apply(params: list[Tensor], updates: list[Tensor | None]) -> None:
        strided = torch.strided
        if not torch.is_grad_enabled() and all(
            u is not None and u.layout is strided and u.dtype is p.dtype
            for p, u in zip(params, updates, strict=True)
        ):
            torch._foreach_add_(params, cast("list[Tensor]", updates))  # the common case: one call
            return
        dense_p, dense_u = [], []
        for p, u in zip(params, updates, strict=True):
            if u is None:
                continue
            if u.dtype != p.dtype:
                u = u.to(p.dtype)
            if u.is_sparse or (p.requires_grad and torch.is_grad_enabled()):
                p.add_(u)
            else:
                dense_p.append(p)
                dense_u.append(u)
        if dense_p:
            torch._foreach_add_(dense_p, dense_u)

    # ------------------------------------------------------------------ torch.optim API
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform one optimization step, for every group or for none.

        Every group is prepared first (the transform built from its hyperparameters, its state
        gathered and checked, the pure parts of the step run) and only then are parameters and
        state written, with ``KeyboardInterrupt`` held back until the writes are done: an
        exception of any kind leaves parameters and state as they were.

        Args:
          closure: optional callable that re-evaluates the model and returns the loss; it is
            called under ``torch.enable_grad()`` before the update and its value is returned
            (and passed to the transforms as the ``value`` extra argument).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        extra = {} if loss is None else {"value": loss}
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            commits = [self._prepare_group(i, g, extra) for i, g in enumerate(self.param_groups)]
            with interrupts_deferred():
                for commit in commits:
                    if commit is not None:
                        commit()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim``'s ``state_dict`` (same format); the ``"functional_state"`` entry, if any,
        holds its 0-dim tensors as Python numbers so that ``load_state_dict`` cannot cast them."""
        sd = super().state_dict()
        for k, st in list(sd["state"].items()):
            glob = st.get(FUNCTIONAL_STATE_KEY) if isinstance(st, dict) else None
            if glob is not None:
                st = dict(st)
                st[FUNCTIONAL_STATE_KEY] = {path: to_python(v) for path, v in glob.items()}
                sd["state"][k] = st
        return sd

    def load_state_dict(self, state_dict: dict[str, Any], *, fresh_functional_state: bool = False) -> None:
        """``torch.optim``'s ``load_state_dict``, with full validation first: a different number
        of groups or of parameters in a group, a state entry of another optimizer, a missing key,
        a state tensor whose shape does not fit its parameter, a bad ``step``, raise ``ValueError``
        naming the group/parameter and key, and nothing is changed.

        A transform with state that is not per-parameter (a schedule's step count,
        ``inject_hyperparams``' values, ``multi_steps``' accumulator...) keeps it under
        ``"functional_state"``: a checkpoint with per-parameter state but without it (e.g. written
        by ``torch.optim``) raises ``ValueError`` rather than silently restarting that state;
        ``fresh_functional_state=True`` loads it anyway and starts that state afresh."""
        validate = functools.partial(
            FunctionalOptimizer._validate_state_dict, fresh_functional_state=fresh_functional_state
        )
        handle = self.register_load_state_dict_pre_hook(lambda opt, sd: validate(cast(Any, opt), sd))
        try:
            super().load_state_dict(state_dict)
        finally:
            handle.remove()
        self._restore_low_precision_state()
        self._reset_cache()

    def _restore_low_precision_state(self) -> None:
        """Give the loaded state tensors the low-precision dtype this optimizer keeps them in.

        ``torch.optim``'s ``load_state_dict`` casts every floating-point state tensor to its
        parameter's dtype, so a bfloat16 moment (``state_dtype=torch.bfloat16``) comes back as
        float32. A state entry that a fresh state of this optimizer keeps in bfloat16 is cast back
        (exact for a checkpoint written with bfloat16 state: bfloat16 → float32 → bfloat16 is the
        identity; a float32 checkpoint is rounded to nearest). The fresh state is built on ``meta``
        copies of the parameters (no memory), or on the parameters if the transform cannot
        initialise meta tensors (one parameter at a time: the memory of one parameter's state)."""
        for group in self.param_groups:
            params = [p for p in group["params"] if self.state.get(p)]
            if not params:
                continue
            transform = self._transform_of(group)
            try:
                expected_states = self._fresh_torch_states(
                    transform, group, [torch.empty_like(p, device="meta") for p in params]
                )
            except Exception:  # a transform that needs real tensors (e.g. a seeded init): per parameter
                expected_states = [self._fresh_torch_states(transform, group, [p])[0] for p in params]
            for p, expected in zip(params, expected_states, strict=True):
                st = self.state[p]
                for key, ref in expected.items():
                    value = st.get(key)
                    if (
                        isinstance(ref, Tensor)
                        and ref.dtype in _low_precision.LOW_PRECISION_DTYPES
                        and isinstance(value, Tensor)
                        and value.is_floating_point()
                        and value.dtype != ref.dtype
                    ):
                        st[key] = value.to(ref.dtype)

    def _group_index(self, group: dict[str, Any]) -> int:
        """The index of ``group`` (or of the group whose parameters it is a part of, e.g. a chunk)."""
        first = group["params"][0] if group["params"] else None
        return next(
            (
                i
                for i, g in enumerate(self.param_groups)
                if g is group or any(q is first for q in g["params"])
            ),
            -1,
        )

    def _param_label(self, group: dict[str, Any], gi: int, j: int) -> str:
        names = group.get("param_names")
        name = f"'{names[j]}' " if names is not None and j < len(names) else ""
        return f"parameter {name}(group {gi}, index {j})"

    def _validate_state_dict(self, sd: dict[str, Any], *, fresh_functional_state: bool = False) -> None:
        if not isinstance(sd, dict) or "state" not in sd or "param_groups" not in sd:
            raise ValueError("load_state_dict: expected a dict with keys 'state' and 'param_groups'")
        groups, saved = self.param_groups, sd["param_groups"]
        if len(groups) != len(saved):
            raise ValueError(
                "loaded state dict has a different number of parameter groups: "
                f"{len(saved)} in the state dict, {len(groups)} in the optimizer"
            )
        for gi, (g, s) in enumerate(zip(groups, saved, strict=True)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size of "
                    f"optimizer's group: group {gi} has {len(s['params'])} parameters in the state dict "
                    f"and {len(g['params'])} in the optimizer"
                )
        where = {}
        for gi, (g, s) in enumerate(zip(groups, saved, strict=True)):
            for j, (pid, p) in enumerate(zip(s["params"], g["params"], strict=True)):
                where[pid] = (gi, j, g, p)
        # the groups as they will be after the load (torch takes the saved hyperparameters)
        merged = [
            {**g, **{k: v for k, v in s.items() if k != "params"}} for g, s in zip(groups, saved, strict=True)
        ]
        for pid, st in sd["state"].items():
            if pid not in where or not isinstance(st, dict):
                continue
            gi, j, g, p = where[pid]
            self._validate_param_state(merged[gi], gi, j, p, st)
        for gi, (g, s) in enumerate(zip(merged, saved, strict=True)):
            self._validate_functional_state(g, gi, s["params"], sd["state"], fresh_functional_state)

    def _validate_functional_state(
        self, group: dict[str, Any], gi: int, pids: list[Any], states: dict[Any, Any], fresh: bool
    ) -> None:
        """Refuse a group's checkpoint whose per-parameter state exists but whose
        ``"functional_state"`` is missing (unless ``fresh``) or holds other entries than the
        transform keeps."""
        loaded = [states.get(pid) for pid in pids]
        if not pids or not any(isinstance(st, dict) and st for st in loaded):
            return  # nothing stepped yet: everything starts fresh, as torch
        params = list(group["params"])
        transform = self._transform_of(group)
        paths = global_paths(build_layout(transform.init(params), len(params)))
        if not paths:
            return
        first = loaded[0] if isinstance(loaded[0], dict) else {}
        glob = first.get(FUNCTIONAL_STATE_KEY)
        if glob is None:
            if fresh:
                return
            raise ValueError(
                f"loaded state of group {gi} has per-parameter state but no '{FUNCTIONAL_STATE_KEY}' "
                f"(the transform's state {paths}, kept with the group's first parameter): was it "
                "written by another optimizer? Loading it would restart that state (schedules, "
                "counts); pass fresh_functional_state=True to load it and start that state afresh"
            )
        if not isinstance(glob, dict) or set(glob) != set(paths):
            got = sorted(glob) if isinstance(glob, dict) else type(glob).__name__
            raise ValueError(
                f"loaded '{FUNCTIONAL_STATE_KEY}' of group {gi} has {got}, expected {sorted(paths)}: "
                "is this a checkpoint of another transform?"
            )

    def _transform_of(self, group: dict[str, Any]) -> GradientTransformation:
        """The transform of a group (not cached: for validating a checkpoint's groups)."""
        if self._factory is None:
            assert self._transform is not None  # set whenever there is no factory
            return self._transform
        return self._factory(**{n: group[n] for n in self._hp_names if n in group})

    def _expected_param_state(self, group: dict[str, Any], p: Tensor) -> dict[str, Any]:
        """The torch-format state ``p`` starts with under ``group``'s hyperparameters."""
        transform = self._transform_of(group)
        fields = self._fresh_param_states(transform, group, [p])[0]
        return self._encode_param_state(group, p, fields) if self._has_codec else fields

    def _validate_param_state(self, group: dict[str, Any], gi: int, j: int, p: Tensor, st: dict) -> None:
        """Refuse a loaded per-parameter state that this optimizer could not step from: keys of
        another optimizer, missing keys, tensors of another shape, non-floating, sparse or meta
        tensors where a dense float state is kept, or a ``step`` that is not a non-negative
        number. Every message names the parameter and the key."""
        label = self._param_label(group, gi, j)
        loaded = {k: v for k, v in st.items() if k != FUNCTIONAL_STATE_KEY}
        if not loaded:
            return  # not initialised yet: fresh state at the first step, as torch
        expected = self._expected_param_state(group, p)
        kind = type(self).__name__
        unknown = sorted(set(loaded) - set(expected) - set(self._optional_state_keys))
        if unknown:
            raise ValueError(
                f"loaded state of {label} has {unknown}, which {kind} does not keep (it keeps "
                f"{sorted(expected)}): is this a checkpoint of another optimizer?"
            )
        missing = sorted(set(expected) - set(loaded))
        if missing:
            raise ValueError(f"loaded state of {label} lacks {missing} (it has {sorted(loaded)})")
        for key, value in loaded.items():
            ref = expected.get(key, p)  # an optional key holds a tensor like the parameter
            if key == "step":
                _check_step(label, value)
                continue
            if not isinstance(ref, Tensor):
                continue
            if not isinstance(value, Tensor):
                raise ValueError(
                    f"loaded state of {label} has '{key}' of type {type(value).__name__}, expected a tensor"
                )
            if value.layout != ref.layout or value.is_meta:
                where = "meta" if value.is_meta else str(value.layout)
                raise ValueError(
                    f"loaded state of {label} has '{key}' as a {where} tensor, expected a dense one"
                )
            if value.shape != ref.shape:
                got, want = tuple(value.shape), tuple(ref.shape)
                raise ValueError(f"loaded state of {label} has '{key}' of shape {got}, expected {want}")
            if (ref.is_floating_point() or ref.is_complex()) and not (
                value.is_floating_point() or value.is_complex()
            ):
                raise ValueError(
                    f"loaded state of {label} has '{key}' of dtype {value.dtype}, expected {ref.dtype}"
                )


def _check_fused_params(params: list[Tensor]) -> None:
    """torch's check of ``fused=True``: floating-point parameters on devices with fused kernels."""
    devices = _get_fused_kernels_supported_devices()
    for j, p in enumerate(params):
        if not (p.device.type in devices and torch.is_floating_point(p)):
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of supported "
                f"devices: {devices} (parameter {j} is {p.dtype} on {p.device})"
            )


def _check_step(label: str, value: Any) -> None:
    """A loaded step counter: a non-negative finite number or 0-dim tensor."""
    number = value
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_meta or value.layout != torch.strided:
            raise ValueError(f"loaded state of {label} has 'step' {value!r}, expected a number")
        number = value.item()
    if isinstance(number, bool) or not isinstance(number, int | float) or not (0 <= number < float("inf")):
        raise ValueError(f"loaded state of {label} has 'step' {value!r}, expected a non-negative number")
