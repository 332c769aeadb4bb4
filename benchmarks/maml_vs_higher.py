"""Time and memory of one MAML outer step (5 unrolled Adam inner steps) with functional_optim
against ``higher`` 0.2.1 on the same model, tasks and numbers.

Model: Finn et al.'s sinusoid MLP 1-40-40-1 (ReLU); a meta-batch of ``--tasks`` 10-shot
sinusoid tasks (``examples/maml_sinusoid.py``); inner loop: 5 full-batch Adam steps,
lr 0.01, second order; outer step: the meta-gradient of the mean query loss and an Adam
update of the initialization. Variants:

* ``higher``: ``higher.innerloop_ctx(model, torch.optim.Adam)``, a Python loop over tasks.
* ``fo autograd``: ``fo.unroll(fo.adam, ..., inner_grad="autograd")``, loop over tasks, ``.backward()``.
* ``fo torch.func``: ``torch.func.grad`` of the same (inner ``torch.func.grad``), loop over tasks.
* ``fo torch.func+vmap``: the tasks batched with ``torch.func.vmap`` (one call).

Time: median wall and CPU time of ``--repeats`` outer steps after 3 warm-up steps, in this
process, the variants interleaved round-robin (single thread by default: the model is tiny;
"vs first" compares CPU times, which other processes' load does not inflate). Memory, measured two ways:

* ``saved MiB``: bytes autograd saves for the backward of the meta-loss
  (:class:`functional_optim.SavedTensorsMeter`, each storage once): what an unrolled graph
  costs, exact and allocator-independent; it is unavailable under ``torch.func`` transforms
  (they refuse saved-tensor hooks): ``-``.
* ``peak RSS MiB``: for each variant a fresh subprocess runs 2 warm-up steps, then the outer
  steps, and reports the peak resident size during them (``VmHWM``, reset through
  ``/proc/self/clear_refs``) minus the resident size just before them: includes
  allocator slack and temporaries, comparable between variants, noisy at the ~1 MiB level
  (for this tiny model, after warm-up, the allocator reuses freed memory and the steady-state
  growth is below 1 MiB: the saved bytes are then the telling number).

All variants' meta-gradients are compared with ``higher``'s (max abs difference, float32).

Run: ``python benchmarks/maml_vs_higher.py`` (``pip install higher==0.2.1``: the ``bench`` extra).
Writes ``benchmarks/results/maml_vs_higher.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples"))


import functional_optim as fo  # noqa: E402
from examples.maml_sinusoid import SHOTS, sample_points, sample_tasks  # noqa: E402

INNER_STEPS = 5
INNER_LR = 0.01
INNER_OPT = "adam"  # sgd_agreement() switches it to "sgd" to check that both libraries agree exactly
VARIANTS = ["higher", "fo autograd", "fo torch.func", "fo torch.func+vmap"]


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))


def make_batch(tasks: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    amplitude, phase = sample_tasks(tasks, gen)
    x, y = sample_points(amplitude, phase, 2 * SHOTS, gen)
    return x[:, :SHOTS], y[:, :SHOTS], x[:, SHOTS:], y[:, SHOTS:]


def meta_gradient_fn(variant: str, model: nn.Module) -> Callable[[tuple], list[torch.Tensor]]:
    """A function ``batch -> meta-gradients`` (one per model parameter, in order)."""
    names = [n for n, _ in model.named_parameters()]
    template = model

    def mse(p, x, y):
        return ((functional_call(template, p, (x,)) - y) ** 2).mean()

    if variant == "higher":
        import higher

        inner_cls = torch.optim.Adam if INNER_OPT == "adam" else torch.optim.SGD
        inner_opt = inner_cls(model.parameters(), lr=INNER_LR)

        def run(batch):
            xs, ys, xq, yq = batch
            model.zero_grad(set_to_none=True)
            for t in range(xs.shape[0]):
                with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
                    for _ in range(INNER_STEPS):
                        diffopt.step(((fmodel(xs[t]) - ys[t]) ** 2).mean())
                    (((fmodel(xq[t]) - yq[t]) ** 2).mean() / xs.shape[0]).backward()
            return [p.grad for p in model.parameters()]

        return run

    def task_loss(theta, xs, ys, xq, yq, inner_grad="func"):
        out = fo.unroll(
            fo.adam(lr=INNER_LR) if INNER_OPT == "adam" else fo.sgd(lr=INNER_LR),
            mse,
            theta,
            batches=[(xs, ys)] * INNER_STEPS,
            inner_grad=inner_grad,
        )
        return mse(out.params, xq, yq)

    if variant == "fo autograd":
        params = dict(model.named_parameters())

        def run(batch):
            # one backward per task, accumulating, exactly like the higher variant
            model.zero_grad(set_to_none=True)
            for t in range(batch[0].shape[0]):
                (task_loss(params, *(b[t] for b in batch), "autograd") / batch[0].shape[0]).backward()
            return [p.grad for p in model.parameters()]

        return run

    params = {k: v.detach() for k, v in model.named_parameters()}
    if variant == "fo torch.func":

        def meta(theta, batch):
            return (
                sum(task_loss(theta, *(b[t] for b in batch)) for t in range(batch[0].shape[0]))
                / batch[0].shape[0]
            )

    elif variant == "fo torch.func+vmap":

        def meta(theta, batch):
            return torch.func.vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(theta, *batch).mean()

    else:
        raise ValueError(f"unknown variant {variant!r}")
    grad = torch.func.grad(meta)

    def run(batch):
        g = grad(params, batch)
        return [g[n] for n in names]

    return run


def outer_step_fn(variant: str, tasks: int) -> tuple[Callable[[], None], Callable[[], list[torch.Tensor]]]:
    """``step()`` = meta-gradient + outer Adam update (in place on the model, as in training)."""
    model = make_model()
    batch = make_batch(tasks)
    meta_grad = meta_gradient_fn(variant, model)
    outer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        grads = meta_grad(batch)
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g
        outer.step()

    def first_grads():
        return [g.detach().clone() for g in meta_gradient_fn(variant, make_model())(batch)]

    return step, first_grads


def sgd_agreement(tasks: int) -> float:
    """Max |difference| of the meta-gradients of higher and functional_optim with an SGD inner
    loop. (With Adam they differ by design: higher's ``DifferentiableAdam`` computes
    ``lr·sqrt(1-β2^t)/(1-β1^t) · m/(sqrt(v) + eps)``, i.e. it puts ``eps`` outside the bias
    correction, while torch.optim and functional_optim use
    ``lr/(1-β1^t) · m/(sqrt(v)/sqrt(1-β2^t) + eps)``.)"""
    global INNER_OPT
    INNER_OPT = "sgd"
    try:
        _, first = outer_step_fn("higher", tasks)
        _, ours = outer_step_fn("fo torch.func+vmap", tasks)
        return max((a - b).abs().max().item() for a, b in zip(first(), ours(), strict=True))
    finally:
        INNER_OPT = "adam"


def saved_bytes(variant: str, tasks: int) -> int | None:
    """Bytes autograd saves for the meta-loss' backward (plain-autograd variants only)."""
    if variant not in ("higher", "fo autograd"):
        return None
    model = make_model()
    batch = make_batch(tasks)
    with fo.SavedTensorsMeter() as meter:
        meta_gradient_fn(variant, model)(batch)
        # the backward has run inside: the meter's peak is the graph at its largest
    return meter.peak_bytes


