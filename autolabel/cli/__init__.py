"""Command line: thin typer commands over library functions. Heavy modules are imported inside commands.

Exit codes: 0 success; 2 bad input (ontology, arguments, model, output dir), nothing written;
3 the run finished but some images were skipped (listed in OUTPUT/skipped.txt); 130 interrupted;
1 unexpected error (set AUTOLABEL_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Turn a folder of unlabeled images into an instance-segmentation dataset.",
)

EXIT_SKIPPED = 3
EXIT_INTERRUPTED = 130


class Media(str, Enum):
    symlink = "symlink"
    hardlink = "hardlink"
    copy = "copy"


class Multipart(str, Enum):
    merge = "merge"
    largest = "largest"


class CocoMasks(str, Enum):
    polygon = "polygon"
    rle = "rle"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


# Export options shared by `label` and `export` (typer reads these as parameter defaults).
FORMATS_OPT = typer.Option("coco,yolo,fiftyone", "--format", "-f", help="Exports, comma-separated: coco,yolo,fiftyone.")
COCO_MASKS_OPT = typer.Option(CocoMasks.polygon, help="COCO segmentation as polygons or compressed RLE.")
SPLIT_OPT = typer.Option("0.8,0.2", help="YOLO train,val[,test] fractions (seeded, reproducible).")
SEED_OPT = typer.Option(0, help="Seed of the YOLO split.")
MEDIA_OPT = typer.Option(Media.symlink, help="How YOLO images/ refer to the source images.")
MULTIPART_OPT = typer.Option(
    Multipart.merge, help="YOLO: bridge a multi-part mask into one polygon, or keep the largest part."
)
DATASET_NAME_OPT = typer.Option(
    None, help="FiftyOne dataset name [default: autolabel-<run dir name>-<hash of its path>]."
)
FIFTYONE_DIR_OPT = typer.Option(None, help="Also write the FiftyOne dataset to this directory.")


def _fail(message: str, hint: str | None, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    raise typer.Exit(code)


def _guard(fn: Callable[[], Any]) -> Any:
    """The one error boundary: library errors → `error:`/`hint:` lines and their exit code; anything
    unexpected → one `error:` line and exit 1 (AUTOLABEL_DEBUG=1 shows the traceback)."""
    from autolabel.errors import AutolabelError

    try:
        return fn()
    except (typer.Exit, typer.Abort):
        raise
    except AutolabelError as e:
        if os.environ.get("AUTOLABEL_DEBUG"):
            raise
        _fail(e.message, e.hint, e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted: rerun the same command to resume (finished images are kept)", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as e:
        if os.environ.get("AUTOLABEL_DEBUG"):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        _fail(
            f"unexpected {type(e).__name__}: {first}",
            "set AUTOLABEL_DEBUG=1 for the traceback; finished images are kept (a rerun resumes)",
            1,
        )


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"autolabel {version('autolabel')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Turn a folder of unlabeled images into an instance-segmentation dataset."""


