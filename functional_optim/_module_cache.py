"""Inductor's compiled step kept on disk and loaded without ``torch.compile``.

A warm first call of [`fo.compile_step`][functional_optim.compile_step] used to go through
``torch.compile`` again: importing Dynamo and Inductor, tracing, looking the graph up in
Inductor's caches, loading the kernels (4.6-7 CPU-s on a 2-core CPU, 3 of them for
``torch.compile`` of a one-line function). What Inductor produced is only two things: a Python
module whose ``call(args)`` runs the step (allocations, kernel calls) and, per kernel, a shared
library compiled from C++ with a small Python binding. This module keeps both, with the order in
which ``call`` takes its arguments, under ``$TORCHINDUCTOR_CACHE_DIR/functional_optim/``, and
a later process loads them directly: the module's code runs with its ``torch._inductor``
imports replaced by small local stand-ins, and each kernel library is loaded as the extension
module it is (``importlib``, as Inductor loads it). Dynamo, AOT-autograd and Inductor are not
imported; the first call then costs milliseconds.

Recording happens in the process that compiles the step: ``torch.compile`` runs with a backend
(`Recorder`) that hands the graph to Inductor's ``compile_fx`` and notes where each graph input
comes from (Dynamo's sources: ``L['p'][3]``, ``L['p'][3].size()[0]``...). The loaded step is then
run on small copies of the inputs beside the compiled one and is saved only if every output and
every written tensor is bitwise the same; otherwise nothing is saved and the compiled function is
used as before. The entry's key (`functional_optim._graph_cache.step_key`) holds the transform's
fingerprint, the package's source, torch's and Python's versions, the layout, the options and the
CPU's flags (the kernels are compiled for this CPU's vector instructions).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["Recorder", "load", "record"]

_FORMAT = 1
_NAME = re.compile(r"^L\['(p|g|s)'\]\[(\d+)\](?:\.(size|stride)\(\)\[(\d+)\]|\.(storage_offset)\(\))?$")
_INDUCTOR_IMPORT = re.compile(r"^from (torch\._inductor[\w.]*) import (.+)$")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Recorder:
    """A ``torch.compile`` backend: Inductor's ``compile_fx`` with ``options`` as its config,
    recording the sources of the graph's inputs and the output module Inductor loads."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = {k: v for k, v in options.items() if k != "guard_filter_fn"}
        self.sources: list[str] | None = None
        self.modules_before = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: Sequence[Any], **_: Any) -> Any:
        from torch._inductor.codecache import PyCodeCache
        from torch._inductor.compile_fx import compile_fx

        sources: list[str] = []
        for node in gm.graph.find_nodes(op="placeholder"):
            grapharg = node.meta.get("grapharg")
            source = getattr(grapharg, "source", None)
            sources.append(source.name if source is not None else "")
        self.sources = sources
        self.modules_before = len(PyCodeCache.modules)
        return compile_fx(gm, list(example_inputs), config_patches=self.options)

    def output_module(self) -> Any:
        """The module Inductor loaded for the graph (``None``: not exactly one)."""
        from torch._inductor.codecache import PyCodeCache

        new = [m for m in PyCodeCache.modules[self.modules_before :] if hasattr(m, "call")]
        return new[0] if len(new) == 1 else None


def _args_source(sources: list[str]) -> str | None:
    """``def make_args(p, g, s)``: the graph's inputs from the step's arguments."""
    items = []
    for name in sources:
        m = _NAME.match(name)
        if m is None:
            return None
        which, index, prop, dim, offset = m.groups()
        item = f"{which}[{index}]"
        if prop is not None:
            item += f".{prop}({dim})"
        elif offset is not None:
            item += ".storage_offset()"
        items.append(item)
    return "def make_args(p, g, s):\n    return [" + ", ".join(items) + "]\n"


