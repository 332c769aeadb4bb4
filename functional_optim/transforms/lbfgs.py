"""``scale_by_lbfgs``: torch.optim.LBFGS's full ``step(closure)`` as a pure transform."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _layout, _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.line_search import strong_wolfe

__all__ = ["ScaleByLBFGSState", "scale_by_lbfgs"]


class ScaleByLBFGSState(NamedTuple):
    """State of [`scale_by_lbfgs`][]: ``torch.optim.LBFGS``'s (global) state entries, same names,
    order and Python types, plus ``loss``.

    Attributes:
      func_evals: total number of objective evaluations (Python ``int``).
      n_iter: total number of L-BFGS iterations (Python ``int``).
      d: last search direction (flat tensor), ``None`` before the first iteration.
      t: last step length (float, or a 0-dim tensor after the very first iteration, as in torch).
      old_dirs: curvature pairs ``y_k = g_{k+1} - g_k`` (tuple of flat tensors, oldest first).
      old_stps: step pairs ``s_k = t_k d_k`` (tuple of flat tensors).
      ro: ``1 / (y_k · s_k)`` (tuple of 0-dim tensors).
      H_diag: initial inverse-Hessian scale ``y·s / y·y`` (``1`` until the first curvature pair).
      prev_flat_grad: flat gradient at the start of the last iteration.
      prev_loss: loss (Python float) at the start of the last iteration.
      al: two-loop scratch of length ``history_size`` (torch keeps it in the state), or ``None``.
      loss: the objective at the parameters given to the last ``update`` (what torch's
        ``step(closure)`` returns), detached; ``None`` before the first update.
    """

    func_evals: int
    n_iter: int
    d: Tensor | None
    t: Any
    old_dirs: tuple[Tensor, ...] | None
    old_stps: tuple[Tensor, ...] | None
    ro: tuple[Tensor, ...] | None
    H_diag: Any
    prev_flat_grad: Tensor | None
    prev_loss: float | None
    al: tuple[Any, ...] | None
    loss: Any


def _check_state(state: Any, xs: list[Tensor]) -> None:
    """The state is L-BFGS's and its direction has as many entries as the parameters."""
    _layout.expect_state(state, ScaleByLBFGSState, "scale_by_lbfgs")
    if state.d is not None:
        n = sum(2 * x.numel() if x.is_complex() else x.numel() for x in xs if x is not None)
        if state.d.numel() != n:
            raise ValueError(
                f"scale_by_lbfgs: the state's direction d has {state.d.numel()} entries but the "
                f"parameters have {n}: the state was built for other parameters"
            )


def _flat_grad(grads: list[Tensor | None], xs: list[Tensor]) -> Tensor:
    """torch's ``_gather_flat_grad``: None -> zeros, sparse -> dense, complex -> real view."""
    views = []
    for g, x in zip(grads, xs, strict=True):
        if g is None:
            view = x.new_zeros(x.numel())
        elif g.is_sparse:
            view = g.to_dense().reshape(-1)
        else:
            view = g.reshape(-1)
        if torch.is_complex(view):
            view = torch.view_as_real(view).reshape(-1)
        views.append(view)
    return torch.cat(views, 0)


def _add_grad(xs: list[Tensor], step_size: Any, direction: Tensor) -> list[Tensor]:
    """torch's ``_add_grad`` out of place: ``x + step_size · d`` leaf by leaf (complex via real view)."""
    out, offset = [], 0
    for x in xs:
        xr = torch.view_as_real(x) if torch.is_complex(x) else x
        n = xr.numel()
        new = torch.add(xr, direction[offset : offset + n].view_as(xr), alpha=step_size)
        out.append(torch.view_as_complex(new) if torch.is_complex(x) else new)
        offset += n
    return out