@app.command()
def label(
    ontology: Path = typer.Argument(..., help="Ontology YAML (prompts → classes, models, thresholds)."),
    input_dir: Path = typer.Argument(..., help="Folder of images (searched recursively), or one image file."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Run directory [default: runs/<input name>-<hash of its path>]."
    ),
    formats: str = FORMATS_OPT,
    coco_masks: CocoMasks = COCO_MASKS_OPT,
    split: str = SPLIT_OPT,
    seed: int = SEED_OPT,
    media: Media = MEDIA_OPT,
    multipart: Multipart = MULTIPART_OPT,
    dataset_name: str | None = DATASET_NAME_OPT,
    fiftyone_dir: Path | None = FIFTYONE_DIR_OPT,
    batch_size: int = typer.Option(4, "--batch-size", "-b", help="Images per detector forward pass."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Label only the first N images (sorted by path) for a quick look."
    ),
    device: Device = typer.Option(Device.auto, help="auto picks cuda, then mps, then cpu."),
    precision: Precision = typer.Option(
        Precision.auto, help="fp16/bf16 only on CUDA; auto = bf16 where the GPU supports it, else fp16; fp32 on CPU."
    ),
    detector: str | None = typer.Option(None, help="Detector backend (see `autolabel backends`)."),
    detector_model: str | None = typer.Option(None, help="Detector hub id, local directory or checkpoint."),
    segmenter: str | None = typer.Option(None, help="Segmenter backend, or 'none' for boxes only."),
    segmenter_model: str | None = typer.Option(None, help="Segmenter hub id, local directory or checkpoint."),
    box_threshold: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Override detector.box_threshold (a decision: no relabel)."
    ),
    tile: int | None = typer.Option(
        None,
        "--tile",
        min=32,
        help="Also detect on overlapping tiles of this size (small objects); see detector.tiling.",
    ),
    max_image_pixels: int | None = typer.Option(
        None, help="Decompression-bomb limit in pixels [default: Pillow's, ~179 MP]."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Discard a previous run in OUTPUT made from another folder or with other inference settings.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    ray: bool = typer.Option(
        False, "--ray", help="Run inference as a Ray Data pipeline (every GPU of the machine, or a cluster)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="--ray: model replicas [default: the GPUs Ray sees, 1 without GPUs]."
    ),
    gpus_per_worker: float = typer.Option(1.0, "--gpus-per-worker", min=0.0, help="--ray: GPUs per replica."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="--ray: join this cluster [default: RAY_ADDRESS, else a local Ray]."
    ),
) -> None:
    """Label every image under INPUT_DIR with the ONTOLOGY and write the exports. Reruns resume."""

    def run() -> int:
        import signal

        from autolabel.api import default_output, label_folder
        from autolabel.cli.progress import RichProgress, print_summary
        from autolabel.config.ontology import load_ontology
        from autolabel.export import parse_formats
        from autolabel.images import DEFAULT_MAX_IMAGE_PIXELS
        from autolabel.run.settings import RayOptions, RunSettings

        def _terminate(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt  # SIGTERM (a scheduler's stop) ends the run as cleanly as Ctrl-C

        signal.signal(signal.SIGTERM, _terminate)
        fmts = parse_formats(formats)
        ont = load_ontology(ontology).with_overrides(
            detector={"backend": detector, "model": detector_model, "box_threshold": box_threshold},
            segmenter={"backend": segmenter, "model": segmenter_model},
        )
        if tile is not None:
            from dataclasses import replace as _replace

            from autolabel.config.ontology import TilingConfig

            base = ont.detector.tiling or TilingConfig()
            ont = _replace(ont, detector=_replace(ont.detector, tiling=_replace(base, tile=tile)))
        out = output if output is not None else default_output(input_dir)
        settings = RunSettings(
            batch_size=batch_size,
            device=device.value,
            precision=precision.value,
            overwrite=overwrite,
            max_image_pixels=max_image_pixels or DEFAULT_MAX_IMAGE_PIXELS,
            limit=limit,
            ray=RayOptions(ray_address, workers, gpus_per_worker) if ray else None,
        )
        opts = _export_options(coco_masks, None, split, seed, media, multipart, dataset_name, fiftyone_dir)
        summary, written = label_folder(
            ont,
            input_dir,
            out,
            fmts,
            settings,
            opts,
            progress=None if quiet else RichProgress(),
            export_progress=None if quiet else RichProgress("export"),
        )
        if not quiet:
            print_summary(summary, written, out)
        if summary.interrupted:
            typer.echo("interrupted: rerun the same command to resume (finished images are kept)", err=True)
            return EXIT_INTERRUPTED
        return EXIT_SKIPPED if summary.skipped else 0

    code = _guard(run)
    if code:
        raise typer.Exit(code)


@app.command()
def validate(ontology: Path = typer.Argument(..., help="Ontology YAML to check.")) -> None:
    """Check an ontology file without loading any model."""

    def run() -> None:
        from autolabel.config.ontology import load_ontology

        ont = load_ontology(ontology)  # backends (plugins imported) are checked with everything else
        typer.echo(f"{ontology}: ok — {len(ont.prompts)} prompts → {len(ont.classes)} classes")
        for cid, name in enumerate(ont.classes):
            prompts = [p for p, c in zip(ont.prompts, ont.prompt_class) if c == cid]
            typer.echo(
                f"  {cid}: {name} ← {', '.join(repr(p) for p in prompts)} "
                f"(box_threshold {ont.box_threshold_of_class(cid)})"
            )
        if ont.negatives:
            typer.echo(f"  negatives (detected, never exported): {', '.join(repr(p) for p in ont.negatives)}")
        typer.echo(
            f"  detector: {ont.detector.backend} ({ont.detector.model or 'default model'}); "
            f"segmenter: {ont.segmenter.backend} ({ont.segmenter.model or 'default model'})"
        )

    _guard(run)


def _export_options(
    coco_masks: CocoMasks,
    polygon_tolerance: float | None,
    split: str,
    seed: int,
    media: Media,
    multipart: Multipart,
    dataset_name: str | None,
    fiftyone_dir: Path | None,
) -> Any:
    from autolabel.export import ExportOptions
    from autolabel.export.yolo import YoloOptions, parse_split

    yolo = YoloOptions(split=parse_split(split), seed=seed, media=media.value, multipart=multipart.value)
    return ExportOptions(
        coco_masks=coco_masks.value,
        polygon_tolerance=polygon_tolerance,
        yolo=yolo,
        dataset_name=dataset_name,
        fiftyone_dir=str(fiftyone_dir) if fiftyone_dir else None,
    )


@app.command()
def export(
    run_dir: Path | None = typer.Argument(None, help="Output directory of an `autolabel label` run."),
    formats: str = FORMATS_OPT,
    coco_masks: CocoMasks = COCO_MASKS_OPT,
    polygon_tolerance: float | None = typer.Option(
        None, min=0.0, help="Polygon simplification in pixels [default: the run's masks.polygon_tolerance]."
    ),
    split: str = SPLIT_OPT,
    seed: int = SEED_OPT,
    media: Media = MEDIA_OPT,
    multipart: Multipart = MULTIPART_OPT,
    dataset_name: str | None = DATASET_NAME_OPT,
    fiftyone_dir: Path | None = FIFTYONE_DIR_OPT,
    from_fiftyone: str | None = typer.Option(
        None,
        "--from-fiftyone",
        help="Write corrected COCO/YOLO from this reviewed FiftyOne dataset (items tagged 'reject' left out).",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="With --from-fiftyone: where to write [default: RUN_DIR/corrected]."
    ),
    box_threshold: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Every class's box threshold for this export [default: the run's]."
    ),
    thresholds: Path | None = typer.Option(
        None,
        "--thresholds",
        help="YAML of per-class box thresholds (`classes: {name: {box_threshold: x}}`, as `autolabel tune` writes).",
    ),
) -> None:
    """Write exports again from a run's store with the decisions applied (no model loaded), or corrected
    ones from a reviewed dataset."""

    def run() -> None:
        from dataclasses import replace

        from autolabel.config.thresholds import load_thresholds
        from autolabel.errors import UsageError
        from autolabel.export import export_run, parse_formats

        fmts = parse_formats(formats)
        opts = _export_options(coco_masks, polygon_tolerance, split, seed, media, multipart, dataset_name, fiftyone_dir)
        opts = replace(
            opts, box_threshold=box_threshold, class_thresholds=load_thresholds(thresholds) if thresholds else None
        )
        if from_fiftyone:
            from autolabel.quality.review import export_from_dataset

            if output is None and run_dir is None:
                raise UsageError("--from-fiftyone needs RUN_DIR or --output to know where to write")
            target = output or (run_dir / "corrected")  # type: ignore[operator]
            fmts = [f for f in fmts if f != "fiftyone"] if formats == "coco,yolo,fiftyone" else fmts
            written = export_from_dataset(from_fiftyone, fmts, target, opts)
        else:
            if run_dir is None:
                raise UsageError("give the RUN_DIR to export (the --output of `autolabel label`)")
            from autolabel.cli.progress import RichProgress, print_decisions

            report = export_run(run_dir, fmts, opts, progress=RichProgress("export"))
            print_decisions(report.decisions, report.objects_per_class)
            written = report.written
        for fmt, path in written.items():
            typer.echo(f"{fmt}: {path}")

    _guard(run)


from autolabel.cli import quality as cli_quality  # noqa: E402,F401 - registers review, eval, tune, preview, backends


def main() -> None:
    app(prog_name="autolabel")


if __name__ == "__main__":  # `python -m autolabel.cli`: run the package module, where every command is registered
    from autolabel.cli import main as _package_main

    sys.exit(_package_main())
