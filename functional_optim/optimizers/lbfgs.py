"""L-BFGS (``torch.optim.LBFGS``) as a transform."""

from __future__ import annotations

from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.lbfgs import scale_by_lbfgs

__all__ = ["lbfgs"]


@schedulable("lr", "tolerance_grad", "tolerance_change")
def lbfgs(
    lr: Hyperparam = 1,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: Hyperparam = 1e-7,
    tolerance_change: Hyperparam = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
) -> GradientTransformation:
    r"""L-BFGS with ``torch.optim.LBFGS``'s arguments, defaults and numerics: ``chain(scale_by_lbfgs(...))``.

    One ``update`` is one ``LBFGS.step(closure)``: up to ``max_iter`` iterations and ``max_eval``
    objective evaluations. The objective is passed as keyword extras (see
    [`fo.scale_by_lbfgs`][functional_optim.scale_by_lbfgs]): ``value_fn(params) -> loss`` or
    ``value_and_grad_fn(params) -> (loss, grads)``, optionally with ``value`` (the loss at
    ``params``, with ``grads`` its gradient) to skip the first evaluation.

    Differences from torch: an invalid ``line_search_fn`` or ``history_size < 1`` raise a
    ``ValueError`` at construction (torch fails at the first ``step``); parameter groups do not
    exist here (one transform = one group).

    Args:
      lr: learning rate (``>= 0``).
      max_iter: maximal number of iterations per update.
      max_eval: maximal number of evaluations per update (default ``max_iter * 5 // 4``).
      tolerance_grad: termination tolerance on first-order optimality (``max|g|``).
      tolerance_change: termination tolerance on loss / parameter changes.
      history_size: number of curvature pairs kept.
      line_search_fn: ``None`` or ``"strong_wolfe"``.

    Example:
        >>> A, b = torch.tensor([[3.0, 1.0], [1.0, 2.0]]), torch.tensor([1.0, 1.0])
        >>> def loss_fn(p):
        ...     return 0.5 * p["x"] @ A @ p["x"] - b @ p["x"]
        >>> params = {"x": torch.zeros(2)}
        >>> opt = fo.lbfgs(line_search_fn="strong_wolfe")
        >>> state = opt.init(params)
        >>> updates, state = opt.update(None, state, params, value_fn=loss_fn)
        >>> params = fo.apply_updates(params, updates)
        >>> torch.allclose(params["x"], torch.linalg.solve(A, b), atol=1e-4)  # the minimiser A⁻¹b
        True

    References:
      Liu & Nocedal, "On the limited memory BFGS method for large scale optimization",
      Mathematical Programming 45, 1989.
    """
    return chain(
        scale_by_lbfgs(
            lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )
    )