def _displacement(x0: Tensor, xf: Tensor) -> Tensor:
    """``u`` with ``x0 + u == xf`` bit for bit (where float arithmetic allows it).

    ``xf - x0`` is rounded when ``x0`` and ``xf`` differ in magnitude, and ``x0 + (xf - x0)`` may
    then miss ``xf`` by an ulp; L-BFGS amplifies such differences over a few steps. The rounding
    residual ``xf - (x0 + u)`` is exact (Sterbenz) and is added back where it is nonzero (at most
    twice), so applying the update lands on torch's iterate.
    """
    u = xf - x0
    for _ in range(2):
        landed = x0 + u
        miss = landed != xf
        if not bool(miss.any()):
            break
        u = torch.where(miss, u + (xf - landed), u)
    return u


def _detached(value: Any) -> Any:
    return value.detach() if isinstance(value, Tensor) else value


@schedulable("lr", "tolerance_grad", "tolerance_change")
def scale_by_lbfgs(
    lr: Hyperparam = 1,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: Hyperparam = 1e-7,
    tolerance_change: Hyperparam = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
) -> GradientTransformation:
    r"""L-BFGS exactly as ``torch.optim.LBFGS.step(closure)``: up to ``max_iter`` iterations per update.

    Each iteration, with flat gradient ``g_k`` and curvature pairs ``s_i = t_i d_i``,
    ``y_i = g_{i+1} - g_i`` (kept when ``y·s > 1e-10``, at most ``history_size``, FIFO):

    $$
    d_k = -H_k g_k \quad\text{(two-loop recursion, } H_0 = \tfrac{y^\top s}{y^\top y} I\text{)},\qquad
    x_{k+1} = x_k + t_k d_k
    $$

    with ``t_0 = min(1, 1/||g_0||_1)·lr`` on the very first iteration, ``t_k = lr`` afterwards, or
    the strong-Wolfe step (``line_search_fn="strong_wolfe"``, ``c1=1e-4``, ``c2=0.9``, at most
    ``max_eval - evals`` evaluations; like torch, the search uses its default
    ``tolerance_change=1e-9``, not this argument). An update stops when ``max|g| <= tolerance_grad``,
    ``g·d > -tolerance_change``, ``max|t d| <= tolerance_change``,
    ``|f_k - f_{k-1}| < tolerance_change``, after ``max_iter`` iterations or ``max_eval``
    evaluations. The emitted update is the whole displacement ``x_final - x`` (learning rate and
    descent sign included, since the objective is evaluated along the way), so this transform
    goes last in a chain. The displacement is rounding-compensated so that ``x + u`` equals
    ``x_final`` bit for bit (plain ``x_final - x`` can miss by an ulp, which L-BFGS amplifies
    over steps): [`fo.apply_updates`][functional_optim.apply_updates] lands exactly on torch's parameters.

    **The objective** comes through keyword extras of ``update``::

        updates, state = opt.update(grads, state, params, value=loss, value_fn=f)

    * ``value_fn(params) -> loss``: a 0-dim tensor; gradients are taken with ``torch.autograd``
      (the leaves passed in require grad; unused leaves get zero gradients, as torch's ``None``
      grads), or
    * ``value_and_grad_fn(params) -> (loss, grads)``: returns the gradient tree itself (e.g. from
      ``torch.func.grad_and_value``; ``None`` leaves count as zeros).
    * ``value``: the loss at ``params``. When given, ``grads`` must be its gradient and this first
      evaluation is not repeated (torch's first ``closure()`` call); when omitted, ``grads`` is
      ignored and the objective is evaluated at ``params``. With ``max_iter=1`` and no line
      search, ``value`` + ``grads`` is all that is needed.

    ``None`` gradients count as zeros, sparse ones are densified and complex tensors are treated
    as real tensors of shape ``(..., 2)`` (torch's rules). The loss is read on the host
    (``float(loss)``) and control flow depends on it, so this transform is not for ``vmap``,
    ``torch.compile(fullgraph=True)`` or differentiation through the update; ``lr`` and the
    tolerances are read as Python floats. The state keeps torch's Python types (``int``
    counters, float ``prev_loss``) so that it maps one-to-one onto ``LBFGS.state_dict()``.

    Args:
      lr: learning rate (step length of the fixed-step iteration / initial line-search step).
      max_iter: maximal number of iterations per update.
      max_eval: maximal number of objective evaluations per update (default ``max_iter·5//4``).
      tolerance_grad: stop when ``max|g| <= tolerance_grad``.
      tolerance_change: stop when the loss, the step or the directional derivative changes less.
      history_size: number of curvature pairs kept (``>= 1``).
      line_search_fn: ``None`` (fixed step ``lr``) or ``"strong_wolfe"``.

    Example:
        >>> A, b = torch.tensor([[3.0, 1.0], [1.0, 2.0]]), torch.tensor([1.0, 1.0])
        >>> def f(p):
        ...     return ((A @ p["w"] - b) ** 2).sum()
        >>> params = {"w": torch.zeros(2)}
        >>> opt = fo.scale_by_lbfgs(line_search_fn="strong_wolfe")
        >>> state = opt.init(params)
        >>> for _ in range(3):
        ...     updates, state = opt.update(None, state, params, value_fn=f)
        ...     params = fo.apply_updates(params, updates)
        >>> float(f(params)) < 1e-8
        True

    References:
      Nocedal, "Updating quasi-Newton matrices with limited storage", Math. Comp. 1980;
      Liu & Nocedal, "On the limited memory BFGS method for large scale optimization", 1989;
      ``torch.optim.LBFGS`` (after Mark Schmidt's minFunc).
    """
    _validation.learning_rate(lr)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"Invalid max_iter: {max_iter!r} (must be an int >= 0)")
    if max_eval is not None and (isinstance(max_eval, bool) or not isinstance(max_eval, int)):
        raise ValueError(f"Invalid max_eval: {max_eval!r} (must be an int or None)")
    if isinstance(history_size, bool) or not isinstance(history_size, int) or history_size < 1:
        raise ValueError(f"Invalid history_size: {history_size!r} (must be an int >= 1)")
    if line_search_fn not in (None, "strong_wolfe"):
        raise ValueError(f"Invalid line_search_fn: {line_search_fn!r} (only None or 'strong_wolfe')")
    max_evals = max_iter * 5 // 4 if max_eval is None else max_eval

    def init_fn(params: Params) -> ScaleByLBFGSState:
        _layout.check_optimizable(params, "scale_by_lbfgs")
        return ScaleByLBFGSState(0, 0, None, None, None, None, None, None, None, None, None, None)

    def update_fn(
        updates: Updates,
        state: ScaleByLBFGSState,
        params: Params | None = None,
        *,
        value: Any = None,
        value_fn: Callable[[Params], Tensor] | None = None,
        value_and_grad_fn: Callable[[Params], tuple[Tensor, Any]] | None = None,
        **extra: Any,
    ):
        del extra
        if params is None:
            raise ValueError("scale_by_lbfgs needs the parameters: call update(grads, state, params, ...)")
        x0, spec = tree.flatten(params)
        _check_state(state, x0)
        lr_ = ops.scalar(lr)  # type: ignore[arg-type]
        tol_grad, tol_change = ops.scalar(tolerance_grad), ops.scalar(tolerance_change)  # type: ignore[arg-type]

        def evaluate(xs: list[Tensor]) -> tuple[Tensor, Tensor]:
            if value_and_grad_fn is not None:
                loss, grads = value_and_grad_fn(tree.unflatten(spec, xs))
                leaves = tree.flatten_like(spec, grads, "value_and_grad_fn: grads")
                _layout.check_leaves("scale_by_lbfgs", spec, leaves, xs, ())
                return loss, _flat_grad(leaves, xs)
            if value_fn is None:
                raise ValueError(
                    "scale_by_lbfgs evaluates the objective during an update: pass value_fn=f "
                    "(f(params) -> loss) or value_and_grad_fn=f (f(params) -> (loss, grads)) to update()"
                )
            with torch.enable_grad():
                inputs = [x.detach().requires_grad_(x.is_floating_point() or x.is_complex()) for x in xs]
                loss = value_fn(tree.unflatten(spec, inputs))
                wrt = [i for i, x in enumerate(inputs) if x.requires_grad]
                found_grads: list[Tensor | None] = [None] * len(xs)
                if loss.requires_grad and wrt:
                    found = torch.autograd.grad(loss, [inputs[i] for i in wrt], allow_unused=True)
                    for i, g in zip(wrt, found, strict=True):
                        found_grads[i] = g
            return loss.detach(), _flat_grad(found_grads, xs)

        # evaluate initial f(x) and df/dx
        if value is not None:
            orig_loss = value
            leaves = tree.flatten_like(spec, updates, "scale_by_lbfgs: grads")
            _layout.check_leaves("scale_by_lbfgs", spec, leaves, x0, ())
            flat_grad = _flat_grad(leaves, x0)
        else:
            orig_loss, flat_grad = evaluate(x0)
        loss = float(orig_loss)
        current_evals = 1
        func_evals = state.func_evals + 1
        state_n_iter = state.n_iter
        xs = list(x0)

        # torch.optim.LBFGS's loosely typed locals (None until the first iteration sets them)
        d: Any = state.d
        t: Any = state.t
        H_diag: Any = state.H_diag
        old_dirs: Any = list(state.old_dirs) if state.old_dirs is not None else None
        old_stps: Any = list(state.old_stps) if state.old_stps is not None else None
        ro: Any = list(state.ro) if state.ro is not None else None
        prev_flat_grad: Any = state.prev_flat_grad
        prev_loss: Any = state.prev_loss
        al: Any = list(state.al) if state.al is not None else None

        if flat_grad.abs().max() <= tol_grad:  # optimality condition: nothing to do
            new_state = state._replace(func_evals=func_evals, loss=_detached(orig_loss))
            return tree.unflatten(spec, [torch.zeros_like(x) for x in x0]), new_state

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state_n_iter += 1

            # ---- descent direction
            if state_n_iter == 1:
                d = flat_grad.neg()
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > 1e-10:  # update the memory
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                num_old = len(old_dirs)
                if al is None:
                    al = [None] * history_size
                # two-loop recursion (q and r are fresh tensors: in-place is safe)
                q = flat_grad.neg()
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q.add_(old_dirs[i], alpha=-al[i])
                d = r = torch.mul(q, H_diag)
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r.add_(old_stps[i], alpha=al[i] - be_i)

            prev_flat_grad = flat_grad
            prev_loss = loss

            # ---- step length
            t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr_ if state_n_iter == 1 else lr_  # type: ignore[operator]
            gtd = flat_grad.dot(d)
            if gtd > -tol_change:  # directional derivative below tolerance
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = xs

                def obj_func(x: list[Tensor], step: Any, direction: Tensor) -> tuple[float, Tensor]:
                    f_new, g_new = evaluate(_add_grad(x, step, direction))
                    return float(f_new), g_new

                loss, flat_grad, t, ls_func_evals = strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_evals - current_evals
                )
                xs = _add_grad(xs, t, d)
                opt_cond: Any = flat_grad.abs().max() <= tol_grad
            else:
                xs = _add_grad(xs, t, d)
                opt_cond = False
                if n_iter != max_iter:  # re-evaluate unless this is the last iteration
                    f_new, flat_grad = evaluate(xs)
                    loss = float(f_new)
                    opt_cond = flat_grad.abs().max() <= tol_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            func_evals += ls_func_evals

            # ---- stopping conditions
            if n_iter == max_iter or current_evals >= max_evals or opt_cond:
                break
            if d.mul(t).abs().max() <= tol_change:  # lack of progress
                break
            if abs(loss - prev_loss) < tol_change:
                break

        new_state = ScaleByLBFGSState(
            func_evals=func_evals,
            n_iter=state_n_iter,
            d=d,
            t=t,
            old_dirs=tuple(old_dirs) if old_dirs is not None else None,
            old_stps=tuple(old_stps) if old_stps is not None else None,
            ro=tuple(ro) if ro is not None else None,
            H_diag=H_diag,
            prev_flat_grad=prev_flat_grad,
            prev_loss=prev_loss,
            al=tuple(al) if al is not None else None,
            loss=_detached(orig_loss),
        )
        return tree.unflatten(spec, [_displacement(a, b) for a, b in zip(x0, xs, strict=True)]), new_state

    return GradientTransformation(init_fn, update_fn)
