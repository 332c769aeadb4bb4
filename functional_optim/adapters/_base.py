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

Outside ``differentiable=True`` the step takes torch.optim's shortcuts, with the same numbers:
the state buffers are *donated* (updated in place, :func:`functional_optim.ops.donating`); a
chain ending in ``[add_decayed_weights(wd)], scale_by_learning_rate(lr)`` has its tail applied in
place as torch does (``p.mul_(1 - lr·wd)``, then ``p.add_(u, alpha=-lr)`` or the core's
``p.addcdiv_(num, den, value)``; :mod:`functional_optim.fusion`); and while no state tensor was
replaced between two steps, the functional state of the last step is reused as it is.

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

import contextlib
import inspect
import itertools
import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT, required

from functional_optim import fusion, ops
from functional_optim.core import GradientTransformation

__all__ = ["FUNCTIONAL_STATE_KEY", "IMPLEMENTATION_FLAGS", "FunctionalOptimizer"]

FUNCTIONAL_STATE_KEY = "functional_state"
"""Key, in the state of a group's first parameter, of the group's non-per-parameter state."""

IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")
"""``torch.optim``'s implementation flags: accepted, never passed to the transform."""


# ----------------------------------------------------------------------------- state layout
# A layout is a small tree that mirrors the transform's state:
#   ("param", key, empty)     a per-parameter field: a list with one entry per parameter
#                             (``empty`` stands for the entries that hold nothing)
#   ("global", path, meta)    any other leaf, stored under FUNCTIONAL_STATE_KEY[path]
#   ("const", value)          None
#   ("nt", cls, children) / ("tuple", children) / ("list", children) / ("dict", keys, children)


def _is_placeholder(v: Any) -> bool:
    """A per-parameter entry that holds nothing: ``None`` or an empty tuple (e.g. Adafactor's
    ``variance`` of a matrix). It is not stored in ``self.state[p]``."""
    return v is None or (isinstance(v, tuple) and not v)


def _is_per_param(value: Any, n: int) -> bool:
    # A list with one tensor-or-placeholder entry per parameter (all placeholders too: e.g.
    # Adafactor's ``variance`` in a group of matrices).
    return (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, Tensor) or _is_placeholder(v) for v in value)
    )


def _build_layout(state: Any, n: int) -> tuple:
    used: dict[str, int] = {}

    def key_for(name: str) -> str:
        k = used.get(name, 0)
        used[name] = k + 1
        return name if k == 0 else f"{name}_{k}"

    def build(node: Any, path: tuple) -> tuple:
        if node is None:
            return ("const", None)
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            children = []
            for name, value in zip(node._fields, node, strict=True):
                if _is_per_param(value, n):
                    placeholder = next((v for v in value if not isinstance(v, Tensor)), None)
                    children.append(("param", key_for(name), placeholder))
                else:
                    children.append(build(value, (*path, name)))
            return ("nt", type(node), tuple(children))
        if isinstance(node, tuple | list):
            kind = "tuple" if isinstance(node, tuple) else "list"
            return (kind, tuple(build(v, (*path, str(i))) for i, v in enumerate(node)))
        if isinstance(node, dict):
            keys = tuple(node)
            return ("dict", keys, tuple(build(node[k], (*path, str(k))) for k in keys))
        meta = (node.dtype, node.device, node.dim()) if isinstance(node, Tensor) else None
        return ("global", ".".join(path) or "<root>", meta)

    return build(state, ())


def _layout_keys(layout: tuple) -> list[str]:
    out: list[str] = []

    def walk(t: tuple) -> None:
        kind = t[0]
        if kind == "param":
            out.append(t[1])
        elif kind == "nt" or kind == "dict":
            for c in t[2]:
                walk(c)
        elif kind in ("tuple", "list"):
            for c in t[1]:
                walk(c)

    walk(layout)
    return out


def _has_globals(layout: tuple) -> bool:
    kind = layout[0]
    if kind == "global":
        return True
    if kind == "nt" or kind == "dict":
        return any(_has_globals(c) for c in layout[2])
    if kind in ("tuple", "list"):
        return any(_has_globals(c) for c in layout[1])
    return False


