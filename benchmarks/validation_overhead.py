"""The cost of the per-layout validation on the pure API's hot path.

Times ``opt.update(grads, state, params)`` of ``fo.adam`` and ``fo.sgd(momentum=0.9)`` with the
validation on (cached verdict: the steady state) and off (``_layout.check_leaves`` replaced by a
no-op), interleaved, and prints the medians and their ratio.

Run: ``python benchmarks/validation_overhead.py [--threads 1] [--repeats 15]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import functional_optim as fo
from functional_optim import _layout


def _tree(n: int, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {f"p{i}": torch.randn(shape, generator=gen) for i in range(n)}


def _time(opt, params, grads, state, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        opt.update(grads, state, params)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    real = _layout.check_leaves
    print(f"threads={args.threads}, repeats={args.repeats} (interleaved), medians per update")
    print("| optimizer | tree | validated (ms) | unvalidated (ms) | ratio |")
    print("|---|---|---|---|---|")
    for name, make in [("adam", lambda: fo.adam(1e-3)), ("sgd momentum", lambda: fo.sgd(0.1, momentum=0.9))]:
        for label, n, shape in [("1000 x (64,)", 1000, (64,)), ("10 x (256, 256)", 10, (256, 256))]:
            params = _tree(n, shape)
            grads = fo.tree.map(torch.ones_like, params)
            opt = make()
            state = opt.init(params)
            steps = 20
            on, off = [], []
            _time(opt, params, grads, state, 3)  # warm up (and cache the verdict)
            for _ in range(args.repeats):
                on.append(_time(opt, params, grads, state, steps))
                _layout.check_leaves = lambda *a, **k: None
                try:
                    off.append(_time(opt, params, grads, state, steps))
                finally:
                    _layout.check_leaves = real
            a, b = statistics.median(on) * 1e3, statistics.median(off) * 1e3
            print(f"| {name} | {label} | {a:.3f} | {b:.3f} | {a / b:.3f} |")


if __name__ == "__main__":
    main()
