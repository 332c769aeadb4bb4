r"""``torch.optim.swa_utils`` equivalents built on the pure averaging maths.

[`AveragedModel`][], [`update_bn`][] and the ``get_*_avg_fn`` factories have torch's
signatures, behaviour and numbers; a checkpoint (``state_dict``) of one ``AveragedModel`` loads
into the other. The maths lives in `functional_optim.averaging._maths`, shared with the pure
averagers [`swa`][] and [`ema`][];
the classes here only copy its results into the module's tensors. For the SWA learning rate,
``fo.schedules.swa_lr`` is the schedule form of ``torch.optim.swa_utils.SWALR``.

Example (torch's SWA recipe, unchanged apart from the import)::

    from functional_optim.averaging import AveragedModel, update_bn
    swa_model = AveragedModel(model)
    for epoch in range(epochs):
        train_one_epoch(model, optimizer)
        if epoch >= swa_start:
            swa_model.update_parameters(model)
    update_bn(loader, swa_model)

References:
  Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization", UAI 2018.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from copy import deepcopy
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module

from functional_optim.averaging import _maths

__all__ = [
    "AveragedModel",
    "AvgFnConflictError",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
    "update_bn",
]

ParamList = tuple[Tensor, ...] | list[Tensor]


class AvgFnConflictError(ValueError, AssertionError):
    """Both ``avg_fn`` and ``multi_avg_fn`` were given. A ``ValueError`` that is also an
    ``AssertionError`` (what torch raises), so handlers written for either catch it."""


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")


def _copy_into(targets: ParamList, values: list[Tensor]) -> None:
    for t, v in zip(targets, values, strict=True):
        t.copy_(v)


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable[[ParamList, ParamList, Any], None]:
    r"""In-place EMA over lists of tensors (``torch.optim.swa_utils.get_ema_multi_avg_fn``).

    $$
    W^{EMA} \leftarrow \mathrm{lerp}(W^{EMA}, W^{model}, 1-\text{decay})
    $$

    (``decay*ema + (1-decay)*cur`` for non-float tensors, cast back). ``decay`` must be in [0, 1].
    """
    _check_decay(decay)

    @torch.no_grad()
    def ema_update(ema_param_list: ParamList, current_param_list: ParamList, _: Any) -> None:
        _copy_into(ema_param_list, _maths.ema_lerp(list(ema_param_list), list(current_param_list), decay))

    return ema_update


def get_swa_multi_avg_fn() -> Callable[[ParamList, ParamList, Tensor | int], None]:
    r"""In-place equal-weight average over lists (``torch.optim.swa_utils.get_swa_multi_avg_fn``).

    $$
    W^{SWA} \leftarrow \mathrm{lerp}\big(W^{SWA}, W^{model}, \tfrac{1}{n+1}\big)
    $$

    with ``n`` the number of models already averaged (non-float tensors: ``avg + (cur-avg)/(n+1)``).
    """

    @torch.no_grad()
    def swa_update(averaged_param_list: ParamList, current_param_list: ParamList, num_averaged) -> None:
        new = _maths.swa_lerp(list(averaged_param_list), list(current_param_list), num_averaged)
        _copy_into(averaged_param_list, new)

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> Callable[[Tensor, Tensor, Any], Tensor]:
    r"""EMA of one tensor (``torch.optim.swa_utils.get_ema_avg_fn``): returns
    ``decay * ema + (1 - decay) * current``."""
    _check_decay(decay)

    @torch.no_grad()
    def ema_update(ema_param: Tensor, current_param: Tensor, num_averaged: Any) -> Tensor:
        del num_averaged
        return _maths.ema_affine(ema_param, current_param, decay)

    return ema_update


def get_swa_avg_fn() -> Callable[[Tensor, Tensor, Tensor | int], Tensor]:
    r"""Equal-weight average of one tensor (``torch.optim.swa_utils.get_swa_avg_fn``): returns
    ``avg + (current - avg) / (n + 1)``."""

    @torch.no_grad()
    def swa_update(averaged_param: Tensor, current_param: Tensor, num_averaged: Tensor | int) -> Tensor:
        return averaged_param + (current_param - averaged_param) / (num_averaged + 1)

    return swa_update


class AveragedModel(Module):
    r"""A running average (SWA or EMA) of a model: ``torch.optim.swa_utils.AveragedModel``.

    Same constructor, attributes (``module``, ``n_averaged``, ``avg_fn``, ``multi_avg_fn``,
    ``use_buffers``), forward delegation, ``state_dict`` keys (``module.*``, ``n_averaged``) and
    numbers as torch's, so either class loads the other's checkpoints.

    ``update_parameters(model)``: the first call copies ``model``'s parameters (and buffers with
    ``use_buffers``); later calls fold them in with ``multi_avg_fn`` (per (device, dtype) group),
    else ``avg_fn`` (per tensor), else the equal-weight average
    ``avg + (p - avg)/(n+1)`` (``lerp`` on devices with foreach kernels). Without
    ``use_buffers`` the buffers are copied from ``model``. ``n_averaged`` then grows by one.

    Args:
      model: the module to average (deep-copied).
      device: if given, the averaged copy lives on this device.
      avg_fn: ``(averaged, current, n_averaged) -> new averaged`` for one tensor.
      multi_avg_fn: in-place ``(averaged_list, current_list, n_averaged) -> None``.
      use_buffers: average the buffers too (e.g. BatchNorm statistics) instead of copying them.

    Raises:
      AvgFnConflictError: (a ``ValueError`` and ``AssertionError``) if both functions are given.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> ema_fn = fo.averaging.get_ema_multi_avg_fn(0.999)
        >>> ema_model = fo.averaging.AveragedModel(model, multi_avg_fn=ema_fn)
        >>> with torch.no_grad():  # stands for optimizer.step()
        ...     _ = model.bias.add_(1.0)
        >>> ema_model.update_parameters(model)
        >>> int(ema_model.n_averaged)
        1

    For a functional training loop, [`with_average`][] keeps the
    same average inside the optimizer state instead.
    """

    n_averaged: Tensor

    def __init__(
        self,
        model: Module,
        device: int | torch.device | None = None,
        avg_fn: Callable[[Tensor, Tensor, Tensor | int], Tensor] | None = None,
        multi_avg_fn: Callable[[ParamList, ParamList, Tensor | int], None] | None = None,
        use_buffers: bool = False,
    ) -> None:
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AvgFnConflictError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long, device=device))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the averaged module."""
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current parameters (and buffers with ``use_buffers``) into the average."""
        ours: Iterable[Tensor]
        theirs: Iterable[Tensor]
        if self.use_buffers:
            ours = itertools.chain(self.module.parameters(), self.module.buffers())
            theirs = itertools.chain(model.parameters(), model.buffers())
        else:
            ours, theirs = self.parameters(), model.parameters()
        avg: list[Tensor] = []
        cur: list[Tensor] = []
        for p_avg, p_model in zip(ours, theirs, strict=False):  # torch pairs them the same way
            avg.append(p_avg.detach())
            cur.append(p_model.detach().to(p_avg.device))

        n = self.n_averaged
        if int(n.item()) == 0:
            _copy_into(avg, _maths.copy(cur, avg))
        elif self.multi_avg_fn is not None or self.avg_fn is None:
            for device, a_g, c_g in _groups(avg, cur):
                if self.multi_avg_fn is not None:
                    self.multi_avg_fn(a_g, c_g, n.to(device))
                else:
                    _copy_into(a_g, _maths.swa_default(a_g, c_g, n.to(device)))
        else:
            for a, c in zip(avg, cur, strict=True):
                a.copy_(self.avg_fn(a, c, n.to(a.device)))

        if not self.use_buffers:
            for b_avg, b_model in zip(self.module.buffers(), model.buffers(), strict=True):
                b_avg.detach().copy_(b_model.detach().to(b_avg.device))
        self.n_averaged += 1


def _groups(avg: list[Tensor], cur: list[Tensor]) -> list[tuple[torch.device, list[Tensor], list[Tensor]]]:
    """Group the pairs by (device, dtype) in order of first appearance (as torch does)."""
    groups: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]] = {}
    for a, c in zip(avg, cur, strict=True):
        a_g, c_g = groups.setdefault((a.device, a.dtype), ([], []))
        a_g.append(a)
        c_g.append(c)
    return [(device, a_g, c_g) for (device, _), (a_g, c_g) in groups.items()]


@torch.no_grad()
def update_bn(loader: Iterable[Any], model: Module, device: int | torch.device | None = None) -> None:
    r"""Recompute the BatchNorm running statistics of ``model`` with one pass over ``loader``
    (``torch.optim.swa_utils.update_bn``).

    Every ``_BatchNorm`` layer is reset and switched to a cumulative average (``momentum=None``),
    so after the pass ``running_mean``/``running_var`` are the plain averages of the per-batch
    statistics. The model runs in train mode; momenta and the training mode are restored after.
    A batch that is a list or tuple contributes its first element; it is moved to ``device`` if
    given. Without BatchNorm layers nothing happens (the loader is not read).

    Args:
      loader: iterable of batches (tensor, or list/tuple whose first element is the input).
      model: the model (e.g. an [`AveragedModel`][]) whose statistics to recompute.
      device: if given, each input is moved there before the forward pass.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
        >>> swa_model = fo.averaging.AveragedModel(model)
        >>> train_loader = [torch.randn(8, 2) for _ in range(3)]
        >>> fo.averaging.update_bn(train_loader, swa_model)
        >>> int(swa_model.module[1].num_batches_tracked)
        3
    """
    momenta: dict[Module, Any] = {}
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None  # type: ignore[assignment]  # torch's cumulative-average switch
    for batch in loader:
        if isinstance(batch, list | tuple):
            batch = batch[0]
        if device is not None:
            batch = batch.to(device)
        model(batch)
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)
