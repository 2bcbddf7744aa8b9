"""Terminal output: a rich progress bar (images/s, ETA) and the end-of-run summary."""

from __future__ import annotations

import sys
from typing import Any

from .engine import Progress, RunSummary


class RichProgress(Progress):
    def __init__(self, description: str = "labeling") -> None:
        self.description = description
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int, already_done: int) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        class Rate(TextColumn):
            def render(self, task: Any) -> Any:  # images/s over the images done in this session
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:.2f} img/s" if speed else "– img/s")

        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             Rate(""), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             console=Console(stderr=True), transient=False)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=total, completed=already_done)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def print_summary(summary: RunSummary, exports: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(stderr=True, soft_wrap=True)
    state = "interrupted" if summary.interrupted else "done"
    con.print(f"[bold]{state}[/]: {summary.images_total} images, {summary.processed} labeled now, "
              f"{summary.already_done} already done, {len(summary.skipped)} skipped "
              f"in {summary.wall_seconds:.1f}s")
    t = Table(title="objects per class", title_justify="left")
    t.add_column("class")
    t.add_column("objects", justify="right")
    for name, n in summary.objects_per_class.items():
        t.add_row(name, str(n))
    con.print(t)
    c = summary.counts
    con.print(f"filtered: {c.below_threshold} below class threshold, {c.nms_removed} by class-wise NMS, "
              f"{c.dedup_removed} cross-class duplicates, {c.bad_size} bad-size boxes, {c.over_max} over max, "
              f"{c.empty_masks} empty masks")
    if c.unmatched:
        top = ", ".join(f"'{k}' ×{v}" for k, v in sorted(c.unmatched.items(), key=lambda kv: -kv[1])[:8])
        con.print(f"unmatched phrases (dropped): {sum(c.unmatched.values())} — {top}")
    if summary.stage_seconds:
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in summary.stage_seconds.items())
        con.print(f"time per stage: {stages}; forward passes: detector {summary.detector_passes}, "
                  f"segmenter {summary.segmenter_passes}")
    for rel, why in summary.skipped[:20]:
        con.print(f"[yellow]skipped[/] {rel}: {why}")
    if len(summary.skipped) > 20:
        con.print(f"… and {len(summary.skipped) - 20} more (see skipped.txt in the output directory)")
    for fmt, path in exports.items():
        con.print(f"{fmt}: {path}")
    sys.stderr.flush()
