"""Commands around a finished run: review, eval, tune, preview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autolabel.cli.common import (
    BoxThreshold,
    DatasetName,
    RunDir,
    ThresholdsFile,
    guard,
    threshold_overrides,
    warn_stale,
)

GroundTruth = Annotated[
    Path | None,
    typer.Option(
        "--gt",
        help="Hand-labeled COCO instances file covering some of the run's images (file_name relative to the "
        "labeled folder) [default: RUN_DIR/groundtruth.json, what `autolabel import` saves].",
    ),
]


def ground_truth(run_dir: Path, gt: Path | None) -> Path:
    """--gt, else the corrections `autolabel import` saved in the run."""
    from autolabel.errors import UsageError

    if gt is not None:
        return gt
    saved = run_dir / "groundtruth.json"
    if not saved.is_file():
        raise UsageError(
            "no ground truth: give --gt FILE (hand labels in COCO)",
            hint=f"or import corrections first: autolabel import {run_dir} FILE (Label Studio, CVAT or COCO)",
        )
    return saved


def review(
    run_dir: RunDir,
    dataset_name: DatasetName = None,
    port: Annotated[int, typer.Option(help="App port.")] = 5151,
    address: Annotated[str, typer.Option(help="Address to serve on (0.0.0.0 for other machines).")] = "localhost",
    remote: Annotated[
        bool, typer.Option("--remote", help="Do not try to open a browser (serving for a remote one).")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Rebuild the dataset from the run store (discards App edits).")
    ] = False,
    low_margin: Annotated[
        float, typer.Option(help="'low-confidence' view: under the class box threshold + this.")
    ] = 0.15,
    tiny_fraction: Annotated[
        float, typer.Option(help="'tiny-masks' view: masks under this fraction of the image.")
    ] = 0.001,
    overlap_iou: Annotated[float, typer.Option(help="'class-overlaps' view: IoU with another class above this.")] = 0.5,
) -> None:
    """Review a run in the FiftyOne App with saved views; tag what is wrong 'reject', then
    `autolabel export --from-fiftyone NAME`."""

    def run() -> None:
        from autolabel.quality.review import ViewSettings, launch, prepare_dataset

        ds = prepare_dataset(
            run_dir, dataset_name, refresh, ViewSettings(low_margin, tiny_fraction, overlap_iou), echo=typer.echo
        )
        typer.echo(f"dataset '{ds.name}': {len(ds)} images")
        warn_stale(run_dir, skip=("fiftyone",))
        launch(ds, port, address, remote, echo=lambda m: typer.echo(m, err=False))

    guard(run)


def evaluate(
    run_dir: RunDir,
    gt: GroundTruth = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Where to write the JSON report [default: RUN_DIR/eval.json].")
    ] = None,
    box_threshold: BoxThreshold = None,
    thresholds: ThresholdsFile = None,
) -> None:
    """COCO bbox and segm mAP, AP50, per-class AP and recall of the labels the run exports (its recorded
    decisions), or of other thresholds (--box-threshold, --thresholds) to compare before exporting; every
    miss and false positive by cause (under the threshold, NMS, dedup, wrong class…) with the fix."""

    def run() -> None:
        import json

        from autolabel.fsutil import write_text_atomic
        from autolabel.quality.eval_text import format_report
        from autolabel.quality.evaluate import evaluate_run

        report = evaluate_run(
            run_dir, ground_truth(run_dir, gt), threshold_overrides(box_threshold, thresholds, run_dir)
        )
        typer.echo(f"decisions: {report.decisions}")
        warn_stale(run_dir)
        typer.echo(format_report(report))
        path = json_out or run_dir / "eval.json"
        write_text_atomic(path, json.dumps(report.to_json(), indent=2) + "\n")
        typer.echo(f"report: {path}")
        from autolabel.quality.breakdown import plot_breakdown

        png = path.with_name(path.stem + "_errors.png")
        if any(e.misses or e.false_positives for e in report.errors.values()):
            if plot_breakdown(report.errors, png):
                typer.echo(f"errors by cause: {png}")
        elif png.is_file():  # an earlier eval's picture would contradict this one
            png.unlink()

    guard(run)


def tune(
    run_dir: RunDir,
    gt: GroundTruth = None,
    metric: Annotated[
        str, typer.Option(help="What to maximise per class: f1, f0.5 (precision first) or f2 (recall first).")
    ] = "f1",
    iou: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="IoU (mask IoU when both have masks) for a match.")
    ] = 0.5,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Thresholds YAML [default: RUN_DIR/thresholds.yaml].")
    ] = None,
) -> None:
    """Choose per-class box thresholds on hand-labeled images; writes a thresholds YAML and PR curves.
    Then: `autolabel export RUN --thresholds FILE`. No model is loaded."""

    def run() -> None:
        import json

        from autolabel.config.thresholds import thresholds_yaml
        from autolabel.fsutil import write_text_atomic
        from autolabel.quality.tune import format_tune, plot_curves, tune_run
        from autolabel.run.run import Run

        with Run.open(run_dir) as opened:
            report = tune_run(opened, ground_truth(run_dir, gt), metric, iou)
        typer.echo(format_tune(report))
        path = output or run_dir / "thresholds.yaml"
        notes = {c.name: c.note for c in report.classes}
        f = report.fusion
        text = thresholds_yaml(report.thresholds(), notes, f.methods if f else None, f.calibration if f else ())
        write_text_atomic(path, text)
        write_text_atomic(path.with_suffix(".json"), json.dumps(report.to_json(), indent=2) + "\n")
        png = path.with_name(path.stem + "_pr.png")
        if plot_curves(report, png):
            typer.echo(f"PR curves: {png}")
        typer.echo(f"thresholds: {path}\nnext: autolabel export {run_dir} --thresholds {path}")

    guard(run)


def sample(
    run_dir: RunDir,
    n: Annotated[int, typer.Option("-n", min=1, help="How many images.")] = 50,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The file list [default: RUN_DIR/sample.txt].")
    ] = None,
    fiftyone: Annotated[
        bool, typer.Option("--fiftyone/--no-fiftyone", help="Also save them as the view 'to-label' in FiftyOne.")
    ] = True,
    dataset_name: DatasetName = None,
    formats: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="Also hand them over to an annotation tool, with the run's labels as pre-annotations: "
            "labelstudio, cvat, coco (comma-separated) into RUN_DIR/sample/.",
        ),
    ] = "",
) -> None:
    """Pick the images most worth hand-labeling for `tune` and `eval`: every class covered, scores near the
    thresholds, spread over the folder. Writes a file list (and a FiftyOne view, and annotation-tool tasks)."""

    def run() -> None:
        import importlib.util

        from autolabel.fsutil import write_text_atomic
        from autolabel.quality.sample import sample_run
        from autolabel.run.run import Run

        with Run.open(run_dir) as opened:
            picked = sample_run(opened, n)
            typer.echo(f"decisions: {opened.overrides.describe()}")
        path = output or run_dir / "sample.txt"
        write_text_atomic(path, "".join(v.relpath + "\n" for v in picked))
        if formats.strip():
            from autolabel.export import export_run, parse_formats

            fmts = parse_formats(formats)
            from autolabel.annotate.reviewed import record_handed_over

            relpaths = [v.relpath for v in picked]
            written = export_run(run_dir, fmts, relpaths=relpaths, out_dir=run_dir / "sample")
            for fmt, where in written.written.items():
                typer.echo(f"{fmt}: {where}")
            record = record_handed_over(run_dir, relpaths, fmts)
            typer.echo(f"handed over for review: {record} (`autolabel import` counts these images as reviewed)")
        covered = sorted(set().union(*(v.classes for v in picked))) if picked else []
        typer.echo(f"{len(picked)} images ({', '.join(covered) or 'no class'} covered): {path}")
        if fiftyone and importlib.util.find_spec("fiftyone") is not None:
            from autolabel.quality.review import save_sample_view

            name = save_sample_view(run_dir, dataset_name, [v.relpath for v in picked])
            typer.echo(f"FiftyOne: dataset '{name}', saved view 'to-label' (autolabel review {run_dir})")

    guard(run)


def preview(
    run_dir: RunDir,
    n: Annotated[int, typer.Option("-n", min=1, help="How many images.")] = 16,
    seed: Annotated[
        int | None, typer.Option(help="Pick a seeded random sample instead of the first N by path.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="[default: RUN_DIR/preview]")] = None,
    box_threshold: BoxThreshold = None,
    thresholds: ThresholdsFile = None,
) -> None:
    """Overlay images (masks, boxes, class names, scores) and a contact sheet to look at before training."""

    def run() -> None:
        from autolabel.quality.preview import write_previews

        overrides = threshold_overrides(box_threshold, thresholds, run_dir)
        sheet, count, applied = write_previews(run_dir, n, output, seed, overrides=overrides)
        typer.echo(f"decisions: {applied}\n{count} overlays; contact sheet: {sheet}")
        warn_stale(run_dir)

    guard(run)


def report(
    run_dir: RunDir,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="[default: RUN_DIR/report.html]")] = None,
) -> None:
    """One self-contained HTML page about the run: settings and decisions, per-class counts and score
    histograms with the thresholds, tune and eval results with the error breakdown, example images with
    their masks, skipped images, time per stage, and a strip of frames per track for videos."""

    def run() -> None:
        from autolabel.quality.report_html import write_report

        typer.echo(f"report: {write_report(run_dir, output)}")

    guard(run)
