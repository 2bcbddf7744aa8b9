"""Interrupts that land where they can be handled: while an export runs, Ctrl-C (and SIGTERM) only note that
a stop was asked; the export stops at the next image boundary (`checkpoint`), where every staging area is
discarded cleanly, or after its atomic swap. An interrupt raised asynchronously inside a C extension
(pycocotools converting a mask) could otherwise surface as an unrelated TypeError, or be lost. A second
Ctrl-C stops at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

_pending = threading.Event()
_active = False


def is_deferring() -> bool:
    return _active


def checkpoint() -> None:
    """Raise KeyboardInterrupt here if a stop was asked while interrupts were deferred."""
    if _active and _pending.is_set():
        _pending.clear()
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Defer SIGINT and SIGTERM to the next `checkpoint()` (and the end of the block) in this process.
    Main thread only; elsewhere it does nothing."""
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: FrameType | None) -> None:
        if _pending.is_set():  # asked twice: stop now
            raise KeyboardInterrupt
        _pending.set()

    old = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    _pending.clear()
    _active = True
    try:
        yield
        checkpoint()  # asked during the last image or the swap: the export is whole, the command still stops
    finally:
        _active = False
        for s, handler in old.items():
            signal.signal(s, handler)


_late = threading.Event()


def call_deferred(fn: Callable[[], T]) -> T:
    """`fn()` with interrupts deferred (see `deferred`), for a command line: an interrupt that comes after it
    (while the process ends) is noted too, and `late()` tells the command line to end as interrupted."""
    try:
        with deferred():
            return fn()
    finally:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, lambda signum, frame: _late.set())


def late() -> bool:
    """An interrupt arrived after the deferred command had finished."""
    return _late.is_set()
