"""Adafactor as a composition of transforms (``torch.optim.Adafactor``)."""

from __future__ import annotations

from torch import Tensor

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.factored import scale_by_factored_rms
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adafactor"]


@schedulable("lr", "beta2_decay", "d", "weight_decay")  # eps may hold None: static
def adafactor(
    lr: Hyperparam = 1e-2,
    beta2_decay: Hyperparam = -0.8,
    eps: tuple[Hyperparam | None, Hyperparam] = (None, 1e-3),
    d: Hyperparam = 1.0,
    weight_decay: Hyperparam = 0.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""Adafactor, with ``torch.optim.Adafactor``'s arguments, defaults and numerics.

    ```text
    chain(negate()                       if maximize,
          scale_by_factored_rms(lr, beta2_decay, eps, d),  # α/lr · U / max(1, RMS(U)/d)
          add_decayed_weights(wd, decoupled=True),            # decoupled: p *= 1 - lr·wd
          scale_by_learning_rate(lr))
    ```

    With ``ρ_t = min(lr, 1/√t)`` and ``α = max(eps2, RMS(p))·ρ_t``, the step is
    ``p ← p(1 - lr·wd) - α·U/max(1, RMS(U)/d)`` where ``U = g/√V̂`` uses the factored second
    moments (rows and columns of the last two dimensions) for ``dim > 1`` parameters.
    Complex parameters and sparse gradients raise ``RuntimeError``, as in torch.

    Args:
      lr: learning rate, the cap of the relative step size (float or 0-dim tensor).
      beta2_decay: decay exponent of the second moments, ``<= 0``.
      eps: ``(eps1, eps2)``; ``eps1=None`` uses the dtype's machine epsilon.
      d: clipping threshold of the update's RMS, ``>= 1``.
      weight_decay: decoupled weight decay coefficient.
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.adafactor(lr=1e-2)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]
        tensor([0.9900, 1.0100, 0.9900])

    References:
      Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018.
    """
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    _validation.require(lambda v: v >= 0.0, lr, f"Learning rate should be >= 0 but is: {lr}")
    _validation.require(lambda v: v <= 0.0, beta2_decay, f"beta2_decay should be <= 0 but is: {beta2_decay}")
    if eps[0] is not None:
        _validation.require(lambda v: v >= 0.0, eps[0], f"epsilon1 should be >= 0 but is: {eps[0]}")
    _validation.require(lambda v: v >= 0.0, eps[1], f"epsilon2 should be >= 0 but is: {eps[1]}")
    _validation.require(lambda v: v >= 1.0, d, f"Clipping threshold d should be >= 1 but is: {d}")
    _validation.require(
        lambda v: v >= 0.0, weight_decay, f"weight_decay should be >= 0 but is: {weight_decay}"
    )
    return chain(
        *([negate()] if maximize else []),
        scale_by_factored_rms(lr, beta2_decay, eps, d),
        add_decayed_weights(weight_decay, decoupled=True),
        scale_by_learning_rate(lr),
    )
