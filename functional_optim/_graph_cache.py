"""A persistent cache of traced optimizer steps for [`fo.compile_step`][functional_optim.compile_step].

A new process that compiles a step Inductor has already compiled finds Inductor's generated
code in its on-disk caches, but Dynamo must first trace the transform's Python again to know
which graph it is (most of the 6-8 s of CPU such a "warm" first call took; a new process now
loads the compiled step itself when `functional_optim._module_cache` holds it, and this
trace is what the process that compiles it starts from). This module saves
that knowledge: the first process traces the step once with ``make_fx`` (aten operations, sizes
symbolic) and writes the graph's code under ``$TORCHINDUCTOR_CACHE_DIR/functional_optim/``;
a later process finds it by a key computed *without tracing* and compiles that straight-line
code, whose Dynamo trace is short and whose Inductor compilation hits Inductor's caches.

The key is a hash of everything the trace depends on:

* the source of every module of ``functional_optim``, torch's and Python's versions and the
  default dtype;
* a **fingerprint of the transform**: its functions' code objects, default arguments and closure
  contents, followed recursively (hyperparameters are Python numbers in closures), refusing
  anything it cannot fingerprint exactly (tensors, functions defined outside ``functional_optim``,
  objects of unknown classes): then nothing is cached and the step is compiled as usual;
* the layout key of the compiled variant (dtypes, devices, group size, state structure,
  constants) and the compile options.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import math
import os
import platform
import re
import sys
import tempfile
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["cache_directory", "fingerprint", "load_or_trace", "step_key"]

_PACKAGE = "functional_optim"
_SOURCE_HASH: str | None = None


def _source_hash() -> str:
    global _SOURCE_HASH
    if _SOURCE_HASH is None:
        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
        _SOURCE_HASH = h.hexdigest()
    return _SOURCE_HASH


class _UnhashableError(Exception):
    pass


def _ours(module: str | None) -> bool:
    return module is not None and (module == _PACKAGE or module.startswith(_PACKAGE + "."))


def _code(code: types.CodeType, out: list[str], seen: set[int]) -> None:
    out.append(f"code:{code.co_qualname if hasattr(code, 'co_qualname') else code.co_name}")
    out.append(code.co_code.hex())
    out.append(repr(code.co_names))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code(const, out, seen)
        else:
            out.append(repr(const))


def _walk(x: Any, out: list[str], seen: set[int]) -> None:
    if x is None or isinstance(x, bool | int | str | bytes):
        out.append(f"{type(x).__name__}:{x!r}")
        return
    if isinstance(x, float):
        out.append(f"float:{x.hex() if math.isfinite(x) else x!r}")
        return
    if isinstance(x, torch.dtype | torch.device | torch.layout | torch.memory_format):
        out.append(f"torch:{x}")
        return
    if isinstance(x, types.ModuleType):
        out.append(f"module:{x.__name__}")
        return
    if isinstance(x, type):
        out.append(f"type:{x.__module__}.{x.__qualname__}")
        return
    if isinstance(x, types.BuiltinFunctionType | types.BuiltinMethodType):
        module = getattr(x, "__module__", None) or type(getattr(x, "__self__", None)).__name__
        out.append(f"builtin:{module}.{x.__qualname__}")
        return
    if id(x) in seen:
        out.append("cycle")
        return
    seen.add(id(x))
    try:
        if isinstance(x, types.FunctionType):
            if not _ours(x.__module__):
                raise _UnhashableError(f"function {x.__module__}.{x.__qualname__}")
            out.append(f"function:{x.__module__}.{x.__qualname__}")
            _code(x.__code__, out, seen)
            _walk(x.__defaults__, out, seen)
            _walk(x.__kwdefaults__, out, seen)
            for cell in x.__closure__ or ():
                try:
                    _walk(cell.cell_contents, out, seen)
                except ValueError:  # an empty cell
                    out.append("empty-cell")
            return
        if isinstance(x, types.MethodType):
            _walk(x.__func__, out, seen)
            _walk(x.__self__, out, seen)
            return
        if isinstance(x, tuple | list):
            out.append(f"{type(x).__module__}.{type(x).__qualname__}:{len(x)}")
            if type(x) not in (tuple, list) and not _ours(type(x).__module__):
                raise _UnhashableError(f"sequence {type(x).__qualname__}")
            for item in x:
                _walk(item, out, seen)
            return
        if isinstance(x, dict):
            if type(x) is not dict:
                raise _UnhashableError(f"mapping {type(x).__qualname__}")
            out.append(f"dict:{len(x)}")
            for k, v in x.items():
                _walk(k, out, seen)
                _walk(v, out, seen)
            return
        if isinstance(x, frozenset | set):
            out.append(f"set:{sorted(map(repr, x))}")
            return
        cls = type(x)
        if _ours(cls.__module__):
            out.append(f"object:{cls.__module__}.{cls.__qualname__}")
            if dataclasses.is_dataclass(x):
                for f in dataclasses.fields(x):
                    out.append(f.name)
                    _walk(getattr(x, f.name), out, seen)
                return
            state = getattr(x, "__dict__", None)
            if state is not None:
                _walk(dict(sorted(state.items())), out, seen)
                return
        raise _UnhashableError(f"object of type {cls.__module__}.{cls.__qualname__}")
    finally:
        seen.discard(id(x))


def fingerprint(obj: Any) -> str | None:
    """A hash of everything ``obj`` (a transform, a function) computes with, or ``None`` when
    some part cannot be fingerprinted exactly (a tensor, code from outside the package)."""
    out: list[str] = []
    try:
        _walk(obj, out, set())
    except (_UnhashableError, RecursionError):
        return None
    return hashlib.sha256("\n".join(out).encode()).hexdigest()


def step_key(transform: Any, layout: Any, options: dict[str, Any]) -> str | None:
    """The cache key of one compiled step variant (``None``: not cacheable)."""
    fp = fingerprint(transform)
    if fp is None:
        return None
    opts = {k: v for k, v in options.items() if k != "guard_filter_fn"}
    parts = [
        _source_hash(),
        torch.__version__,
        sys.version,
        str(torch.get_default_dtype()),
        fp,
        repr(layout),
        repr(sorted(opts.items(), key=lambda kv: kv[0])),
        _cpu(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


def cache_directory() -> Path:
    """``$TORCHINDUCTOR_CACHE_DIR/functional_optim`` (Inductor's default cache directory when
    the variable is not set), found without importing Inductor (whose import alone costs more
    than a second of CPU)."""
    root = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if root is None:
        try:
            user = getpass.getuser()
        except (KeyError, ModuleNotFoundError, OSError):
            getuid = getattr(os, "getuid", None)
            user = f"uid_{getuid()}" if callable(getuid) else "unknown_user"
        root = os.path.join(tempfile.gettempdir(), "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))
    return Path(os.path.abspath(root)) / _PACKAGE


def _cache_path(key: str) -> Path:
    return cache_directory() / f"step_{key}.py"


def _cpu() -> str:
    """The CPU's model and instruction-set flags (compiled kernels are specific to them)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("flags", "model name"))][:2]
    except OSError:
        lines = []
    return "".join(lines) or f"{platform.machine()} {platform.processor()}"


