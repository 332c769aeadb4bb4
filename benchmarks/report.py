"""Markdown report of ``benchmarks/run.py`` results (the tables in README and docs/performance.md).

Run::

    python benchmarks/report.py benchmarks/results/bench_cpu.json benchmarks/results/bench_cpu_gpt2.json

Prints, per input file, the machine and command line, one table row per (parameter set,
algorithm) with ms per step and extra peak memory of every path, the ratios the targets are
about, and the list of targets with their measured values.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SIZE_NAMES = {
    "small": "100 × 10k (1M)",
    "medium": "80 × 50k (4M)",
    "large": "32 × 512² (8.4M)",
    "tiny": "1000 × 64",
    "gpt2": "GPT-2 small (124M)",
}
PATHS = (
    "torch_forloop",
    "torch_foreach",
    "torch_fused",
    "functional",
    "adapter",
    "compiled",
    "adapter_fused",
)
PEERS = ("heavyball", "pytorch_optimizer", "torchopt")


def _cell(path: dict[str, float] | None) -> str:
    if not path:
        return "–"
    return f"{path['ms_per_step']:.2f} ({path['extra_peak_mib']:.2f})"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def table(results: list[dict[str, Any]]) -> list[str]:
    peers = [p for p in PEERS if any(p in r["paths"] for r in results)]
    lines = [
        "| set | algorithm | torch for-loop | torch foreach | torch fused | functional `update` "
        "| adapter `step` | compiled | adapter `fused=True` | "
        + "".join(f"{p} | " for p in peers)
        + "adapter / best non-fused | adapter / foreach | compiled / fused | compiled / foreach "
        "| adapter `fused=True` / fused | adapter `fused=True` / foreach |",
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(peers) + "---|---|---|---|---|---|",
    ]
    for r in results:
        paths, ratios = r["paths"], r["ratios"]
        cells = [_cell(paths.get(p)) for p in (*PATHS, *peers)]
        lines.append(
            f"| {SIZE_NAMES.get(r['size'], r['size'])} | {r['algo']} | "
            + " | ".join(cells)
            + f" | {_ratio(ratios.get('adapter_vs_torch_nonfused'))}"
            f" | {_ratio(ratios.get('adapter_vs_torch_foreach'))}"
            f" | {_ratio(ratios.get('compiled_vs_torch_fused'))}"
            f" | {_ratio(ratios.get('compiled_vs_torch_foreach'))}"
            f" | {_ratio(ratios.get('adapter_fused_vs_torch_fused'))}"
            f" | {_ratio(ratios.get('adapter_fused_vs_torch_foreach'))} |"
        )
    return lines


def compile_table(results: list[dict[str, Any]]) -> list[str]:
    rows = [r for r in results if r.get("compile_times")]
    if not rows:
        return []
    lines = [
        "First call of `fo.compile_step(tx, elementwise=True)` in a new process: wall s (CPU s of the "
        "process and its compiler subprocesses).",
        "",
        "| set | algorithm | path | cold (empty Inductor cache) | warm (same cache, new process) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ct = r["compile_times"]
        path = "torch fused kernel" if ct["cold"].get("torch_kernel") else "Inductor"
        lines.append(
            f"| {SIZE_NAMES.get(r['size'], r['size'])} | {r['algo']} | {path} "
            f"| {ct['cold']['first_call_s']:.1f} ({ct['cold']['first_call_cpu_s']:.1f}) "
            f"| {ct['warm']['first_call_s']:.1f} ({ct['warm']['first_call_cpu_s']:.1f}) |"
        )
    return [*lines, ""]


def targets(items: list[dict[str, Any]]) -> list[str]:
    met = [t for t in items if t["met"]]
    missed = [t for t in items if not t["met"]]
    lines = [f"Targets met: {len(met)} of {len(items)}."]
    for t in missed:
        lines.append(f"- missed: {t['algo']} / {t['size']}: {t['target']}: {t['value']:.2f}")
    return lines


def report(path: Path) -> str:
    data = json.loads(path.read_text())
    m = data["machine"]
    load = ", ".join(f"{x:.1f}" for x in m.get("load_average_at_start", []))
    head = [
        f"Machine: {m.get('cpu_model', m['processor'])} ({m['cpu_count']} cores, load average at start "
        f"{load}), torch {m['torch']}, {m['torch_threads']} thread(s), Python {m['python']}. "
        f"Date: {data['date']}. Command: `{data['command']}` ({data['seconds'] / 60:.0f} min).",
        "",
        "ms per step (median of interleaved repeats); in brackets the extra peak memory of the step in MiB.",
        "",
    ]
    results = data["results"]
    return "\n".join(head + table(results) + [""] + compile_table(results) + targets(data["targets"]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="JSON files written by benchmarks/run.py")
    args = ap.parse_args(argv)
    print("\n\n".join(report(f) for f in args.files))


if __name__ == "__main__":
    main()
