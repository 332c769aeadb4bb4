"""``inject_hyperparams``: hyperparameters that live in the state and may follow schedules."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, ParamSpec

import torch
from torch import Tensor

from functional_optim.core import GradientTransformation, Params, Updates

__all__ = ["InjectHyperparamsState", "inject_hyperparams", "schedulable"]

P = ParamSpec("P")


class InjectHyperparamsState(NamedTuple):
    """State of [`inject_hyperparams`][].

    Attributes:
      count: number of updates done so far (0-dim int64 tensor); schedules are evaluated at it.
      hyperparams: the current value of every injected hyperparameter (0-dim tensors, or tuples
        of them for tuple arguments such as ``betas``). Read or replace them between steps.
      inner_state: the state of the wrapped transform.
    """

    count: Tensor  # type: ignore[assignment]  # a field named like tuple.count
    hyperparams: dict[str, Any]
    inner_state: Any


def _is_schedule(x: Any) -> bool:
    return callable(x) and not isinstance(x, Tensor | GradientTransformation | type)


def _is_numeric(x: Any) -> bool:
    return isinstance(x, float | Tensor) and not isinstance(x, bool)


def _is_hyper_value(x: Any) -> bool:
    if _is_numeric(x) or _is_schedule(x):
        return True
    if _is_sequence(x) and x:
        return (
            all(_is_numeric(v) or _is_schedule(v) or isinstance(v, int) for v in x)
            and any(_is_numeric(v) or _is_schedule(v) for v in x)
            and not any(isinstance(v, bool) for v in x)
        )
    return False


def _is_sequence(x: Any) -> bool:
    """A tuple of hyperparameters (``betas``): any sequence but a string (a list, an OmegaConf
    ``ListConfig``...)."""
    return isinstance(x, Sequence) and not isinstance(x, str | bytes)


def _has_schedule(x: Any) -> bool:
    if _is_sequence(x):
        return any(_is_schedule(v) for v in x)
    return _is_schedule(x)


def _as_tensor(x: Any, dtype: torch.dtype | None) -> Tensor:
    if isinstance(x, Tensor):
        return x if dtype is None or x.dtype == dtype else x.to(dtype)
    return torch.tensor(x, dtype=dtype or torch.float64)


def _evaluate(spec: Any, current: Any, count: Tensor, dtype: torch.dtype | None) -> Any:
    """The value of one hyperparameter at ``count``: a schedule is evaluated, a value kept."""
    if _is_sequence(spec):
        cur = current if _is_sequence(current) else [None] * len(spec)
        return tuple(_evaluate(s, c, count, dtype) for s, c in zip(spec, cur, strict=True))
    if _is_schedule(spec):
        return _as_tensor(spec(count), dtype)
    if current is None:
        return spec if isinstance(spec, int) and not isinstance(spec, float) else _as_tensor(spec, dtype)
    return current


def inject_hyperparams(
    factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: torch.dtype | None = None,
) -> Callable[..., GradientTransformation]:
    """Wrap a transform factory so that its numeric hyperparameters live in the state.

    ``inject_hyperparams(factory)(**kwargs)`` builds a transform whose state is an
    [`InjectHyperparamsState`][]. Every hyperparameter that is a float, a tensor, a schedule
    (``count -> value``) or a tuple of those (``betas``) is stored in ``state.hyperparams`` as a
    0-dim tensor; at each update schedules are evaluated at ``state.count``, the inner transform
    is rebuilt from the current values and applied. Values written into ``state.hyperparams``
    between steps are used by the next step.

    Python floats are stored as float64 tensors: a double holds them exactly, so wrapping changes
    no numbers. The dtype never follows the parameters (bf16 parameters keep full-precision
    hyperparameters); ``hyperparam_dtype`` overrides it.

    Args:
      factory: a function returning a ``GradientTransformation`` (``fo.adam``, ``fo.scale_by_adam``...).
      static_args: argument names never injected (flags, callables that are not schedules).
      hyperparam_dtype: dtype of the stored hyperparameters (default: float64 for Python floats,
        the given dtype for tensors).

    Example:
        >>> params = {"w": torch.ones(2)}
        >>> opt = fo.inject_hyperparams(fo.adamw)(lr=fo.schedules.cosine_annealing_lr(1e-3, T_max=1000))
        >>> state = opt.init(params)
        >>> state.hyperparams["weight_decay"]  # a 0-dim tensor, read or replace between steps
        tensor(0.0100, dtype=torch.float64)

    References:
      optax.inject_hyperparams (DeepMind, 2021).
    """
    raw = inspect.unwrap(factory)
    sig = inspect.signature(raw)
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    declared = getattr(factory, "__hyperparams__", None)

    @functools.wraps(raw)
    def wrapped(*args: Any, **kwargs: Any) -> GradientTransformation:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        var_kw = [n for n, p in sig.parameters.items() if p.kind is inspect.Parameter.VAR_KEYWORD]
        for n in var_kw:
            arguments.update(arguments.pop(n, {}))

        def is_hyper(name: str, value: Any) -> bool:
            if name in static:
                return False
            if declared is not None:
                return name in declared and value is not None
            return _is_hyper_value(value)

        specs = {k: v for k, v in arguments.items() if is_hyper(k, v)}
        fixed = {k: v for k, v in arguments.items() if k not in specs}

        def current(count: Tensor, previous: dict[str, Any] | None) -> dict[str, Any]:
            prev = previous or {}
            return {k: _evaluate(s, prev.get(k), count, hyperparam_dtype) for k, s in specs.items()}

        def build(hparams: dict[str, Any]) -> GradientTransformation:
            return raw(**fixed, **hparams)

        build(current(torch.zeros((), dtype=torch.int64), None))  # validate at construction

        def init_fn(params: Params) -> InjectHyperparamsState:
            count = torch.zeros((), dtype=torch.int64)
            hparams = current(count, None)
            return InjectHyperparamsState(count, hparams, build(hparams).init(params))

        def update_fn(updates: Updates, state: InjectHyperparamsState, params: Params | None = None, **extra):
            hparams = {
                k: (
                    _evaluate(s, None, state.count, hyperparam_dtype)
                    if _has_schedule(s)
                    else state.hyperparams[k]
                )
                for k, s in specs.items()
            }
            updates, inner = build(hparams).update(updates, state.inner_state, params, **extra)
            return updates, InjectHyperparamsState(state.count + 1, hparams, inner)

        return GradientTransformation(init_fn, update_fn)

    setattr(wrapped, "__hyperparams__", declared)  # noqa: B010
    return wrapped


#: Names from optax (and other libraries) that users often pass, with the name used here.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "learning_rate": ("lr",),
    "lr": ("learning_rate",),
    "b1": ("betas",),
    "b2": ("betas",),
    "beta1": ("betas",),
    "beta2": ("betas",),
    "eps_root": ("eps",),
    "epsilon": ("eps",),
    "decay": ("alpha", "rho", "weight_decay"),
    "momentum_dtype": ("dtype",),
}


def _suggest(unknown: str, known: Iterable[str]) -> str | None:
    """The parameter of ``known`` that a caller passing ``unknown`` most likely meant."""
    known = list(known)
    for candidate in _SYNONYMS.get(unknown, ()):
        if candidate in known:
            return candidate
    close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _bind_or_explain(sig: inspect.Signature, qualname: str, args: Any, kwargs: Any) -> inspect.BoundArguments:
    """``sig.bind(*args, **kwargs)``, with a message naming the function and the likely name."""
    try:
        return sig.bind(*args, **kwargs)
    except TypeError as err:
        params = sig.parameters
        unknown = [k for k in kwargs if k not in params]
        if not unknown or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            raise TypeError(f"{qualname}(): {err}") from None
        hints = []
        for k in unknown:
            guess = _suggest(k, params)
            hints.append(f"{k!r}" + (f" (did you mean {guess!r}?)" if guess else ""))
        raise TypeError(
            f"{qualname}() got unexpected keyword argument(s) {', '.join(hints)}; "
            f"its parameters are {', '.join(params)}"
        ) from None


def schedulable(
    *names: str,
) -> Callable[[Callable[P, GradientTransformation]], Callable[P, GradientTransformation]]:
    """Declare a factory's hyperparameters; passing a schedule for any of them wraps the result
    in [`inject_hyperparams`][], so every hyperparameter of every transform accepts a schedule.

    The decorated factory keeps its signature for type checkers and editors (``ParamSpec``).
    An unknown keyword (an optax name such as ``learning_rate=`` given to ``fo.adamw``) raises a
    ``TypeError`` that names the factory and the parameter it most likely meant.

    Example:
        >>> @fo.schedulable("learning_rate")
        ... def my_scale(learning_rate: float = 0.1) -> fo.GradientTransformation:
        ...     return fo.scale(-learning_rate)
        >>> opt = my_scale(lambda count: 0.1 * 0.5**count)  # a scheduled learning rate
        >>> state = opt.init({"w": torch.ones(2)})
        >>> type(state).__name__
        'InjectHyperparamsState'
    """

    def decorate(factory: Callable[P, GradientTransformation]) -> Callable[P, GradientTransformation]:
        sig = inspect.signature(factory)
        qualname = getattr(factory, "__qualname__", repr(factory))
        setattr(factory, "__hyperparams__", names)  # noqa: B010

        @functools.wraps(factory)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> GradientTransformation:
            bound = _bind_or_explain(sig, qualname, args, kwargs)
            if any(_has_schedule(bound.arguments.get(n)) for n in names):
                return inject_hyperparams(factory)(*args, **kwargs)
            return factory(*args, **kwargs)

        setattr(wrapper, "__hyperparams__", names)  # noqa: B010
        return wrapper

    return decorate
