"""Step time of the Schedule-Free and parameter-free drop-ins against their reference packages.

    python benchmarks/wrappers_step_time.py [--repeats 11] [--steps 5] [--threads 1] [--json out.json]

Parameters: 100 tensors of 10,000 elements (1M parameters, float32, CPU). Each optimizer and its
reference get their own copy of the parameters; before every step both get a fresh copy of the
same gradients (the references write into ``p.grad``: Schedule-Free divides it in place), and
only ``opt.step()`` is timed. Repeats are interleaved (ours, reference, ours, ...) and the
figure is the median time per step; the ratio ``ours / reference`` is of the two medians of
this run (target <= 1.0). Nothing is written unless ``--json`` is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import functional_optim as fo


def _pairs() -> dict[str, tuple[Callable[[list], Any], Callable[[list], Any] | None, str]]:
    def ref(module: str, build: Callable[[Any, list], Any]) -> Callable[[list], Any] | None:
        try:
            mod = __import__(module)
        except ImportError:
            return None
        return lambda ps: build(mod, ps)

    def sf_train(opt: Any) -> Any:
        opt.train()
        return opt

    return {
        "AdamWScheduleFree": (
            lambda ps: fo.adapters.AdamWScheduleFree(ps, lr=1e-3, weight_decay=0.01),
            ref("schedulefree", lambda m, ps: sf_train(m.AdamWScheduleFree(ps, lr=1e-3, weight_decay=0.01))),
            "schedulefree",
        ),
        "SGDScheduleFree": (
            lambda ps: fo.adapters.SGDScheduleFree(ps, lr=0.1, weight_decay=0.01),
            ref("schedulefree", lambda m, ps: sf_train(m.SGDScheduleFree(ps, lr=0.1, weight_decay=0.01))),
            "schedulefree",
        ),
        "Prodigy": (
            lambda ps: fo.adapters.Prodigy(ps, weight_decay=0.01),
            ref("prodigyopt", lambda m, ps: m.Prodigy(ps, weight_decay=0.01)),
            "prodigyopt",
        ),
        "DAdaptAdam": (
            lambda ps: fo.adapters.DAdaptAdam(ps, weight_decay=0.01, decouple=True),
            ref("dadaptation", lambda m, ps: m.DAdaptAdam(ps, weight_decay=0.01, decouple=True)),
            "dadaptation",
        ),
        "DoG": (
            lambda ps: fo.adapters.DoG(ps, weight_decay=0.01),
            ref("dog", lambda m, ps: m.DoG(ps, weight_decay=0.01)),
            "dog-optimizer",
        ),
    }


def _setup(make: Callable[[list], Any], base: list[torch.Tensor]) -> tuple[Any, list[torch.Tensor]]:
    params = [b.clone().requires_grad_(True) for b in base]
    return make(params), params


def _timed_steps(opt: Any, params: list[torch.Tensor], grads: list[torch.Tensor], steps: int) -> float:
    total = 0.0
    for _ in range(steps):
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        t0 = time.perf_counter()
        opt.step()
        total += time.perf_counter() - t0
    return total / steps


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--only", default="", help="comma-separated drop-in names")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(10_000, generator=gen) for _ in range(100)]
    grads = [torch.randn(10_000, generator=gen) * 1e-2 for _ in range(100)]
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    print(
        f"1M parameters (100 x 10,000, float32, CPU); torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, {platform.processor() or platform.machine()}, "
        f"avx512_bf16: {_yes('avx512_bf16' in flags)}, AVX2: {_yes('avx2' in flags)}"
    )
    print(f"median of {args.repeats} interleaved repeats of {args.steps} steps (ms/step)")
    print(f"{'drop-in':20} {'ours':>9} {'reference':>10} {'ratio':>7}  reference")
    only = [s for s in args.only.split(",") if s]
    rows = []
    for name, (ours_make, ref_make, ref_name) in _pairs().items():
        if only and name not in only:
            continue
        ours = _setup(ours_make, base)
        ref = _setup(ref_make, base) if ref_make is not None else None
        _timed_steps(*ours, grads, 2)  # warm-up (lazy state, caches)
        if ref is not None:
            _timed_steps(*ref, grads, 2)
        t_ours, t_ref = [], []
        for _ in range(args.repeats):
            t_ours.append(_timed_steps(*ours, grads, args.steps))
            if ref is not None:
                t_ref.append(_timed_steps(*ref, grads, args.steps))
        m_ours = 1e3 * statistics.median(t_ours)
        m_ref = 1e3 * statistics.median(t_ref) if t_ref else float("nan")
        ratio = m_ours / m_ref if t_ref else float("nan")
        print(f"{name:20} {m_ours:9.2f} {m_ref:10.2f} {ratio:7.2f}  {ref_name if ref else 'not installed'}")
        rows.append(
            {"dropin": name, "ours_ms": m_ours, "reference_ms": m_ref, "ratio": ratio, "reference": ref_name}
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
