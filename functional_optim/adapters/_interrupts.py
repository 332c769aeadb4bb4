"""Holding ``KeyboardInterrupt`` back while an optimizer step writes its results."""

from __future__ import annotations

import contextlib
import importlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import torch


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block with ``SIGINT`` (Ctrl-C) held back, then raise ``KeyboardInterrupt`` if one
    arrived: the block's writes complete or, if it raised itself, the interrupt follows.

    Only where Python's default handler is installed, in the main thread and outside
    ``torch.compile`` (elsewhere the block runs as it is). The handlers are swapped with the C
    functions under `signal.signal` (it runs at every optimizer step; the module's wrappers
    convert every value to and from an enum).
    """
    if (
        torch.compiler.is_compiling()
        or threading.current_thread() is not threading.main_thread()
        or _getsignal(_SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        del frame
        received.append(signum)

    _setsignal(_SIGINT, hold)
    try:
        yield
    finally:
        _setsignal(_SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


_SIGINT = int(signal.SIGINT)
_signal: Any = importlib.import_module("_signal")  # the C module behind `signal` (no type stubs)
_setsignal = _signal.signal
_getsignal = _signal.getsignal
