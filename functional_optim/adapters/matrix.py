"""Drop-in ``torch.optim.Optimizer`` classes of the matrix optimizers (SOAP, NorMuon, AdaMuon).

Each class has its authors' name, constructor arguments and defaults; the maths is the pure alias
(``fo.soap``, ``fo.normuon``, ``fo.adamuon``) run by
:class:`~functional_optim.adapters.FunctionalOptimizer`.
"""

# No ``from __future__ import annotations``: the signatures are the reference classes'.

from torch import Tensor
from torch.optim.optimizer import ParamsT

from functional_optim.adapters.optimizers import _DropIn
from functional_optim.optimizers.soap import soap

__all__ = ["SOAP"]


class SOAP(_DropIn):
    r"""SOAP (Vyas et al. 2024) over :func:`functional_optim.soap`, with the official class's
    arguments and defaults (github.com/nikhilvyas/SOAP).

    Adam in the eigenbasis of Shampoo's preconditioner; the first step of each parameter only
    builds its preconditioner. Weight decay is applied after the step, as the official code.
    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` (in the eigenbasis), ``GG_L``,
    ``GG_R``, ``Q_L``, ``Q_R`` (the official ``GG``/``Q`` lists as fields) and ``initialized``.
    Only ``data_format="channels_first"`` is supported.

    Example:
      >>> model = torch.nn.Linear(4, 3)
      >>> opt = fo.adapters.SOAP(model.parameters(), lr=3e-3)
      >>> model(torch.randn(2, 4)).sum().backward()
      >>> opt.step()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float = -1,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10000,
        merge_dims: bool = False,
        precondition_1d: bool = False,
        normalize_grads: bool = False,
        data_format: str = "channels_first",
        correct_bias: bool = True,
    ) -> None:
        if data_format != "channels_first":
            raise ValueError(
                f"SOAP: data_format must be 'channels_first' (channels_last unsupported), got {data_format!r}"
            )
        self._data_format = data_format
        self._dropin_init(
            params,
            soap,
            dict(
                lr=lr,
                betas=betas,
                shampoo_beta=shampoo_beta,
                eps=eps,
                weight_decay=weight_decay,
                precondition_frequency=precondition_frequency,
                max_precond_dim=max_precond_dim,
                merge_dims=merge_dims,
                precondition_1d=precondition_1d,
                normalize_grads=normalize_grads,
                correct_bias=correct_bias,
            ),
        )
