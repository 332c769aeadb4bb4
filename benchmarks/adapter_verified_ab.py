"""Interleaved A/B of the adapter's step with and without `ops.verified_dense`, beside torch.

Usage::

    python benchmarks/adapter_verified_ab.py sgd,adamax,nadam 32 262144 [repeats] [chunk_bytes]

Four optimizers on their own copies of ``n`` tensors of ``numel`` floats: torch for-loop, torch
foreach, the adapter with the verified block switched off (``fo-old``) and as shipped (``fo``).
Prints the median process time per step (ms) and the ratios to torch's best non-fused path.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch

import functional_optim as fo
from functional_optim import fused, ops

ALGOS = {
    "sgd": ("SGD", {"lr": 1e-2, "momentum": 0.9}),
    "adam": ("Adam", {"lr": 1e-3}),
    "adamw": ("AdamW", {"lr": 1e-3}),
    "nadam": ("NAdam", {"lr": 1e-3}),
    "radam": ("RAdam", {"lr": 1e-3}),
    "asgd": ("ASGD", {"lr": 1e-2}),
    "adamax": ("Adamax", {"lr": 1e-3}),
    "adadelta": ("Adadelta", {}),
    "adagrad": ("Adagrad", {"lr": 1e-2}),
    "rmsprop": ("RMSprop", {"lr": 1e-3}),
    "rprop": ("Rprop", {"lr": 1e-3}),
}


@contextlib.contextmanager
def _unverified(*lists: Any) -> Iterator[bool]:
    del lists
    yield False


def _make(name: str, options: dict, module: Any, n: int, numel: int, **extra: Any) -> Any:
    torch.manual_seed(0)
    params = [torch.randn(numel, requires_grad=True) for _ in range(n)]
    for p in params:
        p.grad = torch.randn(numel)
    return getattr(module, name)(params, **options, **extra)


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    n, numel = int(argv[2]), int(argv[3])
    repeats = int(argv[4]) if len(argv) > 4 else 15
    if len(argv) > 5:
        fused._CHUNK_BYTES = int(argv[5])
    verified = ops.verified_dense
    for algo in argv[1].split(","):
        name, options = ALGOS[algo]
        opts = {
            "loop": _make(name, options, torch.optim, n, numel, foreach=False),
            "foreach": _make(name, options, torch.optim, n, numel, foreach=True),
            "fo-old": _make(name, options, fo.adapters, n, numel),
            "fo": _make(name, options, fo.adapters, n, numel),
        }
        for opt in opts.values():
            for _ in range(3):
                opt.step()
        times: dict[str, list[float]] = {k: [] for k in opts}
        steps = max(1, int(2e6 // (n * numel)))
        for _ in range(repeats):
            for key, opt in opts.items():
                ops.verified_dense = _unverified if key == "fo-old" else verified  # type: ignore[assignment]
                start = time.process_time()
                for _ in range(steps):
                    opt.step()
                times[key].append((time.process_time() - start) / steps * 1e3)
        ops.verified_dense = verified
        med = {k: statistics.median(v) for k, v in times.items()}
        best = min(med["loop"], med["foreach"])
        cells = " ".join(f"{k}={v:.3f}" for k, v in med.items())
        print(f"{algo:9s} {cells}  old/best={med['fo-old'] / best:.2f} new/best={med['fo'] / best:.2f}")


if __name__ == "__main__":
    main(sys.argv)
