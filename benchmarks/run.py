"""Optimizer step cost: ``functional_optim`` against every ``torch.optim`` implementation.

Run::

    python benchmarks/run.py                 # default algorithms, all sizes (GPT-2 shapes included)
    python benchmarks/run.py --quick         # a few minutes: adam/adamw/sgd/adagrad, small + tiny
    python benchmarks/run.py --algos adam,sgd --sizes tiny --repeats 21 --no-compile

It prints one table per parameter set; ``--json PATH`` also writes the results there (nothing is
written without it, so the committed ``benchmarks/results/*.json`` change only when asked).

**What is timed.** Per algorithm and per parameter set, these paths each get their own copy of
the parameters and state (the gradients are shared; nobody writes into them):

* ``torch_forloop`` / ``torch_foreach`` / ``torch_fused``: ``torch.optim.<Name>(..., foreach=False)``,
  ``foreach=True`` and ``fused=True`` (the last only where torch has it for the device);
* ``functional``: the pure API, ``updates, state = tx.update(grads, state, params)`` followed by
  ``params = fo.apply_updates(params, updates)`` -- new tensors every step, inputs untouched;
* ``adapter``: ``functional_optim.adapters.<Name>(...).step()`` (drop-in class, default settings);
* ``compiled``: ``fo.compile_step(tx, elementwise=True)``, the functional step (``update`` +
  ``apply_updates``) written into the parameter and state buffers: ``torch.optim``'s fused kernel
  where the transform is exactly that algorithm (Adam, AdamW, SGD, Adagrad), else compiled by
  ``torch.compile`` (Inductor) once for ``group_size`` flattened tensors;
* ``adapter_fused``: the same drop-in with ``fused=True`` in its param group (with
  ``compiled``): the group's step run by ``fo.compile_step(tx, elementwise=True)`` inside the
  adapter's all-or-nothing step, the learning rate an input of the compiled code;
* peers, when installed (``--peers``, default on): ``heavyball`` (its ``AdamW``, ``SGD``,
  ``NAdam``; ``heavyball.utils.compile_mode = None``, i.e. not compiled), ``pytorch_optimizer``
  (its own implementations only: ``AdaDelta``, ``AdaMax``, ``RAdam``, ``ASGD``) and ``torchopt``
  (its ``torch.optim``-style classes). Their numerics are their own (e.g. HeavyBall's
  defaults differ from torch's); the columns compare step cost only.

**Compile time** (``--compile-times``): for each algorithm on the first set named by
``--compile-sizes``, two new processes run ``benchmarks/compile_time.py``'s first call of
``fo.compile_step(tx, elementwise=True)`` on that set: *cold* with an empty
``TORCHINDUCTOR_CACHE_DIR``, *warm* on the same directory afterwards; wall seconds and CPU
seconds (the process and its compiler subprocesses) are reported. With torch's fused kernel
there is nothing to compile (≈0 s).

Each path is warmed up (compilation happens there and is not timed). Then, for every repeat,
the paths run one after another (interleaved, so that a change in machine load hits all of
them alike), each for ``--steps`` steps; the figure is the median over repeats of the time per
step, and every ratio is the ratio of two medians from the same run. Under load (a shared
machine) medians of interleaved repeats are what keeps the ratios meaningful; absolute
milliseconds are only comparable within one run.

**Extra peak memory.** One extra step of each path runs under
``torch.profiler.profile(profile_memory=True)``, which records every allocation and free of the
CPU (and CUDA) caching allocator with its size. The running sum of those events, taken in time
order, starts at 0 before the step; its maximum is the *extra peak memory of the step*: what
the step allocates on top of what already existed (parameters, gradients, existing state).
For the pure ``functional`` path that includes the new parameters and the new state it returns
(the old ones are still referenced by the caller while the step runs) -- the price of purity,
reported as it is. State created lazily at the first step is not counted (the profiled step is
not the first).

**Parameter sets.** ``small``: 100 tensors of 10,000 elements (1M parameters). ``medium``: 80
tensors of 50,000 (4M; 200 KB each, between a CPU chunk's share and a chunk). ``large``: 32
tensors of 512 x 512 (8.4M parameters). ``gpt2``: the
parameter shapes of GPT-2 small (token and position embeddings, 12 blocks of LayerNorm, qkv,
attention projection, MLP, final LayerNorm: 124.4M parameters, 148 tensors); ``--gpt2-layers``
keeps fewer blocks (the output says so) and ``--gpt2-steps/--gpt2-repeats`` set its (smaller)
number of steps. ``tiny``: 1000 tensors of 64 elements (overhead-bound: Python and dispatch).

**Threads.** ``--threads 1`` is the default: on a shared or loaded machine the OpenMP pool of a
multi-threaded run is pathological (a barrier per kernel; ``torch.optim.Adam(foreach=False)`` on
1M parameters measured 1.2 s per step with 2 threads against 11 ms with 1, on a 2-core machine with
other jobs running), and one thread measures what this benchmark is about: per-step work and
overhead. ``--threads 0`` keeps torch's default. The compiled path runs only on the sets named
by ``--compile-sizes`` (Inductor takes minutes to compile 1000 separate tensors on a small CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import importlib
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the profiler used for peak memory logs two lines per profiled step through kineto: silence it
# (must be set before torch loads kineto)
os.environ.setdefault("KINETO_LOG_LEVEL", "99")
os.environ.setdefault("KINETO_USE_DAEMON", "0")

import torch
from torch.profiler import ProfilerActivity, profile

import functional_optim as fo

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the columns, in report order (report.py imports no torch)
from report import PATHS
from report import PEERS as PEER_PATHS

# algorithm -> (torch / adapter class name, functional alias, hyperparameters)
ALGORITHMS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "adam": ("Adam", "adam", {"lr": 1e-3}),
    "adamw": ("AdamW", "adamw", {"lr": 1e-3, "weight_decay": 1e-2}),
    "sgd": ("SGD", "sgd", {"lr": 1e-2, "momentum": 0.9}),
    "adagrad": ("Adagrad", "adagrad", {"lr": 1e-2}),
    "rmsprop": ("RMSprop", "rmsprop", {"lr": 1e-2}),
    "adadelta": ("Adadelta", "adadelta", {"lr": 1.0}),
    "adamax": ("Adamax", "adamax", {"lr": 2e-3}),
    "nadam": ("NAdam", "nadam", {"lr": 2e-3}),
    "radam": ("RAdam", "radam", {"lr": 1e-3}),
    "asgd": ("ASGD", "asgd", {"lr": 1e-2}),
    "rprop": ("Rprop", "rprop", {"lr": 1e-2}),
}
DEFAULT_ALGOS = list(ALGORITHMS)  # every torch.optim algorithm with a foreach implementation
FUSED_TARGET_ALGOS = ("adam", "adamw", "sgd", "adagrad")


def _peer_factories() -> dict[str, dict[str, Callable[[list, dict], Any]]]:
    """peer -> algorithm -> ``factory(params, torch hyperparameters)`` for the installed peers."""
    out: dict[str, dict[str, Callable[[list, dict], Any]]] = {}
    try:
        import heavyball
        import heavyball.utils

        heavyball.utils.compile_mode = None  # type: ignore[assignment]  # eager: no minutes of compiling

        def hb_adam(p: list, hp: dict) -> Any:
            return heavyball.AdamW(p, lr=hp["lr"], betas=(0.9, 0.999), weight_decay=hp.get("weight_decay", 0))

        out["heavyball"] = {
            "adam": hb_adam,
            "adamw": hb_adam,
            "sgd": lambda p, hp: heavyball.SGD(p, lr=hp["lr"], beta=hp["momentum"]),
            "nadam": lambda p, hp: heavyball.NAdam(p, lr=hp["lr"]),
        }
    except Exception:  # not installed, or an API this script does not know
        pass
    try:
        import pytorch_optimizer as po

        table = {}
        for algo, name in (
            ("adadelta", "adadelta"),
            ("adamax", "adamax"),
            ("radam", "radam"),
            ("asgd", "asgd"),
        ):
            cls = po.load_optimizer(name)
            if not cls.__module__.startswith("torch."):  # its own implementation, not torch's class
                table[algo] = lambda p, hp, cls=cls: cls(p, **hp)
        out["pytorch_optimizer"] = table
    except Exception:
        pass
    try:
        import torchopt

        names = {
            "adam": "Adam",
            "adamw": "AdamW",
            "sgd": "SGD",
            "rmsprop": "RMSProp",
            "adagrad": "AdaGrad",
            "adadelta": "AdaDelta",
            "adamax": "AdaMax",
            "radam": "RAdam",
        }
        classes = {algo: getattr(torchopt, cls_name) for algo, cls_name in names.items()}
        out["torchopt"] = {algo: (lambda p, hp, cls=cls: cls(p, **hp)) for algo, cls in classes.items()}
    except Exception:
        pass
    return out


TARGETS = {  # the bounds the summary checks (issue "Faster than torch's fused path": 1.0x non-fused)
    "adapter_vs_torch_nonfused": 1.0,
    "compiled_vs_torch_fused": 1.0,
    "tiny_adapter_vs_torch_foreach": 1.5,
}


# ----------------------------------------------------------------------------- parameter sets


def gpt2_shapes(layers: int = 12) -> list[tuple[int, ...]]:
    """GPT-2 small: vocab 50257, context 1024, width 768, ``layers`` blocks (12 in the real model)."""
    d, v, ctx = 768, 50257, 1024
    shapes: list[tuple[int, ...]] = [(v, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,)]  # ln_1, attn.c_attn, attn.c_proj
        shapes += [(d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]  # ln_2, mlp.c_fc, mlp.c_proj
    shapes += [(d,), (d,)]  # ln_f
    return shapes


def size_shapes(size: str, gpt2_layers: int) -> list[tuple[int, ...]]:
    if size == "small":
        return [(10_000,)] * 100
    if size == "medium":
        return [(50_000,)] * 80  # 200 KB tensors: between a chunk's share and a chunk
    if size == "tiny":
        return [(64,)] * 1000
    if size == "large":
        return [(512, 512)] * 32
    if size == "gpt2":
        return gpt2_shapes(gpt2_layers)
    raise ValueError(f"size: unknown parameter set {size!r} (choose from small, medium, large, gpt2, tiny)")


def make_tensors(shapes: list[tuple[int, ...]], device: str, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(s, generator=gen) * 0.02).to(device) for s in shapes]


# ----------------------------------------------------------------------------- the paths


def _adapter_class(name: str) -> type | None:
    try:
        module = importlib.import_module("functional_optim.adapters")
    except Exception:
        return None
    return getattr(module, name, None)


def build_paths(
    algo: str,
    base: list[torch.Tensor],
    grads: list[torch.Tensor],
    device: str,
    *,
    compile_: bool,
    peers: bool = False,
) -> dict[str, Callable[[], None]]:
    """One zero-argument ``step`` callable per available path (each with its own params/state)."""
    cls_name, alias, hp = ALGORITHMS[algo]
    torch_cls = getattr(torch.optim, cls_name)
    paths: dict[str, Callable[[], None]] = {}

    def torch_path(**flags: Any) -> Callable[[], None] | None:
        params = [torch.nn.Parameter(t.clone()) for t in base]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        try:
            opt = torch_cls(params, **hp, **flags)
            opt.step()  # fused may only fail at the first step
        except (RuntimeError, TypeError, ValueError):
            return None
        return opt.step

    for label, flags in (
        ("torch_forloop", {"foreach": False}),
        ("torch_foreach", {"foreach": True}),
        ("torch_fused", {"fused": True}),
    ):
        fn = torch_path(**flags)
        if fn is not None:
            paths[label] = fn

    tx = getattr(fo, alias)(**hp)
    box: dict[str, Any] = {"params": [t.clone() for t in base]}
    box["state"] = tx.init(box["params"])

    def functional_step() -> None:
        updates, box["state"] = tx.update(grads, box["state"], box["params"])
        box["params"] = fo.apply_updates(box["params"], updates)

    paths["functional"] = functional_step

    adapter_cls = _adapter_class(cls_name)
    if adapter_cls is not None:
        params = [torch.nn.Parameter(t.clone()) for t in base]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        paths["adapter"] = adapter_cls(params, **hp).step

    if compile_:
        paths["compiled"] = compiled_path(tx, base, grads)
        if adapter_cls is not None and getattr(adapter_cls, "elementwise", False):
            params = [torch.nn.Parameter(t.clone()) for t in base]
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            paths["adapter_fused"] = adapter_cls([{"params": params, "fused": True}], **hp).step
    if peers:
        for peer, table in _peer_factories().items():
            factory = table.get(algo)
            if factory is None:
                continue
            params = [torch.nn.Parameter(t.clone()) for t in base]
            own_grads = [g.clone() for g in grads]  # a peer may consume or rewrite its gradients

            def peer_step(params: list = params, own_grads: list = own_grads, opt: Any = None) -> None:
                for p, g in zip(params, own_grads, strict=True):
                    p.grad = g  # HeavyBall sets p.grad = None after its step
                opt.step()

            try:
                opt = factory(params, dict(hp))
                peer_step(opt=opt)
            except Exception as err:  # a peer that cannot run this configuration: no column
                print(f"  {peer}/{algo} skipped: {type(err).__name__}: {err}", file=sys.stderr)
                continue
            paths[peer] = functools.partial(peer_step, opt=opt)
    return paths


def compiled_path(tx: fo.GradientTransformation, base: list[torch.Tensor], grads: list[torch.Tensor]):
    """``fo.compile_step(tx)``: ``update`` + ``apply_updates`` as one ``torch.compile`` d function
    that writes the new parameters and state into their buffers (Dynamo's per-call guards replaced
    by the library's own cheaper checks; see ``functional_optim/compiled.py``)."""
    params = [t.clone() for t in base]
    state = tx.init(params)
    step = fo.compile_step(tx, elementwise=True)

    def run() -> None:
        step(params, grads, state)

    return run


# ----------------------------------------------------------------------------- measurements


def extra_peak_bytes(step: Callable[[], None]) -> int:
    """Peak of the running sum of allocator events during one ``step`` (see the module docstring)."""
    gc.collect()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, profile_memory=True) as prof:
        step()
    events = [
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    ]
    events.sort(key=lambda e: e[0])
    return max(itertools.accumulate((n for _, n in events), initial=0))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_paths(
    paths: dict[str, Callable[[], None]], steps: int, repeats: int, warmup: int, device: str
) -> dict[str, list[float]]:
    """Interleaved timing: per repeat, every path runs ``steps`` steps; seconds per step."""
    for fn in paths.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in paths}
    order = list(paths)
    for r in range(repeats):
        # rotate the order so that no path always runs right after the same neighbour
        k = r % len(order)
        for name in order[k:] + order[:k]:
            fn = paths[name]
            gc.collect()
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) / steps)
    return times


