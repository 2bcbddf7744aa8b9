"""Progress callbacks: what a long command reports as it goes. The CLI plugs in a rich progress bar
(`cli/progress.py`); the default is silent."""

from __future__ import annotations


class Progress:
    """Progress callbacks; the CLI plugs in a rich progress bar. Default: silent."""

    def start(self, total: int, already_done: int, description: str = "labeling") -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def stop(self) -> None: ...
