"""Run a function on N local gloo processes (127.0.0.1 only), bounded in time, and collect results.

``run_ranks(fn, world_size, *args)`` starts ``world_size`` fresh interpreters (``spawn``: a forked
child would inherit the parent's OpenMP pool, which is not fork-safe), joins them to one gloo group
through a file store (no port to pick), calls ``fn(rank, world_size, *args)`` in each and returns the
list of what each rank returned. An exception on any rank, a process that dies, or a group that
runs past ``timeout`` seconds raises ``RuntimeError`` in the caller (the processes are killed). The
bounds are for hangs, not speed: on a loaded 2-core machine a 4-rank group's wall time is many times
its CPU time.
"""

from __future__ import annotations

import datetime
import io
import os
import queue
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp


def _entry(fn: Callable[..., Any], rank: int, world_size: int, store: str, out: Any, args: tuple) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    import torch.distributed as dist

    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"file://{store}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=300),
        )
        try:
            result = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        buf = io.BytesIO()  # tensors as bytes: a shared-memory handle dies with the process
        torch.save(result, buf)
        out.put((rank, "ok", buf.getvalue()))
    except BaseException:
        out.put((rank, "error", traceback.format_exc()))


_GRACE_S = 5.0
"""Seconds the other ranks get to report their errors after a first one."""


def run_ranks(fn: Callable[..., Any], world_size: int, *args: Any, timeout: float = 120.0) -> list[Any]:
    """``[fn(0, world_size, *args), ..., fn(world_size-1, ...)]``, each on its own gloo rank."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        procs = [
            ctx.Process(target=_entry, args=(fn, r, world_size, store, out, args), daemon=True)
            for r in range(world_size)
        ]
        for p in procs:
            p.start()
        results: dict[int, Any] = {}
        errors: list[str] = []
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        try:
            while len(results) + len(errors) < world_size:
                left = (deadline - datetime.datetime.now()).total_seconds()
                if left <= 0:
                    if errors:  # the grace after a first error is over
                        break
                    raise RuntimeError(f"distributed group of {world_size} ranks ran past {timeout} s")
                try:
                    rank, kind, value = out.get(timeout=min(left, 1.0))
                except queue.Empty:
                    dead = [p for p in procs if p.exitcode not in (None, 0)]
                    if dead and not errors:
                        raise RuntimeError(f"rank process died with exit code {dead[0].exitcode}") from None
                    continue
                if kind == "ok":
                    results[rank] = torch.load(io.BytesIO(value), weights_only=False)
                else:
                    errors.append(f"rank {rank}:\n{value}")
                    # the other ranks' errors too, where they come within a few seconds (a rank
                    # whose peer failed usually fails in its next collective): which rank failed
                    # first is not always the one that reports first
                    deadline = min(deadline, datetime.datetime.now() + datetime.timedelta(seconds=_GRACE_S))
                    if len(results) + len(errors) >= world_size:
                        break
        finally:
            for p in procs:
                p.join(timeout=5)
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join()
        if errors:
            raise RuntimeError("\n".join(errors))
    return [results[r] for r in range(world_size)]
