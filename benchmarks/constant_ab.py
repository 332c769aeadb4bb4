"""A/B of a chunking constant of `functional_optim.fused`, in one process.

The adapter's step with the library's values against the same step with some module constants
of ``functional_optim.fused`` set to other values (``--set NAME=INT``, e.g. the chunk budgets or
the size from which tensors are stepped alone). Both settings step the same optimizer, taking
turns in alternating order; before each turn torch's for-loop optimizer steps an equal set of
tensors, so that every turn starts with the caches holding another step's data, as in
``benchmarks/run.py``. Each turn times three steps. Printed: the median milliseconds per step of
both settings and their ratio. One process resolves about 1%; two processes
(``benchmarks/ab_checkouts.py``) differ by up to 6% on the same code.

Usage::

    python benchmarks/constant_ab.py SGD --shape 50000 --count 80 --set _REPLAYED_IN_PLACE_CHUNK_BYTES=4194304
    python benchmarks/constant_ab.py Adagrad --shape 50000 --count 80 --set _ALONE_BYTES=1048576
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch

import functional_optim as fo
from functional_optim import fused

HYPER = {
    "Adam": {"lr": 1e-3},
    "AdamW": {"lr": 1e-3, "weight_decay": 1e-2},
    "SGD": {"lr": 1e-2, "momentum": 0.9},
    "Adagrad": {"lr": 1e-2},
    "RMSprop": {"lr": 1e-2},
    "Adadelta": {"lr": 1.0},
    "Adamax": {"lr": 2e-3},
    "NAdam": {"lr": 2e-3},
    "RAdam": {"lr": 1e-3},
    "ASGD": {"lr": 1e-2},
    "Rprop": {"lr": 1e-2},
}


def _setting(pairs: list[str]) -> dict[str, int]:
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not hasattr(fused, name):
            raise SystemExit(f"--set: functional_optim.fused has no {name!r}")
        out[name] = int(value)
    return out


def _params(shape: tuple[int, ...], count: int, gen: torch.Generator) -> list[torch.nn.Parameter]:
    params = [torch.nn.Parameter(torch.randn(shape, generator=gen) * 0.02) for _ in range(count)]
    for p in params:
        p.grad = torch.randn(shape, generator=gen) * 0.02
    return params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("algo", choices=sorted(HYPER))
    ap.add_argument("--shape", default="50000")
    ap.add_argument("--count", type=int, default=80)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=INT", help="a constant of fused")
    ap.add_argument("--turns", type=int, default=30)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    shape = tuple(int(x) for x in args.shape.split("x"))
    other = _setting(args.set)
    library = {name: getattr(fused, name) for name in other}
    gen = torch.Generator().manual_seed(0)
    adapter = getattr(fo.adapters, args.algo)(_params(shape, args.count, gen), **HYPER[args.algo])
    flush = getattr(torch.optim, args.algo)(
        _params(shape, args.count, gen), foreach=False, **HYPER[args.algo]
    )
    settings = {"library": library, "set": other}
    times: dict[str, list[float]] = {key: [] for key in settings}
    for _ in range(3):
        adapter.step()
    try:
        for turn in range(args.turns):
            for key in ("library", "set") if turn % 2 else ("set", "library"):
                for name, value in settings[key].items():
                    setattr(fused, name, value)
                flush.step()
                gc.collect()
                t0 = time.perf_counter()
                adapter.step()
                adapter.step()
                adapter.step()
                times[key].append((time.perf_counter() - t0) / 3)
    finally:
        for name, value in library.items():
            setattr(fused, name, value)
    lib, alt = (statistics.median(times[k]) for k in ("library", "set"))
    print(f"{args.algo} on {args.count} x {args.shape}, {args.turns} turns, 1 thread")
    changed = " ".join(args.set)
    print(f"  library {lib * 1e3:.3f} ms, with {changed} {alt * 1e3:.3f} ms: set / library {alt / lib:.3f}")


if __name__ == "__main__":
    main()
