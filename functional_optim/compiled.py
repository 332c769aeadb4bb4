"""``compile_step``: a whole optimizer step as ``torch.compile`` d code, updated in place.

``torch.compile(tx.update)`` gives Inductor kernels that fuse each parameter's update into one
loop (one read and one write of every buffer, like ``torch.optim``'s ``fused=True``), but every
call then pays Dynamo's guard checks on every input tensor (~1 µs each). [`compile_step`][]
keeps the kernels and replaces those guards by checks made once per call at C speed: the
layout of every tensor it is given (parameters, state and gradients: dtype, device, shape,
strides, storage offset, which tensors share memory, which gradients are ``None``) and the tree
structures are compared, as tuples, with those the running variant was compiled for. A changed
layout selects or compiles another variant (each with a code object of its own, so Dynamo never
hands one variant's kernels to another); compiled code is never run on a layout it was not
compiled for. After ``max_variants`` variants a further layout raises ``RuntimeError``.

Two ways to compile (both numerically the pure ``update`` + ``apply_updates``):

* **whole step** (the default, any traceable transform): one graph over every tensor. Its first
  call compiles a graph whose size grows with the number of tensors (about a minute for 100
  tensors on a 2-core CPU).
* **elementwise** (``elementwise=True``, for transforms whose update of a tensor depends only
  on that tensor's gradient, state and parameter and on shared scalars such as the step count:
  elementwise as SGD, Adam(W), Adagrad, RMSprop, NAdam, RAdam, Lion, ..., or through reductions
  over the whole tensor that do not need its shape, as LARS', LAMB's and NovoGrad's norms; but
  not global-norm clipping, tree masks, or shape-aware algorithms such as Muon or Adafactor): the
  tensors are flattened to 1-D views (a
  tensor is never split), grouped by dtype and device, and stepped ``group_size`` at a time by
  one compiled function with dynamic sizes; the compiled graph has ``group_size`` tensors whatever the
  model's size (first call: 11-17 s of CPU on a 2-core CPU with an empty Inductor cache, for
  100 or 10,000 tensors alike). Tensors it cannot view as 1-D (or with fewer than 2 elements)
  are stepped by the eager pure update. A rule in two passes whose step needs sums over every
  tensor between them (Prodigy, D-Adaptation: ``Rule.settle``) is compiled pass by pass, its
  sums settled eagerly in between (`functional_optim._two_pass`).

Two shortcuts, both on by default: where the transform is exactly one of ``torch.optim``'s fused
kernels (Adam, AdamW, SGD, Adagrad, read from the roles: `functional_optim._torch_kernels`)
that kernel runs the step and nothing is compiled; in the elementwise mode what Inductor made
of the step (its output module and kernel libraries) is kept on disk with the traced step
(`functional_optim._module_cache`, `functional_optim._graph_cache`), and a new process loads
it without ``torch.compile``: its first call costs milliseconds instead of seconds.
"""

from __future__ import annotations

import functools
import operator
import types
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import optree
import torch
import torch.fx.experimental._config as _fx_config
from torch import Tensor

from functional_optim import _graph_cache, _module_cache, _torch_kernels, _two_pass, tree
from functional_optim._flat import (
    chunk_grads,
    field_view,
    flat_view,
    padded_chunks,
    write_back,
    write_back_eager,
)
from functional_optim.core import GradientTransformation, Params, State, Updates, apply_updates

__all__ = ["CompiledStep", "compile_step"]

_SHAPE = operator.attrgetter("shape")
_DTYPE = operator.attrgetter("dtype")
_DEVICE = operator.attrgetter("device")
_REQUIRES_GRAD = operator.attrgetter("requires_grad")

# Inductor options of every variant: Dynamo's guards and Inductor's size/stride asserts check
# every input at every call (~1 µs each), ``CompiledStep.__call__`` checks the same facts once;
# ``cpp.vec_isa_ok`` trusts the CPU flags instead of test-compiling each vector ISA in a fresh
# cache directory (tens of seconds on a small CPU)
_DEFAULT_OPTIONS: dict[str, Any] = {
    "guard_filter_fn": torch.compiler.skip_all_guards_unsafe,
    "size_asserts": False,
    "cpp.vec_isa_ok": True,
}


def _tensor_layout(tensors: list[Tensor]) -> tuple:
    """What compiled code depends on, for tensors known to be tensors (C-level maps)."""
    return (
        tuple(map(_DTYPE, tensors)),
        tuple(map(_DEVICE, tensors)),
        tuple(map(_SHAPE, tensors)),
        tuple(map(Tensor.stride, tensors)),
        tuple(map(Tensor.storage_offset, tensors)),
        tuple(map(_REQUIRES_GRAD, tensors)),
    )


try:  # Dynamo's C++ tensor check: dtype, device, dispatch keys, requires_grad, sizes, strides
    from torch._C._dynamo.guards import TensorGuards as _TensorGuards
except ImportError:  # pragma: no cover - older or stripped builds: the Python tuples
    _TensorGuards = None  # type: ignore[misc,assignment]


