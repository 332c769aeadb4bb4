"""The state layout of a transform in an optimizer: how a functional state maps to ``self.state``.

A layout is a small tree that mirrors the transform's state::

    ("param", key, empty)     a per-parameter field: a list with one entry per parameter
                              (``empty`` stands for the entries that hold nothing), stored in
                              ``self.state[p][key]``
    ("global", path, meta)    any other leaf, stored under FUNCTIONAL_STATE_KEY[path] in the state
                              of the group's first parameter
    ("const", value)          None
    ("nt", cls, children) / ("tuple", children) / ("list", children) / ("dict", keys, children)

`build_layout` makes it from a freshly initialised state; `assemble` builds the
functional state from the per-parameter dicts and `scatter` writes one back.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import Tensor

FUNCTIONAL_STATE_KEY = "functional_state"
"""Key, in the state of a group's first parameter, of the group's non-per-parameter state."""


# A layout is a small tree that mirrors the transform's state:
#   ("param", key, empty)     a per-parameter field: a list with one entry per parameter
#                             (``empty`` stands for the entries that hold nothing)
#   ("global", path, meta)    any other leaf, stored under FUNCTIONAL_STATE_KEY[path]
#   ("const", value)          None
#   ("nt", cls, children) / ("tuple", children) / ("list", children) / ("dict", keys, children)


def is_placeholder(v: Any) -> bool:
    """A per-parameter entry that holds nothing: ``None`` or an empty tuple (e.g. Adafactor's
    ``variance`` of a matrix). It is not stored in ``self.state[p]``."""
    return v is None or (isinstance(v, tuple) and not v)


def is_per_param(value: Any, n: int) -> bool:
    # A list with one tensor-or-placeholder entry per parameter (all placeholders too: e.g.
    # Adafactor's ``variance`` in a group of matrices).
    return (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, Tensor) or is_placeholder(v) for v in value)
    )


def build_layout(state: Any, n: int) -> tuple:
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
                if is_per_param(value, n):
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


def nodes(layout: tuple) -> list[tuple]:
    """The leaves of a layout (``param``, ``global`` and ``const`` nodes), in order."""
    out: list[tuple] = []

    def walk(t: tuple) -> None:
        kind = t[0]
        if kind == "nt" or kind == "dict":
            for c in t[2]:
                walk(c)
        elif kind in ("tuple", "list"):
            for c in t[1]:
                walk(c)
        else:
            out.append(t)

    walk(layout)
    return out


def layout_keys(layout: tuple) -> list[str]:
    """The per-parameter keys of a layout."""
    return [t[1] for t in nodes(layout) if t[0] == "param"]


def required_keys(layout: tuple) -> list[str]:
    """The per-parameter keys every initialised parameter must have (fields that hold a tensor
    for every parameter of a fresh state)."""
    return [t[1] for t in nodes(layout) if t[0] == "param" and t[2] is None]


def global_paths(layout: tuple) -> list[str]:
    """The paths of the group's non-per-parameter state (keys of FUNCTIONAL_STATE_KEY)."""
    return [t[1] for t in nodes(layout) if t[0] == "global"]


def has_globals(layout: tuple) -> bool:
    """Whether the layout has state that is not per-parameter (kept under FUNCTIONAL_STATE_KEY)."""
    return any(t[0] == "global" for t in nodes(layout))


def is_stateless(layout: tuple) -> bool:
    """Whether the layout keeps nothing at all (e.g. SGD without momentum): its optimizer keeps no
    ``self.state`` entries, as torch."""
    return all(t[0] == "const" for t in nodes(layout))


