"""A/B two checkouts of the library: the eager adapter's step against torch's, side by side.

Two worker processes, one per checkout (``sys.path`` puts the checkout first), each holding the
adapter, torch's for-loop and torch's foreach optimizer on the same shapes. The workers take turns,
in alternating order, and each turn times three steps of each optimizer. The ratio reported is
the adapter against torch's best non-fused path: the median over turns, with the 25th to 75th
percentile of the ratios taken within one turn. Both checkouts see the same machine load at the
same moments, so their ratios compare even on a shared machine.

Usage (the checkout before a change in a worktree, e.g. ``git worktree add /tmp/before HEAD~1``)::

    python benchmarks/ab_checkouts.py SGD --shape 512x512 --count 32 --repeats 21 . /tmp/before

Run it in both orders (``. /tmp/before`` then ``/tmp/before .``): the second worker of a turn
runs after the first one's kernels have streamed the caches out.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import gc, sys, time
import torch
sys.path.insert(0, sys.argv[1])
import functional_optim as fo
assert fo.__file__.startswith(sys.argv[1]), fo.__file__
torch.set_num_threads(1)
algo, shape, count = sys.argv[2], tuple(int(x) for x in sys.argv[3].split("x")), int(sys.argv[4])
hyper = {
    "Adam": {"lr": 1e-3}, "AdamW": {"lr": 1e-3, "weight_decay": 1e-2}, "SGD": {"lr": 1e-2, "momentum": 0.9},
    "Adagrad": {"lr": 1e-2}, "RMSprop": {"lr": 1e-2}, "Adadelta": {"lr": 1.0}, "Adamax": {"lr": 2e-3},
    "NAdam": {"lr": 2e-3}, "RAdam": {"lr": 1e-3}, "ASGD": {"lr": 1e-2}, "Rprop": {"lr": 1e-2},
}[algo]
def params():
    gen = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(shape, generator=gen) * 0.02) for _ in range(count)]
    for p in ps:
        p.grad = torch.randn(shape, generator=gen) * 0.02
    return ps
steps = {
    "adapter": getattr(fo.adapters, algo)(params(), **hyper).step,
    "forloop": getattr(torch.optim, algo)(params(), foreach=False, **hyper).step,
    "foreach": getattr(torch.optim, algo)(params(), foreach=True, **hyper).step,
}
for step in steps.values():
    for _ in range(3):
        step()
for _ in sys.stdin:
    times = []
    for name, step in steps.items():
        gc.collect()
        t0 = time.perf_counter()
        step(); step(); step()
        times.append(f"{name}={(time.perf_counter() - t0) / 3}")
    print(" ".join(times), flush=True)
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("algo", help="a torch.optim / adapters class name, e.g. SGD")
    ap.add_argument("first", type=Path, help="checkout A (its root: the folder holding functional_optim/)")
    ap.add_argument("second", type=Path, help="checkout B")
    ap.add_argument("--shape", default="512x512")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args(argv)
    roots = {"A": str(args.first.resolve()), "B": str(args.second.resolve())}
    workers = {
        key: subprocess.Popen(
            [sys.executable, "-c", WORKER, root, args.algo, args.shape, str(args.count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",  # no checkout on the path but the one given
        )
        for key, root in roots.items()
    }
    times: dict[str, dict[str, list[float]]] = {
        k: {"adapter": [], "forloop": [], "foreach": []} for k in roots
    }
    for turn in range(args.repeats):
        for key in ("A", "B") if turn % 2 == 0 else ("B", "A"):
            worker = workers[key]
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
            for item in worker.stdout.readline().split():
                name, value = item.split("=")
                times[key][name].append(float(value))
    for worker in workers.values():
        assert worker.stdin is not None
        worker.stdin.close()
        worker.wait()
    print(f"{args.algo} on {args.count} x {args.shape}, {args.repeats} turns, 1 thread")
    # the adapters' own times compare best: torch's for-loop may run at another speed in each
    # process (its temporaries fault in fresh pages or not, by the allocator's state)
    a, b = (statistics.median(times[k]["adapter"]) for k in ("A", "B"))
    print(f"  adapter B / A: {b / a:.3f} (medians over turns)")
    for key, root in roots.items():
        t = times[key]
        best = min(statistics.median(t["forloop"]), statistics.median(t["foreach"]))
        adapter = statistics.median(t["adapter"])
        per_turn = [a / min(f, e) for a, f, e in zip(t["adapter"], t["forloop"], t["foreach"], strict=True)]
        q1, _, q3 = statistics.quantiles(per_turn, n=4)
        print(f"  {key} {root}: adapter {adapter * 1e3:.3f} ms, {adapter / best:.3f}x torch's best non-fused "
              f"(per turn {q1:.3f}-{q3:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
