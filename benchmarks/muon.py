"""Muon step time, accuracy and memory: ``fo.muon`` / ``adapters.Muon`` vs ``torch.optim.Muon``.

Run::

    python benchmarks/muon.py                          # 1 thread, every configuration
    python benchmarks/muon.py --threads 1,2 --repeats 15
    python benchmarks/muon.py --configs torch,fast,adapter-fast --layers 4
    python benchmarks/muon.py --quick                  # tiny shapes (smoke test)
    python benchmarks/muon.py --design                 # error of candidate "fast" designs vs keller

Cases: (a) ten 512×512 matrices; (b) the hidden matrices of GPT-2 small, per layer
``768×2304`` (qkv), ``768×768`` (attention projection), ``768×3072`` (MLP up), ``3072×768`` (MLP
down) -- full width 768; on a CPU the number of layers is scaled down (``--layers``, default 2 on a
CPU, 12 on a GPU; the output says so); (c) for memory only, the 12-layer width-256 version of (b).

1. **Step time**: every configuration gets its own parameters and state; per repeat they all run
   once, in a rotating order (interleaved, so machine load hits them alike). Reported: the median
   over repeats, the spread (min-max) and the ratio of medians to ``torch.optim.Muon`` at its
   defaults (bf16 Newton–Schulz, one matrix at a time) from the same run (> 1: faster), with the
   load average before and after; the same for the process CPU time (``time.process_time``: time
   spent descheduled by other jobs is not counted, so on a shared machine its ratios are the
   steadier ones with 1 thread). ``fo.muon`` rows are the pure step (``update`` +
   ``apply_updates``), ``adapters.Muon`` rows the drop-in (in place).
2. **Error**: ``‖O − U Vᵀ‖_F / ‖U Vᵀ‖_F`` of the orthogonalised update ``O`` against the exact
   polar factor of its input (SVD in float64), RMS over 8 of the case's Gaussian matrices
   ("gauss"); on a 256×768 matrix with singular values log-spaced in ``[1e-3, 1]`` ("spread");
   on a rank-4 768×3072 matrix plus Gaussian noise 1e-3 of its scale ("low-rank": the noise
   directions are what the polar factor is made of, and no 4-5 step iteration lifts them to 1).
   Smaller is closer to ``U Vᵀ``; torch's own 5-step quintic is the reference.
3. **Extra peak memory** of a step: ``torch.profiler`` allocator events over two consecutive
   steps, the peak of their running sum during the second one minus its value at its start (so
   the frees of state tensors that the first step made are seen). Pure ``fo.muon`` rows include
   what the pure API returns (updates, new momentum, then new parameters: 3× the matrices),
   printed separately as "returned".

4. ``--design``: how the ``"fast"`` preset was chosen. For Polar Express designs
   (``fo.polar_express_coefficients(lower, degrees)``, Schatten-8 normalisation, the Gram
   iteration on rectangular matrices, bf16) with 10 to 12 matrix products on a square matrix,
   the error against ``U Vᵀ`` on Gaussian matrices (512², GPT-2's hidden shapes, 64×192 and 64²)
   and on log-spread spectra (32×128, 64×192 and 256×768 over 3 decades, 96² over 2), and the
   worst ratio to ``"keller"``'s error over those inputs (< 1: closer to ``U Vᵀ`` than torch's
   iteration on every one of them).

Writes ``benchmarks/results/muon_<device>_<threads>t.json`` (``--out`` to change).
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
from torch.profiler import ProfilerActivity, profile, record_function

import functional_optim as fo
from functional_optim.transforms.orthogonalize import default_ns_dtype

KELLER = (3.4445, -4.7750, 2.0315)

# name -> (label, kind, keyword arguments); kind: "torch", "adapter" or "pure".
CONFIGS: dict[str, tuple[str, str, dict]] = {
    "torch": ("torch.optim.Muon", "torch", {}),
    "adapter": ("adapters.Muon (= torch)", "adapter", {}),
    "adapter-fast": ("adapters.Muon fast", "adapter", {"ns_coefficients": "fast"}),
    "keller": ("fo.muon (= torch)", "pure", {}),
    "keller-gram": ("fo.muon keller, gram", "pure", {"ns_method": "auto"}),
    "polar_express": (
        "fo.muon polar_express, gram",
        "pure",
        {"ns_coefficients": "polar_express", "ns_method": "auto"},
    ),
    "fast": ("fo.muon fast", "pure", {"ns_coefficients": "fast"}),
}


def machine() -> dict:
    flags: list[str] = []
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags") and not flags:
                    flags = line.split()
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "torch": torch.__version__,
        "cpu": model,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "avx2": "avx2" in flags,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
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
    """Peak extra memory of ``step``: allocator events of two consecutive steps, the peak of their
    running sum during the second minus its value at the second's start."""
    gc.collect()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, profile_memory=True) as prof:
        step()
        with record_function("## measured step ##"):
            step()
    events = prof.profiler.kineto_results.events()
    start = next(e.start_ns() for e in events if e.name() == "## measured step ##")
    mem = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    before = sum(n for t, n in mem if t < start)
    running = itertools.accumulate((n for t, n in mem if t >= start), initial=before)
    return (max(running) - before) / 2**20


