"""The cluster around a Ray run, seen from the driver: where Ray's own output goes, and losing the nodes
that can run a model replica."""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autolabel.errors import AutolabelError


@contextmanager
def ray_output_to(path: Path) -> Iterator[None]:
    """Send what Ray prints in this process (its Python loggers, its C++ core and log monitor writing to file
    descriptors 1 and 2) to `path`; autolabel's own output (through `sys.stdout` / `sys.stderr`) still
    reaches the terminal."""
    with _fd_to(path, 1, "stdout"), _fd_to(path, 2, "stderr"), _ray_logger_to(path):
        yield


@contextmanager
def _fd_to(path: Path, fd: int, name: str) -> Iterator[None]:
    """File descriptor `fd` into `path`; `sys.<name>` keeps writing where `fd` went before."""
    old = getattr(sys, name)
    old.flush()
    saved = os.dup(fd)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, fd)
    os.close(log)
    terminal = io.TextIOWrapper(os.fdopen(os.dup(saved), "wb", buffering=0), write_through=True)
    setattr(sys, name, terminal)
    try:
        yield
    finally:
        terminal.flush()
        setattr(sys, name, old)
        terminal.close()
        os.dup2(saved, fd)
        os.close(saved)


@contextmanager
def _ray_logger_to(path: Path) -> Iterator[None]:
    ray_logger = logging.getLogger("ray")
    handlers = [h for h in ray_logger.handlers if isinstance(h, logging.StreamHandler)]
    file_handler = logging.FileHandler(path)
    for h in handlers:
        ray_logger.removeHandler(h)
    ray_logger.addHandler(file_handler)
    try:
        yield
    finally:
        ray_logger.removeHandler(file_handler)
        file_handler.close()
        for h in handlers:
            ray_logger.addHandler(h)


class NodesLost(AutolabelError):
    """The cluster lost every node that can run a model replica: the run stops (finished images kept)."""


def needs_text(needs: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in needs.items())


class NodeWatch(threading.Thread):
    """Stops the run cleanly (as Ctrl-C does, then `NodesLost`) when, for `GRACE_S`, no alive node offers what
    a replica needs: Ray would otherwise wait for such a node forever. A run that needs only CPUs goes on
    wherever Ray can restart its replicas."""

    GRACE_S = 8.0

    def __init__(self, ray: Any, needs: dict[str, float]) -> None:
        super().__init__(name="ray-node-watch", daemon=True)
        self.ray, self.needs, self.lost = ray, needs, False
        self._stop_event = threading.Event()
        if needs:
            self.start()

    def run(self) -> None:
        since: float | None = None
        while not self._stop_event.wait(1.0):
            try:
                have = self.ray.cluster_resources()  # what alive nodes offer in all
            except Exception:  # the driver is shutting down
                return
            short = any(have.get(k, 0.0) < v for k, v in self.needs.items())
            since = (since or time.monotonic()) if short else None
            if since is not None and time.monotonic() - since >= self.GRACE_S:
                self.lost = True
                os.kill(os.getpid(), signal.SIGINT)  # a real signal: it also wakes the wait inside Ray
                return

    def stop(self) -> None:
        self._stop_event.set()
