"""Annotation tools: `autolabel import` (corrections back into a run) and `autolabel push labelstudio`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autolabel.cli.common import (
    CocoMasks,
    CocoMasksOpt,
    LabelStudioRoot,
    Media,
    MediaOpt,
    Multipart,
    RunDir,
    Split,
    ToolMasks,
    ToolMasksOpt,
    export_options,
    guard,
    stop_on_sigterm,
)

push_app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="Send a run to an annotation tool."
)


def import_corrections(
    run_dir: RunDir,
    file: Annotated[
        Path,
        typer.Argument(help="Corrected labels: a Label Studio JSON export, a CVAT for images 1.1 XML or a COCO file."),
    ],
    formats: Annotated[
        str,
        typer.Option("--format", "-f", help="Corrected dataset formats, comma-separated ('' for none)."),
    ] = "coco,yolo",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where the corrected dataset goes [default: RUN_DIR/corrected]."),
    ] = None,
    reviewed_only: Annotated[
        bool,
        typer.Option(
            "--reviewed-only",
            help="Corrected dataset of the reviewed images only (default: all, the others as the run labeled them).",
        ),
    ] = False,
    ground_truth: Annotated[
        bool,
        typer.Option(
            "--ground-truth/--no-ground-truth",
            help="Save the reviewed images as RUN_DIR/groundtruth.json (what eval and tune read by default).",
        ),
    ] = True,
    reviewed: Annotated[
        str,
        typer.Option(
            "--reviewed",
            help="Which images count as reviewed (ground truth): auto (Label Studio: submitted tasks; CVAT/COCO: "
            "images handed over by `autolabel sample -f` and images a person changed), all, changed, or a FILE "
            "listing relative paths.",
        ),
    ] = "auto",
    coco_masks: CocoMasksOpt = CocoMasks.polygon,
    split: Split = "0.8,0.2",
    media: MediaOpt = Media.symlink,
    tool_masks: ToolMasksOpt = ToolMasks.rle,
) -> None:
    """Bring human corrections back: what the reviewers changed per class, the reviewed images as ground truth
    for `eval` and `tune`, and a corrected dataset."""

    def run() -> None:
        from autolabel.annotate.changes import format_changes
        from autolabel.annotate.importing import REPORT, import_corrections
        from autolabel.export import parse_formats

        stop_on_sigterm()
        fmts = parse_formats(formats) if formats.strip() else []
        opts = export_options(coco_masks, split, 0, media, Multipart.merge, None, None, None, tool_masks)
        report = import_corrections(run_dir, file, fmts, output, opts, reviewed_only, ground_truth, reviewed)
        typer.echo(f"{report.source}: {report.reviewed} reviewed images ({report.rule})" + _left_out(report.left_out))
        if report.unreviewed and reviewed == "auto":
            typer.echo(
                f"{report.unreviewed} images of the file were left out as not reviewed (unchanged, and not handed "
                f"over by `autolabel sample -f`): if a person checked them, import again with --reviewed all "
                f"(or --reviewed FILE listing the checked images)"
            )
        for note in report.notes:
            typer.echo(f"note: {note}")
        if report.unmatched:
            typer.echo(f"not in the run ({len(report.unmatched)}): {', '.join(report.unmatched[:5])}")
        if report.new_classes:
            typer.echo(f"classes the run does not have: {', '.join(report.new_classes)}")
        if report.ignored:
            typer.echo("ignored (no shape): " + ", ".join(f"{k} {v}" for k, v in sorted(report.ignored.items())))
        typer.echo(format_changes(report.changes))
        if report.ground_truth:
            typer.echo(
                f"ground truth: {report.ground_truth} ({report.ground_truth_images} images; eval and tune use it)"
            )
        for fmt, where in report.written.items():
            typer.echo(f"{fmt}: {where}")
        typer.echo(f"report: {run_dir / REPORT}")

    from autolabel.interrupts import call_deferred

    guard(lambda: call_deferred(run))


def _left_out(left_out: list[str]) -> str:
    if not left_out:
        return ""
    from collections import Counter

    why = Counter(x.rsplit(": ", 1)[-1] for x in left_out)
    return " (left out: " + ", ".join(f"{n} {w}" for w, n in sorted(why.items())) + ")"


@push_app.command("labelstudio")
def push_labelstudio(
    run_dir: RunDir,
    url: Annotated[str, typer.Option(help="Label Studio URL, e.g. http://localhost:8080.")],
    token: Annotated[
        str,
        typer.Option(envvar="LABEL_STUDIO_API_KEY", help="API token (Account & Settings); or LABEL_STUDIO_API_KEY."),
    ],
    project: Annotated[str | None, typer.Option(help="Project title [default: autolabel <run dir name>].")] = None,
    tool_masks: ToolMasksOpt = ToolMasks.rle,
    labelstudio_root: LabelStudioRoot = None,
) -> None:
    """Create (or reuse) a Label Studio project for the run, attach the labeled folder as local storage and
    import the tasks with the run's labels as predictions; a second push adds only new images."""

    def run() -> None:
        from dataclasses import replace

        from autolabel.annotate.push import push_labelstudio
        from autolabel.export import ExportOptions

        opts = replace(
            ExportOptions(),
            tool_masks=tool_masks.value,
            labelstudio_root=str(labelstudio_root) if labelstudio_root else None,
        )
        rep = push_labelstudio(run_dir, url, token, project, opts)
        what = "created" if rep.created else "updated"
        typer.echo(f"project {rep.project_id} {what}: {rep.imported} tasks imported, {rep.already} already there")
        typer.echo(f"open: {rep.project_url}")
        typer.echo(f"then: export JSON from Label Studio and `autolabel import {run_dir} FILE`")

    guard(run)