def step_fn(kind: str, kwargs: dict, params: list, grads: list) -> Callable[[], None]:
    if kind == "pure":
        tx = fo.muon(**kwargs)
        box = {"params": [p.clone() for p in params], "state": None}
        box["state"] = tx.init(box["params"])

        def run() -> None:
            updates, box["state"] = tx.update(grads, box["state"], box["params"])
            box["params"] = fo.apply_updates(box["params"], updates)

        return run
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    for p, g in zip(ps, grads, strict=True):
        p.grad = g.clone()
    opt = torch.optim.Muon(ps, **kwargs) if kind == "torch" else fo.adapters.Muon(ps, **kwargs)
    return lambda: opt.step()


def orthogonalizer(kind: str, kwargs: dict) -> Callable[[torch.Tensor], torch.Tensor]:
    """The Newton–Schulz part of a configuration, as a function of one matrix."""
    if kind == "torch":
        from torch.optim._muon import _zeropower_via_newtonschulz

        return lambda g: _zeropower_via_newtonschulz(g, KELLER, 5, 1e-7).to(g.dtype)
    keys = ("ns_coefficients", "ns_steps", "eps", "safety_factor", "ns_dtype", "ns_method")
    ortho_kwargs = {k: kwargs[k] for k in keys if k in kwargs}
    ortho_kwargs.setdefault("ns_coefficients", "keller")
    tx = fo.orthogonalize(**ortho_kwargs)
    return lambda g: tx.update([g], fo.EmptyState())[0][0]