def run_case(
    algo: str, size: str, args: argparse.Namespace, device: str
) -> tuple[dict[str, dict[str, float]], int]:
    shapes = size_shapes(size, args.gpt2_layers)
    base = make_tensors(shapes, device, seed=0)
    grads = make_tensors(shapes, device, seed=1)
    n_params = sum(t.numel() for t in base)
    compile_ = args.compile and size in [c.strip() for c in args.compile_sizes.split(",")]
    with torch.no_grad():
        paths = build_paths(algo, base, grads, device, compile_=compile_, peers=args.peers)
    del base
    steps = args.gpt2_steps if size == "gpt2" else args.steps
    repeats = args.gpt2_repeats if size == "gpt2" else args.repeats
    with torch.no_grad():
        times = time_paths(paths, steps, repeats, args.warmup, device)
        mem = {name: extra_peak_bytes(fn) for name, fn in paths.items()}
    out = {
        name: {
            "ms_per_step": 1e3 * statistics.median(ts),
            "ms_min": 1e3 * min(ts),
            "ms_repeats": [1e3 * t for t in ts],  # in repeat order: ratios within one repeat
            "extra_peak_mib": mem[name] / 2**20,
        }
        for name, ts in times.items()
    }
    del paths
    gc.collect()
    return out, n_params