def assemble(t: tuple, sts: list[dict], glob: dict | None) -> Any:
    kind = t[0]
    if kind == "param":
        key, placeholder = t[1], t[2]
        return [st.get(key, placeholder) for st in sts]
    if kind == "nt":
        return t[1](*[assemble(c, sts, glob) for c in t[2]])
    if kind == "tuple":
        return tuple(assemble(c, sts, glob) for c in t[1])
    if kind == "list":
        return [assemble(c, sts, glob) for c in t[1]]
    if kind == "dict":
        return {k: assemble(c, sts, glob) for k, c in zip(t[1], t[2], strict=True)}
    if kind == "global":
        assert glob is not None  # a layout with globals is always given its dict
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


def scatter(t: tuple, value: Any, sts: list[dict], glob: dict | None) -> None:
    kind = t[0]
    if kind == "param":
        key = t[1]
        for st, v in zip(sts, value, strict=True):
            if v is None or (isinstance(v, tuple) and not v):  # is_placeholder, inlined: hot loop
                st.pop(key, None)
            else:
                st[key] = v
    elif kind == "nt" or kind == "dict":
        children = t[2]
        values = value if kind == "nt" else [value[k] for k in t[1]]
        for c, v in zip(children, values, strict=True):
            scatter(c, v, sts, glob)
    elif kind in ("tuple", "list"):
        for c, v in zip(t[1], value, strict=True):
            scatter(c, v, sts, glob)
    elif kind == "global":
        assert glob is not None  # a layout with globals is always given its dict
        glob[t[1]] = value


def freeze_exact(v: Any) -> Any:
    """A hashable key equal for identical hyperparameter values (tensors by identity)."""
    if isinstance(v, Tensor):
        return ("T", id(v))
    if isinstance(v, tuple | list):
        return tuple(freeze_exact(x) for x in v)
    try:
        hash(v)
    except TypeError:
        return ("id", id(v))
    return (type(v), v)


def freeze_structure(v: Any) -> Any:
    """A key that changes only when a value may change the *structure* of the state
    (a flag, a string, a number becoming zero or non-zero)."""
    if isinstance(v, Tensor):
        return "T"
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float):
        return ("num", v == 0)
    if isinstance(v, tuple | list):
        return tuple(freeze_structure(x) for x in v)
    return ("id", id(v)) if callable(v) else type(v).__name__


_GRAD = operator.attrgetter("grad")
_LAYOUT = operator.attrgetter("layout")
_DTYPE = operator.attrgetter("dtype")


def to_python(value: Any) -> Any:
    if isinstance(value, Tensor) and value.dim() == 0 and not value.requires_grad:
        return value.item()
    return value


def leaf_values(t: tuple, value: Any, out: list[tuple[tuple, Any]]) -> list[tuple[tuple, Any]]:
    """``(leaf node, value)`` for every leaf of a layout (``param``, ``global``, ``const``), in
    order, with the matching part of a functional state."""
    kind = t[0]
    if kind == "nt" or kind == "dict":
        values = value if kind == "nt" else [value[k] for k in t[1]]
        for c, v in zip(t[2], values, strict=True):
            leaf_values(c, v, out)
    elif kind in ("tuple", "list"):
        for c, v in zip(t[1], value, strict=True):
            leaf_values(c, v, out)
    else:
        out.append((t, value))
    return out


def split_leaves(t: tuple, value: Any) -> tuple[list[list[Any]], dict[str, Any]]:
    """A functional state's per-parameter lists (in layout order) and group values (``name ->
    value``, as `scatter` stores them), in one walk."""
    lists: list[list[Any]] = []
    values: dict[str, Any] = {}
    for node, v in leaf_values(t, value, []):
        if node[0] == "param":
            lists.append(v)
        elif node[0] == "global":
            values[node[1]] = v
    return lists, values


def same_tensors(new: list[list[Any]], old: list[list[Any]]) -> bool:
    """Whether two states' per-parameter lists (`split_leaves`) hold the very same tensors (a
    step that updated them in place)."""
    is_ = operator.is_
    return len(new) == len(old) and all(
        len(n) == len(o) and all(map(is_, n, o)) for n, o in zip(new, old, strict=True)
    )
