"""First-call (compile) time and steady-state step time of ``fo.compile_step``.

Run::

    python benchmarks/compile_time.py                          # adam, adamw, sgd, adagrad; both sets
    python benchmarks/compile_time.py --algos all --json out.json
    python benchmarks/compile_time.py --algos adamw --sets small --mode whole   # the whole-graph mode
    python benchmarks/compile_time.py --algos rmsprop --sets small --mode dropin --no-steady
        # the first step() of fo.adapters.RMSprop with fused=True in its param group

**First call.** Every measurement is a new Python process (``python compile_time.py --child ...``)
with ``TORCHINDUCTOR_CACHE_DIR`` set: *cold* is a new empty temporary directory (nothing compiled
before: Inductor also probes the compiler there), *warm* is a second new process on the same
directory (``compile_step`` loads the step module and kernels the cold process saved there, without
``torch.compile``; ``loaded_saved_module`` in the JSON). The figure is
the wall time of the first ``step(params, grads, state)`` (imports excluded) and the CPU time of
the process and its compiler subprocesses over the same call (on a loaded machine the CPU time
is what the call would take alone).

**Steady state.** In the warm process: ``torch.optim.<Name>(foreach=True)``, ``fused=True`` (where
torch has it) and ``fo.compile_step(tx, elementwise=True)`` each own a copy of the parameters and
state; for each of ``--repeats`` rounds every path runs ``--steps`` steps, one path after the other
(interleaved), and the time per step of a round is recorded. The table gives the medians and the
median of the per-round ratios with their spread (lowest and highest ratio over the rounds).

Sets: ``small`` 100 tensors of 10,000 elements (1M), ``large`` 32 tensors of 512x512 (8.4M).
One thread (``torch.set_num_threads(1)``) unless ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

SETS = {"small": (100, (10_000,)), "large": (32, (512, 512))}
# name: (fo factory kwargs, torch class, torch kwargs, torch has a fused CPU kernel)
ALGOS: dict[str, tuple[str, dict, str, dict, bool]] = {
    "adam": ("adam", {"lr": 1e-3}, "Adam", {"lr": 1e-3}, True),
    "adamw": ("adamw", {"lr": 1e-3, "weight_decay": 0.01}, "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, True),
    "sgd": ("sgd", {"lr": 1e-2, "momentum": 0.9}, "SGD", {"lr": 1e-2, "momentum": 0.9}, True),
    "adagrad": ("adagrad", {"lr": 1e-2}, "Adagrad", {"lr": 1e-2}, True),
    "rmsprop": ("rmsprop", {"lr": 1e-2}, "RMSprop", {"lr": 1e-2}, False),
    "radam": ("radam", {"lr": 1e-3}, "RAdam", {"lr": 1e-3}, False),
    "nadam": ("nadam", {"lr": 2e-3}, "NAdam", {"lr": 2e-3}, False),
    "adadelta": ("adadelta", {"lr": 1.0}, "Adadelta", {"lr": 1.0}, False),
    "adamax": ("adamax", {"lr": 2e-3}, "Adamax", {"lr": 2e-3}, False),
    "asgd": ("asgd", {"lr": 1e-2}, "ASGD", {"lr": 1e-2}, False),
    "rprop": ("rprop", {"lr": 1e-2}, "Rprop", {"lr": 1e-2}, False),
    # drop-ins torch.optim lacks (their fo.adapters class name; no steady-state torch paths)
    "lars": ("lars", {"lr": 0.1, "weight_decay": 1e-4}, "LARS", {"lr": 0.1, "weight_decay": 1e-4}, False),
    "lamb": ("lamb", {"lr": 1e-3}, "Lamb", {"lr": 1e-3}, False),
    "novograd": ("novograd", {"lr": 1e-3}, "Novograd", {"lr": 1e-3}, False),
    "prodigy": ("prodigy", {"weight_decay": 0.01}, "Prodigy", {"weight_decay": 0.01}, False),
    "dadapt-adam": (
        "dadapt_adam",
        {"weight_decay": 0.01, "decouple": True},
        "DAdaptAdam",
        {"weight_decay": 0.01, "decouple": True},
        False,
    ),
}
DEFAULT_ALGOS = "adam,adamw,sgd,adagrad"


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _tensors(set_name: str, seed: int) -> list[Any]:
    import torch

    n, shape = SETS[set_name]
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) for _ in range(n)]


def child(
    algo: str, set_name: str, mode: str, steady: bool, repeats: int, steps: int, threads: int, group_size: int
) -> dict:
    import torch

    import functional_optim as fo

    torch.set_num_threads(threads)
    fo_name, fo_kwargs, torch_name, torch_kwargs, has_fused = ALGOS[algo]
    steady = steady and hasattr(torch.optim, torch_name)  # LARS, Lamb, Prodigy...: first calls only
    tx = getattr(fo, fo_name)(**fo_kwargs)
    params, grads = _tensors(set_name, 0), _tensors(set_name, 1)
    if mode == "dropin":
        return _dropin_first_step(fo, torch, torch_name, torch_kwargs, params, grads)
    state = tx.init(params)
    step = fo.compile_step(tx, elementwise=(mode == "elementwise"), group_size=group_size)
    cpu, wall = _cpu_seconds(), time.perf_counter()
    step(params, grads, state)
    out: dict[str, Any] = {
        "first_call_s": time.perf_counter() - wall,
        "first_call_cpu_s": _cpu_seconds() - cpu,
        "compilations": step.compilations,
        "torch_kernel": step.uses_torch_kernel,
        # the step module saved by an earlier process was loaded (no torch.compile)
        "loaded_saved_module": any(getattr(v, "loaded", False) for v in step._variants.values()),
    }
    if steady:
        out["steady"] = _steady(
            torch, params, grads, state, step, torch_name, torch_kwargs, has_fused, repeats, steps
        )
    return out


def _dropin_first_step(fo: Any, torch: Any, name: str, kwargs: dict, params: list, grads: list) -> dict:
    """The first ``step()`` of the drop-in ``fo.adapters.<name>`` with ``fused=True`` in its
    param group (its state created, its step compiled or loaded, and run)."""
    ps = [torch.nn.Parameter(p) for p in params]
    for p, g in zip(ps, grads, strict=True):
        p.grad = g
    opt = getattr(fo.adapters, name)([{"params": ps, "fused": True}], **kwargs)
    cpu, wall = _cpu_seconds(), time.perf_counter()
    opt.step()
    step = opt._fo_compiled[0].step
    return {
        "first_call_s": time.perf_counter() - wall,
        "first_call_cpu_s": _cpu_seconds() - cpu,
        "compilations": step.compilations,
        "torch_kernel": step.uses_torch_kernel,
        "loaded_saved_module": any(getattr(v, "loaded", False) for v in step._variants.values()),
    }


def _steady(
    torch: Any, params, grads, state, step, torch_name, torch_kwargs, has_fused, repeats, steps
) -> dict:
    paths: dict[str, Callable[[], None]] = {}
    for flag in ["foreach", "fused"] if has_fused else ["foreach"]:
        ps = [p.clone().requires_grad_() for p in params]
        for p, g in zip(ps, grads, strict=True):
            p.grad = g
        opt = getattr(torch.optim, torch_name)(ps, **torch_kwargs, **{flag: True})
        paths[f"torch_{flag}"] = opt.step
    paths["compiled"] = lambda: step(params, grads, state)
    for fn in paths.values():  # warm up (lazy state, first kernels)
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t) / steps)
    res: dict[str, Any] = {f"{k}_ms": statistics.median(v) * 1e3 for k, v in times.items()}
    for base in [b for b in ("torch_fused", "torch_foreach") if b in times]:
        r = [c / b for c, b in zip(times["compiled"], times[base], strict=True)]
        res[f"compiled/{base}"] = {"median": statistics.median(r), "min": min(r), "max": max(r)}
    return res


def _run_child(args: list[str], cache_dir: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache_dir}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "avx2": "avx2" in flags,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algos", default=DEFAULT_ALGOS, help=f"comma list or 'all' ({', '.join(ALGOS)})")
    ap.add_argument("--sets", default="small,large", help="comma list of: " + ", ".join(SETS))
    ap.add_argument(
        "--mode",
        default="elementwise",
        choices=["elementwise", "whole", "dropin"],
        help="dropin: the first step() of fo.adapters.<Name> with fused=True (first calls only)",
    )
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--group-size", type=int, default=4, help="compile_step(..., group_size=) (elementwise)")
    ap.add_argument("--no-steady", action="store_true", help="first-call times only")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    ap.add_argument("--child", nargs=3, metavar=("ALGO", "SET", "STEADY"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        algo, set_name, steady = a.child
        print(
            json.dumps(
                child(algo, set_name, a.mode, steady == "1", a.repeats, a.steps, a.threads, a.group_size)
            )
        )
        return []
    algos = list(ALGOS) if a.algos == "all" else a.algos.split(",")
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, threads used {a.threads}, avx512_bf16 "
        f"{'yes' if info['avx512_bf16'] else 'no'}, AVX2 {'yes' if info['avx2'] else 'no'}, "
        f"torch {info['torch']}, "
        f"load average at start {info['load_average_at_start']}; mode {a.mode}, group_size {a.group_size}; "
        "steady state: medians of "
        f"{a.repeats} interleaved rounds of {a.steps} steps, ratio spread = lowest-highest per-round ratio"
    )
    rows = []
    header = (
        f"{'algo':8} {'set':6} {'cold s (cpu s)':>16} {'warm s (cpu s)':>16} "
        f"{'foreach ms':>10} {'fused ms':>9} "
        f"{'compiled ms':>11} {'comp/fused':>17} {'comp/foreach':>17}"
    )
    print(header)
    for algo in algos:
        for set_name in a.sets.split(","):
            with tempfile.TemporaryDirectory(prefix="inductor_cache_") as cache:
                common = ["--mode", a.mode, "--repeats", str(a.repeats), "--steps", str(a.steps)]
                common += ["--threads", str(a.threads), "--group-size", str(a.group_size)]
                cold = _run_child([algo, set_name, "0", *common], cache)
                warm = _run_child([algo, set_name, "0" if a.no_steady else "1", *common], cache)
            row = {"algo": algo, "set": set_name, "mode": a.mode, "cold": cold, "warm": warm}
            rows.append(row)
            st = warm.get("steady", {})

            def ratio(key: str, st: dict = st) -> str:
                r = st.get(key)
                return f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})" if r else "-"

            def ms(key: str, st: dict = st) -> str:
                return f"{st[key]:.2f}" if key in st else "-"

            print(
                f"{algo:8} {set_name:6} {cold['first_call_s']:7.1f} ({cold['first_call_cpu_s']:5.1f}) "
                f"{warm['first_call_s']:7.1f} ({warm['first_call_cpu_s']:5.1f}) {ms('torch_foreach_ms'):>10} "
                f"{ms('torch_fused_ms'):>9} {ms('compiled_ms'):>11} {ratio('compiled/torch_fused'):>17} "
                f"{ratio('compiled/torch_foreach'):>17}",
                flush=True,
            )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": info, "threads": a.threads, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
