"""`autolabel export`: exports again from a run's store (no model loaded), or corrected ones from a
reviewed FiftyOne dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autolabel.cli.common import (
    DEFAULT_FORMATS,
    BoxThreshold,
    CocoMasks,
    CocoMasksOpt,
    DatasetName,
    FiftyoneDir,
    Formats,
    LabelStudioRoot,
    Media,
    MediaOpt,
    Multipart,
    MultipartOpt,
    Quiet,
    Seed,
    Split,
    ThresholdsFile,
    ToolMasks,
    ToolMasksOpt,
    export_options,
    guard,
    refresh_report,
    stop_on_sigterm,
    threshold_overrides,
)

ExportRunDir = Annotated[Path | None, typer.Argument(help="Output directory of an `autolabel label` run.")]
PolygonTolerance = Annotated[
    float | None,
    typer.Option(min=0.0, help="Polygon simplification in pixels [default: the run's masks.polygon_tolerance]."),
]
FromFiftyone = Annotated[
    str | None,
    typer.Option(
        "--from-fiftyone",
        help="Write corrected COCO/YOLO from this reviewed FiftyOne dataset (items tagged 'reject' left out).",
    ),
]
CorrectedOutput = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="--from-fiftyone: where to write [default: the dataset's RUN_DIR/corrected].",
    ),
]


ResetThresholds = Annotated[
    bool,
    typer.Option(
        "--reset-thresholds", help="Drop the thresholds recorded by earlier exports: the ontology's apply again."
    ),
]


def export(
    run_dir: ExportRunDir = None,
    formats: Formats = DEFAULT_FORMATS,
    coco_masks: CocoMasksOpt = CocoMasks.polygon,
    polygon_tolerance: PolygonTolerance = None,
    split: Split = "0.8,0.2",
    seed: Seed = 0,
    media: MediaOpt = Media.symlink,
    multipart: MultipartOpt = Multipart.merge,
    dataset_name: DatasetName = None,
    fiftyone_dir: FiftyoneDir = None,
    tool_masks: ToolMasksOpt = ToolMasks.rle,
    labelstudio_root: LabelStudioRoot = None,
    from_fiftyone: FromFiftyone = None,
    output: CorrectedOutput = None,
    box_threshold: BoxThreshold = None,
    thresholds: ThresholdsFile = None,
    reset_thresholds: ResetThresholds = False,
    quiet: Quiet = False,
) -> None:
    """Write exports again from a run's store with the decisions applied (no model loaded), or corrected
    ones from a reviewed dataset."""

    def run() -> None:
        from dataclasses import replace

        from autolabel.errors import UsageError
        from autolabel.export import export_run, parse_formats

        stop_on_sigterm()
        fmts = parse_formats(formats)
        opts = export_options(
            coco_masks,
            split,
            seed,
            media,
            multipart,
            dataset_name,
            fiftyone_dir,
            polygon_tolerance,
            tool_masks,
            labelstudio_root,
        )
        given = threshold_overrides(box_threshold, thresholds, run_dir)
        opts = replace(
            opts,
            box_threshold=box_threshold,
            class_thresholds=given.class_thresholds if given else None,
            thresholds_source=given.source if given else "",
            thresholds_notes=given.notes if given else None,
            prompts_off=given.prompts_off if given else (),
            fusion_methods=given.fusion_methods if given else None,
            calibration=given.calibration if given else (),
            reset_thresholds=reset_thresholds,
        )
        if from_fiftyone:
            from autolabel.quality.review import export_from_dataset

            target = output or (run_dir / "corrected" if run_dir is not None else None)  # None: the dataset's run
            fmts = [f for f in fmts if f != "fiftyone"] if formats == DEFAULT_FORMATS else fmts
            written = export_from_dataset(from_fiftyone, fmts, target, opts)
        else:
            if run_dir is None:
                raise UsageError("give the RUN_DIR to export (the --output of `autolabel label`)")
            from autolabel.cli.progress import RichProgress, print_decisions

            report = export_run(run_dir, fmts, opts, progress=None if quiet else RichProgress("export"))
            if quiet:
                return
            if report.images:  # nothing decided when every format was kept as it was
                print_decisions(
                    report.decisions, report.objects_per_class, report.applied, report.shadowed, report.warnings
                )
            if report.stale:
                typer.echo(f"warning: {report.stale}", err=True)
            written = report.written
        for fmt, path in written.items():
            typer.echo(f"{fmt}: {path}")
        if run_dir is not None and from_fiftyone is None:
            refresh_report(run_dir)

    from autolabel.interrupts import call_deferred

    guard(lambda: call_deferred(run))
