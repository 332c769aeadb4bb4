"""``torch.optim``'s fused multi-tensor kernels as [`fo.compile_step`][functional_optim.compile_step]'s
fastest path.

``torch.optim`` ships fused kernels for four algorithms: ``torch._fused_adam_`` /
``torch._fused_adamw_``, ``torch._fused_sgd_`` and ``torch._fused_adagrad_`` (one pass over
memory per parameter: read ``p, g`` and the state, write ``p`` and the state). When a transform's
roles say that its step is exactly one of them::

    [add_decayed_weights(wd) (L2)], rule, [add_decayed_weights(wd, decoupled=True)], lr

with a rule that declares the kernel (`functional_optim.rules.TorchKernel`: Adam's,
SGD momentum's ``trace``, Adagrad's) and concrete hyperparameters, ``compile_step`` calls the
kernel on the parameters, gradients and state buffers it is given instead of compiling the
pure update: nothing to compile, and ``torch.optim.<Name>(fused=True)``'s numbers, bit for bit
(within an ulp or two of ``torch.optim``'s for-loop and of the pure update, as Inductor's compiled
code is).

Anything else (``maximize``, schedules, other pre-transforms, complex or sparse tensors, a
gradient or state entry of another dtype, device or shape than its parameter) is not a kernel
step: `bind` returns ``None`` and ``compile_step`` compiles the transform as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import fused, tree
from functional_optim.core import GradientTransformation, L2Regularization
from functional_optim.rules import Rule, TorchKernel
from functional_optim.transforms import _steps

__all__ = ["KernelStep", "Recipe", "bind", "recipe"]

# per kernel: the kind of each state field the rule reads ("step": a 0-dim float counter,
# "flag": trace's 0-dim ``started``, "like": a tensor with the parameter's dtype and shape)
_FIELDS = {
    "adam": ("step", "like", "like"),
    "adam_amsgrad": ("step", "like", "like", "like"),
    "sgd": ("like", "flag"),
    "adagrad": ("step", "like"),
}
# float16/bfloat16: torch's kernels compute in float32 and round once, the pure update rounds
# every operation: different numbers, so those are compiled instead
_FLOATS = (torch.float32, torch.float64)


class Recipe(NamedTuple):
    """A transform seen as one kernel call: what `recipe` read from its roles."""

    kernel: TorchKernel | None  # None: plain SGD (no momentum rule)
    rule: Rule | None
    rule_path: fused.Path
    learning_rate: Any
    l2: Any  # the L2 weight decay (before the rule), or None
    decoupled: Any  # the decoupled weight decay (after it), or None


def recipe(transform: GradientTransformation) -> Recipe | None:
    """The kernel call that computes ``transform``'s step, or ``None`` (read from roles only)."""
    plan = fused.plan(transform)
    if plan is None:
        return None
    l2 = None
    pre = list(plan.pre)
    last_role = pre[-1][0].role if pre else None
    if isinstance(last_role, L2Regularization):
        l2 = last_role.weight_decay
        pre.pop()
    if pre:
        return None
    if plan.rule is None:  # plain gradient descent: torch's fused SGD without momentum
        if plan.weight_decay is not None:
            return None
        return Recipe(None, None, (), plan.learning_rate, l2, None)
    if plan.rule.kernel is None:
        return None
    kernel = plan.rule.kernel()
    if kernel is None or (plan.weight_decay is not None and (kernel.name != "adam" or l2 is not None)):
        return None
    return Recipe(kernel, plan.rule, plan.rule_path, plan.learning_rate, l2, plan.weight_decay)


class _Group(NamedTuple):
    params: list[Tensor]
    fields: list[list[Tensor]]
    grad_index: list[int]


def _dense(t: Tensor) -> bool:
    return t.layout is torch.strided and t.is_contiguous()


def _fits(p: Any, g: Any, fields: Sequence[Any], kinds: Sequence[str]) -> bool:
    """Whether the kernel computes this parameter's step: the CPU kernels walk the memory of
    every tensor of a parameter in one flat loop, so all are contiguous (same element order)."""
    if not isinstance(p, Tensor) or not isinstance(g, Tensor):
        return False
    if not _dense(p) or p.dtype not in _FLOATS or p.dtype != g.dtype:
        return False
    if not _dense(g) or g.device != p.device or g.shape != p.shape:
        return False
    for f, kind in zip(fields, kinds, strict=True):
        if not isinstance(f, Tensor) or f.layout is not torch.strided:
            return False
        if kind == "like":
            if not _dense(f) or f.dtype != p.dtype or f.device != p.device or f.shape != p.shape:
                return False
        elif f.dim() != 0 or not f.is_floating_point() or f.device != p.device:
            return False
    return True


