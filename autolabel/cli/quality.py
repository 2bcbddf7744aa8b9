"""CLI commands around a finished run: review, eval, tune, preview, backends (registered on `cli.app`)."""

from __future__ import annotations

from pathlib import Path

import typer

from autolabel.cli import _guard, app


@app.command()
def review(
    run_dir: Path = typer.Argument(..., help="Output directory of an `autolabel label` run."),
    dataset_name: str | None = typer.Option(
        None, help="FiftyOne dataset [default: autolabel-<run dir name>-<hash of its path>]."
    ),
    port: int = typer.Option(5151, help="App port."),
    address: str = typer.Option("localhost", help="Address to serve on (0.0.0.0 for other machines)."),
    remote: bool = typer.Option(False, "--remote", help="Do not try to open a browser (serving for a remote one)."),
    refresh: bool = typer.Option(
        False, "--refresh", help="Rebuild the dataset from the run store (discards App edits)."
    ),
    low_margin: float = typer.Option(0.15, help="'low-confidence' view: under the class box threshold + this."),
    tiny_fraction: float = typer.Option(0.001, help="'tiny-masks' view: masks under this fraction of the image."),
    overlap_iou: float = typer.Option(0.5, help="'class-overlaps' view: IoU with another class above this."),
) -> None:
    """Review a run in the FiftyOne App with saved views; tag what is wrong 'reject', then
    `autolabel export --from-fiftyone NAME`."""

    def run() -> None:
        from autolabel.quality.review import ViewSettings, launch, prepare_dataset

        ds = prepare_dataset(run_dir, dataset_name, refresh, ViewSettings(low_margin, tiny_fraction, overlap_iou))
        typer.echo(f"dataset '{ds.name}': {len(ds)} images")
        launch(ds, port, address, remote, echo=lambda m: typer.echo(m, err=False))

    _guard(run)


@app.command("eval")
def evaluate(
    run_dir: Path = typer.Argument(..., help="Output directory of an `autolabel label` run."),
    gt: Path = typer.Option(
        ..., "--gt", help="Hand-labelled COCO instances file (file_name relative to the labeled folder)."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Where to write the JSON report [default: RUN_DIR/eval.json]."
    ),
) -> None:
    """COCO bbox and segm mAP, AP50, per-class AP and recall of the auto-labels against ground truth."""

    def run() -> None:
        import json

        from autolabel.fsutil import write_text_atomic
        from autolabel.quality.evaluate import evaluate_run, format_report

        report = evaluate_run(run_dir, gt)
        typer.echo(format_report(report))
        path = json_out or run_dir / "eval.json"
        write_text_atomic(path, json.dumps(report.to_json(), indent=2) + "\n")
        typer.echo(f"report: {path}")

    _guard(run)


@app.command()
def tune(
    run_dir: Path = typer.Argument(..., help="Output directory of an `autolabel label` run."),
    gt: Path = typer.Option(
        ...,
        "--gt",
        help="Hand-labeled COCO file covering some of the run's images (file_name relative to the labeled folder).",
    ),
    metric: str = typer.Option(
        "f1", help="What to maximise per class: f1, f0.5 (precision first) or f2 (recall first)."
    ),
    iou: float = typer.Option(0.5, min=0.05, max=0.95, help="IoU (mask IoU when both have masks) for a match."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Thresholds YAML [default: RUN_DIR/thresholds.yaml]."
    ),
) -> None:
    """Choose per-class box thresholds on hand-labeled images; writes a thresholds YAML and PR curves.
    Then: `autolabel export RUN --thresholds FILE`. No model is loaded."""

    def run() -> None:
        import json

        from autolabel.config.thresholds import thresholds_yaml
        from autolabel.export import ExportOptions, open_run_store, run_decisions
        from autolabel.fsutil import write_text_atomic
        from autolabel.quality.tune import format_tune, plot_curves, tune_run

        store = open_run_store(run_dir)
        try:
            meta = store.get_meta()
            if meta is None:
                raise UsageError(f"'{run_dir}' holds no run metadata")
            dec = run_decisions(meta, ExportOptions())
            report = tune_run(store, dec, float(meta.settings.get("detector.candidate_floor", 0.0)), gt, metric, iou)
        finally:
            store.close()
        typer.echo(format_tune(report))
        path = output or run_dir / "thresholds.yaml"
        write_text_atomic(path, thresholds_yaml(report.thresholds(), {c.name: c.note for c in report.classes}))
        write_text_atomic(path.with_suffix(".json"), json.dumps(report.to_json(), indent=2) + "\n")
        png = path.with_name(path.stem + "_pr.png")
        if plot_curves(report, png):
            typer.echo(f"PR curves: {png}")
        typer.echo(f"thresholds: {path}\nnext: autolabel export {run_dir} --thresholds {path}")

    from autolabel.errors import UsageError

    _guard(run)


@app.command()
def preview(
    run_dir: Path = typer.Argument(..., help="Output directory of an `autolabel label` run."),
    n: int = typer.Option(16, "-n", min=1, help="How many images."),
    seed: int | None = typer.Option(None, help="Pick a seeded random sample instead of the first N by path."),
    output: Path | None = typer.Option(None, "--output", "-o", help="[default: RUN_DIR/preview]"),
) -> None:
    """Overlay images (masks, boxes, class names, scores) and a contact sheet to look at before training."""

    def run() -> None:
        from autolabel.quality.preview import write_previews

        sheet, count = write_previews(run_dir, n, output, seed)
        typer.echo(f"{count} overlays; contact sheet: {sheet}")

    _guard(run)


@app.command()
def backends() -> None:
    """List the detector, segmenter and engine backends, their default models and their own options."""
    from autolabel.backends import BACKENDS, backend_options

    for spec in BACKENDS.values():
        typer.echo(f"{spec.name:18} {spec.kind:10} {spec.default_model or '-':38} {spec.summary}")
        role = "segmenter" if spec.kind == "segmenter" else "detector"
        for k, v in backend_options(spec.name, role).items():
            default, choices = v if isinstance(v, tuple) else (v, None)
            typer.echo(
                f"{'':18} option {role}.{k}: default {default!r}"
                + (f" (one of {', '.join(choices)})" if choices else "")
            )
