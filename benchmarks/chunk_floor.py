"""How fast can torch's own calls go when the tensors are cut differently? (No library code.)

Two experiments behind `docs/performance.md` ("two ideas that did not pay"), each timing torch's
per-tensor calls of an algorithm written out straight, against ``torch.optim``'s for-loop, in one
interleaved run (1 thread, medians):

- ``--mode chunks``: 100 tensors of 10,000 floats, one ``torch._foreach_*`` call per op over chunks
  of ``k`` tensors (``k`` = 1, 2, 4, 5, 10, 25, 100);
- ``--mode slices``: 32 tensors of 512², the per-tensor calls on 1-D views of ``k`` elements (one
  view's ops, then the next) against the same calls on whole tensors. ``--check-bits`` instead
  checks that every op of the replayable rules gives the same bits on such views as on the whole
  tensor (float32 and float64, 1, 2 and 4 threads, sizes with a remainder).

Usage::

    python benchmarks/chunk_floor.py Adagrad --mode chunks
    python benchmarks/chunk_floor.py Adam --mode slices
    python benchmarks/chunk_floor.py --check-bits
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import time
from collections.abc import Callable

import torch

HYPER = {
    "SGD": {"lr": 1e-2, "momentum": 0.9},
    "Adagrad": {"lr": 1e-2},
    "Adam": {"lr": 1e-3},
    "RMSprop": {"lr": 1e-2},
}
HYPER["Adamax"] = {"lr": 2e-3}


def _tensors(shape: tuple[int, ...], count: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) * 0.02 for _ in range(count)]


def _torch_step(
    algo: str, shape: tuple[int, ...], count: int, grads: list[torch.Tensor]
) -> Callable[[], None]:
    params = [torch.nn.Parameter(t) for t in _tensors(shape, count, 0)]
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    return getattr(torch.optim, algo)(params, foreach=False, **HYPER[algo]).step


def _foreach_step(algo: str, lists: list[list[torch.Tensor]]) -> Callable[[], None]:
    """The algorithm's torch calls, one ``_foreach`` call per op per chunk (``lists``: per chunk,
    its params, grads, counters and two state lists)."""
    f, one = torch, torch.tensor(1.0)

    def step() -> None:
        for p, g, s, m, u in lists:
            if algo == "SGD":
                f._foreach_mul_(m, 0.9)
                f._foreach_add_(m, g, alpha=1)
                f._foreach_add_(p, m, alpha=-0.01)
                continue
            f._foreach_add_(s, one, alpha=1)
            if algo == "Adamax":
                f._foreach_lerp_(m, g, 0.1)
                f._foreach_mul_(u, 0.999)
                t = f._foreach_abs(g)
                f._foreach_add_(t, 1e-8)
                f._foreach_maximum_(u, t)
                f._foreach_addcdiv_(p, m, u, -0.002)
            else:  # Adagrad
                f._foreach_addcmul_(m, g, g, 1.0)
                t = f._foreach_sqrt(m)
                f._foreach_add_(t, 1e-10)
                f._foreach_addcdiv_(p, g, t, -0.01)

    return step


def _sliced_step(
    algo: str, p: list[torch.Tensor], g: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor]
):
    """torch's for-loop calls, written out, on these (views of) tensors."""

    def step() -> None:
        for pp, gg, mm, vv in zip(p, g, m, v, strict=True):
            if algo == "SGD":
                mm.mul_(0.9).add_(gg, alpha=1)
                pp.add_(mm, alpha=-0.01)
            elif algo == "Adagrad":
                mm.addcmul_(gg, gg, value=1)
                pp.addcdiv_(gg, mm.sqrt().add_(1e-10), value=-0.01)
            elif algo == "RMSprop":
                mm.mul_(0.99).addcmul_(gg, gg, value=0.01)
                pp.addcdiv_(gg, mm.sqrt().add_(1e-8), value=-0.01)
            else:  # Adam
                mm.lerp_(gg, 0.1)
                vv.mul_(0.999).addcmul_(gg, gg, value=0.001)
                pp.addcdiv_(mm, (vv.sqrt() / 0.03).add_(1e-8), value=-0.01)

    return step


