"""Holding ``KeyboardInterrupt`` back while an optimizer step writes its results."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import torch


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block with ``SIGINT`` (Ctrl-C) held back, then raise ``KeyboardInterrupt`` if one
    arrived: the block's writes complete or, if it raised itself, the interrupt follows.

    Only where Python's default handler is installed, in the main thread and outside
    ``torch.compile`` (elsewhere the block runs as it is).
    """
    if (
        torch.compiler.is_compiling()
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        del frame
        received.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt
