"""Terminal output: a rich progress bar (images/s, ETA) and the end-of-run summary."""

from __future__ import annotations

import sys
from typing import Any

from autolabel.decisions import DecisionCounts
from autolabel.progress import Progress
from autolabel.run.settings import RunSummary


class RichProgress(Progress):
    def __init__(self, description: str = "labeling") -> None:
        self.description = description
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int, already_done: int, description: str | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        class Rate(TextColumn):
            def render(self, task: Any) -> Any:  # images/s over the images done in this session
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:.2f} img/s" if speed else "– img/s")

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            Rate(""),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(description or self.description, total=total, completed=already_done)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def print_decisions(
    c: DecisionCounts,
    objects_per_class: dict[str, int],
    applied: str = "ontology",
    shadowed: list[str] | None = None,
    warnings: list[str] | None = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(stderr=True, soft_wrap=True)
    t = Table(title="objects per class", title_justify="left")
    t.add_column("class")
    t.add_column("objects", justify="right")
    for name, n in objects_per_class.items():
        t.add_row(name, str(n))
    con.print(t)
    con.print(f"decisions: {applied}" + "".join(f"\n  {line}" for line in shadowed or []))
    con.print(
        f"{c.candidates} candidates → {c.kept} kept; dropped {c.below_threshold} below class "
        f"threshold, {c.nms_removed} by class-wise NMS, {c.dedup_removed} cross-class duplicates, "
        f"{c.negative_suppressed} by negative prompts ({c.negatives_detected} negatives detected), "
        f"{c.bad_size} bad-size boxes, {c.empty_masks} empty masks, {c.over_max} over max"
        + (f", {c.prompts_off} of prompts switched off" if c.prompts_off else "")
        + (f", {c.track_dropped} of video tracks dropped whole (weak on average)" if c.track_dropped else "")
    )
    for w in warnings or []:
        con.print(w if w.startswith("note: ") else f"[yellow]warning:[/] {w}", markup=not w.startswith("note: "))


def print_summary(summary: RunSummary, exports: dict[str, Any], run_dir: Any = None) -> None:
    from rich.console import Console

    con = Console(stderr=True, soft_wrap=True)
    state = "interrupted" if summary.interrupted else "done"
    changed = f", {summary.changed} changed since (relabeled)" if summary.changed else ""
    con.print(
        f"[bold]{state}[/]: {summary.images_total} images, {summary.processed} labeled now, "
        f"{summary.already_done} already done{changed}, {len(summary.skipped)} skipped "
        f"in {summary.wall_seconds:.1f}s" + (f" → {run_dir}" if run_dir is not None else "")
    )
    if exports:
        print_decisions(
            summary.decisions, summary.objects_per_class, summary.applied, summary.shadowed, summary.warnings
        )
    inf = summary.inference
    if inf.over_max_candidates:
        con.print(f"candidates over detector.max_candidates (not stored): {inf.over_max_candidates}")
    if inf.unmatched:
        top = ", ".join(f"'{k}' ×{v}" for k, v in sorted(inf.unmatched.items(), key=lambda kv: -kv[1])[:8])
        con.print(f"fired on no prompt (dropped): {sum(inf.unmatched.values())} — {top}")
    if summary.stage_seconds:
        stages = ", ".join(
            f"{k} {v:.2f}s"
            for k, v in summary.stage_seconds.items()  # details: summary.json
            if not k.endswith("_cpu") and not k.startswith("models_wait")
        )
        con.print(
            f"time per stage: {stages}; forward passes: detector {summary.detector_passes}, "
            f"segmenter {summary.segmenter_passes}"
        )
    if summary.verifier:
        v = summary.verifier
        con.print(
            f"verifier: {v['asked']} doubtful candidates asked on {v['images']} images in {v['seconds']:.1f}s "
            f"({v['forward_passes']} forward passes)"
            + (f"; answers of another verifier cleared on {v['cleared']} images" if v["cleared"] else "")
        )
    if summary.replicas:
        util = ", ".join(f"{r['utilisation']:.2f}" for r in summary.replicas)
        con.print(f"Ray model replicas: {len(summary.replicas)}, steady-state model time ÷ wall: {util}")
    if summary.ray_log:
        con.print(f"Ray's own messages: {summary.ray_log}")
    for rel, why in summary.skipped[:20]:
        con.print(f"[yellow]skipped[/] {rel}: {why}")
    if len(summary.skipped) > 20:
        con.print(f"… and {len(summary.skipped) - 20} more (see skipped.txt in the output directory)")
    for fmt, path in exports.items():
        con.print(f"{fmt}: {path}")
    sys.stderr.flush()