def measure_rss(variant: str, tasks: int, repeats: int) -> float:
    """Peak RSS increase (MiB) of warm-up + outer steps, in a fresh subprocess."""
    code = (
        "import resource, sys, torch; torch.set_num_threads(1); "
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import maml_vs_higher as b; "
        f"step, _ = b.outer_step_fn({variant!r}, {tasks}); step(); step(); "
        "import _rss; before = _rss.current_rss_kib(); "
        f"[step() for _ in range({repeats})]; "
        "print((_rss.peak_rss_kib() - before) / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "maml_vs_higher.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import higher

        variants = VARIANTS
        higher_version = higher.__version__ if hasattr(higher, "__version__") else "0.2.1"
    except ImportError:
        print("higher is not installed (pip install higher==0.2.1): benchmarking functional_optim only")
        variants = VARIANTS[1:]
        higher_version = None

    reference = None
    rows = []
    steps, diffs = {}, {}
    for variant in variants:
        step, first_grads = outer_step_fn(variant, args.tasks)
        grads = first_grads()
        if reference is None:
            reference = grads
        diffs[variant] = max((a - b).abs().max().item() for a, b in zip(grads, reference, strict=True))
        for _ in range(3):
            step()
        steps[variant] = step
    # Round-robin over the variants, so that load on the machine affects them alike; wall time
    # and this process' CPU time (single-threaded: CPU time is robust to other processes' load).
    wall: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for variant in variants:
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[variant]()
            wall[variant].append(time.perf_counter() - start)
            cpu[variant].append(time.process_time() - start_cpu)
    for variant in variants:
        saved = saved_bytes(variant, args.tasks)
        rss = measure_rss(variant, args.tasks, args.repeats)
        rows.append(
            {
                "variant": variant,
                "median_ms": 1e3 * statistics.median(wall[variant]),
                "min_ms": 1e3 * min(wall[variant]),
                "median_cpu_ms": 1e3 * statistics.median(cpu[variant]),
                "saved_mib": None if saved is None else saved / 2**20,
                "peak_rss_increase_mib": rss,
                "max_abs_diff_vs_first": diffs[variant],
            }
        )
        print(f"  {variant}: {rows[-1]['median_ms']:.1f} ms", flush=True)

    base = rows[0]["median_cpu_ms"]
    print(
        f"\nMAML outer step: {args.tasks} tasks x {INNER_STEPS} Adam steps (2nd order), MLP 1-40-40-1, "
        f"{args.threads} thread(s), torch {torch.__version__}"
    )
    header = (
        f"{'variant':<22}{'wall ms':>9}{'min ms':>9}{'CPU ms':>9}{'vs first':>9}"
        f"{'saved MiB':>11}{'peak RSS MiB':>14}{'|dg|':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        saved = "-" if r["saved_mib"] is None else f"{r['saved_mib']:.2f}"
        print(
            f"{r['variant']:<22}{r['median_ms']:>9.1f}{r['min_ms']:>9.1f}{r['median_cpu_ms']:>9.1f}"
            f"{r['median_cpu_ms'] / base:>8.2f}x"
            f"{saved:>11}{r['peak_rss_increase_mib']:>14.1f}{r['max_abs_diff_vs_first']:>10.1e}"
        )
    sgd_diff = sgd_agreement(args.tasks) if "higher" in variants else None
    if sgd_diff is not None:
        print(
            f"|dg| = max abs difference of the meta-gradient from the first row. With an SGD inner loop "
            f"higher and functional_optim agree to {sgd_diff:.1e}; with Adam they differ because higher's "
            "DifferentiableAdam places eps outside the bias correction (torch.optim does not)."
        )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "config": {
                    "tasks": args.tasks,
                    "inner_steps": INNER_STEPS,
                    "inner_lr": INNER_LR,
                    "shots": SHOTS,
                    "model": "MLP 1-40-40-1 ReLU",
                    "repeats": args.repeats,
                    "threads": args.threads,
                },
                "environment": {
                    "torch": torch.__version__,
                    "higher": higher_version,
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                },
                "results": rows,
                "sgd_inner_loop_max_abs_diff_higher_vs_fo": sgd_diff,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
