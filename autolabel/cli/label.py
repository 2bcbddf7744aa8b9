"""`autolabel label` and `autolabel validate`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autolabel.cli.common import (
    DEFAULT_FORMATS,
    EXIT_INTERRUPTED,
    EXIT_SKIPPED,
    CocoMasks,
    CocoMasksOpt,
    DatasetName,
    Device,
    FiftyoneDir,
    Formats,
    LabelStudioRoot,
    Media,
    MediaOpt,
    Multipart,
    MultipartOpt,
    Precision,
    Quiet,
    Seed,
    Split,
    ToolMasks,
    ToolMasksOpt,
    export_options,
    guard,
    refresh_report,
    stop_on_sigterm,
)

if TYPE_CHECKING:
    from autolabel.config.ontology import Ontology
    from autolabel.run.settings import RayOptions

OntologyArg = Annotated[Path, typer.Argument(help="Ontology YAML (prompts → classes, models, thresholds).")]
InputArg = Annotated[
    str,
    typer.Argument(
        help="Folder of images (searched recursively), one image file, or object storage: s3://bucket/prefix/, "
        "gs://…, az://… (credentials and endpoint from the environment)."
    ),
]
Relist = Annotated[
    bool, typer.Option("--relist", help="Object storage: list the prefix again (new or changed objects).")
]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Run directory [default: runs/<input name>-<hash of its path>].")
]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", help="Images per detector forward pass.")]
Limit = Annotated[
    int | None, typer.Option("--limit", min=1, help="Label only the first N images (sorted by path) for a quick look.")
]
ImagesFile = Annotated[
    Path | None,
    typer.Option(
        "--images",
        help="Label only the images listed in this file (paths relative to INPUT_DIR, one per line, e.g. "
        "RUN/sample.txt): try another detector on the hand-labeled images in minutes, then `autolabel compare`.",
    ),
]
DeviceOpt = Annotated[Device, typer.Option(help="auto picks cuda, then mps, then cpu.")]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(help="fp16/bf16 only on CUDA; auto = bf16 where the GPU supports it, else fp16; fp32 on CPU."),
]
DetectorOpt = Annotated[str | None, typer.Option(help="Detector backend (see `autolabel backends`).")]
DetectorModel = Annotated[str | None, typer.Option(help="Detector hub id, local directory or checkpoint.")]
SegmenterOpt = Annotated[str | None, typer.Option(help="Segmenter backend, or 'none' for boxes only.")]
SegmenterModel = Annotated[str | None, typer.Option(help="Segmenter hub id, local directory or checkpoint.")]
LabelBoxThreshold = Annotated[
    float | None, typer.Option(min=0.0, max=1.0, help="Override detector.box_threshold (a decision: no relabel).")
]
Tile = Annotated[
    int | None,
    typer.Option(
        "--tile", min=32, help="Also detect on overlapping tiles of this size (small objects); see detector.tiling."
    ),
]
MaxImagePixels = Annotated[
    int | None, typer.Option(help="Decompression-bomb limit in pixels [default: Pillow's, ~179 MP].")
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Discard a previous run in OUTPUT made from another folder or with other inference settings.",
    ),
]
Ray = Annotated[
    bool, typer.Option("--ray", help="Run inference as a Ray Data pipeline (every GPU of the machine, or a cluster).")
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="--ray: model replicas [default: the GPUs Ray sees, 1 without GPUs]."),
]
GpusPerWorker = Annotated[float, typer.Option("--gpus-per-worker", min=0.0, help="--ray: GPUs per replica.")]
RayResource = Annotated[
    list[str] | None,
    typer.Option(
        "--ray-resource",
        help="--ray: a custom resource each replica needs, NAME=AMOUNT (repeatable), to pin replicas to the "
        "nodes that offer it (e.g. labeler=1 on GPU nodes started with --resources '{\"labeler\": 4}').",
    ),
]
RayAddress = Annotated[
    str | None, typer.Option("--ray-address", help="--ray: join this cluster [default: RAY_ADDRESS, else a local Ray].")
]


def label(
    ontology: OntologyArg,
    input_dir: InputArg,
    output: Output = None,
    formats: Formats = DEFAULT_FORMATS,
    coco_masks: CocoMasksOpt = CocoMasks.polygon,
    split: Split = "0.8,0.2",
    seed: Seed = 0,
    media: MediaOpt = Media.symlink,
    multipart: MultipartOpt = Multipart.merge,
    dataset_name: DatasetName = None,
    fiftyone_dir: FiftyoneDir = None,
    tool_masks: ToolMasksOpt = ToolMasks.rle,
    labelstudio_root: LabelStudioRoot = None,
    batch_size: BatchSize = 4,
    limit: Limit = None,
    images: ImagesFile = None,
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = Precision.auto,
    detector: DetectorOpt = None,
    detector_model: DetectorModel = None,
    segmenter: SegmenterOpt = None,
    segmenter_model: SegmenterModel = None,
    box_threshold: LabelBoxThreshold = None,
    tile: Tile = None,
    max_image_pixels: MaxImagePixels = None,
    overwrite: Overwrite = False,
    relist: Relist = False,
    quiet: Quiet = False,
    ray: Ray = False,
    workers: Workers = None,
    gpus_per_worker: GpusPerWorker = 1.0,
    ray_address: RayAddress = None,
    ray_resource: RayResource = None,
) -> None:
    """Label every image under INPUT_DIR with the ONTOLOGY and write the exports. Reruns resume."""
    from autolabel.cli import supervise

    if ray and not supervise.is_child():  # Ray may end its driver process itself: watch it from here
        from autolabel.api import default_output

        raise typer.Exit(supervise.supervise(output if output is not None else default_output(input_dir)))
    if supervise.is_child():
        supervise.take_one_interrupt()

    def run() -> int:
        from autolabel.api import default_output, label_folder
        from autolabel.cli.progress import RichProgress, print_summary
        from autolabel.export import parse_formats
        from autolabel.images import DEFAULT_MAX_IMAGE_PIXELS
        from autolabel.run.settings import RayOptions, RunSettings

        stop_on_sigterm()
        fmts = parse_formats(formats)
        models = {"detector": (detector, detector_model), "segmenter": (segmenter, segmenter_model)}
        ont = ontology_with(ontology, models, box_threshold, tile)
        out = output if output is not None else default_output(input_dir)
        ray_opts: RayOptions | None = None
        if ray:
            ray_opts = RayOptions(ray_address, workers, gpus_per_worker, resources=parse_resources(ray_resource))
        pixels = max_image_pixels or DEFAULT_MAX_IMAGE_PIXELS
        settings = RunSettings(
            batch_size=batch_size,
            device=device.value,
            precision=precision.value,
            overwrite=overwrite,
            relist=relist,
            max_image_pixels=pixels,
            limit=limit,
            images=read_list(images),
            ray=ray_opts,
        )
        opts = export_options(
            coco_masks, split, seed, media, multipart, dataset_name, fiftyone_dir, None, tool_masks, labelstudio_root
        )
        bars: dict[str, Any] = {} if quiet else {"progress": RichProgress(), "export_progress": RichProgress("export")}
        summary, written = label_folder(ont, input_dir, out, fmts, settings, opts, **bars)
        if not quiet:
            print_summary(summary, written, out)
            refresh_report(out)
        if summary.interrupted:
            typer.echo("interrupted: rerun the same command to resume (finished images are kept)", err=True)
            return EXIT_INTERRUPTED
        return EXIT_SKIPPED if summary.skipped else 0

    code = guard(run)
    if code:
        raise typer.Exit(code)


def read_list(path: Path | None) -> tuple[str, ...] | None:
    """The relative paths of a `--images` file (blank lines and `#` comments skipped)."""
    from autolabel.errors import UsageError

    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--images '{path}' cannot be read ({e})") from None
    paths = tuple(x.strip() for x in lines if x.strip() and not x.lstrip().startswith("#"))
    if not paths:
        raise UsageError(f"--images '{path}' lists no image", hint="one path per line, relative to INPUT_DIR")
    return paths


def parse_resources(items: list[str] | None) -> tuple[tuple[str, float], ...]:
    """`--ray-resource labeler=0.5` → (("labeler", 0.5),)."""
    from autolabel.errors import UsageError

    out = []
    for item in items or []:
        name, _, amount = item.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not name.strip() or value <= 0:
            raise UsageError(f"--ray-resource '{item}': expected NAME=AMOUNT with AMOUNT > 0, e.g. labeler=1")
        out.append((name.strip(), value))
    return tuple(out)


def ontology_with(
    path: Path, models: dict[str, tuple[str | None, str | None]], box_threshold: float | None, tile: int | None
) -> Ontology:
    """The ontology file with the command line's backend, model, threshold and tile overrides."""
    from dataclasses import replace

    from autolabel.config.load import load_ontology
    from autolabel.config.ontology import TilingConfig

    (det, det_model), (seg, seg_model) = models["detector"], models["segmenter"]
    ont = load_ontology(path).with_overrides(
        detector={"backend": det, "model": det_model, "box_threshold": box_threshold},
        segmenter={"backend": seg, "model": seg_model},
    )
    if tile is None:
        return ont
    base = ont.detector.tiling or TilingConfig()
    return replace(ont, detector=replace(ont.detector, tiling=replace(base, tile=tile)))