def _assemble(t: tuple, sts: list[dict], glob: dict | None) -> Any:
    kind = t[0]
    if kind == "param":
        key, placeholder = t[1], t[2]
        return [st.get(key, placeholder) for st in sts]
    if kind == "nt":
        return t[1](*[_assemble(c, sts, glob) for c in t[2]])
    if kind == "tuple":
        return tuple(_assemble(c, sts, glob) for c in t[1])
    if kind == "list":
        return [_assemble(c, sts, glob) for c in t[1]]
    if kind == "dict":
        return {k: _assemble(c, sts, glob) for k, c in zip(t[1], t[2], strict=True)}
    if kind == "global":
        value = glob[t[1]]
        meta = t[2]
        if meta is not None:
            dtype, device, _ = meta
            if not isinstance(value, Tensor):
                value = torch.tensor(value, dtype=dtype, device=device)
                glob[t[1]] = value
            elif value.dtype != dtype:
                value = value.to(dtype)
                glob[t[1]] = value
        return value
    return t[1]


def _scatter(t: tuple, value: Any, sts: list[dict], glob: dict | None) -> None:
    kind = t[0]
    if kind == "param":
        key = t[1]
        for st, v in zip(sts, value, strict=True):
            if v is None or (isinstance(v, tuple) and not v):  # _is_placeholder, inlined: hot loop
                st.pop(key, None)
            else:
                st[key] = v
    elif kind == "nt" or kind == "dict":
        children = t[2]
        values = value if kind == "nt" else [value[k] for k in t[1]]
        for c, v in zip(children, values, strict=True):
            _scatter(c, v, sts, glob)
    elif kind in ("tuple", "list"):
        for c, v in zip(t[1], value, strict=True):
            _scatter(c, v, sts, glob)
    elif kind == "global":
        glob[t[1]] = value


def _freeze_exact(v: Any) -> Any:
    """A hashable key equal for identical hyperparameter values (tensors by identity)."""
    if isinstance(v, Tensor):
        return ("T", id(v))
    if isinstance(v, tuple | list):
        return tuple(_freeze_exact(x) for x in v)
    try:
        hash(v)
    except TypeError:
        return ("id", id(v))
    return (type(v), v)


def _freeze_structure(v: Any) -> Any:
    """A key that changes only when a value may change the *structure* of the state
    (a flag, a string, a number becoming zero or non-zero)."""
    if isinstance(v, Tensor):
        return "T"
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float):
        return ("num", v == 0)
    if isinstance(v, tuple | list):
        return tuple(_freeze_structure(x) for x in v)
    return ("id", id(v)) if callable(v) else type(v).__name__


_GRAD = operator.attrgetter("grad")
_LAYOUT = operator.attrgetter("layout")
_DTYPE = operator.attrgetter("dtype")


def _to_python(value: Any) -> Any:
    if isinstance(value, Tensor) and value.dim() == 0 and not value.requires_grad:
        return value.item()
    return value


def _param_lists(t: tuple, value: Any, out: list[list[Any]]) -> list[list[Any]]:
    """The per-parameter lists of a functional state, in layout order."""
    kind = t[0]
    if kind == "param":
        out.append(value)
    elif kind == "nt" or kind == "dict":
        values = value if kind == "nt" else [value[k] for k in t[1]]
        for c, v in zip(t[2], values, strict=True):
            _param_lists(c, v, out)
    elif kind in ("tuple", "list"):
        for c, v in zip(t[1], value, strict=True):
            _param_lists(c, v, out)
    return out


def _same_param_tensors(layout: tuple, new_state: Any, old_state: Any) -> bool:
    """Whether the step returned the very same per-parameter tensors (updated in place)."""
    is_ = operator.is_
    return all(
        len(new) == len(old) and all(map(is_, new, old))
        for new, old in zip(
            _param_lists(layout, new_state, []), _param_lists(layout, old_state, []), strict=True
        )
    )


