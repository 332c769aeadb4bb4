"""Step-by-step parity harness against ``torch.optim`` (the for-loop implementation).

``check_parity`` runs a ``torch.optim`` optimizer (built with ``foreach=False`` where it has the
flag) and a functional transform side by side on the same multi-tensor parameter tree for
``steps`` steps, feeding each the gradient of the same loss at its own parameters. One
parameter gets a ``None`` gradient on some steps (including the first ones, so lazy state
creation in torch is exercised). After every step all parameters are compared with
``torch.testing.assert_close`` (torch's default tolerances unless given), and at the end the
per-parameter state entries that both sides name alike are compared too.

Set ``FO_PARITY_LOG=<file>`` to append one JSON line per run (algorithm, options, dtype,
max abs difference) -- ``benchmarks/parity_table.py`` turns it into the parity table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import torch

import functional_optim as fo
from functional_optim import tree
from functional_optim._state_fields import per_parameter_fields

SHAPES: dict[str, tuple[int, ...]] = {
    "a_matrix": (5, 4),
    "b_vector": (7,),
    "c_scalar": (),
    "d_sometimes_none": (3, 2),
}
NONE_GRAD_NAME = "d_sometimes_none"


def none_grad_at(step: int) -> bool:
    """The ``d_sometimes_none`` parameter has no gradient on steps 0, 1 and every third step."""
    return step < 2 or step % 3 == 0


def make_params(dtype: torch.dtype = torch.float32, shapes: dict | None = None, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in (shapes or SHAPES).items():
        if dtype.is_complex:
            real = torch.randn((*shape, 2), generator=gen, dtype=torch.float64)
            out[name] = torch.view_as_complex(real).to(dtype)
        else:
            out[name] = torch.randn(tuple(shape), generator=gen, dtype=torch.float64).to(dtype)
    return out


def default_grad(name: str, p: torch.Tensor, step: int) -> torch.Tensor:
    """Gradient of a smooth loss plus step-dependent noise: ``0.5·p + sin(p) + noise_step``
    (complex parameters: the same on their real view)."""
    gen = torch.Generator().manual_seed(1000 * step + sum(map(ord, name)))
    with torch.no_grad():
        x = torch.view_as_real(p) if p.is_complex() else p
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.dtype)
        g = 0.5 * x + torch.sin(x) + noise
        return torch.view_as_complex(g.contiguous()) if p.is_complex() else g


def check_parity(
    make_torch: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    transform: fo.GradientTransformation,
    *,
    name: str,
    options: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
    steps: int = 20,
    shapes: dict | None = None,
    grad_fn: Callable[[str, torch.Tensor, int], torch.Tensor] = default_grad,
    none_grads: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    compare_state: bool = True,
) -> float:
    """Run both optimizers side by side; assert they agree; return the max abs difference."""
    params = make_params(dtype, shapes)
    names = list(params)
    torch_params = [torch.nn.Parameter(params[n].clone()) for n in names]
    opt = make_torch(torch_params)
    state = transform.init(params)
    max_diff = 0.0
    for step in range(steps):
        grads = {}
        for i, n in enumerate(names):
            skip = none_grads and n == NONE_GRAD_NAME and none_grad_at(step)
            torch_params[i].grad = None if skip else grad_fn(n, torch_params[i].detach(), step)
            grads[n] = None if skip else grad_fn(n, params[n], step)
        opt.step()
        updates, state = transform.update(grads, state, params)
        params = fo.apply_updates(params, updates)
        for i, n in enumerate(names):
            expected = torch_params[i].detach()
            torch.testing.assert_close(
                params[n],
                expected,
                rtol=rtol,
                atol=atol,
                msg=lambda m, n=n, s=step: f"{name} param {n} step {s}: {m}",
            )
            max_diff = max(max_diff, (params[n] - expected).abs().max().item() if expected.numel() else 0.0)
    if compare_state:
        _compare_state(opt, torch_params, state, params, names, rtol, atol, name)
    _log(name, options or {}, dtype, steps, max_diff)
    return max_diff


def _compare_state(opt, torch_params, state, params, names, rtol, atol, name) -> None:
    fields = per_parameter_fields(state, tree.structure(params))
    leaves_order = tree.leaves({n: i for i, n in enumerate(names)})
    for i, p in enumerate(torch_params):
        torch_state = opt.state.get(p, {})
        for key, value in torch_state.items():
            if key not in fields or not isinstance(value, torch.Tensor):
                continue
            ours = fields[key][leaves_order.index(i)]
            if ours is None:
                continue
            torch.testing.assert_close(
                ours.to(value.dtype) if ours.dtype != value.dtype else ours,
                value,
                rtol=rtol if rtol is not None else None,
                atol=atol if atol is not None else None,
                check_device=False,
                msg=lambda m, k=key, n=names[i]: f"{name} state {k} of {n}: {m}",
            )


def _log(name: str, options: dict, dtype: torch.dtype, steps: int, max_diff: float) -> None:
    path = os.environ.get("FO_PARITY_LOG")
    if not path:
        return
    record = {
        "algorithm": name,
        "options": {k: repr(v) for k, v in options.items()},
        "dtype": str(dtype).replace("torch.", ""),
        "steps": steps,
        "max_abs_diff": max_diff,
    }
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def option_grid(**choices: list) -> list[dict]:
    """The full product of the given option choices, as a list of dicts."""
    import itertools

    keys = list(choices)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(choices[k] for k in keys))]


def option_id(options: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items())