class _LayoutCheck:
    """Whether tensors still have the layout they had: C++ checks of dtype, device, dispatch
    keys, requires_grad, sizes and strides (~50 ns a tensor), then the storage offsets and, for
    tensors that views were made of, the data pointers."""

    def __init__(self, tensors: list[Tensor], *, pointers: bool, offsets: bool = True) -> None:
        self.n = len(tensors)
        self.guard = None
        if _TensorGuards is not None and tensors:
            self.guard = _TensorGuards(
                *tensors,
                # the stub wants lists of SymInt | None; Dynamo itself passes lists of ints
                dynamic_dims_sizes=cast(Any, [list(t.shape) for t in tensors]),
                dynamic_dims_strides=cast(Any, [list(t.stride()) for t in tensors]),
            )
        self.layout = _tensor_layout(tensors)
        self.pointers = tuple(map(Tensor.data_ptr, tensors)) if pointers else None
        self.offsets = offsets

    def __call__(self, tensors: list[Any]) -> bool:
        if len(tensors) != self.n:
            return False
        if self.guard is not None:
            try:
                if not self.guard.check(*tensors):
                    return False
            except TypeError:  # a leaf that is not a tensor
                return False
            if self.offsets and tuple(map(Tensor.storage_offset, tensors)) != self.layout[4]:
                return False
        elif _tensor_layout(tensors) != self.layout:
            return False
        return self.pointers is None or tuple(map(Tensor.data_ptr, tensors)) == self.pointers


def _grads_signature(leaves: list[Any]) -> tuple:
    """Layout of the gradients, and which are ``None``."""
    try:
        return _tensor_layout(leaves)
    except (AttributeError, TypeError):  # None leaves (no gradient)
        return tuple(_leaf_key(g) for g in leaves)


def _leaf_key(x: Any) -> Any:
    if isinstance(x, Tensor):
        return (tuple(x.shape), x.stride(), x.storage_offset(), x.dtype, x.device, x.layout, x.requires_grad)
    return ("value", type(x).__name__, x if isinstance(x, int | float | bool | str | None) else id(x))


def _alias_pattern(leaves: list[Any]) -> tuple:
    """For each tensor, the index of the first tensor with the same data pointer (aliasing is
    part of what the compiled code assumed)."""
    first: dict[tuple, int] = {}
    out = []
    for i, x in enumerate(leaves):
        if isinstance(x, Tensor) and x.numel() > 0:
            out.append(first.setdefault((x.device, x.data_ptr()), i))
        else:
            out.append(i)
    return tuple(out)


