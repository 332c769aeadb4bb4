"""Muon step time: ``fo.muon`` (float32 Newton–Schulz, batched per shape) vs ``torch.optim.Muon``.

Run: ``python benchmarks/muon.py [--repeats N] [--quick]``. Prints two tables and writes
``benchmarks/results/muon_<device>.json``:

1. step time (median of interleaved repeats) on (a) ten 512×512 matrices and (b) the hidden
   matrices of a GPT-2-small-shaped stack (12 layers × {768×2304 qkv, 768×768 proj, 768×3072 fc,
   3072×768 proj}); on a CPU without native bf16 matmul (b) is scaled down in width (the output says
   so), because torch.optim.Muon's bf16 Newton–Schulz takes minutes per step there at full size.
   ``fo.muon`` runs at its defaults except ``ns_dtype=float32`` (= its auto choice on such CPUs);
   torch.optim.Muon at its defaults (bf16 NS, one matrix at a time).
2. the singular-value range σ_min/σ_max of the orthogonalized output per NS preset, for random
   inputs whose singular values are log-spaced over [1e-2, 1] and [1e-3, 1].
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import functional_optim as fo
from functional_optim.transforms.orthogonalize import NS_PRESETS, default_ns_dtype


def gpt2_shapes(width: int, layers: int) -> list[tuple[int, int]]:
    return [
        s
        for _ in range(layers)
        for s in ((width, 3 * width), (width, width), (width, 4 * width), (4 * width, width))
    ]


def make(shapes: list[tuple[int, int]], device: str, seed: int = 0) -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(seed)
    params = {f"p{i}": torch.randn(s, generator=gen).to(device) * 0.02 for i, s in enumerate(shapes)}
    grads = {k: torch.randn(v.shape, generator=gen).to(device) for k, v in params.items()}
    return params, grads


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_case(shapes: list[tuple[int, int]], repeats: int, device: str) -> dict:
    params, grads = make(shapes, device)
    opt = fo.muon(ns_dtype=torch.float32)
    state = opt.init(params)
    tparams = [torch.nn.Parameter(v.clone()) for v in params.values()]
    for p, g in zip(tparams, grads.values(), strict=True):
        p.grad = g.clone()
    topt = torch.optim.Muon(tparams)

    def fo_step() -> None:
        nonlocal params, state
        updates, state = opt.update(grads, state, params)
        params = fo.apply_updates(params, updates)

    fo_step()  # warm-up (allocations, lazy init). torch.optim.Muon is not warmed up: a bf16 step takes
    # minutes on CPUs without native bf16 and its only lazy work (zero momentum buffers) is negligible.
    fo_times, torch_times = [], []
    for _ in range(repeats):  # interleaved
        sync(device)
        t0 = time.perf_counter()
        fo_step()
        sync(device)
        fo_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        topt.step()
        sync(device)
        torch_times.append(time.perf_counter() - t0)
    fo_med, torch_med = statistics.median(fo_times), statistics.median(torch_times)
    return {
        "n_matrices": len(shapes),
        "n_params": sum(a * b for a, b in shapes),
        "fo_muon_s": fo_med,
        "torch_muon_s": torch_med,
        "speedup": torch_med / fo_med,
        "fo_times_s": fo_times,
        "torch_times_s": torch_times,
    }


def spread_matrix(m: int, n: int, sigma_min: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    k = min(m, n)
    s = torch.logspace(0, torch.log10(torch.tensor(sigma_min)).item(), k, dtype=torch.float64)
    return ((u[:, :k] * s) @ v[:, :k].T).float()


def singular_value_ranges(m: int = 128, n: int = 256) -> list[dict]:
    rows = []
    for sigma_min in (1e-2, 1e-3):
        g = spread_matrix(m, n, sigma_min, seed=1)
        for preset in NS_PRESETS:
            out = fo.orthogonalize(preset, ns_dtype=torch.float32).update([g], fo.EmptyState())[0][0]
            sv = torch.linalg.svdvals(out.double())
            rows.append(
                {
                    "preset": preset,
                    "ns_dtype": "float32",
                    "input_sigma": [sigma_min, 1.0],
                    "out_sigma_min": sv.min().item(),
                    "out_sigma_max": sv.max().item(),
                }
            )
        out = fo.orthogonalize("keller", ns_dtype=torch.bfloat16).update([g], fo.EmptyState())[0][0]
        sv = torch.linalg.svdvals(out.double())
        rows.append(
            {
                "preset": "keller (torch, bf16)",
                "ns_dtype": "bfloat16",
                "input_sigma": [sigma_min, 1.0],
                "out_sigma_min": sv.min().item(),
                "out_sigma_max": sv.max().item(),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per optimizer and case (median)")
    parser.add_argument("--quick", action="store_true", help="smaller cases (smoke test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's); 1 is steadier on a busy CPU",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = args.device
    slow_bf16 = default_ns_dtype(device) != torch.bfloat16
    width, layers = (768, 12) if not slow_bf16 else (192, 12)
    if args.quick:
        width, layers = 64, 2
    square = 512 if not args.quick else 64
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{platform.processor() or platform.machine()}"
    )
    cases = {
        f"(a) ten {square}x{square}": [(square, square)] * 10,
        f"(b) GPT-2-small hidden matrices, {layers} layers, width {width}": gpt2_shapes(width, layers),
    }
    if slow_bf16 and not args.quick:
        print(
            f"NOTE: bf16 matmul is slow on this {device} (no native bf16): "
            "case (b) is scaled down from width 768 "
            f"to width {width} (12 layers, same 4 shapes per layer, 1/16 of the parameters) so that "
            "torch.optim.Muon finishes."
        )
    results = {}
    print(f"\n{'case':<58} {'#mat':>5} {'fo.muon (s)':>12} {'torch Muon (s)':>15} {'speedup':>8}")
    for name, shapes in cases.items():
        r = bench_case(shapes, args.repeats, device)
        results[name] = r
        print(
            f"{name:<58} {r['n_matrices']:>5} {r['fo_muon_s']:>12.4f} "
            f"{r['torch_muon_s']:>15.3f} {r['speedup']:>7.1f}x"
        )
    print(
        f"(medians of {args.repeats} interleaved steps; fo.muon: float32 NS, batched per shape; "
        "torch.optim.Muon: defaults, bf16 NS per matrix)"
    )

    ranges = singular_value_ranges()
    print("\nOutput singular values of orthogonalize (128x256 input, sigma log-spaced in [sigma_min, 1])")
    print(
        f"{'preset':<22} {'ns_dtype':<9} {'input sigma_min':>15} {'out sigma_min':>14} {'out sigma_max':>14}"
    )
    for row in ranges:
        print(
            f"{row['preset']:<22} {row['ns_dtype']:<9} {row['input_sigma'][0]:>15g} "
            f"{row['out_sigma_min']:>14.3f} {row['out_sigma_max']:>14.3f}"
        )

    out = {
        "torch": torch.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "repeats": args.repeats,
        "gpt2_width": width,
        "gpt2_layers": layers,
        "step_time": results,
        "singular_values": ranges,
    }
    path = (
        Path(__file__).parent
        / "results"
        / f"muon_{'cpu' if device == 'cpu' else device}{'_quick' if args.quick else ''}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