def ratios(res: dict[str, dict[str, float]]) -> dict[str, float]:
    ms = {k: v["ms_per_step"] for k, v in res.items()}
    out: dict[str, float] = {}
    nonfused = [ms[k] for k in ("torch_forloop", "torch_foreach") if k in ms]
    best = min(nonfused) if nonfused else None
    for path in ("functional", "adapter", "compiled", "adapter_fused"):
        if path in ms and best:
            out[f"{path}_vs_torch_nonfused"] = ms[path] / best
    if "adapter" in ms and best:
        spread = _spread(
            res, "adapter", min((k for k in ("torch_forloop", "torch_foreach") if k in ms), key=ms.get)
        )
        if spread is not None:
            out["adapter_vs_torch_nonfused_q1"], out["adapter_vs_torch_nonfused_q3"] = spread
        if path in ms and "torch_foreach" in ms:
            out[f"{path}_vs_torch_foreach"] = ms[path] / ms["torch_foreach"]
        if path in ms and "torch_fused" in ms:
            out[f"{path}_vs_torch_fused"] = ms[path] / ms["torch_fused"]
    for peer in PEER_PATHS:
        if peer in ms and "adapter" in ms:
            out[f"adapter_vs_{peer}"] = ms["adapter"] / ms[peer]
    if "adapter" in res and "torch_foreach" in res:
        out["adapter_mem_minus_foreach_mib"] = (
            res["adapter"]["extra_peak_mib"] - res["torch_foreach"]["extra_peak_mib"]
        )
    return out


