"""Step time of the matrix drop-ins against their reference implementations.

    python benchmarks/matrix_step_time.py [--repeats 15] [--threads N] [--json out.json]

Parameters: 8 matrices of 256×256 plus 8 vectors of 256 (SOAP trains all of them; NorMuon /
AdaMuon the matrices with the Muon rule and the vectors with their AdamW groups, our side the
drop-in for the matrices and ``adapters.AdamW`` for the vectors; Scion a ``Spectral`` group and a
``BiasRMS`` group). Each pair is timed in one run,
interleaved (ours, reference, ours, ...), after warm-up; the table gives the median time per step
and the ratio ours / reference. References that are not installed are listed as skipped
(official SOAP / Scion: put their ``soap.py`` / ``scion.py`` on ``PYTHONPATH``; NorMuon, AdaMuon,
Scion: ``pytorch_optimizer``). Newton–Schulz runs in bfloat16 on both sides (each code's default).

Shampoo: ``adapters.Shampoo`` against Distributed Shampoo's ``DistributedShampoo`` (put the
``distributed_shampoo`` package of github.com/facebookresearch/optimizers on ``PYTHONPATH``), both
with AdaGrad grafting and their other defaults (``max_preconditioner_dim=1024``: the matrices keep
256 × 256 blocks, the vectors get a 256 × 256 factor): ``precondition_frequency=1`` (a root per
factor every step: ``eigh``-bound); 20 (``*``: warm-up of 21 steps, past the first root; the timed
steps recompute none: the steady per-step cost); 100 with the default start (100: the timed steps are
in the grafting warm-up, where only the statistics are updated).
Kron: ``adapters.Kron`` against kron_torch's ``Kron`` (``pip install --no-deps kron-torch``),
compiled (its default: ``torch.compile`` on its kernels) and eager.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import functional_optim as fo


def _params(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mats = [torch.randn(256, 256, generator=gen) * 0.05 for _ in range(8)]
    vecs = [torch.zeros(256) for _ in range(8)]
    return [p.requires_grad_(True) for p in mats + vecs]


def _muon_groups(ps: list[torch.Tensor]) -> list[dict[str, Any]]:
    return [
        dict(params=[p for p in ps if p.ndim >= 2], use_muon=True),
        dict(params=[p for p in ps if p.ndim < 2], use_muon=False),
    ]


def _ours_muon_split(cls: type) -> Callable[[list[torch.Tensor]], Any]:
    def make(ps: list[torch.Tensor]) -> Any:
        class Both:
            def __init__(self) -> None:
                self.a = cls([p for p in ps if p.ndim >= 2], lr=0.02)
                self.b = fo.adapters.AdamW([p for p in ps if p.ndim < 2], lr=3e-4, weight_decay=0.0)

            def step(self) -> None:
                self.a.step()
                self.b.step()

        return Both()

    return make


def _pairs() -> list[tuple[str, str, tuple[str, ...], Callable, Callable]]:
    def po(name: str) -> Callable:
        return lambda ps: getattr(importlib.import_module("pytorch_optimizer"), name)(
            _muon_groups(ps), lr=0.02
        )

    def scion_groups(ps: list[torch.Tensor], key: str, spectral: Any, bias: Any) -> list[dict[str, Any]]:
        return [
            {"params": [p for p in ps if p.ndim >= 2], key: spectral},
            {"params": [p for p in ps if p.ndim < 2], key: bias},
        ]

    def po_scion(ps: list[torch.Tensor]) -> Any:
        po = importlib.import_module("pytorch_optimizer")
        return po.SCION(scion_groups(ps, "norm_type", 2, 5), lr=1e-3, momentum=0.1, constraint=True)

    def official_scion(ps: list[torch.Tensor]) -> Any:
        return importlib.import_module("scion").Scion(
            scion_groups(ps, "norm", "Spectral", "BiasRMS"), momentum=0.1
        )

    def our_scion(ps: list[torch.Tensor]) -> Any:
        return fo.adapters.Scion(scion_groups(ps, "norm", "Spectral", "BiasRMS"), momentum=0.1)

    def shampoo_pair(freq: int, start: int) -> tuple[Callable, Callable]:
        kw = dict(precondition_frequency=freq, start_preconditioning_step=start)

        def ours_shampoo(ps: list[torch.Tensor]) -> Any:
            return fo.adapters.Shampoo(ps, grafting_config="adagrad", **kw)

        def ref_shampoo(ps: list[torch.Tensor]) -> Any:
            ds = importlib.import_module("distributed_shampoo")
            return ds.DistributedShampoo(ps, grafting_config=ds.AdaGradPreconditionerConfig(), **kw)

        return ours_shampoo, ref_shampoo

    def kron_ref(compiled: bool) -> Callable:
        def make(ps: list[torch.Tensor]) -> Any:
            kron = importlib.import_module("kron_torch.kron")
            dynamo = importlib.import_module("torch._dynamo")
            opt = kron.Kron(ps)

            class Eager:
                def step(self) -> None:
                    with dynamo.config.patch(disable=True):
                        opt.step()

            return opt if compiled else Eager()

        return make

    return [
        ("Shampoo", "DistributedShampoo, freq 1", ("distributed_shampoo",), *shampoo_pair(1, -1)),
        ("Shampoo", "DistributedShampoo, freq 20 *", ("distributed_shampoo",), *shampoo_pair(20, 20)),
        ("Shampoo", "DistributedShampoo, graft warm-up", ("distributed_shampoo",), *shampoo_pair(100, -1)),
        (
            "Kron",
            "kron_torch Kron (compiled)",
            ("kron_torch",),
            lambda ps: fo.adapters.Kron(ps),
            kron_ref(True),
        ),
        (
            "Kron",
            "kron_torch Kron (eager)",
            ("kron_torch",),
            lambda ps: fo.adapters.Kron(ps),
            kron_ref(False),
        ),
        (
            "SOAP",
            "official soap.py",
            ("soap",),
            lambda ps: fo.adapters.SOAP(ps),
            lambda ps: importlib.import_module("soap").SOAP(ps),
        ),
        (
            "NorMuon",
            "pytorch_optimizer.NorMuon",
            ("pytorch_optimizer",),
            _ours_muon_split(fo.adapters.NorMuon),
            po("NorMuon"),
        ),
        (
            "AdaMuon",
            "pytorch_optimizer.AdaMuon",
            ("pytorch_optimizer",),
            _ours_muon_split(fo.adapters.AdaMuon),
            po("AdaMuon"),
        ),
        ("Scion", "official scion.py", ("scion",), our_scion, official_scion),
        ("Scion", "pytorch_optimizer.SCION", ("pytorch_optimizer",), our_scion, po_scion),
    ]


def _timer(make: Callable) -> Callable[[], float]:
    ps = _params()
    opt = make(ps)
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(p.shape, generator=gen) * 0.01 for p in ps]

    def once() -> float:
        for p, g in zip(ps, grads, strict=True):
            p.grad = g.clone()
        t0 = time.perf_counter()
        opt.step()
        return time.perf_counter() - t0

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", default="", help="comma-separated optimizer names (e.g. Shampoo,Kron)")
    args = parser.parse_args()
    only = {s for s in args.only.split(",") if s}
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; 8×256×256 + 8×256, median of {args.repeats}"
    )
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
    print(f"{'optimizer':10} {'reference':28} {'ours ms':>9} {'ref ms':>9} {'ratio':>7}")
    rows = []
    with torch.no_grad():
        for name, ref_name, requires, ours, ref in _pairs():
            if only and name not in only:
                continue
            missing = [m for m in requires if importlib.util.find_spec(m) is None]
            if missing:
                print(f"{name:10} {ref_name:28} skipped (missing {', '.join(missing)})")
                continue
            a, b = _timer(ours), _timer(ref)
            for _ in range(
                max(args.warmup, 21) if ref_name.endswith("*") else args.warmup
            ):  # SOAP: past a preconditioner refresh
                a(), b()
            ta, tb = [], []
            for _ in range(args.repeats):
                ta.append(a())
                tb.append(b())
            ma, mb = statistics.median(ta) * 1e3, statistics.median(tb) * 1e3
            spread = (max(ta) - min(ta)) * 1e3, (max(tb) - min(tb)) * 1e3
            print(
                f"{name:10} {ref_name:28} {ma:9.2f} {mb:9.2f} {ma / mb:7.2f}   "
                f"(spread {spread[0]:.1f} / {spread[1]:.1f} ms)"
            )
            rows.append(
                {"optimizer": name, "reference": ref_name, "ours_ms": ma, "ref_ms": mb, "ratio": ma / mb}
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