def _new_code(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``fn`` with a code object of its own: Dynamo caches compiled graphs per code object."""
    code = fn.__code__.replace(co_name=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _cpu_scalars(leaves: list[Any]) -> list[int]:
    """The positions of the 0-dim float64 CPU tensors among a state's leaves (group values such
    as Schedule-Free's weight sum or Prodigy's ``d``; step counters under a float64 default
    dtype). Float32 and integer ones are written in the graph: no extra work per step for them."""
    return [
        i
        for i, x in enumerate(leaves)
        if isinstance(x, Tensor) and x.dim() == 0 and x.dtype == torch.float64 and x.device.type == "cpu"
    ]


def _whole_step_fn(transform: GradientTransformation) -> Callable[..., list[Any]]:
    """The whole step: every state tensor but the 0-dim float64 CPU ones written in the graph;
    those are returned, to be written by the caller (`_write_scalars`): Inductor (torch 2.13)
    drops a ``copy_`` into a 0-dim float64 CPU input (float32 and int64 ones are kept), which
    left Schedule-Free's ``lr_max`` and weight sum, and Prodigy's ``d``, at their first values."""

    def step(params: Params, grads: Updates, state: State) -> list[Any]:
        updates, new_state = transform.update(grads, state, params)
        new_params = apply_updates(params, updates)
        olds, news = tree.leaves(state), tree.leaves(new_state)
        scalars = _cpu_scalars(olds)
        kept = set(scalars)
        write_back(
            [o for i, o in enumerate(olds) if i not in kept], [n for i, n in enumerate(news) if i not in kept]
        )
        write_back(tree.leaves(params), tree.leaves(new_params))
        return [news[i] for i in scalars]

    return step


def _write_scalars(state: State, new_values: list[Any]) -> None:
    """Write the 0-dim float64 CPU state tensors a whole step returned (see `_whole_step_fn`)."""
    olds = tree.leaves(state)
    write_back_eager([olds[i] for i in _cpu_scalars(olds)], new_values)


def _chunk_step_fn(
    transform: GradientTransformation, per_param: tuple[int, ...], shared: tuple[int, ...]
) -> Callable[..., list[Any]]:
    """A step over lists of 1-D tensors: per-parameter state written in place, the new shared
    state leaves (step counts) returned, to be written once after every chunk has stepped."""

    def chunk_step(params: list[Tensor], grads: list[Tensor], state: State) -> list[Any]:
        updates, new_state = transform.update(grads, state, params)
        new_params = apply_updates(params, updates)
        olds, news = tree.leaves(state), tree.leaves(new_state)
        write_back([olds[i] for i in per_param], [news[i] for i in per_param])
        write_back(params, new_params)
        # an entry returned unchanged (a hyperparameter kept in the state) as a copy: an output
        # that is an input is left out of Inductor's module (AOT autograd returns it itself),
        # and the step could not be saved for a later process (`_module_cache.record`)
        return [news[i] if news[i] is not olds[i] else olds[i].clone() for i in shared]

    return chunk_step


class _Chunk(NamedTuple):
    fn: _DynamicVariant
    params: list[Tensor]  # 1-D views, padded to the chunk size
    state: State  # the state tree with each per-parameter field as a list of 1-D views
    state_leaves: list[Any]  # its leaves
    grad_index: list[int]
    pad_grads: list[Tensor]


class _Plan(NamedTuple):
    chunks: list[_Chunk]
    cache: dict[Any, Any]  # the gradients' 1-D views and the chunks' bound steps, once made
    rest: list[int]  # gradient leaves stepped by the eager update
    rest_state: State | None  # the state tree with per-parameter fields as lists over ``rest``
    rest_positions: tuple[tuple[int, ...], tuple[int, ...]]  # per-parameter and shared leaves
    shared: list[Any]  # the shared state leaves (written after the step)


class _Last(NamedTuple):
    owned: list[Any]
    tensors: list[Tensor]
    owned_check: _LayoutCheck
    specs: tuple
    grad_check: _LayoutCheck | None  # None when some gradient is None: compare the signature
    grad_signature: tuple
    run: Any  # the whole-step variant, the elementwise plan or torch's kernel step
    shapes: tuple | None  # the structures as :func:`_fast_leaves` records them (None: not plain)


class _Looked(NamedTuple):
    """What `CompiledStep._look` found: the step to run again (``None``: none applies), the
    leaves and structures of the arguments, and the records of their fast walk."""

    run: Any
    owned: list[Any]
    owned_spec: Any
    grad_leaves: list[Any]
    grad_spec: Any
    owned_fast: list[Any] | None
    owned_shape: Any
    grad_fast: list[Any] | None
    grad_shape: Any


_TENSOR_TYPES = frozenset({Tensor, torch.nn.Parameter})


def _fast_leaves(x: Any) -> tuple[list[Any], list[Any]] | tuple[None, None]:
    """The leaves of a plain tree (lists, tuples, NamedTuples, dicts with sortable keys, tensor
    leaves) in ``optree``'s order, and a record of its structure (container types and sizes,
    dict keys), without ``optree``: lists of tensors are taken whole (C-level ``map``s), so the
    per-call cost does not grow by a Python step per tensor. ``(None, None)`` for anything else
    (``None`` or number leaves, custom nodes): the caller then uses ``optree``."""
    leaves: list[Any] = []
    shape: list[Any] = []
    return (leaves, shape) if _fast_walk(x, leaves, shape) else (None, None)


def _fast_walk(x: Any, leaves: list[Any], shape: list[Any]) -> bool:
    t = type(x)
    if t in _TENSOR_TYPES:
        leaves.append(x)
        shape.append(None)
        return True
    if t is list or t is tuple or (issubclass(t, tuple) and hasattr(t, "_fields")):
        shape.append((t, len(x)))
        if x and set(map(type, x)) <= _TENSOR_TYPES:
            leaves.extend(x)
            return True
        return all(_fast_walk(item, leaves, shape) for item in x)
    if t is dict:
        try:
            keys = sorted(x)
        except TypeError:
            return False
        shape.append((t, tuple(keys)))
        return all(_fast_walk(x[k], leaves, shape) for k in keys)
    return False


class CompiledStep:
    """``step(params, grads, state)``: ``transform.update`` + ``apply_updates`` compiled, writing
    the new parameters and state into the given tensors. See [`compile_step`][]."""

    def __init__(
        self,
        transform: GradientTransformation,
        *,
        elementwise: bool = False,
        group_size: int = 4,
        max_variants: int = 8,
        torch_kernels: bool = True,
        trace_cache: bool = True,
        **compile_options: Any,
    ) -> None:
        if not isinstance(transform, GradientTransformation):
            raise TypeError(f"compile_step needs a GradientTransformation, got {type(transform).__name__}")
        for name, value in (("group_size", group_size), ("max_variants", max_variants)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"compile_step: {name} must be an int >= 1, got {value!r}")
        self.transform = transform
        self.elementwise = bool(elementwise)
        self.group_size = group_size
        self.max_variants = max_variants
        self.compile_options = compile_options
        self._recipe = _torch_kernels.recipe(transform) if torch_kernels else None
        self.trace_cache = bool(trace_cache)
        self._variants: dict[Any, Callable[..., Any]] = {}
        self._last: _Last | None = None

    @property
    def compilations(self) -> int:
        """How many variants were compiled (1 while parameters, state and gradients keep their
        layout; 0 while ``torch.optim``'s fused kernel runs the step)."""
        return len(self._variants)

    @property
    def uses_torch_kernel(self) -> bool:
        """Whether the last call ran ``torch.optim``'s fused kernel (see [`compile_step`][])."""
        return self._last is not None and isinstance(self._last.run, _torch_kernels.KernelStep)

    def warmup(self, params: Params, grads: Updates, state: State) -> None:
        """Compile for these layouts now, on copies: ``params`` and ``state`` are not changed.

        Example:
            >>> import torch
            >>> import functional_optim as fo
            >>> params = [torch.ones(3), torch.ones(3)]
            >>> tx = fo.sgd(0.5)
            >>> step = fo.compile_step(tx, elementwise=True)
            >>> step.warmup(params, [torch.ones(3), torch.ones(3)], tx.init(params))
            >>> params[0]
            tensor([1., 1., 1.])
        """

        def copy(t: Any) -> Any:
            return t.detach().clone() if isinstance(t, Tensor) else t

        self(tree.map(copy, params), grads, tree.map(copy, state))
        self._last = None  # hold no reference to the copies

    def prepare(self, params: Params, grads: Updates, state: State) -> Callable[[], None]:
        """Everything of a call that may compile or fail, now: ``step.prepare(params, grads,
        state)()`` is ``step(params, grads, state)``, but the first part writes nothing (a layout
        not seen by the last call is compiled here by `warmup`, on copies) and the returned call
        runs what is compiled only. Call it before anything changes the arguments (the adapters'
        ``fused=True`` steps: prepared in their first phase, run in their second)."""
        looked = self._look(params, grads, state)
        if looked.run is None:
            self.warmup(params, grads, state)
            return functools.partial(self._call, params, grads, state, None)
        return functools.partial(self._call, params, grads, state, looked)

    def _look(self, params: Params, grads: Updates, state: State) -> _Looked:
        """The arguments' leaves and structures, with the last call's step if it applies to them."""
        last = self._last
        owned_fast, owned_shape = _fast_leaves((params, state))
        grad_fast, grad_shape = _fast_leaves(grads)
        fast = (
            last is not None
            and last.shapes is not None
            and owned_fast is not None
            and grad_fast is not None
            and last.shapes == (owned_shape, grad_shape)
        )
        if fast:  # the same plain structures as last time: their leaves, in optree's order
            assert owned_fast is not None and grad_fast is not None and last is not None
            owned, grad_leaves = owned_fast, grad_fast
            owned_spec, grad_spec = last.specs
        else:
            owned, owned_spec = tree.flatten((params, state))
            grad_leaves, grad_spec = tree.flatten(grads)
        run = None
        if (
            last is not None
            and len(last.owned) == len(owned)
            and all(map(operator.is_, owned, last.owned))
            and last.specs == (owned_spec, grad_spec)
            and (
                last.grad_check(grad_leaves)
                if last.grad_check is not None
                else _grads_signature(grad_leaves) == last.grad_signature
            )
            and last.owned_check(last.tensors)
        ):
            run = last.run
        return _Looked(
            run, owned, owned_spec, grad_leaves, grad_spec, owned_fast, owned_shape, grad_fast, grad_shape
        )

    def __call__(self, params: Params, grads: Updates, state: State) -> None:
        self._call(params, grads, state, None)

    def _call(self, params: Params, grads: Updates, state: State, looked: _Looked | None) -> None:
        """The step; ``looked``: what `_look` found for these very arguments (`prepare`)."""
        if looked is None:
            looked = self._look(params, grads, state)
        run, owned, owned_spec, grad_leaves, grad_spec, owned_fast, owned_shape, grad_fast, grad_shape = (
            looked
        )
        if run is None:
            grad_signature = _grads_signature(grad_leaves)
            tensors = [x for x in owned if isinstance(x, Tensor)]
            if self._recipe is not None:
                run = _torch_kernels.bind(self._recipe, params, grad_leaves, state)
                if run is not None and run.hyperparameters() is None:
                    run = None
            if run is None:
                run = self._compiled_run(
                    params, state, owned, owned_spec, grad_leaves, grad_spec, grad_signature
                )
            all_grads = all(isinstance(g, Tensor) for g in grad_leaves)
            # torch's kernels take the tensors themselves, wherever their memory is: dtypes,
            # devices and shapes are what they were checked for
            kernel = isinstance(run, _torch_kernels.KernelStep)
            self._last = _Last(
                owned,
                tensors,
                _LayoutCheck(tensors, pointers=not kernel, offsets=not kernel),
                (owned_spec, grad_spec),
                _LayoutCheck(grad_leaves, pointers=False) if all_grads else None,
                grad_signature,
                run,
                self._shapes(owned, grad_leaves, owned_fast, owned_shape, grad_fast, grad_shape),
            )
        if isinstance(run, _torch_kernels.KernelStep):
            hyper = run.hyperparameters()
            if hyper is not None:
                with torch.no_grad():
                    run.run(grad_leaves, *hyper)
                return
            # a hyperparameter that is not a number any more (e.g. a tensor that requires grad):
            # the compiled update for this layout, from now on
            assert self._last is not None
            self._recipe = None
            run = self._compiled_run(
                params, state, owned, owned_spec, grad_leaves, grad_spec, self._last.grad_signature
            )
            self._last = self._last._replace(run=run)
        with torch.no_grad():
            if isinstance(run, _Plan):
                _run_plan(self.transform, run, params, grads, grad_leaves, state)
            elif isinstance(run, _two_pass.TwoPassPlan):
                _two_pass.run(self.transform, run, params, grads, grad_leaves, state)
            else:
                new_scalars = run(params, grads, state)
                if new_scalars:
                    _write_scalars(state, new_scalars)

    @staticmethod
    def _shapes(
        owned: list[Any],
        grad_leaves: list[Any],
        owned_fast: list[Any] | None,
        owned_shape: list[Any] | None,
        grad_fast: list[Any] | None,
        grad_shape: list[Any] | None,
    ) -> tuple | None:
        """The structures for the next call's check without ``optree``, if the plain walk gives
        exactly ``optree``'s leaves here (else ``None``: ``optree`` at every call)."""
        if owned_fast is None or grad_fast is None:
            return None
        same = (
            len(owned_fast) == len(owned)
            and all(map(operator.is_, owned_fast, owned))
            and len(grad_fast) == len(grad_leaves)
            and all(map(operator.is_, grad_fast, grad_leaves))
        )
        return (owned_shape, grad_shape) if same else None

    # -- variants -----------------------------------------------------------------------------

    def _compiled_run(
        self,
        params: Params,
        state: State,
        owned: list[Any],
        owned_spec: Any,
        grad_leaves: list[Any],
        grad_spec: Any,
        grad_signature: tuple,
    ) -> Any:
        if self.elementwise and owned_spec.num_leaves and _elementwise_applies(params):
            if not _two_pass.applies(self.transform):
                return _Planner(self, params, grad_leaves, state).plan()
            two = _two_pass.make_plan(
                self.transform, params, grad_leaves, state, self.group_size, self._dynamic_variant
            )
            if two is not None:
                return two
        return self._whole_variant(owned, owned_spec, grad_leaves, grad_spec, grad_signature)

    def _variant(self, key: Any, make: Callable[[str], Callable[..., Any]]) -> Callable[..., Any]:
        variant = self._variants.get(key)
        if variant is None:
            if len(self._variants) >= self.max_variants:
                raise RuntimeError(
                    f"compile_step: the parameters, state or gradients changed layout (dtype, device, "
                    f"shape, strides, storage offset, None gradients) again after {len(self._variants)} "
                    f"compiled variants (max_variants={self.max_variants}); keep their layout fixed, or "
                    "build compile_step(..., max_variants=...) with a larger bound"
                )
            name = f"compiled_step_{id(self):x}_{len(self._variants)}"
            variant = self._variants[key] = make(name)
        return variant

    def _options(self) -> dict[str, Any]:
        return {**_DEFAULT_OPTIONS, **self.compile_options}

    def _whole_variant(
        self, owned: list[Any], owned_spec: Any, grad_leaves: list[Any], grad_spec: Any, grad_signature: tuple
    ) -> Callable[..., list[Any]]:
        key = (
            "whole",
            owned_spec,
            grad_spec,
            tuple(map(_leaf_key, owned)),
            grad_signature,
            _alias_pattern(owned + grad_leaves),
        )

        def make(name: str) -> Callable[..., list[Any]]:
            fn = _new_code(_whole_step_fn(self.transform), name)
            return torch.compile(fn, fullgraph=True, options=self._options())

        return self._variant(key, make)

    def _chunk_variant(
        self, key: tuple, per_param: tuple[int, ...], shared: tuple[int, ...], state_spec: Any
    ) -> _DynamicVariant:
        fn = _chunk_step_fn(self.transform, per_param, shared)
        return self._dynamic_variant((key, per_param, shared), fn, self.transform, state_spec)

    def _dynamic_variant(
        self, key: tuple, fn: Callable[..., Any], computes_with: Any, state_spec: Any
    ) -> _DynamicVariant:
        """The variant for ``key`` of ``fn(params, grads, state)`` over chunks of 1-D views (made
        on first use); ``computes_with``: what ``fn`` computes with, fingerprinted for the trace
        cache (the transform; a rule's passes)."""

        def make(name: str) -> Callable[..., Any]:
            cache_key = None
            if self.trace_cache:
                cache_key = _graph_cache.step_key(computes_with, key, self._options())
            return _DynamicVariant(_new_code(fn, name), name, self._options(), cache_key, state_spec)

        variant = self._variant(key, make)
        assert isinstance(variant, _DynamicVariant)  # chunk keys are made here only
        return variant


def _flat_call(
    fn: Callable[..., Any], n_params: int, n_grads: int, leaves: list[Any], state_spec: Any
) -> tuple[Callable[..., Any], list[int]]:
    """``fn(params, grads, state)`` as a function of the tensors among ``params + grads +
    state_leaves`` only (the other leaves, Python numbers, are constants of the trace)."""
    tensor_pos = [i for i, x in enumerate(leaves) if isinstance(x, Tensor)]

    def flat(*tensors: Tensor) -> Any:
        full = list(leaves)
        for i, t in zip(tensor_pos, tensors, strict=True):
            full[i] = t
        state = tree.unflatten(state_spec, full[n_params + n_grads :])
        return fn(full[:n_params], full[n_params : n_params + n_grads], state)

    return flat, tensor_pos


class _DynamicVariant:
    """A chunk step compiled with dynamic sizes on its first call, each size its own symbol: no
    equality between two tensors' sizes is assumed (the guards that would check it are replaced
    by ``CompiledStep.__call__``'s checks).

    With a ``cache_key`` (`functional_optim._graph_cache`), the step's aten graph is taken
    from the on-disk trace cache (or traced and saved there) and that straight-line code is
    compiled instead of the transform's Python: a new process skips most of Dynamo's tracing.
    It is called as ``variant(params, grads, state, state_leaves)``."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        options: dict[str, Any],
        cache_key: str | None,
        state_spec: Any,
    ) -> None:
        self.fn = fn
        self.name = name
        self.options = options
        self.cache_key = cache_key
        self.state_spec = state_spec
        self.compiled: Callable[..., Any] | None = None
        self.from_cache = False
        self.loaded = False  # whether the compiled step came from an earlier process's module

    def __call__(
        self, params: list[Tensor], grads: list[Tensor], state: State, state_leaves: list[Any]
    ) -> Any:
        if self.compiled is not None:
            return self.compiled(params, grads, state_leaves if self.from_cache else state)
        if self.cache_key is not None:  # Inductor's module saved by an earlier process
            saved = _module_cache.load(_graph_cache.cache_directory(), self.cache_key)
            if saved is not None:
                self.compiled, self.from_cache, self.loaded = saved, True, True
                return saved(params, grads, state_leaves)
        # Python floats (hyperparameters) stay constants: dynamic=True would trace them as
        # symbols and restart the analysis when Inductor needs them specialized
        # (``patch`` is installed at runtime by torch's config module: no stub)
        with _fx_config.patch(use_duck_shape=False), torch._dynamo.config.patch(specialize_float=True):  # type: ignore[attr-defined]
            compiled, recorder = self._compile(params, grads, state_leaves)
            out = compiled(params, grads, state_leaves if self.from_cache else state)
            if recorder is not None and self.cache_key is not None:
                directory = _graph_cache.cache_directory()
                saved = _module_cache.record(
                    directory, self.cache_key, recorder, compiled, params, grads, state_leaves
                )
                if saved is not None:  # the same kernels, with less Python around them per call
                    compiled = saved
        self.compiled = compiled
        return out

    def bind(
        self, params: list[Tensor], grads: list[Tensor], state_leaves: list[Any]
    ) -> Callable[[list[Tensor]], Any] | None:
        """``run(grads)`` for these parameter views and state leaves (``None``: not a loaded
        step module; the chunk then calls the variant)."""
        if isinstance(self.compiled, _module_cache.Step):
            return self.compiled.bind(params, grads, state_leaves)
        return None

    def _compile(
        self, params: list[Tensor], grads: list[Tensor], state_leaves: list[Any]
    ) -> tuple[Callable[..., Any], _module_cache.Recorder | None]:
        if self.cache_key is not None:
            leaves = [*params, *grads, *state_leaves]
            flat, tensor_pos = _flat_call(self.fn, len(params), len(grads), leaves, self.state_spec)
            traced = _graph_cache.load_or_trace(self.cache_key, flat, [leaves[i] for i in tensor_pos])
            if traced is not None:
                self.from_cache = True
                n_p, n_g = len(params), len(grads)
                state_pos = [i - n_p - n_g for i in tensor_pos if i >= n_p + n_g]

                def cached_step(p: list[Tensor], g: list[Tensor], s: list[Any]) -> Any:
                    return traced(*p, *g, *[s[i] for i in state_pos])

                recorder = _module_cache.Recorder(self.options)
                compiled = torch.compile(
                    _new_code(cached_step, self.name),
                    fullgraph=True,
                    dynamic=True,
                    backend=recorder,
                    options={"guard_filter_fn": self.options["guard_filter_fn"]},
                )
                return compiled, recorder
        return torch.compile(self.fn, fullgraph=True, dynamic=True, options=self.options), None


def _elementwise_applies(params: Params) -> bool:
    """Chunking needs a tree of at least two parameters (a lone tensor is stepped whole)."""
    spec = tree.structure(params)
    return spec.num_leaves >= 2 and not spec.is_leaf()


class _Planner:
    """Splits a step into chunks of 1-D views for [`CompiledStep`][]'s elementwise mode."""

    def __init__(self, step: CompiledStep, params: Params, grad_leaves: list[Any], state: State) -> None:
        self.step = step
        self.param_leaves, self.param_spec = tree.flatten(params)
        self.grad_leaves = grad_leaves
        if len(grad_leaves) != len(self.param_leaves):
            raise ValueError(
                f"compile_step: grads have {len(grad_leaves)} leaves but params have {len(self.param_leaves)}"
            )
        spec = self.param_spec

        def is_field(x: Any) -> bool:
            return tree.structure(x) == spec

        self.fields, self.prefix = optree.tree_flatten(state, is_leaf=is_field, none_is_leaf=True)
        self.is_field = [is_field(f) for f in self.fields]
        self.field_leaves = [
            tree.leaves(f) if isf else None for f, isf in zip(self.fields, self.is_field, strict=True)
        ]

    def _chunk_state(self, columns: list[list[Any]]) -> State:
        """The state tree with the k-th per-parameter field replaced by ``columns[k]``."""
        it = iter(columns)
        return optree.tree_unflatten(
            self.prefix, [next(it) if isf else f for f, isf in zip(self.fields, self.is_field, strict=True)]
        )

    def _positions(self, k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        per_param: list[int] = []
        shared: list[int] = []
        pos = 0
        for isf in self.is_field:
            if isf:
                per_param.extend(range(pos, pos + k))
                pos += k
            else:
                shared.append(pos)
                pos += 1
        return tuple(per_param), tuple(shared)

    def plan(self) -> _Plan:
        groups: dict[tuple, list[tuple[int, Tensor, list[Tensor]]]] = {}
        rest: list[int] = []
        per_param_fields = [fl for fl in self.field_leaves if fl is not None]
        for i, (p, g) in enumerate(zip(self.param_leaves, self.grad_leaves, strict=True)):
            if g is None:
                continue  # no update, state untouched
            p_view = flat_view(p)
            views: list[Any] = [field_view(fl[i], p) for fl in per_param_fields]
            if (
                p_view is None
                or not isinstance(g, Tensor)
                or g.shape != p.shape
                or any(v is None for v in views)
            ):
                rest.append(i)
                continue
            key = (p.device, g.dtype, p.dtype, *((v.dtype, v.dim()) for v in views))
            groups.setdefault(key, []).append((i, p_view, views))

        # non-tensor state entries (Python numbers) are constants of the compiled code
        constants = tuple(
            _leaf_key(f)
            for f, isf in zip(self.fields, self.is_field, strict=True)
            if not isf and not isinstance(f, Tensor)
        )
        chunks = []
        for key, members in groups.items():
            k = min(self.step.group_size, len(members))
            per_param, shared = self._positions(k)
            field_kinds = key[3:]  # (device, gradient dtype, parameter dtype, *fields)
            state_spec = tree.structure(self._chunk_state([[members[0][1]] * k for _ in field_kinds]))
            fn = self.step._chunk_variant(
                ("chunk", key, k, self.prefix, tuple(self.is_field), constants), per_param, shared, state_spec
            )
            for padded in padded_chunks(key, members, k):
                chunk_state = self._chunk_state(padded.columns)
                chunks.append(
                    _Chunk(
                        fn,
                        padded.params,
                        chunk_state,
                        tree.leaves(chunk_state),
                        padded.leaves,
                        padded.pad_grads,
                    )
                )

        rest_fields = [[fl[i] for i in rest] for fl in per_param_fields]
        rest_state = self._chunk_state(rest_fields) if rest else None
        shared_leaves = [f for f, isf in zip(self.fields, self.is_field, strict=True) if not isf]
        return _Plan(chunks, {}, rest, rest_state, self._positions(len(rest)), shared_leaves)


def _run_plan(
    transform: GradientTransformation,
    plan: _Plan,
    params: Params,
    grads: Updates,
    grad_leaves: list[Any],
    state: State,
) -> None:
    new_shared: list[Any] | None = None
    for chunk, grads in zip(plan.chunks, chunk_grads(plan.cache, plan.chunks, grad_leaves), strict=True):
        run = plan.cache.get(id(chunk))
        if run:
            new_shared = run(grads)
            continue
        new_shared = chunk.fn(chunk.params, grads, chunk.state, chunk.state_leaves)
        if run is None:  # compiled now: the chunk's inputs other than the gradients are fixed
            plan.cache[id(chunk)] = chunk.fn.bind(chunk.params, grads, chunk.state_leaves) or False
    if plan.rest:
        param_leaves = tree.leaves(params)
        rest_params = [param_leaves[i] for i in plan.rest]
        updates, new_state = transform.update(
            [grad_leaves[i] for i in plan.rest], plan.rest_state, rest_params
        )
        write_back_eager(rest_params, apply_updates(rest_params, updates))
        olds, news = tree.leaves(plan.rest_state), tree.leaves(new_state)
        per_param, shared = plan.rest_positions
        write_back_eager([olds[i] for i in per_param], [news[i] for i in per_param])
        if new_shared is None:
            new_shared = [news[i] for i in shared]
    if new_shared is None:  # no gradient at all: the pure update on the tree (no tensor maths)
        updates, new_state = transform.update(grads, state, params)
        write_back_eager(tree.leaves(state), tree.leaves(new_state))
        return
    for old, new in zip(plan.shared, new_shared, strict=True):
        if not isinstance(old, Tensor) and not (old is new or old == new):
            raise TypeError(
                f"compile_step(elementwise=True) needs the state's shared entries as tensors to update "
                f"them in place; one is a {type(old).__name__} ({old!r} -> {new!r})"
            )
    write_back_eager(plan.shared, new_shared)


def compile_step(
    transform: GradientTransformation,
    *,
    elementwise: bool = False,
    group_size: int = 4,
    max_variants: int = 8,
    torch_kernels: bool = True,
    trace_cache: bool = True,
    **compile_options: Any,
) -> CompiledStep:
    """Compile ``transform``'s step (``update`` + ``apply_updates``) into an in-place function.

    ``step = fo.compile_step(tx)`` then ``step(params, grads, state)`` updates ``params`` and
    ``state`` (trees of tensors, as ``tx.init(params)`` made it) in place, with the numbers of
    ``tx.update`` run under ``torch.compile`` (Inductor's fused kernels: one pass over memory per
    parameter, like ``torch.optim``'s ``fused=True``). Dynamo's per-call guards are replaced by
    cheaper checks of the same facts (see the module docstring): a new layout of the parameters,
    state or gradients (dtype, device, shape, strides, storage offset) compiles a new variant.

    First-call cost: the first call compiles (Dynamo, then Inductor generates and builds C++).
    With ``elementwise=True`` the compiled graph covers ``group_size`` tensors whatever the
    number of parameters (11-17 s of CPU on a 2-core CPU with an empty cache); without it the
    graph covers every tensor (41-111 s for 100 tensors on the same CPU). In the elementwise
    mode the compiled step (Inductor's output module and kernel libraries) is saved under
    ``TORCHINDUCTOR_CACHE_DIR`` (default ``/tmp/torchinductor_$USER``): a new process with the
    same transform and layouts loads it without ``torch.compile`` (a first call of
    milliseconds).
    [`CompiledStep.warmup`][functional_optim.compiled.CompiledStep.warmup] compiles ahead of the first step.

    Args:
      transform: any ``GradientTransformation`` that ``torch.compile`` can trace with
        ``fullgraph=True`` (every built-in algorithm; ``lbfgs`` is not).
      elementwise: the transform updates every tensor from that tensor's gradient, state and
        parameter (and shared scalars such as the step count) only: elementwise as SGD, Adam(W),
        Adagrad, RMSprop, NAdam, RAdam and Lion, or through reductions over the whole tensor
        that do not need its shape (the norms of LARS, LAMB, NovoGrad); it is then compiled once
        for ``group_size`` flattened tensors (each whole) and run over the parameters in groups.
        A rule in two passes whose sums over every tensor give the numbers of its second pass
        (``fo.prodigy``, ``fo.dadapt_adam``) is compiled pass by pass, the sums settled eagerly
        between the passes (the numbers the passes read are inputs: one compilation per
        layout). Wrong for other transforms that mix tensors (global-norm clipping), need a
        tensor's shape (Muon, Adafactor) or depend on the tree (masks).
      group_size: tensors per compiled call in the elementwise mode (larger: fewer calls per
        step, longer first call; 4 rather than 8 took 2-4 s less CPU to compile on a 2-core
        CPU at the same step time).
      max_variants: how many layouts may be compiled before a new one raises ``RuntimeError``.
      torch_kernels: where the transform's roles say that its step is exactly one of
        ``torch.optim``'s fused multi-tensor kernels (Adam, AdamW, SGD with or without momentum,
        Adagrad, with L2 or decoupled weight decay and concrete hyperparameters: see
        `functional_optim._torch_kernels`), run that kernel instead of compiling: no first-call
        cost, ``torch.optim.<Name>(fused=True)``'s speed and numbers (bitwise; within an ulp
        or two of the pure update, as Inductor's code is). Tensors the kernel does not take (complex,
        sparse, mixed dtypes) are compiled as usual. ``False``: always compile.
      trace_cache: in the elementwise mode, keep the traced step (its aten graph) on disk beside
        Inductor's cache, keyed by a fingerprint of the transform, the package's source and the
        layout (`functional_optim._graph_cache`): a new process compiles that short code
        instead of tracing the transform's Python again, and Inductor's caches give the kernels.
        Transforms it cannot fingerprint exactly (tensor hyperparameters, functions from outside
        the package) are traced as usual.
      **compile_options: Inductor options (``torch.compile(options=...)``), e.g.
        ``cpp_wrapper=True`` (a C++ wrapper around the kernels: less Python per call).

    Example:
        >>> import torch
        >>> import functional_optim as fo
        >>> params = {"w": torch.ones(2, 2), "b": torch.zeros(2)}
        >>> tx = fo.sgd(0.5)
        >>> state = tx.init(params)
        >>> step = fo.compile_step(tx, elementwise=True)
        >>> step(params, {"w": torch.ones(2, 2), "b": torch.ones(2)}, state)
        >>> params["b"]
        tensor([-0.5000, -0.5000])
    """
    return CompiledStep(
        transform,
        elementwise=elementwise,
        group_size=group_size,
        max_variants=max_variants,
        torch_kernels=torch_kernels,
        trace_cache=trace_cache,
        **compile_options,
    )