class _Unavailable:
    """Stand-in for an Inductor name the step's module imports but must not use."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise RuntimeError(f"functional_optim's step loader has no {self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"functional_optim's step loader has no {self._name}")


def _align(nbytes: int) -> int:  # torch._inductor.codegen.memory_planning._align
    return (nbytes + 63) & -64


class _Pending:
    def __init__(self, index: int) -> None:
        self.index = index


class _Kernels:
    """Stand-in for Inductor's ``AsyncCompile``: the i-th ``cpp_pybinding`` of the module is
    the i-th recorded kernel library (its C++ source must hash as recorded), or, while
    recording, a `_Pending` placeholder."""

    def __init__(self, kernels: list[dict[str, str]] | None, directory: Path | None) -> None:
        self.kernels = kernels
        self.directory = directory
        self.hashes: list[str] = []

    def __call__(self) -> _Kernels:
        return self

    def cpp_pybinding(self, argtypes: list[str], source: str) -> Any:
        index = len(self.hashes)
        self.hashes.append(_sha(repr(argtypes) + source))
        if self.kernels is None:
            return _Pending(index)
        entry = self.kernels[index]
        if entry["sha"] != self.hashes[-1]:
            raise RuntimeError("functional_optim: a cached kernel does not match its source")
        assert self.directory is not None
        return _load_library(self.directory / entry["so"])

    def wait(self, scope: dict[str, Any]) -> None:
        pass


def _load_library(path: Path) -> Any:
    """A kernel library as Inductor loads it (``CppPythonBindingsCodeCache``): an extension
    module named ``kernel`` that finds torch's tensor data-pointer helper through the
    environment."""
    os.environ["_TORCHINDUCTOR_PYOBJECT_TENSOR_DATA_PTR"] = str(
        torch._C._dynamo.guards._torchinductor_pyobject_tensor_data_ptr  # type: ignore[attr-defined]
    )
    name = f"functional_optim_kernels.{path.stem}.kernel"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return module.kernel


def _run_module(source: str, kernels: _Kernels, name: str) -> dict[str, Any]:
    """Run the module's code with its ``torch._inductor`` imports replaced by stand-ins."""
    namespace: dict[str, Any] = {"__name__": name, "__builtins__": __builtins__}
    known: dict[str, Any] = {
        "AsyncCompile": kernels,
        "align": _align,
        "run_intermediate_hooks": _Unavailable("run_intermediate_hooks"),
    }
    lines = []
    for line in source.splitlines():
        m = _INDUCTOR_IMPORT.match(line)
        if m is not None:
            for item in m.group(2).split(","):
                alias = item.split(" as ")[-1].strip()
                namespace[alias] = known.get(alias, _Unavailable(alias))
            lines.append("")
        elif line.startswith("import torch._inductor"):
            raise RuntimeError("functional_optim: the step module imports Inductor itself")
        else:
            lines.append(line)
    exec(compile("\n".join(lines), f"<functional_optim step {name}>", "exec"), namespace)  # our cache entry
    return namespace


class Step:
    """``step(p, g, s)``: the saved module's ``call`` on the graph inputs taken from the step's
    arguments (the lists of parameter views, gradient views and state leaves)."""

    def __init__(
        self, call: Callable[[list[Any]], Any], make_args: Callable[..., list[Any]], grad_slots: list[int]
    ) -> None:
        self.call = call
        self.make_args = make_args
        self.grad_slots = grad_slots  # for each graph input, the gradient it is (-1: not one)

    def __call__(self, p: list[Any], g: list[Any], s: list[Any]) -> list[Any]:
        return list(self.call(self.make_args(p, g, s)))

    def bind(self, p: list[Any], g: list[Any], s: list[Any]) -> Callable[[list[Any]], list[Any]]:
        """``run(g)``: the step on these parameters and state (and sizes: the caller checks that
        the layouts, gradients' included, have not changed) with new gradients."""
        template = self.make_args(p, g, s)
        slots = [(k, j) for k, j in enumerate(self.grad_slots) if j >= 0]
        for k, _ in slots:
            template[k] = None  # hold no gradient
        call = self.call

        def run(grads: list[Any]) -> list[Any]:
            args = list(template)
            for k, j in slots:
                args[k] = grads[j]
            return list(call(args))

        return run