_ALLOWED_GLOBALS = {"torch", "inf", "nan", "device", "NoneType", "fx_pytree", "pytree"}


def _trace(fn: Callable[..., Any], tensors: list[torch.Tensor]) -> str | None:
    """``fn``'s graph as Python code over aten operations with symbolic sizes (``None``: the
    graph refers to something the code alone cannot carry, e.g. a tensor constant)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    # the transforms take their traced forms (no reads of tensor values on the host), as
    # under torch.compile
    with torch.compiler._compile_session_context(), torch.no_grad():
        gm = make_fx(fn, tracing_mode="symbolic")(*tensors)
    if any(node.op == "get_attr" for node in gm.graph.nodes):
        return None
    gm.graph.set_codegen(torch.fx.graph.CodeGen())  # plain positional inputs, no pytree helpers
    code = gm.graph.python_code(root_module="self")
    if not set(code.globals) <= _ALLOWED_GLOBALS:
        return None
    return code.src


def _load(src: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {
        "torch": torch,
        "inf": math.inf,
        "nan": math.nan,
        "device": torch.device,
        "NoneType": type(None),
        "fx_pytree": torch.fx._pytree,
        "pytree": torch.utils._pytree,
    }
    exec(compile(src, "<functional_optim step>", "exec"), namespace)  # our own cache entry
    forward = namespace["forward"]

    def run(*tensors: torch.Tensor) -> Any:
        return forward(None, *tensors)

    return run


def load_or_trace(key: str, fn: Callable[..., Any], tensors: list[torch.Tensor]) -> Callable[..., Any] | None:
    """The traced step of ``key`` from the cache, or traced from ``fn`` now and saved;
    ``None`` when it cannot be traced or cached (the caller compiles ``fn`` itself)."""
    path = _cache_path(key)
    try:
        src = path.read_text()
    except OSError:
        src = None
    if src is None:
        try:
            src = _trace(fn, tensors)
        except Exception:  # anything make_fx cannot trace: compile fn as usual
            return None
        if src is None:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(src)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache: still use the trace in this process
    try:
        return _load(src)
    except Exception:  # a damaged cache entry: trace again
        path.unlink(missing_ok=True)
        return None