def _spread(res: dict[str, dict[str, Any]], path: str, base: str) -> tuple[float, float] | None:
    """The quartiles of ``path``'s time over ``base``'s, each ratio taken within one repeat (the
    two ran one after the other), or ``None`` without per-repeat times (an older JSON)."""
    a, b = res[path].get("ms_repeats"), res[base].get("ms_repeats")
    if not a or not b or len(a) != len(b) or len(a) < 2:
        return None
    q1, _, q3 = statistics.quantiles([x / y for x, y in zip(a, b, strict=True)], n=4)
    return q1, q3


def check_targets(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        q = r["ratios"]
        algo, size = r["algo"], r["size"]
        if "adapter_vs_torch_nonfused" in q:
            row = _target(
                algo,
                size,
                f"adapter <= {TARGETS['adapter_vs_torch_nonfused']}x torch non-fused",
                q["adapter_vs_torch_nonfused"],
                TARGETS["adapter_vs_torch_nonfused"],
            )
            if "adapter_vs_torch_nonfused_q1" in q:  # per-repeat ratios: 25th-75th percentile
                row["spread"] = [q["adapter_vs_torch_nonfused_q1"], q["adapter_vs_torch_nonfused_q3"]]
            rows.append(row)
        if algo in FUSED_TARGET_ALGOS and "compiled_vs_torch_fused" in q:
            rows.append(
                _target(algo, size, "compiled <= 1.0x torch fused", q["compiled_vs_torch_fused"], 1.0)
            )
        if algo not in FUSED_TARGET_ALGOS and size != "tiny" and "compiled_vs_torch_foreach" in q:
            rows.append(
                _target(algo, size, "compiled <= 0.5x torch foreach", q["compiled_vs_torch_foreach"], 0.5)
            )
        ct = r.get("compile_times")
        if ct:
            rows.append(
                _target(algo, size, "first call cold <= 15 s (cpu s)", ct["cold"]["first_call_cpu_s"], 15)
            )
            rows.append(
                _target(algo, size, "first call warm <= 2 s (cpu s)", ct["warm"]["first_call_cpu_s"], 2)
            )
        if size == "tiny" and "adapter_vs_torch_foreach" in q:
            rows.append(
                _target(algo, size, "tiny: adapter <= 1.5x torch foreach", q["adapter_vs_torch_foreach"], 1.5)
            )
        if "adapter_mem_minus_foreach_mib" in q:
            d = q["adapter_mem_minus_foreach_mib"]
            rows.append(
                {"algo": algo, "size": size, "target": "adapter peak mem <= torch foreach", "value": d,
                 "met": d <= 0.01}  # 0.01 MiB: a few bytes of scalar bookkeeping are not memory pressure
            )  # fmt: skip
    return rows


def compile_times(algo: str, size: str, threads: int) -> dict[str, Any] | None:
    """Cold and warm first call of ``compile_step(tx, elementwise=True)`` in new processes
    (``benchmarks/compile_time.py``'s child), or ``None`` for a set it does not know."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import compile_time

    if size not in compile_time.SETS or algo not in compile_time.ALGOS:
        return None
    args = [algo, size, "0", "--mode", "elementwise", "--threads", str(max(threads, 1))]
    with tempfile.TemporaryDirectory(prefix="inductor_cache_") as cache:
        cold = compile_time._run_child(args, cache)
        warm = compile_time._run_child(args, cache)
    return {"cold": cold, "warm": warm}


def _target(algo: str, size: str, what: str, value: float, limit: float) -> dict:
    return {"algo": algo, "size": size, "target": what, "value": value, "met": value <= limit}


# ----------------------------------------------------------------------------- reporting


def print_table(size: str, rows: list[dict], n_params: int, note: str) -> None:
    print(f"\n## {size}: {n_params / 1e6:.1f}M parameters{note}")
    print("ms/step (median) | extra peak MiB; ratios vs best torch non-fused / vs torch fused")
    shown = PATHS + tuple(p for p in PEER_PATHS if any(p in r["paths"] for r in rows))
    header = (
        f"{'algo':9s}"
        + "".join(f"{p:>22s}" for p in shown)
        + f"{'adapter/nonfused':>18s}{'compiled/fused':>16s}"
    )
    print(header)
    for r in rows:
        res, q = r["paths"], r["ratios"]
        cells = "".join(
            f"{res[p]['ms_per_step']:>12.3f} |{res[p]['extra_peak_mib']:>8.2f}" if p in res else f"{'-':>22s}"
            for p in shown
        )
        a = q.get("adapter_vs_torch_nonfused")
        c = q.get("compiled_vs_torch_fused")
        print(f"{r['algo']:9s}{cells}{(f'{a:.2f}x' if a else '-'):>18s}{(f'{c:.2f}x' if c else '-'):>16s}")
        ct = r.get("compile_times")
        if ct:
            print(
                f"{'':9s}first call of compile_step: cold {ct['cold']['first_call_s']:.1f} s "
                f"({ct['cold']['first_call_cpu_s']:.1f} cpu s), warm {ct['warm']['first_call_s']:.1f} s "
                f"({ct['warm']['first_call_cpu_s']:.1f} cpu s)"
            )


def machine_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": device,
    }
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
        info["cpu_model"] = model
    except OSError:
        pass
    with contextlib.suppress(OSError):
        info["load_average_at_start"] = os.getloadavg()
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--algos", default=",".join(DEFAULT_ALGOS), help=f"comma list or 'all' of {list(ALGORITHMS)}"
    )
    ap.add_argument(
        "--sizes", default="small,tiny,gpt2", help="comma list of small, medium, large, tiny, gpt2"
    )
    ap.add_argument("--repeats", type=int, default=11, help="interleaved repeats (median taken)")
    ap.add_argument("--steps", type=int, default=5, help="steps per repeat and path")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per path (after compilation)")
    ap.add_argument(
        "--gpt2-layers", type=int, default=12, help="transformer blocks of the gpt2 set (12 = real)"
    )
    ap.add_argument("--gpt2-steps", type=int, default=1)
    ap.add_argument("--gpt2-repeats", type=int, default=3)
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile path")
    ap.add_argument(
        "--compile-sizes",
        default="small,gpt2",
        help="sets on which the compiled path runs (compiling is slow)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads; 0 = torch's default")
    ap.add_argument(
        "--compile-times",
        action="store_true",
        help="cold/warm first call of compile_step per algorithm (new processes), first compile size",
    )
    ap.add_argument(
        "--no-peers", dest="peers", action="store_false", help="skip HeavyBall / pytorch-optimizer / TorchOpt"
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument(
        "--quick", action="store_true", help="adam,adamw,sgd,adagrad on small+tiny, 7 repeats, no compile"
    )
    ap.add_argument(
        "--json", "--out", dest="json", default=None, metavar="PATH", help="write the results as JSON to PATH"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.algos, args.sizes, args.repeats, args.compile_sizes = (
            "adam,adamw,sgd,adagrad",
            "small,tiny",
            7,
            "",
        )
    algos = (
        list(ALGORITHMS) if args.algos == "all" else [a.strip() for a in args.algos.split(",") if a.strip()]
    )
    for a in algos:
        if a not in ALGORITHMS:
            raise ValueError(f"--algos: unknown algorithm {a!r}; choose from {list(ALGORITHMS)}")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        size_shapes(s, args.gpt2_layers)  # validates
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    started = datetime.datetime.now(datetime.UTC)
    results: list[dict] = []
    for size in sizes:
        note = ""
        if size == "gpt2" and args.gpt2_layers != 12:
            note = f" (scaled down: {args.gpt2_layers} of GPT-2 small's 12 blocks)"
        rows = []
        n_params = 0
        for algo in algos:
            res, n_params = run_case(algo, size, args, device)
            row = {"algo": algo, "size": size, "n_params": n_params, "paths": res, "ratios": ratios(res)}
            compile_sizes = [c.strip() for c in args.compile_sizes.split(",") if c.strip()]
            if args.compile_times and args.compile and compile_sizes and size == compile_sizes[0]:
                row["compile_times"] = compile_times(algo, size, args.threads)
            if note:
                row["note"] = note.strip(" ()")
            rows.append(row)
            print(f"  done {size}/{algo}", file=sys.stderr, flush=True)
        print_table(size, rows, n_params, note)
        results.extend(rows)
    targets = check_targets(results)
    print("\n## targets")
    for t in targets:
        print(
            f"{'MET ' if t['met'] else 'MISS'} {t['algo']:9s}{t['size']:7s}{t['target']:40s}{t['value']:8.2f}"
            + (f"  (per repeat {t['spread'][0]:.2f}-{t['spread'][1]:.2f})" if "spread" in t else "")
        )
    report = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "date": started.isoformat(timespec="seconds"),
        "seconds": (datetime.datetime.now(datetime.UTC) - started).total_seconds(),
        "machine": machine_info(device),
        "config": {k: v for k, v in vars(args).items()},
        "results": results,
        "targets": targets,
    }
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1))
        print(f"\nwrote {out}")
    return report


if __name__ == "__main__":
    main()