def _grad_slots(args_source: str) -> list[int]:
    """For each graph input of ``make_args``, the index of the gradient it is (-1: another
    input, or a size of a gradient)."""
    items = args_source.split("return [", 1)[1].rsplit("]", 1)[0].split(", ")
    return [int(item[2:-1]) if re.fullmatch(r"g\[\d+\]", item) else -1 for item in items]


def _step(source: str, args_source: str, kernels: _Kernels, key: str) -> Step:
    namespace = _run_module(source, kernels, f"functional_optim_step_{key}")
    args_ns: dict[str, Any] = {}
    exec(compile(args_source, f"<functional_optim step args {key}>", "exec"), args_ns)  # generated above
    return Step(namespace["call"], args_ns["make_args"], _grad_slots(args_source))


def _paths(directory: Path, key: str) -> Path:
    return directory / f"module_{key}.json"


def load(directory: Path, key: str) -> Step | None:
    """The saved step of ``key`` (``None``: none saved, or it cannot be loaded here)."""
    path = _paths(directory, key)
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != _FORMAT:
        return None
    try:
        kernels = _Kernels(entry["kernels"], directory)
        step = _step(entry["module"], entry["args"], kernels, key)
        if len(kernels.hashes) != len(entry["kernels"]):
            return None
        return step
    except Exception:  # anything else: compile as usual
        return None


def _probe(tensors: list[Any], size: int = 37) -> list[Any]:
    """Small copies of the step's inputs: the first ``size`` elements of each 1-D tensor (all
    tensors of a parameter have its size), 0-dim tensors whole, other leaves as they are."""
    out = []
    for t in tensors:
        if isinstance(t, torch.Tensor):
            out.append((t[: min(size, t.numel())] if t.dim() == 1 else t).detach().clone())
        else:
            out.append(t)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and bool(torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8)))
        )
    return type(a) is type(b) and (a is b or a == b)


def record(
    directory: Path,
    key: str,
    recorder: Recorder,
    compiled: Callable[..., Any],
    p: list[Any],
    g: list[Any],
    s: list[Any],
) -> Step | None:
    """After ``compiled`` (``torch.compile`` with ``recorder`` as backend) has run once: the
    step loaded as a later process will load it, checked bitwise against ``compiled`` on small
    copies of ``p, g, s`` and saved; ``None`` when it cannot be (``compiled`` stays in use)."""
    try:
        module = recorder.output_module()
        if module is None or recorder.sources is None:
            return None
        args_source = _args_source(recorder.sources)
        if args_source is None:
            return None
        source = Path(module.__file__).read_text()
        recording = _Kernels(None, None)
        namespace = _run_module(source, recording, f"functional_optim_record_{key}")
        kernels = []
        for name, value in namespace.items():
            if isinstance(value, _Pending):
                library = getattr(getattr(module, name, None), "__self__", None)
                so = getattr(library, "__file__", None)
                if so is None:
                    return None
                kernels.append((value.index, Path(so)))
        kernels.sort()
        if [i for i, _ in kernels] != list(range(len(recording.hashes))):
            return None
        directory.mkdir(parents=True, exist_ok=True)
        entries = []
        for i, so in kernels:
            target = directory / f"module_{key}_{i}.so"
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(so.read_bytes())
            os.replace(tmp, target)
            entries.append({"so": target.name, "sha": recording.hashes[i]})
        step = _step(source, args_source, _Kernels(entries, directory), key)
        n_p, n_g = len(p), len(g)
        probe = _probe([*p, *g, *s])
        a, b = probe, _probe(probe)
        out_a = compiled(a[:n_p], a[n_p : n_p + n_g], a[n_p + n_g :])
        out_b = step(b[:n_p], b[n_p : n_p + n_g], b[n_p + n_g :])
        if not isinstance(out_a, list | tuple) or len(out_a) != len(out_b):
            return None
        if not all(map(_same, [*a, *out_a], [*b, *out_b])):
            return None
        entry = {"format": _FORMAT, "module": source, "args": args_source, "kernels": entries}
        path = _paths(directory, key)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, path)
        return step
    except Exception:  # a form of generated code this loader does not know: keep compiled
        return None
