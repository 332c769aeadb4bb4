"""Memory of differentiating through K unrolled optimizer steps, with and without truncation.

An MLP 32-256-256-1 (batch 256, float32) is trained for K steps of ``fo.adam`` with
:func:`functional_optim.unroll`; the meta-loss is the validation loss; its gradient w.r.t.
the initial parameters and the learning rate is taken. For K = 1, 5, 10, 20 (and with
``truncate=5``), two honest measurements:

* ``saved MiB`` (exact): the bytes autograd keeps for the backward pass at the end of the
  forward, counted with :class:`functional_optim.SavedTensorsMeter` (``saved_tensors_hooks``;
  each storage once; storages un-counted when freed). This is the memory that unrolling
  costs, independent of the allocator. Inner gradients use ``inner_grad="autograd"`` (the
  same numbers as ``torch.func``, which refuses saved-tensor hooks).
* ``peak RSS MiB``: in a fresh subprocess, after a K = 1 warm-up, the peak resident size
  (``VmHWM``, reset through ``/proc/self/clear_refs``) during the meta-gradient minus the
  resident size before it, for the ``torch.func.grad`` path (what a user of ``torch.func`` pays,
  including temporaries and allocator slack; noisy at the ~1 MiB level).

Expected: linear in K (a constant cost per step: each step saves its activations, the
inner-gradient graph and the optimizer's intermediate tensors), and constant in K beyond the
truncation window with ``truncate=T``.

Run: ``python benchmarks/unroll_memory.py``; writes ``benchmarks/results/unroll_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


import functional_optim as fo  # noqa: E402

KS = (1, 5, 10, 20)


def problem(seed: int = 0, width: int = 256, batch: int = 256):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 32, generator=gen)
    y = torch.randn(batch, 1, generator=gen)
    params = {
        "w1": torch.randn(32, width, generator=gen) / 32**0.5,
        "b1": torch.zeros(width),
        "w2": torch.randn(width, width, generator=gen) / width**0.5,
        "b2": torch.zeros(width),
        "w3": torch.randn(width, 1, generator=gen) / width**0.5,
        "b3": torch.zeros(1),
    }

    def loss(p, x, y):
        h = torch.tanh(x @ p["w1"] + p["b1"])
        h = torch.tanh(h @ p["w2"] + p["b2"])
        return ((h @ p["w3"] + p["b3"] - y) ** 2).mean()

    return params, loss, x, y


def meta_loss(params, lr, k: int, truncate: int | None, inner_grad: str):
    _, loss, x, y = problem()
    out = fo.unroll(
        fo.adam(lr=lr), loss, params, batches=[(x, y)] * k, truncate=truncate, inner_grad=inner_grad
    )
    return loss(out.params, x, y)


def saved_mib(k: int, truncate: int | None) -> float:
    params, *_ = problem()
    params = {n: p.requires_grad_(True) for n, p in params.items()}
    lr = torch.tensor(1e-3, requires_grad=True)
    with fo.SavedTensorsMeter() as meter:
        value = meta_loss(params, lr, k, truncate, "autograd")
    kept = meter.bytes
    value.backward()
    return kept / 2**20


def rss_mib(k: int, truncate: int | None) -> float:
    code = (
        "import resource, sys, torch; torch.set_num_threads(1); "
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import unroll_memory as b; "
        "params, *_ = b.problem(); lr = torch.tensor(1e-3); "
        "torch.func.grad(lambda p, lr: b.meta_loss(p, lr, 1, None, 'func'), argnums=(0, 1))(params, lr); "
        "import _rss; before = _rss.current_rss_kib(); "
        f"torch.func.grad(lambda p, lr: b.meta_loss(p, lr, {k}, {truncate}, 'func'), argnums=(0, 1))"
        "(params, lr); "
        "print((_rss.peak_rss_kib() - before) / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truncate", type=int, default=5)
    parser.add_argument("--no-rss", action="store_true", help="skip the subprocess RSS measurement")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "unroll_memory.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for k in KS:
        row = {
            "K": k,
            "saved_mib": saved_mib(k, None),
            f"saved_mib_truncate_{args.truncate}": saved_mib(k, args.truncate),
        }
        if not args.no_rss:
            row["peak_rss_mib"] = rss_mib(k, None)
            row[f"peak_rss_mib_truncate_{args.truncate}"] = rss_mib(k, args.truncate)
        rows.append(row)
        print(f"  K={k}: {row}", flush=True)
    # Linear fit of the saved bytes: cost per step and intercept.
    ks = torch.tensor([r["K"] for r in rows], dtype=torch.float64)
    saved = torch.tensor([r["saved_mib"] for r in rows], dtype=torch.float64)
    design = torch.stack([ks, torch.ones_like(ks)], 1)
    slope, intercept = torch.linalg.lstsq(design, saved[:, None]).solution.flatten().tolist()
    residual = (design @ torch.tensor([[slope], [intercept]], dtype=torch.float64)).flatten() - saved
    t = args.truncate
    print(
        "\nMemory of the meta-gradient through K unrolled fo.adam steps "
        "(MLP 32-256-256-1, batch 256, float32)"
    )
    header = f"{'K':>4}{'saved MiB':>12}{f'trunc={t}':>12}"
    if not args.no_rss:
        header += f"{'peak RSS MiB':>15}{f'trunc={t}':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        line = f"{r['K']:>4}{r['saved_mib']:>12.2f}{r[f'saved_mib_truncate_{t}']:>12.2f}"
        if not args.no_rss:
            line += f"{r['peak_rss_mib']:>15.1f}{r[f'peak_rss_mib_truncate_{t}']:>12.1f}"
        print(line)
    print(
        f"linear fit of saved MiB: {slope:.3f} MiB/step + {intercept:.3f} MiB "
        f"(max residual {residual.abs().max().item():.2e} MiB)"
    )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "config": {"model": "MLP 32-256-256-1", "batch": 256, "dtype": "float32", "truncate": t},
                "torch": torch.__version__,
                "rows": rows,
                "saved_mib_per_step": slope,
                "saved_mib_intercept": intercept,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