class _StepCache:
    """What a group's next step can reuse: the functional state of the last step, valid while the
    state layout (the structure of the transform's state: a new learning rate keeps it, a new
    ``amsgrad`` flag does not), the parameters with a gradient and every tensor in their
    ``self.state`` entries are the same objects (checked at C speed: ``map`` over the dicts)."""

    __slots__ = ("columns", "fstate", "ids", "layout", "lengths", "sts")

    def __init__(
        self, layout: tuple, ids: tuple, sts: list, fstate: Any, columns: dict, lengths: list
    ) -> None:
        self.layout, self.ids, self.sts, self.fstate = layout, ids, sts, fstate
        self.columns, self.lengths = columns, lengths

    @classmethod
    def make(
        cls, layout: tuple, present: list[Tensor], torch_states: list[dict], sts: list[dict], fstate: Any
    ) -> _StepCache:
        keys = set().union(*torch_states)
        columns = {k: list(map(dict.get, torch_states, itertools.repeat(k))) for k in keys}
        return cls(layout, tuple(map(id, present)), sts, fstate, columns, list(map(len, torch_states)))

    def fits(self, layout: tuple, present: list[Tensor], torch_states: list[dict]) -> bool:
        if layout is not self.layout or list(map(len, torch_states)) != self.lengths:
            return False
        if tuple(map(id, present)) != self.ids:
            return False
        is_ = operator.is_
        return all(
            all(map(is_, map(dict.get, torch_states, itertools.repeat(k)), column))
            for k, column in self.columns.items()
        )


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
      transform_or_factory: a ``GradientTransformation`` (run unchanged on every group; it
        takes no hyperparameters from the groups) or a factory such as ``fo.adamw``. With a
        factory the hyperparameters live in ``param_groups`` (defaults: the factory's signature
        defaults overridden by ``hyperparams``) and are read at every step: the transform of a
        group is ``factory(**hyperparameters of the group)``, rebuilt when they change (a
        scheduler changing ``lr``, a user editing ``group["weight_decay"]``...).
      **hyperparams: the factory's hyperparameters, and the implementation flags ``foreach``,
        ``fused``, ``capturable``, ``differentiable``. The flags are accepted for
        compatibility: ``differentiable=True`` runs the step with autograd enabled (so it is
        differentiable, as torch's flag); the others change nothing because the one code path
        chooses its kernels itself (``torch._foreach_*`` for dense tensors). ``fused=True`` with
        ``foreach=True`` (or with ``differentiable=True``) raises ``RuntimeError`` as torch.

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

    donate_state = True
    """Let the transform write its new state into the optimizer's state buffers (in place, as
    ``torch.optim`` does, with the same numbers; see :func:`functional_optim.ops.donating`).
    Set ``opt.donate_state = False`` to have every step allocate fresh state tensors instead
    (e.g. when other code keeps references to old state tensors and needs them unchanged).
    Steps with ``differentiable=True`` never donate."""

    # Subclasses (the drop-in classes) may convert between torch's per-parameter state format
    # and the functional one by overriding ``_decode_param_state``/``_encode_param_state`` and
    # setting ``_has_codec = True``.
    _has_codec = False

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
            extra = [k for k in hyperparams if k not in IMPLEMENTATION_FLAGS]
            if extra:
                raise TypeError(
                    f"FunctionalOptimizer: hyperparameters {extra} were given with a ready-made "
                    "GradientTransformation; pass a factory (e.g. fo.adamw) to keep hyperparameters "
                    "in param_groups"
                )
            self._transform = transform_or_factory
            self._factory = None
            self._hp_names: tuple[str, ...] = ()
            defaults = dict(hyperparams)
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
        self._reset_cache()

    def _reset_cache(self) -> None:
        # per group (by position): transform cache and layout cache
        self._fo_transforms: dict[int, tuple[Any, GradientTransformation]] = {}
        self._fo_layouts: dict[int, tuple[Any, tuple, bool]] = {}
        self._fo_steps: dict[int, _StepCache] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_transform"] = self._transform
        state["_factory"] = self._factory
        state["_hp_names"] = self._hp_names
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for k, v in self.defaults.items():
                group.setdefault(k, v)
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
        if self._factory is None:
            return self._transform
        names = self._hp_names
        key = tuple(_freeze_exact(group[n]) for n in names)
        cached = self._fo_transforms.get(index)
        if cached is not None and cached[0] == key:
            return cached[1]
        transform = self._factory(**{n: group[n] for n in names})
        self._fo_transforms[index] = (key, transform)
        return transform

    def _layout_for(
        self, index: int, group: dict[str, Any], transform: GradientTransformation
    ) -> tuple[tuple, bool, Any]:
        """The cached layout of the group's state; rebuilt when the group's parameters or the
        structure of its hyperparameters change. Returns (layout, has_globals, fresh init or None)."""
        params = group["params"]
        key = (tuple(map(id, params)), tuple(_freeze_structure(group[n]) for n in self._hp_names))
        cached = self._fo_layouts.get(index)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2], None
        init_state = transform.init(list(params))
        layout = _build_layout(init_state, len(params))
        has_globals = _has_globals(layout)
        self._fo_layouts[index] = (key, layout, has_globals)
        return layout, has_globals, init_state

    def _fresh_param_states(
        self, transform: GradientTransformation, group: dict[str, Any], params: list[Tensor]
    ) -> list[dict[str, Any]]:
        """Freshly initialised functional per-parameter state for ``params`` (one dict each)."""
        init_state = transform.init(list(params))
        layout = _build_layout(init_state, len(params))
        out: list[dict[str, Any]] = [{} for _ in params]
        _scatter(layout, init_state, out, {})
        return out

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

    def _step_group(self, index: int, group: dict[str, Any], extra: dict[str, Any]) -> None:
        params = group["params"]
        grads = list(map(_GRAD, params))
        if any(map(operator.is_, grads, itertools.repeat(None))):  # skipped: no gradient
            present = [p for p, g in zip(params, grads, strict=True) if g is not None]
            if not present:
                return
        else:
            present = params
        transform = self._transform_for(index, group)
        layout, has_globals, init_state = self._layout_for(index, group, transform)
        state = self.state
        codec = self._has_codec

        torch_states = [state[p] for p in present]
        cache = None if has_globals else self._fo_steps.get(index)
        if cache is not None and cache.fits(layout, present, torch_states):
            # Nothing replaced a state tensor since the last step: reuse its functional state
            # (no decoding, no re-assembly; the tensors themselves were updated in place).
            sts = cache.sts if codec else torch_states
            fstate, glob = cache.fstate, None
        else:
            cache = None
            sts, fstate, glob = self._gather_state(
                group, params, present, torch_states, transform, layout, has_globals, init_state
            )
        self._run_step(
            index, group, transform, layout, present, torch_states, sts, fstate, glob, cache, extra
        )

    def _gather_state(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        present: list[Tensor],
        torch_states: list[dict[str, Any]],
        transform: GradientTransformation,
        layout: tuple,
        has_globals: bool,
        init_state: Any,
    ) -> tuple[list[dict[str, Any]], Any, dict | None]:
        """The functional per-parameter fields (decoded), the assembled functional state and the
        group's global state, creating the state of parameters seen for the first time."""
        state = self.state
        if self._has_codec:
            is_init = self._is_initialized
            init_flags = [is_init(group, p, st) for p, st in zip(present, torch_states, strict=True)]
            new = [i for i, ok in enumerate(init_flags) if not ok]
            sts = [
                self._decode_param_state(group, p, st) if ok else {}
                for p, st, ok in zip(present, torch_states, init_flags, strict=True)
            ]
        else:
            fsk = FUNCTIONAL_STATE_KEY
            new = [i for i, st in enumerate(torch_states) if not st or (len(st) == 1 and fsk in st)]
            sts = torch_states
        if new:
            if init_state is not None and len(present) == len(params):
                fresh_all: list[dict[str, Any]] = [{} for _ in params]
                _scatter(layout, init_state, fresh_all, {})
                fresh = [fresh_all[i] for i in new]
            else:
                fresh = self._fresh_param_states(transform, group, [present[i] for i in new])
            for i, f in zip(new, fresh, strict=True):
                sts[i].update(f)

        glob = None
        if has_globals:
            first = state[params[0]]
            glob = first.get(FUNCTIONAL_STATE_KEY)
            if glob is None:
                if init_state is None:
                    init_state = transform.init(list(params))
                glob = {}
                _scatter(layout, init_state, [{} for _ in params], glob)
                first[FUNCTIONAL_STATE_KEY] = glob

        return sts, _assemble(layout, sts, glob), glob

    def _run_step(
        self,
        index: int,
        group: dict[str, Any],
        transform: GradientTransformation,
        layout: tuple,
        present: list[Tensor],
        torch_states: list[dict[str, Any]],
        sts: list[dict[str, Any]],
        fstate: Any,
        glob: dict | None,
        cache: _StepCache | None,
        extra: dict[str, Any],
    ) -> None:
        """Run the transform on the group's parameters that have a gradient, write the new state
        back (unless it was updated in place) and update the parameters."""
        codec = self._has_codec
        grads = list(map(_GRAD, present))
        # Differentiable steps: the transform sees clones, so the in-place update of the
        # parameters below does not invalidate tensors its autograd graph saved.
        updates = None  # stays None when the fused step below updated the parameters itself
        if torch.is_grad_enabled():
            xs = [p.clone() for p in present]
            updates, new_state = transform.update(grads, fstate, xs, **extra)
        else:
            fused = self._fused_tail(transform, present, grads)
            if self.donate_state:
                # The optimizer owns its state buffers (torch.optim updates them in place too):
                # donate them, so that the transforms write the new state into the old buffers
                # (same numbers, no new allocation). Never the parameters or gradients themselves.
                owned = itertools.chain.from_iterable(map(dict.values, sts))
                donation = ops.donating(owned, exclude=itertools.chain(present, grads))
            else:
                donation = contextlib.nullcontext()
            with donation:
                if fused is None:
                    updates, new_state = transform.update(grads, fstate, present, **extra)
                else:
                    new_state = self._fused_step(fused, grads, fstate, present, extra)
        if cache is None or not _same_param_tensors(layout, new_state, fstate):
            _scatter(layout, new_state, sts, glob)
            if codec:
                for p, st, fields in zip(present, torch_states, sts, strict=True):
                    encoded = self._encode_param_state(group, p, fields)
                    keep = st.get(FUNCTIONAL_STATE_KEY)
                    st.clear()
                    st.update(encoded)
                    if keep is not None:
                        st[FUNCTIONAL_STATE_KEY] = keep
            if glob is None:
                self._fo_steps[index] = _StepCache.make(layout, present, torch_states, sts, new_state)
        else:
            cache.fstate = new_state
        if updates is not None:
            self._apply(present, updates)

    @staticmethod
    def _fused_tail(
        transform: GradientTransformation, params: list[Tensor], grads: list[Tensor]
    ) -> tuple[fusion.FusedPlan, float, float] | None:
        """``(plan, -lr, 1 - lr·wd)`` when the step can apply the chain's tail in place
        (:mod:`functional_optim.fusion`): a chain ending in ``scale_by_learning_rate`` with concrete
        values, and dense gradients of their parameters' dtype."""
        plan = fusion.fused_plan(transform)
        if plan is None:
            return None
        lr = fusion.concrete(plan.learning_rate)
        wd = 0.0 if plan.weight_decay is None else fusion.concrete(plan.weight_decay)
        if lr is None or wd is None:
            return None
        # dense gradients of their parameters' dtype (checked with C-level loops: once per step)
        if not all(map(operator.is_, map(_LAYOUT, grads), itertools.repeat(torch.strided))):
            return None
        if not all(map(operator.is_, map(_DTYPE, grads), map(_DTYPE, params))):
            return None
        return plan, -lr, 1 - lr * wd  # torch.optim's ``1 - lr * weight_decay``

    @staticmethod
    def _fused_step(
        fused: tuple[fusion.FusedPlan, float, float],
        grads: list[Tensor],
        fstate: tuple,
        params: list[Tensor],
        extra: dict[str, Any],
    ) -> tuple:
        """Run the chain up to its core and apply ``p ← param_scale·p + step_scale·core_update``
        in place (``torch.optim``'s ``mul_`` and ``add_``/``addcdiv_``). Returns the new state."""
        plan, step_scale, param_scale = fused
        n = plan.n_pre
        if n:
            updates, new_pre = plan.pre.update(grads, fstate[:n], params, **extra)
        else:
            updates, new_pre = grads, ()
        if plan.core is None:
            terms, new_core = [fusion.Term(updates, None, fusion.unscaled)], ()
        elif plan.terms is not None:
            terms, core_state = plan.terms(updates, fstate[n], params)
            new_core = (core_state,)
        else:
            updates, core_state = plan.core.update(updates, fstate[n], params, **extra)
            terms, new_core = [fusion.Term(updates, None, fusion.unscaled)], (core_state,)
        fusion.apply_terms_(params, terms, step_scale, param_scale)
        return (*new_pre, *new_core, *fstate[n + len(new_core) :])

    @staticmethod
    def _apply(params: list[Tensor], updates: list[Tensor | None]) -> None:
        strided = torch.strided
        if not torch.is_grad_enabled() and all(
            u is not None and u.layout is strided and u.dtype is p.dtype
            for p, u in zip(params, updates, strict=True)
        ):
            torch._foreach_add_(params, updates)  # the common case: one call
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
        """Perform one optimization step.

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
            for index, group in enumerate(self.param_groups):
                self._step_group(index, group, extra)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim``'s ``state_dict`` (same format); the ``"functional_state"`` entry, if any,
        holds its 0-dim tensors as Python numbers so that ``load_state_dict`` cannot cast them."""
        sd = super().state_dict()
        for k, st in list(sd["state"].items()):
            glob = st.get(FUNCTIONAL_STATE_KEY) if isinstance(st, dict) else None
            if glob is not None:
                st = dict(st)
                st[FUNCTIONAL_STATE_KEY] = {path: _to_python(v) for path, v in glob.items()}
                sd["state"][k] = st
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """``torch.optim``'s ``load_state_dict``, with full validation first: a different number
        of groups or of parameters in a group, or a state tensor whose shape does not fit its
        parameter raises ``ValueError`` naming the group/parameter, and nothing is changed."""
        handle = self.register_load_state_dict_pre_hook(lambda opt, sd: opt._validate_state_dict(sd))
        try:
            super().load_state_dict(state_dict)
        finally:
            handle.remove()
        self._reset_cache()

    def _group_index(self, group: dict[str, Any]) -> int:
        return next(i for i, g in enumerate(self.param_groups) if g is group)

    def _param_label(self, group: dict[str, Any], gi: int, j: int) -> str:
        names = group.get("param_names")
        name = f"'{names[j]}' " if names is not None and j < len(names) else ""
        return f"parameter {name}(group {gi}, index {j})"

    def _validate_state_dict(self, sd: dict[str, Any]) -> None:
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
        for pid, st in sd["state"].items():
            if pid not in where or not isinstance(st, dict):
                continue
            gi, j, g, p = where[pid]
            self._validate_param_state(g, gi, j, p, st)

    def _expected_param_state(self, group: dict[str, Any], p: Tensor) -> dict[str, Any]:
        index = self._group_index(group)
        transform = self._transform_for(index, group)
        fields = self._fresh_param_states(transform, group, [p])[0]
        return self._encode_param_state(group, p, fields) if self._has_codec else fields

    def _validate_param_state(self, group: dict[str, Any], gi: int, j: int, p: Tensor, st: dict) -> None:
        expected = self._expected_param_state(group, p)
        for key, value in st.items():
            ref = expected.get(key)
            if isinstance(value, Tensor) and isinstance(ref, Tensor) and value.shape != ref.shape:
                raise ValueError(
                    f"loaded state of {self._param_label(group, gi, j)} has '{key}' of shape "
                    f"{tuple(value.shape)}, expected {tuple(ref.shape)}"
                )