def polar(g: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(g.double().cpu(), full_matrices=False)
    return u @ vh


Orthogonalizer = Callable[[torch.Tensor], torch.Tensor]


def rel_error(ortho: Orthogonalizer, mats: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    errs = [((ortho(g).double().cpu() - p).norm() / p.norm()).item() ** 2 for g, p in mats]
    return statistics.mean(errs) ** 0.5


def spread_matrix(m: int, n: int, sigma_min: float, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    k = min(m, n)
    s = torch.logspace(0, torch.log10(torch.tensor(sigma_min)).item(), k, dtype=torch.float64)
    return ((u[:, :k] * s) @ v[:, :k].T).float()


def low_rank_matrix(m: int, n: int, rank: int, noise: float, seed: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    signal = torch.randn(m, rank, generator=gen) @ torch.randn(rank, n, generator=gen) / rank**0.5
    return signal + noise * torch.randn(m, n, generator=gen)


def time_paths(
    paths: dict[str, Callable[[], None]], repeats: int, device: str
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and process CPU time of each path, per repeat (CPU time is what a loaded machine
    disturbs least: time spent descheduled is not counted)."""
    for fn in paths.values():  # warm-up: lazy state, allocator
        fn()
    times: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    order = list(paths)
    for r in range(repeats):
        k = r % len(order)
        for name in order[k:] + order[:k]:
            gc.collect()
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            paths[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return times, cpu


def run_case(name: str, shapes: list[tuple[int, int]], configs: list[str], repeats: int, device: str) -> dict:
    params, grads = make(shapes, device)
    paths = {c: step_fn(CONFIGS[c][1], CONFIGS[c][2], params, grads) for c in configs}
    load_before = os.getloadavg()
    with torch.no_grad():
        times, cpu = time_paths(paths, repeats, device)
    load_after = os.getloadavg()
    del paths
    base = statistics.median(times["torch"]) if "torch" in times else None
    cpu_base = statistics.median(cpu["torch"]) if "torch" in cpu else None
    rows = {}
    for c in configs:
        med, cpu_med = statistics.median(times[c]), statistics.median(cpu[c])
        rows[c] = {
            "label": CONFIGS[c][0],
            "step_s": med,
            "min_s": min(times[c]),
            "max_s": max(times[c]),
            "speedup_vs_torch": None if base is None else base / med,
            "cpu_s": cpu_med,
            "cpu_speedup_vs_torch": None if cpu_base is None else cpu_base / cpu_med,
            "times_s": times[c],
            "cpu_times_s": cpu[c],
        }
    return {
        "case": name,
        "n_matrices": len(shapes),
        "load_before": load_before,
        "load_after": load_after,
        "rows": rows,
    }


def errors(configs: list[str], gauss: dict[str, list[torch.Tensor]], device: str) -> dict:
    """Per configuration: error on each case's Gaussian sample, the spread and the low-rank matrix."""
    targets = {name: [(g, polar(g)) for g in mats] for name, mats in gauss.items()}
    spread = spread_matrix(256, 768, 1e-3).to(device)
    low = low_rank_matrix(768, 3072, 4, 1e-3).to(device)
    targets["spread"] = [(spread, polar(spread))]
    targets["low-rank"] = [(low, polar(low))]
    out: dict[str, dict[str, float]] = {}
    for c in configs:
        if CONFIGS[c][1] == "adapter" and "ns_coefficients" not in CONFIGS[c][2]:
            kind, kwargs = "pure", {}
        else:
            kind, kwargs = CONFIGS[c][1], CONFIGS[c][2]
        ortho = orthogonalizer(kind, kwargs)
        out[c] = {name: rel_error(ortho, mats) for name, mats in targets.items()}
    return out


def memory(configs: list[str], shapes: list[tuple[int, int]], device: str) -> dict:
    params, grads = make(shapes, device)
    model_mib = sum(a * b for a, b in shapes) * 4 / 2**20
    out = {}
    with torch.no_grad():
        for c in configs:
            fn = step_fn(CONFIGS[c][1], CONFIGS[c][2], params, grads)
            fn()  # lazy state
            extra = extra_peak_mib(fn)
            returned = 3 * model_mib if CONFIGS[c][1] == "pure" else 0.0
            out[c] = {"extra_peak_mib": extra, "returned_mib": returned, "working_mib": extra - returned}
            del fn
            gc.collect()
    label = f"GPT-2 hidden set, {len(shapes) // 4} layers, width {shapes[1][0]} ({model_mib:.1f} MiB)"
    return {"shapes": label, "rows": out}


def design_cases() -> dict[str, list[torch.Tensor]]:
    """Inputs of the ``--design`` sweep (float32, on the CPU)."""
    gen = torch.Generator().manual_seed(4)

    def gauss(shapes: list[tuple[int, int]], k: int = 4) -> list[torch.Tensor]:
        return [torch.randn(shapes[i % len(shapes)], generator=gen) for i in range(k)]

    return {
        "gauss 512x512": gauss([(512, 512)]),
        "gauss GPT-2": gauss(gpt2_shapes(768, 1)),
        "gauss 64x192, 64x64": gauss([(64, 192), (64, 64)]),
        "spread 32x128 1e-3": [spread_matrix(32, 128, 1e-3, seed=5)],
        "spread 64x192 1e-3": [spread_matrix(64, 192, 1e-3, seed=5)],
        "spread 256x768 1e-3": [spread_matrix(256, 768, 1e-3)],
        "spread 96x96 1e-2": [spread_matrix(96, 96, 1e-2, seed=5)],
    }


DESIGNS: list[tuple[int, ...]] = [
    (5, 5, 5, 5),  # 12 products on a square matrix
    (5, 5, 5, 3),  # 11
    (5, 5, 3, 5),
    (5, 3, 5, 5),
    (3, 5, 5, 5),
    (5, 3, 3, 3, 3),
    (3, 3, 3, 3, 5),
    (5, 5, 3, 3),  # 10
    (3, 3, 3, 3, 3),
]


def design_sweep(lowers: tuple[float, ...] = (0.002, 0.003, 0.004, 0.005, 0.006, 0.008)) -> list[dict]:
    """Error of each candidate design against ``U Vᵀ`` and its worst ratio to ``"keller"``'s."""
    from functional_optim.transforms.orthogonalize import newton_schulz

    targets = {name: [(g, polar(g)) for g in mats] for name, mats in design_cases().items()}

    def candidate(steps: list) -> Orthogonalizer:
        def run(g: torch.Tensor) -> torch.Tensor:
            x = g.to(torch.bfloat16)
            tall = x.shape[0] > x.shape[1]
            x = (x.mT if tall else x).unsqueeze(0)
            y = newton_schulz(x, steps, norm="schatten8", method="auto")[0]
            return (y.mT if tall else y).float()

        return run

    keller = orthogonalizer("torch", {})
    base = {name: rel_error(keller, mats) for name, mats in targets.items()}
    rows = [{"design": "keller (torch)", "products": 15, "errors": base, "worst_ratio": 1.0}]
    for degrees in DESIGNS:
        for lower in lowers:
            steps = fo.polar_express_coefficients(lower, degrees)
            errs = {name: rel_error(candidate(steps), mats) for name, mats in targets.items()}
            rows.append(
                {
                    "design": f"{degrees} lower={lower}",
                    "products": sum(3 if d == 5 else 2 for d in degrees),
                    "errors": errs,
                    "worst_ratio": max(errs[k] / base[k] for k in errs),
                }
            )
    return rows


def print_design(rows: list[dict]) -> None:
    names = list(rows[0]["errors"])
    print(f"{'design':<32} {'products':>8} {'worst/keller':>12}" + "".join(f" {n:>20}" for n in names))
    for r in rows:
        line = f"{r['design']:<32} {r['products']:>8} {r['worst_ratio']:>12.3f}"
        print(line + "".join(f" {r['errors'][n]:>20.4f}" for n in names))
    best: dict[int, dict] = {}
    for r in rows[1:]:
        if r["products"] not in best or r["worst_ratio"] < best[r["products"]]["worst_ratio"]:
            best[r["products"]] = r
    for products, r in sorted(best.items()):
        verdict = "closer than keller on every input" if r["worst_ratio"] < 1 else "loses somewhere"
        print(f"best with {products} products: {r['design']} (worst ratio {r['worst_ratio']:.3f}: {verdict})")


def print_results(res: dict, errs: dict, threads: int) -> None:
    print(
        f"\n{res['case']} ({res['n_matrices']} matrices), {threads} thread(s); load average "
        f"{tuple(round(v, 2) for v in res['load_before'])} -> {tuple(round(v, 2) for v in res['load_after'])}"
    )
    err_keys = list(next(iter(errs.values())))
    header = f"{'configuration':<30} {'step (s)':>9} {'min-max (s)':>15} {'vs torch':>9}"
    header += f" {'cpu (s)':>8} {'vs torch':>9}"
    print(header + "".join(f" {'err ' + k[:10]:>15}" for k in err_keys))
    for c, r in res["rows"].items():
        ratio = "" if r["speedup_vs_torch"] is None else f"{r['speedup_vs_torch']:.2f}x"
        cpu_ratio = "" if r["cpu_speedup_vs_torch"] is None else f"{r['cpu_speedup_vs_torch']:.2f}x"
        line = (
            f"{r['label']:<30} {r['step_s']:>9.4f} {r['min_s']:>7.4f}-{r['max_s']:<7.4f} {ratio:>9} "
            f"{r['cpu_s']:>8.4f} {cpu_ratio:>9}"
        )
        print(line + "".join(f" {errs[c][k]:>15.4f}" for k in err_keys))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=11, help="interleaved timed steps per configuration")
    parser.add_argument("--threads", default="1", help="torch intra-op threads, comma-separated (e.g. 1,2)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from {list(CONFIGS)}")
    parser.add_argument("--layers", type=int, default=None, help="GPT-2 layers (default 2 on CPU, 12 on GPU)")
    parser.add_argument("--width", type=int, default=768, help="GPT-2 width (768: GPT-2 small)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--quick", action="store_true", help="tiny cases (smoke test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/muon_*.json)")
    parser.add_argument("--design", action="store_true", help="error of candidate 'fast' designs, then exit")
    args = parser.parse_args()
    if args.design:
        rows = design_sweep()
        print_design(rows)
        path = Path(args.out) if args.out else Path(__file__).parent / "results" / "muon_design.json"
        path.write_text(json.dumps(rows, indent=2))
        print(f"wrote {path}")
        return
    device = args.device
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    if "torch" not in configs:
        configs.insert(0, "torch")
    layers = args.layers or (12 if device == "cuda" else 2)
    width, square, repeats = args.width, 512, args.repeats
    mem_shapes = gpt2_shapes(256, 12)
    if args.quick:
        width, layers, square, repeats, mem_shapes = 32, 2, 32, 2, gpt2_shapes(16, 2)
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, "
        f"avx512_bf16 {'yes' if info['avx512_bf16'] else 'no'}, "
        f"avx2 {'yes' if info['avx2'] else 'no'}, oneDNN bf16 {'yes' if info['onednn_bf16'] else 'no'}; "
        f"torch {info['torch']}; device {device}{' (' + info['gpu'] + ')' if info['gpu'] else ''}; "
        f"NS dtype of the default policy: {default_ns_dtype(device)}"
    )
    if device == "cpu" and layers != 12:
        print(f"NOTE: case (b) keeps {layers} of GPT-2 small's 12 layers (full width {width}) for CPU time.")
    cases = {
        f"(a) ten {square}x{square}": [(square, square)] * 10,
        f"(b) GPT-2-small hidden set, {layers} layers, width {width}": gpt2_shapes(width, layers),
    }
    gen = torch.Generator().manual_seed(3)
    gauss = {
        name: [torch.randn(s, generator=gen).to(device) for s in shapes[: min(len(shapes), 8)]]
        for name, shapes in cases.items()
    }
    errs_by_case = errors(configs, {name[:3]: mats for name, mats in gauss.items()}, device)
    for thread_count in [int(t) for t in args.threads.split(",")]:
        if device == "cpu":
            torch.set_num_threads(thread_count)
        results = [run_case(name, shapes, configs, repeats, device) for name, shapes in cases.items()]
        for res in results:
            key = res["case"][:3]  # "(a)" / "(b)": the Gaussian sample of this case
            errs = {
                c: {"gauss": e[key], "spread": e["spread"], "low-rank": e["low-rank"]}
                for c, e in errs_by_case.items()
            }
            print_results(res, errs, torch.get_num_threads())
        mem = None
        if not args.no_memory:
            mem = memory(configs, mem_shapes, device)
            print(f"\nextra peak memory of one step, {mem['shapes']}, {torch.get_num_threads()} thread(s):")
            for c, m in mem["rows"].items():
                extra = f"{m['extra_peak_mib']:8.2f} MiB"
                if m["returned_mib"]:
                    extra += f"  (returned {m['returned_mib']:.1f} + working {m['working_mib']:.2f})"
                print(f"  {CONFIGS[c][0]:<30} {extra}")
        print(
            "\nstep: median of interleaved repeats; vs torch: ratio of medians (> 1 = faster); err: relative "
            "Frobenius distance to the exact polar factor (see the module docstring)."
        )
        out = {
            "machine": info,
            "device": device,
            "threads": torch.get_num_threads(),
            "repeats": repeats,
            "width": width,
            "layers": layers,
            "cases": results,
            "errors": errs_by_case,
            "memory": mem,
        }
        suffix = f"_{torch.get_num_threads()}t" if device == "cpu" else ""
        path = (
            Path(args.out)
            if args.out
            else (
                Path(__file__).parent
                / "results"
                / f"muon_{device}{suffix}{'_quick' if args.quick else ''}.json"
            )
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