class KernelStep:
    """A `Recipe` bound to the tensors of one layout: ``run(grad_leaves)`` is the step."""

    def __init__(self, recipe_: Recipe, kinds: tuple[str, ...], groups: list[_Group]) -> None:
        self.recipe = recipe_
        self.kinds = kinds
        self.groups = groups

    def hyperparameters(self) -> tuple[float, float, float] | None:
        """The learning rate and the two decays as floats now (``None``: one is not concrete)."""
        r = self.recipe
        lr = fused.concrete(r.learning_rate)
        l2 = 0.0 if r.l2 is None else fused.concrete(r.l2)
        wd = 0.0 if r.decoupled is None else fused.concrete(r.decoupled)
        if lr is None or l2 is None or wd is None:
            return None
        return lr, l2, wd

    def run(self, grad_leaves: list[Any], lr: float, l2: float, wd: float) -> None:
        r = self.recipe
        name = "sgd" if r.kernel is None else r.kernel.name
        options = {} if r.kernel is None else r.kernel.options
        common: dict[str, Any] = {"maximize": False, "grad_scale": None, "found_inf": None}
        for group in self.groups:
            grads = [grad_leaves[i] for i in group.grad_index]
            if name == "adam":
                steps, m, v = group.fields[0], group.fields[1], group.fields[2]
                _steps.increment(steps, in_place=True)  # a 0-dim ``1``: no scalar wrapped per counter
                decoupled = r.decoupled is not None
                kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
                kernel(
                    group.params,
                    grads,
                    m,
                    v,
                    group.fields[3] if options["amsgrad"] else [],
                    steps,
                    lr=lr,
                    beta1=options["beta1"],
                    beta2=options["beta2"],
                    weight_decay=wd if decoupled else l2,
                    eps=options["eps"],
                    amsgrad=options["amsgrad"],
                    **common,
                )
            elif name == "adagrad":
                steps, sums = group.fields
                _steps.increment(steps, in_place=True)  # a 0-dim ``1``: no scalar wrapped per counter
                torch._fused_adagrad_(
                    group.params,
                    grads,
                    sums,
                    steps,
                    lr=lr,
                    lr_decay=options["lr_decay"],
                    weight_decay=l2,
                    eps=options["eps"],
                    **common,
                )
            else:
                self._sgd(group, grads, options, lr, l2, common)

    def _sgd(
        self, group: _Group, grads: list[Tensor], options: dict[str, Any], lr: float, l2: float, common: dict
    ) -> None:
        momentum = options.get("momentum", 0.0)
        sgd = {
            "weight_decay": l2,
            "momentum": momentum,
            "lr": lr,
            "dampening": options.get("dampening", 0.0),
            "nesterov": options.get("nesterov", False),
        }
        if momentum == 0:  # no buffer (the rule passes the gradients through, state untouched)
            torch._fused_sgd_(group.params, grads, [], is_first_step=False, **sgd, **common)
            return
        bufs, started = group.fields
        values = _steps.read(started)
        first = [i for i, c in enumerate(values) if c == 0]
        if not first:
            torch._fused_sgd_(group.params, grads, bufs, is_first_step=False, **sgd, **common)
            return
        # a parameter's first step: its buffer becomes the gradient (torch's is_first_step)
        later = [i for i, c in enumerate(values) if c != 0]
        for idx, is_first in ((first, True), (later, False)):
            if idx:
                torch._fused_sgd_(
                    [group.params[i] for i in idx],
                    [grads[i] for i in idx],
                    [bufs[i] for i in idx],
                    is_first_step=is_first,
                    **sgd,
                    **common,
                )
        torch._foreach_add_([started[i] for i in first], 1.0)


def bind(recipe_: Recipe, params: Any, grad_leaves: list[Any], state: Any) -> KernelStep | None:
    """The kernel step over these tensors, grouped by device and dtype, or ``None`` when one of
    them does not fit the kernel (then ``compile_step`` compiles the transform)."""
    param_leaves, spec = tree.flatten(params)
    if len(grad_leaves) != len(param_leaves):
        return None
    if recipe_.kernel is None:
        kinds: tuple[str, ...] = ()
        field_leaves: list[list[Any]] = []
    else:
        name = recipe_.kernel.name
        kinds = _FIELDS["adam_amsgrad" if name == "adam" and recipe_.kernel.options["amsgrad"] else name]
        assert recipe_.rule is not None
        try:
            fields = recipe_.rule.fields(fused.get_path(state, recipe_.rule_path))
        except (AttributeError, IndexError, TypeError):
            return None
        if len(fields) != len(kinds) or any(tree.structure(f) != spec for f in fields):
            return None
        field_leaves = [tree.leaves(f) for f in fields]
    groups: dict[tuple, _Group] = {}
    for i, (p, g) in enumerate(zip(param_leaves, grad_leaves, strict=True)):
        if g is None:
            continue  # no update, state untouched (as the pure update)
        fs = [fl[i] for fl in field_leaves]
        if not _fits(p, g, fs, kinds):
            return None
        group = groups.setdefault((p.device, p.dtype), _Group([], [[] for _ in kinds], []))
        group.params.append(p)  # written under no_grad, as torch.optim does
        for column, f in zip(group.fields, fs, strict=True):
            column.append(f)
        group.grad_index.append(i)
    return KernelStep(recipe_, kinds, list(groups.values()))
