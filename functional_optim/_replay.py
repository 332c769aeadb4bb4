"""The adapters' CPU commit, chunk after chunk: a rule's kernel calls recorded once, replayed.

On the CPU the adapters' fused step runs a rule chunk by chunk (`functional_optim.fused.commit`:
about 1 MB of parameters per chunk, so one chunk per tensor of a large model). Between the
kernels of one chunk and those of the next, the rule's Python runs again: its coefficients, its
state lists, its terms, the ``ops`` checks. After kernels that stream the caches out that Python
runs slowly (≈ 95 µs per 1 MB chunk on a 2-core Xeon, where ``torch.optim``'s own bookkeeping costs
≈ 20 µs per tensor; ``benchmarks/eager_floor.py``).

A rule that declares `Rule.replayable <functional_optim.rules.Rule>` decides which calls it makes
from the tensors' dtypes, the values of its 0-dim state fields (step counters) and its
hyperparameters only (not from shapes or strides: it works element by element). Chunks that agree on
all of these (their *signature*) make the very same calls, with the same Python numbers, on their
own tensors, whatever their shapes. So `Replays` runs the first chunk of each signature through the
rule as usual while a ``TorchFunctionMode`` records every torch call, and writes those calls out as
a straight Python function of the chunk's tensors; every other chunk of that signature is stepped by
calling that function. Same kernels, same arguments, same order: the same numbers, bit for bit.

The recording proves what it can and refuses the rest (the chunk is then stepped by the rule, as
without replay): a read of a tensor's *values* other than a 0-dim input field's (``item``, ``bool``
...), a metadata query it does not know (shapes, strides and ``requires_grad`` included), a call
that returns anything but tensors, an attribute write, a result or new state field that is not made
by the recorded calls from the chunk's tensors, a tensor given in two roles.

A recording is kept across steps (`store`: per rule, while the rule lives) under the commit's
numbers (step scale, parameter scale, proximal decay), the default dtype and the chunk's kinds:
without the 0-dim fields' values when the recording read none (RMSprop, Adadelta: their counters
are only incremented; nothing else a replayable rule may look at can change its calls), with them
otherwise (SGD's momentum reads its ``started`` flag, 1 from its second step on). A later step
whose chunks match replays the kept recording without recording; a counter read for a bias
correction (Adam, Adagrad, Adamax ...) changes at every step, so those rules record once per step.
"""

from __future__ import annotations

import collections
import itertools
import operator
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

__all__ = ["Replays", "store"]

_QUERIES = frozenset(
    {
        # metadata decided by the signature's dtypes (and by the commit: CPU, strided, plain
        # tensors, autograd off)
        "dtype",
        "device",
        "layout",
        "is_sparse",
        "is_cpu",
        "is_cuda",
        "is_meta",
        "is_quantized",
        "is_mkldnn",
        "is_nested",
        "_version",  # read to reuse equal results (e.g. `_steps.read`), never to decide a value
        "is_floating_point",
        "is_complex",
        "is_inference",
        "element_size",
    }
)
"""Torch calls that return a Python value decided by a tensor's kind (part of the signature).
Shapes and strides are not: a query of them (``shape``, ``dim``, ``numel``, ``stride``,
``is_contiguous`` ...) refuses the recording, so a recording that was made is the same calls
whatever the shapes and strides, and serves every chunk of the same dtypes."""

_VALUE_READS = frozenset({"item", "tolist", "__bool__", "__float__", "__int__", "__index__"})
"""Torch calls that read a tensor's values: allowed on the 0-dim input fields only (their values
are part of the signature)."""


def _tensors_only(out: Any, args: Sequence[Any]) -> bool:
    """A call's result that a replay can stand for: nothing, a tensor, or a list or tuple of
    tensors as long as a list it was given (a ``torch._foreach_*`` op's). Any other value (a
    stride tuple, a size, a dtype) is Python the rule may decide with, and so is the length of
    ``unbind``'s or ``split``'s tensors: a replay would not see them change with the shapes."""
    if out is None or isinstance(out, Tensor):
        return True
    return (
        isinstance(out, list | tuple)
        and all(isinstance(t, Tensor) for t in out)
        and any(isinstance(a, list | tuple) and len(a) == len(out) for a in args)
    )


