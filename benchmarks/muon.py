"""Muon step time, accuracy and memory: ``fo.muon`` / ``adapters.Muon`` vs ``torch.optim.Muon``.

Run: ``python benchmarks/muon.py [--threads N] [--repeats N] [--width W] [--quick]``. Prints the
machine, then per case (a) ten 512×512 matrices and (b) the hidden matrices of a GPT-2-small
stack (12 layers × {qkv w×3w, proj w×w, fc w×4w, fc-proj 4w×w}; width 768 on a GPU, 256 on a CPU by
default: the output says so):

1. **step time**: median of interleaved repeats (every configuration runs once per repeat, in a
   rotating order), and its ratio to ``torch.optim.Muon`` at its defaults (bf16 Newton–Schulz, one
   matrix at a time) measured in the same run; the ``fo.muon`` rows are the pure step
   (``update`` + ``apply_updates``), the ``adapters.Muon`` row is the drop-in (in place);
2. **error**: the relative Frobenius distance ``‖O − U Vᵀ‖_F / ‖U Vᵀ‖_F`` of the orthogonalised
   update ``O`` to the exact polar factor of its input (SVD in float64), as the RMS over the case's
   matrices (Gaussian inputs), and on a 256×768 input with singular values log-spaced in
   ``[1e-3, 1]`` (a spread-out spectrum, like a low-rank gradient's);
3. **extra peak memory** of one step (``torch.profiler`` allocator events, as ``benchmarks/run.py``):
   for the drop-ins the step's own temporaries; for the pure ``fo.muon`` path this includes the
   new parameters and the new momentum buffers it returns (the price of purity, reported as is).

Writes ``benchmarks/results/muon_<device>[_<threads>t].json``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import functional_optim as fo
from functional_optim.transforms.orthogonalize import default_ns_dtype

# (label, fo.muon keyword arguments) -- every configuration is timed and its error measured.
CONFIGS: list[tuple[str, dict]] = [
    ("fo.muon keller (= torch)", {}),
    ("fo.muon keller, gram", {"ns_method": "auto"}),
    ("fo.muon polar_express, gram", {"ns_coefficients": "polar_express", "ns_method": "auto"}),
]


def machine() -> dict:
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    return {
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "avx512_bf16": "avx512_bf16" in flags.split(),
        "avx2": "avx2" in flags.split(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def gpt2_shapes(width: int, layers: int) -> list[tuple[int, int]]:
    return [
        s
        for _ in range(layers)
        for s in ((width, 3 * width), (width, width), (width, 4 * width), (4 * width, width))
    ]


def make(shapes: list[tuple[int, int]], device: str, seed: int = 0) -> tuple[list, list]:
    gen = torch.Generator().manual_seed(seed)
    params = [(torch.randn(s, generator=gen) * 0.02).to(device) for s in shapes]
    grads = [torch.randn(s, generator=gen).to(device) for s in shapes]
    return params, grads


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def extra_peak_mib(step: Callable[[], None]) -> float:
    """Peak of the running sum of allocator events during one step (see ``benchmarks/run.py``)."""
    gc.collect()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, profile_memory=True) as prof:
        step()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    return max(itertools.accumulate((n for _, n in events), initial=0)) / 2**20


def torch_step(params: list, grads: list) -> Callable[[], None]:
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    for p, g in zip(ps, grads, strict=True):
        p.grad = g.clone()
    opt = torch.optim.Muon(ps)
    return lambda: opt.step()


def adapter_step(params: list, grads: list) -> Callable[[], None]:
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    for p, g in zip(ps, grads, strict=True):
        p.grad = g.clone()
    opt = fo.adapters.Muon(ps)
    return lambda: opt.step()


def pure_step(params: list, grads: list, kwargs: dict) -> Callable[[], None]:
    tx = fo.muon(**kwargs)
    box = {"params": [p.clone() for p in params], "state": None}
    box["state"] = tx.init(box["params"])

    def run() -> None:
        updates, box["state"] = tx.update(grads, box["state"], box["params"])
        box["params"] = fo.apply_updates(box["params"], updates)

    return run


def orthogonalizer(kwargs: dict, torch_ref: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """The Newton–Schulz part of a configuration, as a function of one matrix."""
    if torch_ref:
        from torch.optim._muon import _zeropower_via_newtonschulz

        return lambda g: _zeropower_via_newtonschulz(g, (3.4445, -4.7750, 2.0315), 5, 1e-7).to(g.dtype)
    keys = ("ns_coefficients", "ns_steps", "eps", "safety_factor", "ns_dtype")
    ortho_kwargs = {k: kwargs[k] for k in keys if k in kwargs}
    if "ns_coefficients" not in ortho_kwargs:
        ortho_kwargs["ns_coefficients"] = "keller"
    tx = fo.orthogonalize(**ortho_kwargs, ns_method=kwargs.get("ns_method", "direct"))
    return lambda g: tx.update([g], fo.EmptyState())[0][0]


def rel_error(ortho: Callable[[torch.Tensor], torch.Tensor], mats: list[torch.Tensor]) -> float:
    errs = []
    for g in mats:
        u, _, vh = torch.linalg.svd(g.double().cpu(), full_matrices=False)
        polar = u @ vh
        out = ortho(g).double().cpu()
        errs.append(((out - polar).norm() / polar.norm()).item() ** 2)
    return statistics.mean(errs) ** 0.5


def spread_matrix(m: int, n: int, sigma_min: float, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    k = min(m, n)
    s = torch.logspace(0, torch.log10(torch.tensor(sigma_min)).item(), k, dtype=torch.float64)
    return ((u[:, :k] * s) @ v[:, :k].T).float()


def time_paths(paths: dict[str, Callable[[], None]], repeats: int, device: str) -> dict[str, list[float]]:
    for fn in paths.values():  # warm-up: lazy state, allocator
        fn()
    times: dict[str, list[float]] = {k: [] for k in paths}
    order = list(paths)
    for r in range(repeats):
        k = r % len(order)
        for name in order[k:] + order[:k]:
            gc.collect()
            sync(device)
            t0 = time.perf_counter()
            paths[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def run_case(name: str, shapes: list[tuple[int, int]], repeats: int, device: str) -> dict:
    params, grads = make(shapes, device)
    paths: dict[str, Callable[[], None]] = {"torch.optim.Muon": torch_step(params, grads)}
    paths["adapters.Muon (= torch)"] = adapter_step(params, grads)
    for label, kwargs in CONFIGS:
        paths[label] = pure_step(params, grads, kwargs)
    with torch.no_grad():
        times = time_paths(paths, repeats, device)
        memory = {label: extra_peak_mib(fn) for label, fn in paths.items()}
    sample = grads[: min(len(grads), 8)]  # error on a few of the case's matrices (SVD is slow)
    spread = spread_matrix(256, 768, 1e-3).to(device)
    errors = {}
    for label in paths:
        kwargs = dict(CONFIGS).get(label, {})
        ortho = orthogonalizer(kwargs, torch_ref=label == "torch.optim.Muon")
        errors[label] = (rel_error(ortho, sample), rel_error(ortho, [spread]))
    base = statistics.median(times["torch.optim.Muon"])
    rows = {}
    for label in paths:
        med = statistics.median(times[label])
        rows[label] = {
            "step_s": med,
            "speedup_vs_torch": base / med,
            "error_gaussian": errors[label][0],
            "error_spread_1e-3": errors[label][1],
            "extra_peak_mib": memory[label],
            "times_s": times[label],
        }
    return {"case": name, "n_matrices": len(shapes), "rows": rows}


def print_case(res: dict) -> None:
    print(f"\n{res['case']} ({res['n_matrices']} matrices)")
    print(
        f"{'configuration':<30} {'step (s)':>9} {'vs torch':>9} {'err gauss':>10} "
        f"{'err spread':>11} {'extra MiB':>10}"
    )
    for label, r in res["rows"].items():
        print(
            f"{label:<30} {r['step_s']:>9.4f} {r['speedup_vs_torch']:>8.2f}x {r['error_gaussian']:>10.4f} "
            f"{r['error_spread_1e-3']:>11.4f} {r['extra_peak_mib']:>10.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed steps per configuration")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--width", type=int, default=None, help="GPT-2 width (default 768 on GPU, 256 on CPU)"
    )
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="tiny cases (smoke test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = args.device
    width = args.width or (768 if device == "cuda" else 256)
    layers, square, repeats = args.layers, 512, args.repeats
    if args.quick:
        width, layers, square, repeats = 32, 2, 32, 2
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, torch threads {info['threads']}, "
        f"avx512_bf16 {'yes' if info['avx512_bf16'] else 'no'}, avx2 {'yes' if info['avx2'] else 'no'}, "
        f"oneDNN bf16 {'yes' if info['onednn_bf16'] else 'no'}; torch {info['torch']}; device {device}; "
        f"NS dtype of fo.muon's default policy: {default_ns_dtype(device)}; load {info['load_average']}"
    )
    if device == "cpu" and width != 768:
        print(f"NOTE: the GPT-2 case is scaled in width from 768 to {width} (12 layers) for CPU time.")
    cases = {
        f"(a) ten {square}x{square}": [(square, square)] * 10,
        f"(b) GPT-2-small hidden set, {layers} layers, width {width}": gpt2_shapes(width, layers),
    }
    results = [run_case(name, shapes, repeats, device) for name, shapes in cases.items()]
    for res in results:
        print_case(res)
    print(
        f"\nstep: median of {repeats} interleaved steps; vs torch: torch.optim.Muon's median / this one "
        "(> 1 = faster); err: RMS relative Frobenius distance to the exact polar factor (SVD) on 8 of "
        "the case's Gaussian matrices, and on a 256x768 matrix with singular values log-spaced in "
        "[1e-3, 1]; extra MiB: extra peak memory of one step (pure fo.muon rows include the new "
        "parameters and momentum buffers they return)."
    )
    out = {
        "machine": info,
        "device": device,
        "repeats": repeats,
        "width": width,
        "layers": layers,
        "cases": results,
    }
    suffix = f"_{torch.get_num_threads()}t" if device == "cpu" else ""
    path = Path(__file__).parent / "results" / f"muon_{device}{suffix}{'_quick' if args.quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
