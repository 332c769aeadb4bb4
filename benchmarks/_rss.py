"""Peak resident-set-size measurement shared by the memory benchmarks (Linux ``/proc``, with a
``getrusage`` fallback elsewhere)."""

from __future__ import annotations

import resource


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_kib() -> int:
    """The current resident set size in KiB, after resetting the kernel's peak-RSS mark (Linux:
    ``/proc/self/clear_refs``), so that :func:`peak_rss_kib` measures from now on; elsewhere the
    lifetime peak ``ru_maxrss`` is used (then earlier peaks, e.g. at import, can hide the one measured)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    rss = _proc_status_kib("VmRSS")
    return rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_kib() -> int:
    """The peak resident set size in KiB since :func:`current_rss_kib` (``VmHWM``)."""
    peak = _proc_status_kib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
