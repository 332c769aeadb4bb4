"""SparseAdam as a composition of transforms (``torch.optim.SparseAdam``)."""

from __future__ import annotations

from torch import Tensor

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.sparse_adam import scale_by_sparse_adam

__all__ = ["sparse_adam"]


@schedulable("lr", "betas", "eps")
def sparse_adam(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""SparseAdam, with ``torch.optim.SparseAdam``'s arguments, defaults, validation and numerics.

    ```text
    chain(negate()                          if maximize,
          scale_by_sparse_adam(β1, β2, eps),  # lazy moments at the grad's indices, sparse u
          scale_by_learning_rate(lr))         # p[I] -= lr·sqrt(bc2)/bc1 · m_I/(sqrt(v_I)+eps)
    ```

    Gradients must be sparse COO tensors (``nn.Embedding(sparse=True)``); parameters must be
    dense and real. Unlike [`adam`][], ``lr`` and ``eps`` must be strictly positive.

    Args:
      lr: learning rate (``> 0``; float, 0-dim tensor or schedule).
      betas: ``(β1, β2)`` for the first and second moments, each in ``[0, 1)``.
      eps: term added to ``sqrt(v)`` (``> 0``).
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> emb = torch.nn.Embedding(10, 3, sparse=True)
        >>> params = {"weight": emb.weight.detach()}
        >>> opt = fo.sparse_adam(lr=1e-2)
        >>> state = opt.init(params)
        >>> emb(torch.tensor([1, 4])).sum().backward()
        >>> updates, state = opt.update({"weight": emb.weight.grad}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> changed = (params["weight"] != emb.weight).any(dim=1)
        >>> changed.nonzero().flatten()  # only the rows that were looked up
        tensor([1, 4])

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015; ``torch.optim.SparseAdam``.
    """
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    _validation.require(lambda v: v > 0.0, lr, f"Invalid learning rate: {lr}")
    _validation.require(lambda v: v > 0.0, eps, f"Invalid epsilon value: {eps}")
    betas = _validation.pair("betas", betas)
    _validation.beta("betas[0]", betas[0], 0)
    _validation.beta("betas[1]", betas[1], 1)
    return chain(
        *([negate()] if maximize else []),
        scale_by_sparse_adam(betas[0], betas[1], eps),
        scale_by_learning_rate(lr),
    )