def _time(cases: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    for step in cases.values():
        step()
        step()
    times: dict[str, list[float]] = {k: [] for k in cases}
    order = list(cases)
    for r in range(repeats):
        k = r % len(order)
        for name in order[k:] + order[:k]:
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(3):
                cases[name]()
            times[name].append((time.perf_counter() - t0) / 3)
    return {k: statistics.median(v) for k, v in times.items()}


def chunks(algo: str, repeats: int) -> None:
    grads = _tensors((10_000,), 100, 1)
    cases = {"torch": _torch_step(algo, (10_000,), 100, grads)}
    for k in (1, 2, 4, 5, 10, 25, 100):
        params = _tensors((10_000,), 100, 0)
        steps = [torch.zeros(()) for _ in params]
        a, b = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
        parts = [slice(i, i + k) for i in range(0, 100, k)]
        cases[f"k{k}"] = _foreach_step(algo, [[x[s] for x in (params, grads, steps, a, b)] for s in parts])
    medians = _time(cases, repeats)
    base = medians["torch"]
    print(
        f"{algo} on 100 x 10k, tensors per chunk: "
        + " ".join(f"{k} {v / base:.3f}" for k, v in medians.items())
    )


def slices(algo: str, repeats: int) -> None:
    grads = _tensors((512, 512), 32, 1)
    cases = {"torch": _torch_step(algo, (512, 512), 32, grads)}
    for k in (0, 16_384, 32_768, 65_536, 131_072):
        params = _tensors((512, 512), 32, 0)
        a, b = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]

        def cut(ts: list[torch.Tensor], k: int = k) -> list[torch.Tensor]:
            return [v for t in ts for v in torch.split(t.view(-1), k)] if k else ts

        cases[f"v{k // 1024}k" if k else "whole"] = _sliced_step(
            algo, cut(params), cut(grads), cut(a), cut(b)
        )
    medians = _time(cases, repeats)
    base = medians["torch"]
    print(f"{algo} on 32 x 512², view size: " + " ".join(f"{k} {v / base:.3f}" for k, v in medians.items()))


OPS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], object]] = {
    "mul_": lambda x, y, z: x.mul_(0.9),
    "mul_ 0-dim": lambda x, y, z: x.mul_(torch.tensor(0.999, dtype=x.dtype)),
    "add_ alpha": lambda x, y, z: x.add_(y, alpha=0.1),
    "add_ 0-dim alpha": lambda x, y, z: x.add_(torch.tensor(1e-8, dtype=x.dtype), alpha=1),
    "addcmul_": lambda x, y, z: x.addcmul_(y, z, value=0.01),
    "addcdiv_": lambda x, y, z: x.addcdiv_(y, z.abs().add_(0.1), value=-0.01),
    "addcdiv_ 0-dim": lambda x, y, z: x.addcdiv_(
        y, z.abs().add_(0.1), value=torch.tensor(-0.01, dtype=x.dtype)
    ),
    "sqrt_": lambda x, y, z: x.abs_().sqrt_(),
    "lerp_": lambda x, y, z: x.lerp_(y, 0.1),
    "maximum": lambda x, y, z: torch.maximum(x, y, out=x),
    "div_": lambda x, y, z: x.div_(z.abs().add_(0.5)),
    "sqrt / c + eps": lambda x, y, z: x.copy_((y.abs().sqrt() / 0.03).add_(1e-8)),
    "mul_ sign": lambda x, y, z: x.mul_(y.sign()),
}


def check_bits() -> int:
    threads = torch.get_num_threads()
    mismatches = 0
    try:
        for n_threads, dtype, n in itertools.product(
            (1, 2, 4), (torch.float32, torch.float64), (262_144, 262_151, 786_433, 1_000_003, 300_000)
        ):
            torch.set_num_threads(n_threads)
            gen = torch.Generator().manual_seed(n)
            x, y, z = (torch.randn(n, generator=gen, dtype=dtype) for _ in range(3))
            for name, op in OPS.items():
                whole = x.clone()
                op(whole, y, z)
                sliced = x.clone()
                for s in range(0, n, 131_072):
                    op(sliced[s : s + 131_072], y[s : s + 131_072], z[s : s + 131_072])
                if not torch.equal(whole, sliced):
                    mismatches += 1
                    print(f"MISMATCH {name}: {dtype}, {n} elements, {n_threads} threads")
    finally:
        torch.set_num_threads(threads)
    print(f"{len(OPS)} ops, views of 128 Ki elements against whole tensors: {mismatches} mismatches")
    return mismatches


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("algo", nargs="?", default="Adagrad", choices=sorted(HYPER))
    ap.add_argument("--mode", choices=("chunks", "slices"), default="chunks")
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--check-bits", action="store_true")
    args = ap.parse_args(argv)
    if args.check_bits:
        raise SystemExit(1 if check_bits() else 0)
    torch.set_num_threads(1)
    if args.mode == "chunks":
        if args.algo not in ("SGD", "Adagrad", "Adamax"):
            ap.error("--mode chunks: SGD, Adagrad or Adamax")
        chunks(args.algo, args.repeats)
    else:
        if args.algo == "Adamax":
            ap.error("--mode slices: SGD, Adagrad, RMSprop or Adam")
        slices(args.algo, args.repeats)


if __name__ == "__main__":
    main()