_DTYPE = operator.attrgetter("dtype")
_DIM = Tensor.dim
_ITEM = operator.methodcaller("item")

_MAX_PROGRAMS = 64
"""Generated functions kept (by the calls they make, whatever the numbers): one per rule,
hyperparameter set and chunk kind in practice."""

_PROGRAMS: dict[tuple, Callable[..., Any]] = {}

_MAX_KEPT = 64
"""Recordings kept across steps per rule (by the commit's numbers and the chunks' kinds; the store
is cleared when full): a rule that reads counters that change at every step (Adam's bias
corrections) keeps one per step that is never replayed again."""

_STORES: weakref.WeakKeyDictionary[Any, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def store(owner: Any) -> dict[tuple, Any]:
    """The recordings kept across steps for ``owner`` (a rule): one dict while it lives."""
    kept = _STORES.get(owner)
    if kept is None:
        kept = _STORES[owner] = {}
    return kept


MIN_SHARED = 6
"""Tensors that must share a signature for it to be recorded. Recording one chunk costs about as
much as the rule's Python on 2 (SGD), 4 (Adagrad) or 6 (Adam) other chunks (0.17, 0.29 and 0.45 ms
more than a replayed chunk, against ≈ 80 µs saved per replayed chunk, on 32 x 512²:
``python benchmarks/eager_floor.py --breakdown``): below that a recording would make the step
slower."""


def _name(func: Any) -> str:
    """A torch function's name; a property's getter by its property's name."""
    name = getattr(func, "__name__", "")
    if name == "__get__":
        owner = getattr(func, "__self__", None)
        return getattr(owner, "__name__", "__get__")
    return name


def _writes(name: str, kwargs: dict[str, Any]) -> bool:
    """Whether a call writes into its first argument (``add_``, ``_foreach_mul_``, ``__iadd__``)
    or into ``out``."""
    return "out" in kwargs or (name.endswith("_") and not name.endswith("__")) or name.startswith("__i")


def _holds_tensor(values: Any) -> bool:
    return any(
        isinstance(v, Tensor) or (isinstance(v, list | tuple) and any(isinstance(x, Tensor) for x in v))
        for v in values
    )


class _RefusedError(Exception):
    """The recording met something it cannot replay."""


class _Recorder(TorchFunctionMode):
    """Runs the chunk's step and writes every torch call it makes as a line of Python."""

    def __init__(self, inputs: Sequence[Tensor]) -> None:
        super().__init__()
        self.names: dict[int, str] = {id(t): f"i{k}" for k, t in enumerate(inputs)}
        self.value_inputs = {id(t) for t in inputs if t.dim() == 0}
        self.lines: list[str] = []
        self.funcs: list[Any] = []
        self.constants: list[Any] = []
        self.kept: list[Any] = []  # every object named: its id is not reused while recording
        # a tensor given twice (a gradient that is its parameter) would have one name: another
        # chunk's two tensors would be taken for one
        self.refused: str | None = None if len(self.names) == len(inputs) else "a tensor given twice"
        self.made_here: set[int] = set()
        self.reads_values = False  # a 0-dim input's value (or version) was read

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.refused is None:
            try:
                self._record(func, args, kwargs, out)
            except _RefusedError as refused:
                self.refused = str(refused)
        return out

    def _record(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> None:
        name = _name(func)
        if name in _VALUE_READS:
            if not (args and isinstance(args[0], Tensor) and id(args[0]) in self.value_inputs):
                raise _RefusedError(f"{name} of a tensor that is not a 0-dim state field")
            self.reads_values = True
            return
        if name in _QUERIES:
            if name == "_version" and args and id(args[0]) in self.value_inputs:
                self.reads_values = True  # a value reused while the version is unchanged
            return
        if not _tensors_only(out, args) or name.startswith("__set"):
            raise _RefusedError(f"unknown query or write {name}")
        if _writes(name, kwargs) and args and self._made_here(args[0]):
            raise _RefusedError(f"{name} writes into a tensor made from constants")
        if isinstance(out, Tensor) and not _holds_tensor(args) and not _holds_tensor(kwargs.values()):
            # made from constants only (a 0-dim scalar such as a bias correction): the same
            # tensor serves every chunk, unless a later call writes into it (refused above)
            self.names[id(out)] = self._constant(out)
            self.made_here.add(id(out))
            return
        rendered = [self._arg(a) for a in args]
        rendered += [f"{k}={self._arg(v)}" for k, v in kwargs.items()]
        self.kept.append(out)
        self.funcs.append(func)
        n = len(self.lines)
        self.lines.append(f"r{n} = f{n}({', '.join(rendered)})")
        if isinstance(out, Tensor):
            self.names.setdefault(id(out), f"r{n}")
        elif isinstance(out, list | tuple):
            for j, t in enumerate(out):
                if isinstance(t, Tensor):
                    self.names.setdefault(id(t), f"r{n}[{j}]")

    def _made_here(self, value: Any) -> bool:
        if isinstance(value, Tensor):
            return id(value) in self.made_here
        return isinstance(value, list | tuple) and any(id(v) in self.made_here for v in value)

    def _arg(self, value: Any) -> str:
        if isinstance(value, Tensor):
            known = self.names.get(id(value))
            return known if known is not None else self._constant(value)
        if isinstance(value, list | tuple) and value and any(isinstance(v, Tensor) for v in value):
            items = ", ".join(self._arg(v) for v in value)
            return f"[{items}]" if isinstance(value, list) else f"({items},)"
        return self._constant(value)

    def _constant(self, value: Any) -> str:
        """A value the chunk did not make (a Python number, a scalar list, a library constant
        such as the cached 0-dim ``1`` of the step counters): passed as it is to every chunk
        (``constants`` keeps it alive while recording, so its id is not reused)."""
        self.constants.append(value)
        return f"c[{len(self.constants) - 1}]"

    def output(self, fields: list[list[Any]]) -> str:
        rows = []
        for field in fields:
            names = []
            for t in field:
                if not isinstance(t, Tensor) or id(t) not in self.names:
                    raise _RefusedError("a new state field not made by the recorded calls")
                names.append(self.names[id(t)])
            rows.append(f"[{', '.join(names)}]")
        return f"return [{', '.join(rows)}]"


def _program(n_inputs: int, lines: list[str], funcs: list[Any], output: str) -> Callable[..., Any]:
    """The generated function ``(inputs, c) -> new fields`` (cached by its text and callables)."""
    key = (n_inputs, tuple(lines), tuple(funcs), output)
    fn = _PROGRAMS.get(key)
    if fn is None:
        unpack = f"    {', '.join(f'i{k}' for k in range(n_inputs))}, = inputs"
        body = "\n".join(f"    {line}" for line in lines)
        source = f"def replayed(inputs, c):\n{unpack}\n{body}\n    {output}\n"
        namespace: dict[str, Any] = {f"f{k}": f for k, f in enumerate(funcs)}
        exec(compile(source, "<functional_optim._replay>", "exec"), namespace)
        fn = namespace["replayed"]
        if len(_PROGRAMS) >= _MAX_PROGRAMS:
            _PROGRAMS.clear()
        _PROGRAMS[key] = fn
    return fn


class _Recorded:
    """A chunk kind's generated function and the numbers of this step."""

    __slots__ = ("constants", "fn")

    def __init__(self, fn: Callable[..., Any], constants: tuple[Any, ...]) -> None:
        self.fn = fn
        self.constants = constants


def _values(column: list[Tensor]) -> list[Any] | None:
    """The values of a column's 0-dim tensors (``None`` for the others), or ``None`` for a column
    without any (C-level maps: this runs per column and step)."""
    dims = list(map(_DIM, column))
    if not any(dims):  # every one 0-dim
        return list(map(_ITEM, column))
    if all(dims):  # none 0-dim: nothing to read
        return None
    return [None if d else t.item() for t, d in zip(column, dims, strict=True)]


class Replays:
    """The recorded chunks of one commit (one step of one group: the numbers are this step's).

    Before any kernel runs, one pass takes every tensor's inputs and signature: its tensors' dtypes
    and the values of its 0-dim tensors, each signature numbered (a column of one dtype, the usual
    case, is one entry of the key rather than one per tensor). The loop over chunks then only
    indexes a list and calls what was recorded (Python run between kernels that stream the caches
    out runs slowly: the less of it, the better).

    A recording is kept in ``store`` (one per rule, `store`) under ``key`` (the numbers the commit
    passes in: step scale, parameter scale, proximal decay), the default dtype and the chunk's
    kinds, without the 0-dim fields' values when it read none (RMSprop, Adadelta: their counters
    are only incremented), with them otherwise; a later step whose kinds (and values) match
    replays it without recording.
    """

    __slots__ = ("_kinds", "_recorded", "_signature_of", "_store", "inputs")

    def __init__(
        self,
        params: list[Tensor],
        updates: list[Tensor],
        fields: list[list[Any]],
        store: dict[tuple, _Recorded] | None = None,
        key: tuple = (),
    ) -> None:
        columns = [params, updates, *fields]
        self.inputs: list[list[Tensor]] = list(map(list, zip(*columns, strict=True)))
        dtypes = [list(map(_DTYPE, column)) for column in columns]
        # a column of one dtype is one entry of the key (``None`` in ``common``: one per tensor)
        common = tuple(d[0] if d.count(d[0]) == len(d) else None for d in dtypes)
        varying = [d for d, c in zip(dtypes, common, strict=True) if c is None]
        # (after the dtypes: the values are left out of a kept recording's key when it read none;
        # a column without 0-dim tensors adds nothing)
        per_tensor = varying + [v for v in map(_values, columns) if v is not None]
        signatures = zip(*per_tensor, strict=True) if per_tensor else itertools.repeat((), len(params))
        numbers: dict[tuple, int] = {}
        self._signature_of = [numbers.setdefault(signature, len(numbers)) for signature in signatures]
        # per signature number: the recorded step, ``None`` (not recorded: it could not be, or
        # too few tensors have this signature for the recording to pay) or unseen
        counts = collections.Counter(self._signature_of)
        self._recorded: list[_Recorded | bool | None] = [
            False if counts[n] >= MIN_SHARED else None for n in range(len(numbers))
        ]
        # where a recording from an earlier step is kept: by the kinds without the values (a
        # recording that read no value) or with them
        width = len(varying)
        key = (key, torch.get_default_dtype(), common)
        self._kinds = [((*key, signature[:width]), (*key, signature)) for signature in numbers]
        self._store = store
        if store:
            for n, recorded in enumerate(self._recorded):
                if recorded is False:
                    without, full = self._kinds[n]
                    self._recorded[n] = store.get(without) or store.get(full) or False

    @staticmethod
    def applies(fields: list[list[Any]]) -> bool:
        """Every state field a tensor (else the rule steps every chunk)."""
        return all(all(map(isinstance, f, itertools.repeat(Tensor))) for f in fields)

    def shared(self, i: int) -> bool:
        """Whether tensor ``i``'s signature is shared by enough tensors to be recorded
        (`MIN_SHARED`) and was not refused."""
        return self._recorded[self._signature_of[i]] is not None

    def replay(self, i: int) -> list[list[Any]] | None:
        """The new state fields of tensor ``i``'s chunk replayed, or ``None`` when its signature
        has no recording (then `step` runs it)."""
        recorded = self._recorded[self._signature_of[i]]
        if isinstance(recorded, _Recorded):
            return recorded.fn(self.inputs[i], recorded.constants)
        return None

    def step(self, i: int, step: Callable[[], list[list[Any]]]) -> list[list[Any]]:
        """``step()`` on tensor ``i``'s chunk (whose signature `replay` did not know), recorded
        if its signature was not met before."""
        number = self._signature_of[i]
        if self._recorded[number] is None:  # this kind could not be recorded: the rule steps it
            return step()
        inputs = self.inputs[i]
        recorder = _Recorder(inputs)
        with recorder:
            fields = step()
        try:
            if recorder.refused is not None:
                raise _RefusedError(recorder.refused)
            output = recorder.output(fields)
        except _RefusedError:
            self._recorded[number] = None
            return fields
        fn = _program(len(inputs), recorder.lines, recorder.funcs, output)
        recorded = self._recorded[number] = _Recorded(fn, tuple(recorder.constants))
        if self._store is not None:
            if len(self._store) >= _MAX_KEPT:
                self._store.clear()
            without, full = self._kinds[number]
            self._store[full if recorder.reads_values else without] = recorded
        return fields
