"""Check that gradients, parameters and per-parameter state fit each other, once per layout.

Every transform that goes through [`functional_optim._leafwise.update_leaves`][functional_optim.update_leaves]
gets these checks. For each leaf with a gradient:

* the gradient is a floating-point or complex ``torch.Tensor`` (not a Python number, not a
  numpy array, not an integer tensor);
* it is dense unless the transform declares sparse support (``torch.optim``'s
  ``"<Name> does not support sparse gradients"`` otherwise);
* given the parameters: the gradient has the parameter's shape, dtype and device (as
  ``torch.optim``, which refuses ``p.grad`` of another dtype, shape or device);
* the state was made for this parameter: a per-element state leaf (one that is not 0-dim) has
  the shape of the parameter (or a ``keepdim`` reduction of it: factored second moments), its
  device, and its dtype if it is a floating-point leaf of the parameter's shape. A 0-dim state
  leaf (a step counter) is not compared.

Errors name the leaf (``"layer.weight"``, ``"[0]"``) and both values. The verdict for a layout
(tree structure, then shape, dtype, device and layout of every leaf) is cached, so a repeated
step with the same layout costs one tuple per leaf list and a set lookup. Under
``torch.compile`` the checks run uncached while tracing (they read static metadata only).
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from functional_optim import tree

__all__ = ["check_gradients", "check_leaves", "check_optimizable", "expect_state", "sparse_message"]

_META = operator.attrgetter("shape", "dtype", "device", "layout")
_CHECKED: set[tuple] = set()
_MAX_CACHED = 4096


def sparse_message(sparse: bool | str, name: str, kind: str = "sparse") -> str | None:
    """The error for a ``kind`` (sparse or dense) gradient given to a transform that declares
    ``sparse`` (``True``: accepted; ``False``: refused; a name such as ``"RMSprop"``: refused with
    torch's ``"RMSprop does not support sparse gradients"``; a sentence: that message)."""
    if sparse is True:
        return None
    if isinstance(sparse, str) and " " in sparse:
        return sparse
    who = sparse if isinstance(sparse, str) else name
    return f"{who} does not support {kind} gradients"


# Signatures of the leaf lists a chain's update was given (its gradients and parameters), kept
# for the duration of that one update: the transforms inside the chain check the same tensors
# again and find them here by identity. The table holds the lists themselves, so no id can be
# reused by another tensor while it lives; it lives only until the outermost chain returns (a
# tensor's metadata cannot change in between without the caller's code running).
_SIGNATURES = threading.local()


def open_signature_table() -> bool:
    """Start remembering signatures for one (outermost) update; ``True`` if this call opened the
    table and must close it with `close_signature_table`."""
    if torch.compiler.is_compiling() or getattr(_SIGNATURES, "table", None) is not None:
        return False
    _SIGNATURES.table = {}
    return True


def close_signature_table() -> None:
    _SIGNATURES.table = None


def _metadata(leaves: Sequence[Any]) -> tuple:
    """The layout of every leaf: (shape, dtype, device, layout) of a tensor, a marker otherwise."""
    try:
        return tuple(map(_META, leaves))
    except AttributeError:  # None, () placeholders, or something that is not a tensor
        return tuple(
            _META(x) if isinstance(x, Tensor) else (type(x), x == () if isinstance(x, tuple) else None)
            for x in leaves
        )


def _signature(leaves: Sequence[Any], remember: bool = False) -> tuple:
    """`_metadata` of a chain's gradients or parameters, found in the open signature table when
    the same tensors were checked earlier in this update (and stored there when ``remember``)."""
    table = getattr(_SIGNATURES, "table", None)
    if table is None:
        return _metadata(leaves)
    ids = tuple(map(id, leaves))
    known = table.get(ids)
    if known is not None:
        return known[1]
    sig = _metadata(leaves)
    if remember:
        table[ids] = (leaves, sig)
    return sig


def check_leaves(
    name: str,
    spec: tree.TreeSpec,
    grads: Sequence[Any],
    params: Sequence[Any] | None,
    fields: Sequence[Sequence[Any]],
    sparse: bool | str = True,
    field_names: Sequence[str] | None = None,
    dense: bool | str = True,
    *,
    caller_owns_grads: bool = False,
    low_precision: bool = False,
) -> None:
    """Raise a ``TypeError``/``ValueError``/``RuntimeError`` naming the leaf if the gradients,
    parameters and state fields (flattened up to ``spec``) do not fit each other.

    Args:
      name: the transform's name, first word of every message.
      spec: the tree spec the leaves were flattened with (gives the leaf names).
      grads: gradient leaves (``None`` for parameters without a gradient).
      params: parameter leaves, or ``None`` when the transform was not given the parameters.
      fields: per-parameter state fields, each a list of leaves.
      sparse: ``True`` if the transform accepts sparse gradients; ``False`` or the algorithm's
        name (``"RMSprop"``) to refuse them with torch's message.
      field_names: names of the fields for the messages (default ``state field #k``).
      dense: as ``sparse``, for dense gradients (``"SparseAdam"`` refuses them).
      caller_owns_grads: the gradients are the caller's (a chain's input, alive for the whole
        update), so their signature may be remembered for the transforms inside the chain.
      low_precision: bfloat16 state fields are accepted for float32 parameters.
    """
    if torch.compiler.is_compiling():
        _verify(name, spec, grads, params, fields, sparse, field_names, dense, low_precision)
        return
    key = (
        name,
        sparse,
        dense,
        low_precision,
        spec,
        _signature(grads, caller_owns_grads),
        None if params is None else _signature(params, True),
        tuple(map(_metadata, fields)),  # state fields are never in the table: no lookup
    )
    if key in _CHECKED:
        return
    _verify(name, spec, grads, params, fields, sparse, field_names, dense, low_precision)
    if len(_CHECKED) >= _MAX_CACHED:
        _CHECKED.clear()
    _CHECKED.add(key)


def _fits_reduced(state: torch.Size, full: torch.Size) -> bool:
    """Whether ``state`` is ``full`` with some dimensions reduced to 1 (``keepdim=True``)."""
    return len(state) == len(full) and all(s == f or s == 1 for s, f in zip(state, full, strict=True))


def _verify(
    name: str,
    spec: tree.TreeSpec,
    grads: Sequence[Any],
    params: Sequence[Any] | None,
    fields: Sequence[Sequence[Any]],
    sparse: bool | str,
    field_names: Sequence[str] | None,
    dense: bool | str = True,
    low_precision: bool = False,
) -> None:
    names: list[str] | None = None

    def leaf(i: int) -> str:
        nonlocal names
        if names is None:
            names = tree.leaf_names(spec)
        return names[i]

    no_sparse = sparse_message(sparse, name)
    no_dense = sparse_message(dense, name, "dense")
    for i, g in enumerate(grads):
        if g is None:
            continue
        if not isinstance(g, Tensor):
            raise TypeError(
                f"{name}: the gradient of parameter '{leaf(i)}' is a {type(g).__module__}."
                f"{type(g).__qualname__} ({g!r:.60}), not a torch.Tensor"
            )
        if not (g.is_floating_point() or g.is_complex()):
            raise TypeError(
                f"{name}: the gradient of parameter '{leaf(i)}' has dtype {g.dtype}; gradients must be "
                "floating-point or complex tensors"
            )
        if g.layout is not torch.strided and no_sparse is not None:
            raise RuntimeError(f"{no_sparse} (parameter '{leaf(i)}' has a {g.layout} gradient)")
        if g.layout is torch.strided and no_dense is not None:
            raise RuntimeError(f"{no_dense} (parameter '{leaf(i)}' has a dense gradient)")
        ref, what = g, "gradient"
        if params is not None:
            p = params[i]
            if p is not None:
                _check_param(name, leaf(i), g, p)
                ref, what = p, "parameter"
        for k, f in enumerate(fields):
            field = field_names[k] if field_names else f"state field #{k}"
            _check_state(name, leaf(i), field, f[i], ref, what, low_precision)


def _check_param(name: str, leaf: str, g: Tensor, p: Any) -> None:
    if not isinstance(p, Tensor):
        raise TypeError(f"{name}: parameter '{leaf}' is a {type(p).__qualname__}, not a torch.Tensor")
    if g.shape != p.shape:
        raise ValueError(
            f"{name}: the gradient of parameter '{leaf}' has shape {tuple(g.shape)} "
            f"but the parameter has shape {tuple(p.shape)}"
        )
    if g.dtype != p.dtype:
        raise TypeError(
            f"{name}: the gradient of parameter '{leaf}' has dtype {g.dtype} but the parameter has "
            f"dtype {p.dtype} (cast the gradient, as torch.optim requires p.grad.dtype == p.dtype)"
        )
    if g.device != p.device:
        raise ValueError(
            f"{name}: the gradient of parameter '{leaf}' is on device {g.device} but the parameter "
            f"is on {p.device}"
        )


def _check_state(
    name: str, leaf: str, field: str, s: Any, ref: Tensor, what: str, low_precision: bool = False
) -> None:
    if not isinstance(s, Tensor):
        if s is None:
            raise ValueError(
                f"{name}: {field} of parameter '{leaf}' is None although the parameter has a gradient: "
                "the state was built for other parameters (call init on these parameters)"
            )
        return  # () placeholders (absent for this parameter) and Python numbers
    if s.ndim == 0:
        return  # a counter, or the state of a 0-dim parameter
    if s.shape != ref.shape and not _fits_reduced(s.shape, ref.shape):
        raise ValueError(
            f"{name}: {field} of parameter '{leaf}' has shape {tuple(s.shape)} but the {what} has "
            f"shape {tuple(ref.shape)}: the state was built for other parameters, or the gradient "
            "does not fit its parameter"
        )
    if s.device != ref.device:
        raise ValueError(
            f"{name}: {field} of parameter '{leaf}' is on device {s.device} but the {what} is on {ref.device}"
        )
    low = low_precision and s.dtype == torch.bfloat16 and ref.dtype == torch.float32
    if (
        s.shape == ref.shape
        and (s.is_floating_point() or s.is_complex())
        and s.dtype != ref.dtype
        and not low
    ):
        raise TypeError(
            f"{name}: {field} of parameter '{leaf}' has dtype {s.dtype} but the {what} has dtype {ref.dtype}"
        )


def check_optimizable(params: Any, name: str = "init") -> None:
    """Refuse parameters that cannot be optimised (integer or bool tensors, non-tensor leaves;
    ``torch.optim`` cannot give them a gradient either) with a ``TypeError`` naming the leaf.
    ``None`` leaves are allowed. For the places that build no state with
    [`tree.zeros_like`][functional_optim.tree.zeros_like] (which refuses them itself), e.g. the ``init`` of a
    chain of stateless transforms."""
    try:
        tree._require_optimizable(params)
    except TypeError as err:
        raise TypeError(f"{name}: {err}") from None


def check_gradients(updates: Any, params: Any, name: str, sparse: bool | str = True) -> None:
    """Check a whole gradient tree against the parameter tree (structure, then each leaf as
    `check_leaves`), once per layout. For code paths without per-parameter state, e.g. a
    chain of stateless transforms (plain SGD): ``_layout.check_gradients(updates, params, "chain")``.
    Does nothing when ``params`` is ``None``."""
    if params is None:
        return
    grads, spec = tree.flatten(updates)
    param_leaves = tree.flatten_like(spec, params, f"{name}: params")
    check_leaves(name, spec, grads, param_leaves, (), sparse, caller_owns_grads=True)


def expect_state(state: Any, cls: type, name: str) -> None:
    """Raise a ``TypeError`` unless ``state`` is a ``cls`` (the transform's own state class), e.g.
    ``expect_state(state, ScaleByAdamState, "scale_by_adam")`` as the first line of an update."""
    if type(state) is not cls:
        raise TypeError(
            f"{name}: the state is a {type(state).__qualname__}, not the {cls.__qualname__} that "
            f"{name}.init makes: it belongs to another transform (call init with this transform)"
        )