def validate(ontology: Annotated[Path, typer.Argument(help="Ontology YAML to check.")]) -> None:
    """Check an ontology file without loading any model."""

    def run() -> None:
        from autolabel.config.load import load_ontology

        ont = load_ontology(ontology)  # backends (plugins imported) are checked with everything else
        typer.echo(f"{ontology}: ok — {len(ont.prompts)} prompts → {len(ont.classes)} classes")
        by_class: list[list[str]] = [[] for _ in ont.classes]
        for p, c in zip(ont.prompts, ont.prompt_class):
            by_class[c].append(p)
        for cid, (name, prompts) in enumerate(zip(ont.classes, by_class)):
            typer.echo(
                f"  {cid}: {name} ← {', '.join(repr(p) for p in prompts)} "
                f"(box_threshold {ont.box_threshold_of_class(cid)})"
            )
        if ont.negatives:
            typer.echo(f"  negatives (detected, never exported): {', '.join(repr(p) for p in ont.negatives)}")
        from autolabel.config.plan import make_plan

        plan = make_plan(ont)
        segmenter = (
            f"segmenter: {ont.segmenter.backend} ({plan.segmenter_model or 'default model'})"
            if plan.segmenter_model
            else ("segmenter: none (the engine makes masks)" if plan.engine and plan.segments else "segmenter: none")
        )
        dets = ", ".join(f"{d.backend} ({d.model or 'default model'})" for d in plan.sources)
        typer.echo(f"  {'ensemble' if ont.ensemble else 'detector'}: {dets}; {segmenter}")
        if ont.ensemble:
            f = ont.fusion
            typer.echo(f"  fusion: {f.score} of the scores, {f.mask} mask, objects at IoU {f.iou}")
        if ont.verifier is not None:
            v = ont.verifier
            typer.echo(
                f"  verifier: {v.backend} ({plan.verifier_model or 'plugin'}) asks about scores in "
                f"[{v.low}, {v.high}); keeps P(yes) >= {v.min_yes}"
            )
        for e in ont.examples:
            typer.echo(f"  examples of {e.prompt!r}: {len(e.boxes)} boxes" + ("" if e.text else " (without its text)"))

    guard(run)


def backends() -> None:
    """List the detector, segmenter, engine and verifier backends, their default models and their own options."""
    from autolabel.backends import BACKENDS, backend_options

    for spec in BACKENDS.values():
        typer.echo(f"{spec.name:18} {spec.kind:10} {spec.default_model or '-':38} {spec.summary}")
        role = spec.kind if spec.kind in ("segmenter", "verifier") else "detector"
        for k, v in backend_options(spec.name, role).items():
            default, choices = v if isinstance(v, tuple) else (v, None)
            typer.echo(
                f"{'':18} option {role}.{k}: default {default!r}"
                + (f" (one of {', '.join(choices)})" if choices else "")
            )
