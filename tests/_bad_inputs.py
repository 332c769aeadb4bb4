"""Bad inputs for the pure API of every algorithm: the cases of ``tests/test_bad_input_pure.py``
and of ``benchmarks/bad_input_table.py``.

``ALGORITHMS[name]`` gives a transform factory, how to make valid parameters/gradients for it,
and which gradient layout it takes (SparseAdam takes sparse gradients, the others dense).
``mutate(kind, params, grads, ...)`` returns the bad ``(params_for_init, grads, state)`` of one
mismatch kind; ``KINDS`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optree
import torch

import functional_optim as fo


@dataclass(frozen=True)
class Algo:
    make: Callable[[], fo.GradientTransformation]
    matrices_only: bool = False  # Muon: 2-D parameters
    sparse_grads: bool = False  # SparseAdam: sparse gradients are the valid input
    supports_sparse: bool = False  # sparse gradients are accepted (Adagrad)
    line_search: bool = False  # LBFGS: update(grads, state, params, value=loss)


ALGORITHMS: dict[str, Algo] = {
    "sgd": Algo(lambda: fo.sgd(0.1, momentum=0.9)),
    "sgd_plain": Algo(lambda: fo.sgd(0.1)),
    "adam": Algo(lambda: fo.adam(1e-2)),
    "adamw": Algo(lambda: fo.adamw(1e-2, amsgrad=True)),
    "adamax": Algo(lambda: fo.adamax(1e-2)),
    "nadam": Algo(lambda: fo.nadam(1e-2)),
    "radam": Algo(lambda: fo.radam(1e-2)),
    "adagrad": Algo(lambda: fo.adagrad(0.1), supports_sparse=True),
    "adadelta": Algo(lambda: fo.adadelta(1.0)),
    "adafactor": Algo(lambda: fo.adafactor(1e-2)),
    "rmsprop": Algo(lambda: fo.rmsprop(1e-2, momentum=0.9, centered=True)),
    "rprop": Algo(lambda: fo.rprop(1e-2)),
    "asgd": Algo(lambda: fo.asgd(1e-2, t0=2)),
    "sparse_adam": Algo(lambda: fo.sparse_adam(1e-2), sparse_grads=True),
    "muon": Algo(lambda: fo.muon(1e-2), matrices_only=True),
    "lbfgs": Algo(lambda: fo.lbfgs(1.0, max_iter=2), line_search=True),
}

KINDS = [
    "grad (5, *shape)",
    "grad 0-dim",
    "grad float64",
    "grad on meta",
    "grad sparse",
    "grad dense (SparseAdam)",
    "grad Python float",
    "grad numpy array",
    "grads extra leaf",
    "state of another algorithm",
    "state for other shapes",
    "param int64 at init",
    "param bool at init",
]


def applicable(name: str, kind: str) -> bool:
    algo = ALGORITHMS[name]
    if kind == "grad sparse":
        return not algo.sparse_grads
    if kind == "grad dense (SparseAdam)":
        return algo.sparse_grads
    if kind == "state for other shapes":
        return name != "sgd_plain"  # no per-parameter state to be wrong
    return True


def make_params(algo: Algo, shapes: list[tuple[int, ...]], seed: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    if algo.matrices_only:
        shapes = [(s[0] + 1 if s else 2, (s[-1] if len(s) > 1 else 1) + 1) for s in shapes]
    leaves = [torch.randn(s, generator=gen) for s in shapes]
    if len(leaves) >= 3:
        return {"a": leaves[0], "block": {"w": leaves[1], "rest": list(leaves[2:])}}
    return {f"p{i}": t for i, t in enumerate(leaves)}


def make_grads(algo: Algo, params: Any, seed: int) -> Any:
    gen = torch.Generator().manual_seed(seed + 1)

    def grad(p: torch.Tensor) -> torch.Tensor:
        g = torch.randn(p.shape, generator=gen)
        if algo.sparse_grads:
            return g.to_sparse() if g.ndim > 0 else g.reshape(1).to_sparse().sum(0)
        return g

    return optree.tree_map(grad, params)


def leaf_paths(params: Any) -> list[str]:
    return fo.tree.leaf_names(fo.tree.structure(params))


def _replace_leaf(tree: Any, index: int, value: Any) -> Any:
    leaves, spec = fo.tree.flatten(tree)
    leaves = list(leaves)
    leaves[index] = value
    return fo.tree.unflatten(spec, leaves)


def _square_loss(params: Any) -> torch.Tensor:
    return sum((x.float() ** 2).sum() for x in fo.tree.leaves(params) if x is not None)


def update(algo: Algo, opt: fo.GradientTransformation, grads: Any, state: Any, params: Any) -> Any:
    if algo.line_search:
        return opt.update(grads, state, params, value=torch.tensor(1.0), value_fn=_square_loss)
    return opt.update(grads, state, params)


def mutate(name: str, kind: str, params: Any, grads: Any, index: int) -> tuple[Any, Any, Any, str]:
    """``(params, grads, state, leaf)``: the bad input of ``kind`` at leaf ``index`` (None state:
    the failure is expected at ``init``). ``leaf`` is the name the error must contain."""
    algo = ALGORITHMS[name]
    opt = algo.make()
    leaf = leaf_paths(params)[index]
    p = fo.tree.leaves(params)[index]
    if kind.startswith("param"):
        dtype = torch.int64 if "int64" in kind else torch.bool
        return _replace_leaf(params, index, torch.ones(p.shape, dtype=dtype)), grads, None, leaf
    state = opt.init(params)
    if kind == "grad (5, *shape)":
        bad = torch.ones((5, *p.shape))
    elif kind == "grad 0-dim":
        bad = torch.tensor(0.5)
    elif kind == "grad float64":
        bad = torch.ones(p.shape, dtype=torch.float64)
    elif kind == "grad on meta":
        bad = torch.ones(p.shape, device="meta")
    elif kind == "grad sparse":
        bad = torch.ones(p.shape).to_sparse() if p.ndim > 0 else torch.ones(1).to_sparse().sum(0)
    elif kind == "grad dense (SparseAdam)":
        bad = torch.ones(p.shape)
    elif kind == "grad Python float":
        bad = 0.5
    elif kind == "grad numpy array":
        bad = np.ones(p.shape, dtype=np.float32)
    elif kind == "grads extra leaf":
        extra = {"grads": grads, "extra": torch.ones(2)}
        return params, extra, state, "extra"
    elif kind == "state of another algorithm":
        other = "adagrad" if name != "adagrad" else "adam"
        if name == "adam":
            other = "adamw"  # an AMSGrad state (one more field) given to Adam
        return params, grads, ALGORITHMS[other].make().init(params), "State"
    elif kind == "state for other shapes":
        other_shape = tuple(n + 1 for n in p.shape) if p.ndim else (3,)
        other_params = _replace_leaf(params, index, torch.zeros(other_shape))
        other_state = opt.init(other_params)
        if algo.line_search:  # L-BFGS's state depends on the parameters after a step only
            other_grads = optree.tree_map(torch.ones_like, other_params)
            _, other_state = update(algo, opt, other_grads, other_state, other_params)
            leaf = "other parameters"
        return params, grads, other_state, leaf
    else:  # pragma: no cover
        raise ValueError(kind)
    return params, _replace_leaf(grads, index, bad), state, leaf


def clone_tree(tree: Any) -> Any:
    return optree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, tree, none_is_leaf=True)


def same_tree(a: Any, b: Any) -> bool:
    la, sa = optree.tree_flatten(a, none_is_leaf=True)
    lb, sb = optree.tree_flatten(b, none_is_leaf=True)
    if sa != sb:
        return False
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, torch.Tensor):
            if not isinstance(y, torch.Tensor) or x.layout != y.layout or x.dtype != y.dtype:
                return False
            if x.device.type == "meta":
                continue
            xd = x.to_dense() if x.is_sparse else x
            yd = y.to_dense() if y.is_sparse else y
            if xd.shape != yd.shape or not torch.equal(xd, yd):
                return False
        elif not (x is y or x == y):
            return False
    return True


def names_leaf(message: str, leaf: str) -> bool:
    """Whether an error message names ``leaf`` (for a foreign state: says it is a state)."""
    if leaf == "State":
        return "state" in message.lower()
    return f"'{leaf}'" in message or leaf in message


TORCH_ACCEPTS_SPARSE = {"sgd", "sgd_plain", "adagrad", "lbfgs"}


def outcome(name: str, kind: str, index: int = 0, seed: int = 0) -> tuple[str, str]:
    """``(verdict, message)`` of one bad input for the table: ``refused`` (an exception naming the
    leaf, nothing changed), ``refused (no leaf named)``, ``raw error`` (an ``AttributeError`` or
    ``NotImplementedError`` from deep inside), ``ACCEPTED`` (no error) or ``CHANGED``."""
    algo = ALGORITHMS[name]
    params = make_params(algo, [(2,), (3, 2), (2, 2)], seed)
    grads = make_grads(algo, params, seed)
    params, grads, state, leaf = mutate(name, kind, params, grads, index)
    opt = algo.make()
    before = (clone_tree(params), clone_tree(state))
    at_update = False
    try:
        if state is None:
            state = opt.init(params)
            at_update = True
        update(algo, opt, grads, state, params)
    except Exception as err:
        msg = f"{type(err).__name__}: {err}".replace("\n", " ")
        if not same_tree(before[0], params) or (before[1] is not None and not same_tree(before[1], state)):
            return "CHANGED", msg
        if isinstance(err, AttributeError | NotImplementedError | IndexError | KeyError):
            return "raw error", msg
        if at_update:
            return "refused at update", msg
        return ("refused" if names_leaf(str(err), leaf) else "refused (no leaf named)"), msg
    return "ACCEPTED", ""
