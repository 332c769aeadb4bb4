"""Distributed Muon: step time at 1, 2 and 4 ranks, every rank doing all Newton–Schulz (redundant,
as torch.optim.Muon under DDP) vs each rank doing its own matrices (``fo.muon(distributed=True)``).

The parameters are the hidden matrices of GPT-2 small (12 layers × attn.c_attn, attn.c_proj,
mlp.c_fc, mlp.c_proj), replicated on every rank as under DDP, with the width scaled down for a CPU
(``--width``, GPT-2 small has 768). Ranks are local gloo processes on 127.0.0.1, 1 thread each.

For each world size the two variants are timed interleaved (``--repeats`` rounds, a barrier before
each timed call, medians), as a whole Muon step and as the orthogonalisation alone
(``fo.orthogonalize`` vs ``fo.orthogonalize_distributed``). Wall time is the slowest rank's; CPU time
is per rank (``time.process_time``), which shows how the work divides even when the ranks outnumber
the cores. Run: ``python benchmarks/muon_distributed.py [--width 128] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import statistics
import sys
import tempfile
import time
from typing import Any

import torch
import torch.multiprocessing as mp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # this checkout's functional_optim, also in the spawned ranks
    sys.path.insert(0, ROOT)


def hidden_shapes(width: int, layers: int = 12) -> list[tuple[int, int]]:
    """GPT-2's hidden matrices (``(in, out)`` as its Conv1D stores them) at ``width``."""
    per_layer = [(width, 3 * width), (width, width), (width, 4 * width), (4 * width, width)]
    return per_layer * layers


def _rank(rank: int, world: int, store: str, args: dict[str, Any], out: Any) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    import torch.distributed as dist

    import functional_optim as fo

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    ns_dtype = None if args["ns_dtype"] == "default" else getattr(torch, args["ns_dtype"])
    gen = torch.Generator().manual_seed(0)
    shapes = hidden_shapes(args["width"])
    params = [torch.randn(s, generator=gen) * 0.02 for s in shapes]
    grads = [torch.randn(s, generator=gen) for s in shapes]
    variants = {
        "step redundant": fo.muon(lr=0.02, ns_dtype=ns_dtype),
        "step divided": fo.muon(lr=0.02, ns_dtype=ns_dtype, distributed=True),
        "NS redundant": fo.orthogonalize(ns_dtype=ns_dtype),
        "NS divided": fo.orthogonalize_distributed(ns_dtype=ns_dtype),
    }
    states = {k: v.init(params) for k, v in variants.items()}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(args["repeats"] + 1):  # round 0 warms up
        for name, opt in variants.items():
            dist.barrier()
            t0, c0 = time.perf_counter(), time.process_time()
            opt.update(grads, states[name], params)
            t1, c1 = time.perf_counter(), time.process_time()
            slowest = torch.tensor([t1 - t0])
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
            if i:
                wall[name].append(slowest.item())
                cpu[name].append(c1 - c0)
    result = {
        "wall": {k: statistics.median(v) for k, v in wall.items()},
        "cpu": {k: statistics.median(v) for k, v in cpu.items()},
    }
    dist.destroy_process_group()
    out.put((rank, result))


def run_world(world: int, args: dict[str, Any]) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [ctx.Process(target=_rank, args=(r, world, f"{tmp}/store", args, out)) for r in range(world)]
        for p in procs:
            p.start()
        results: dict[int, Any] = {}
        deadline = time.monotonic() + args["timeout"]
        try:
            while len(results) < world:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{world} ranks ran past {args['timeout']} s")
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("a rank failed (its traceback is above)")
                try:
                    rank, result = out.get(timeout=1.0)
                except queue.Empty:
                    continue
                results[rank] = result
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
                    p.join()
    return [results[r] for r in range(world)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128, help="model width (GPT-2 small: 768)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--ns-dtype", default="float32", help="float32, bfloat16 or default")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", help="also write the results to this file")
    ns = parser.parse_args()
    args = {"width": ns.width, "repeats": ns.repeats, "ns_dtype": ns.ns_dtype, "timeout": ns.timeout}
    from functional_optim.transforms.orthogonalize import default_ns_dtype

    shapes = hidden_shapes(ns.width)
    print(
        f"GPT-2-small hidden matrices, width scaled {ns.width}/768: {len(shapes)} matrices "
        f"({sum(a * b for a, b in shapes) / 1e6:.2f} M parameters), replicated (DDP layout)"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, 1 thread per rank, NS dtype {ns.ns_dtype} (default here: "
        f"{default_ns_dtype('cpu')}); gloo on 127.0.0.1; medians of {ns.repeats} interleaved rounds"
    )
    table: dict[int, list[dict[str, Any]]] = {w: run_world(w, args) for w in ns.worlds}
    base = table[ns.worlds[0]][0]
    print()
    head = ("ranks", "variant", "wall ms", "x 1-rank", "CPU ms/rank (max)", "x 1-rank")
    print("{:>5} {:<15} {:>9} {:>9} {:>18} {:>9}".format(*head))
    for world, ranks in table.items():
        for name in ("NS redundant", "NS divided", "step redundant", "step divided"):
            w = ranks[0]["wall"][name] * 1e3
            c = max(r["cpu"][name] for r in ranks) * 1e3
            ref = "NS redundant" if name.startswith("NS") else "step redundant"
            print(
                f"{world:>5} {name:<15} {w:>9.1f} {w / (base['wall'][ref] * 1e3):>9.2f} "
                f"{c:>18.1f} {c / (base['cpu'][ref] * 1e3):>9.2f}"
            )
    print()
    for world, ranks in table.items():
        r0 = ranks[0]
        wall = r0["wall"]["NS divided"] / r0["wall"]["NS redundant"]
        cpu = max(r["cpu"]["NS divided"] for r in ranks) / max(r["cpu"]["NS redundant"] for r in ranks)
        print(
            f"{world} ranks: NS divided / NS redundant (same run): wall {wall:.2f}, "
            f"CPU per rank (max) {cpu:.2f}  (target ~ 1/{world} = {1 / world:.2f})"
        )
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump({str(k): v for k, v in table.items()}, f, indent=1)


if __name__ == "__main__":
    main()
