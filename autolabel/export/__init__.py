"""Exporters: decided images → datasets. One protocol (`base.Exporter`), one registry (`EXPORTERS`):
adding a format is one module with its exporter class and one line below. Exporters never import
backends; no model is loaded to export.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from autolabel.decisions import DecisionCounts, DecisionSettings
from autolabel.errors import AutolabelError, MissingDependencyError, UsageError
from autolabel.export.base import ExportContext, Exporter, ExportOptions, ExportSkipped, YoloOptions
from autolabel.export.records import decisions_digest, record_exports, stale_message
from autolabel.fsutil import RunLock, remove_stale_temp_files
from autolabel.interrupts import checkpoint
from autolabel.overrides import shadowed
from autolabel.progress import Progress
from autolabel.run.run import Run
from autolabel.types import ImageResult

__all__ = ["EXPORTERS", "FORMATS", "ExportContext", "ExportOptions", "ExportReport", "YoloOptions", "export_run"]


class ExportError(AutolabelError):
    """An export could not be written (disk full, read-only, permissions); what was there is kept."""


@dataclass(frozen=True)
class ExporterSpec:
    target: str  # "module:Class"
    title: str  # what the format is called in messages
    requires: str | None = None  # a package the format needs, checked before labeling starts
    install: str = ""  # how to get it


EXPORTERS: dict[str, ExporterSpec] = {
    "coco": ExporterSpec("autolabel.export.coco:CocoExporter", "COCO"),
    "yolo": ExporterSpec("autolabel.export.yolo_writer:YoloExporter", "YOLO"),
    "fiftyone": ExporterSpec(
        "autolabel.export.fiftyone:FiftyOneExporter", "FiftyOne", "fiftyone", "pip install 'autolabel[fiftyone]'"
    ),
    "labelstudio": ExporterSpec("autolabel.export.labelstudio:LabelStudioExporter", "Label Studio"),
    "cvat": ExporterSpec("autolabel.export.cvat:CvatExporter", "CVAT"),
    "mot": ExporterSpec("autolabel.export.mot:MotExporter", "MOT"),
}
FORMATS = tuple(EXPORTERS)


def parse_formats(text: str) -> list[str]:
    """'coco,yolo' → ['coco', 'yolo']; unknown names are an error listing the valid ones."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise UsageError(f"unknown export format(s) {', '.join(bad) or '(none)'}; valid: {', '.join(FORMATS)}")
    return list(dict.fromkeys(names))


def check_export_dependencies(formats: Iterable[str]) -> None:
    """Fail before labeling, not after hours of it, when an exporter's package is missing."""
    for fmt in formats:
        spec = EXPORTERS[fmt]
        if spec.requires is None:
            continue
        try:
            missing = importlib.util.find_spec(spec.requires) is None
        except (ImportError, ValueError):  # a broken or blocked installation counts as missing
            missing = True
        if missing:
            others = ",".join(f for f in FORMATS if f != fmt)
            raise MissingDependencyError(
                f"the {spec.title} export needs the '{spec.requires}' package",
                hint=f"{spec.install}, or leave {fmt} out of --format (e.g. --format {others})",
            )


def make_exporter(fmt: str) -> Exporter:
    module, _, cls = EXPORTERS[fmt].target.partition(":")
    exporter: Exporter = getattr(importlib.import_module(module), cls)()
    return exporter


def write_exports(
    ctx: ExportContext,
    formats: Iterable[str],
    results: Iterable[ImageResult],
    skipped: set[str] | None = None,
    refused: dict[str, UsageError] | None = None,
) -> dict[str, str]:
    """Write every format in one pass over `results` (each image decided once); returns {format: where}
    (for a format that declined, e.g. a reviewed FiftyOne dataset kept, why; its name is added to `skipped`).
    Each format is staged and swapped in whole when complete; on any failure (or Ctrl-C) every staging
    area is discarded and what was there before stays. A format that refuses its input at `open` (a clear
    UsageError) does not stop the others: they are written, then the refusal is raised naming what was
    written (or put in `refused`, for the caller to raise after recording what was written)."""
    written: dict[str, str] = {}
    open_: list[Exporter] = []
    closed: list[str] = []
    refusals: dict[str, UsageError] = {}
    try:
        for fmt in formats:
            exporter = make_exporter(fmt)
            try:
                exporter.open(ctx)
            except ExportSkipped as e:
                written[fmt] = str(e)
                if skipped is not None:
                    skipped.add(fmt)
                continue
            except UsageError as e:
                exporter.abort()
                refusals[fmt] = e
                continue
            except BaseException:
                exporter.abort()
                raise
            open_.append(exporter)
        if open_:
            for res in results:
                for exporter in open_:
                    exporter.add(res)
        while open_:
            exporter = open_[0]
            written[exporter.name] = exporter.close()
            closed.append(open_.pop(0).name)
    except OSError as e:  # disk full, read-only, permissions: the staging is gone, the previous export stays
        kept = (
            "nothing was replaced (the previous export is kept)"
            if not closed
            else (f"{', '.join(closed)} written; the other formats kept as they were")
        )
        raise ExportError(
            f"the export into '{ctx.out_dir}' failed: {e.strerror or e}"
            + (f" ({e.filename})" if getattr(e, "filename", None) else ""),
            hint=f"{kept}; free space or fix permissions and rerun"
            + ("; --media symlink needs almost no space" if e.errno == errno.ENOSPC else ""),
        ) from None
    finally:
        for exporter in open_:  # each staging goes, even when another's clean-up fails (a full disk)
            try:
                exporter.abort()
            except Exception:
                logging.getLogger(__name__).warning("cleaning up the %s export failed", exporter.name, exc_info=True)
    out = {fmt: written[fmt] for fmt in formats if fmt in written}
    if refused is not None:
        refused.update(refusals)
    elif refusals:
        raise refusal_error(refusals, out)
    return out


def refusal_error(refusals: dict[str, UsageError], written: dict[str, str]) -> UsageError:
    """One error for the formats that refused their input, naming those that were written all the same."""
    lines = [f"{fmt}: {e.message}" for fmt, e in refusals.items()]
    hints = [e.hint for e in refusals.values() if e.hint]
    done = f"written all the same: {', '.join(written)}" if written else "nothing was written"
    return UsageError("\n  ".join(lines), hint="; ".join([*hints, done]))


@dataclass
class ExportReport:
    written: dict[str, str] = field(default_factory=dict)
    decisions: DecisionCounts = field(default_factory=DecisionCounts)
    objects_per_class: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    applied: str = "ontology"  # which decisions: `ontology + tuned.yaml (12 class thresholds)`
    shadowed: list[str] = field(default_factory=list)  # class thresholds the overrides change
    warnings: list[str] = field(default_factory=list)  # an empty or suspicious dataset, with the fix
    images: int = 0  # images decided (0 when every format declined, e.g. a reviewed FiftyOne dataset kept)
    stale: str | None = None  # the run's other exports, written with other decisions, and how to refresh them


def class_box_thresholds(dec: DecisionSettings) -> dict[str, float]:
    """Each class's effective box threshold."""
    return dict(zip(dec.classes, dec.class_thresholds))


def model_version(run: Run) -> str:
    """What the predictions of an annotation tool are called: the run and its models."""
    models = [str(run.meta.settings.get(k)) for k in ("detector.model", "segmenter.model") if run.meta.settings.get(k)]
    return f"autolabel {run.dir.resolve().name}" + (f" ({' + '.join(models)})" if models else "")


def run_context(run: Run, dec: DecisionSettings, options: ExportOptions) -> ExportContext:
    """What the exporters of a run's export need to know."""
    from autolabel.export.fiftyone import default_dataset_name

    tolerance = dec.polygon_tolerance if options.polygon_tolerance is None else options.polygon_tolerance
    if not math.isfinite(tolerance) or tolerance < 0:
        raise UsageError(f"--polygon-tolerance {tolerance}: must be a finite number of pixels >= 0 (e.g. 1.0)")
    return ExportContext(
        out_dir=run.dir,
        classes=run.classes,
        images=run.images(),
        input_root=run.input_root,
        source=run.source,
        clips=run.clips,
        frames_dir=run.frames_dir,
        has_masks=run.meta.has_masks,
        options=options,
        polygon_tolerance=tolerance,
        dataset_name=options.dataset_name or default_dataset_name(run.dir),
        info={
            "run_dir": str(run.dir.resolve()),
            "box_thresholds": class_box_thresholds(dec),
            "decisions": decisions_digest(dec),
            "model_version": model_version(run),
        },
    )


def export_run(
    run_dir: str | Path,
    formats: list[str],
    options: ExportOptions | None = None,
    progress: Progress | None = None,
    wait: float = 0.0,
    relpaths: list[str] | None = None,
    out_dir: str | Path | None = None,
) -> ExportReport:
    """Write the requested exports of a run directory from its store, applying the decisions (the run's,
    with the options' threshold overrides). No model is loaded. Each export replaces the previous one whole
    or not at all. The run lock is held throughout: another `label` or `export` of the run is refused
    (or waited for up to `wait` seconds). `relpaths` and `out_dir` export only those images, elsewhere
    (e.g. the images `autolabel sample` picked, for an annotation tool)."""
    t0 = time.perf_counter()
    options = options or ExportOptions()
    check_export_dependencies(formats)
    report = ExportReport()
    with Run.open(run_dir) as run, RunLock(run.dir, what="exporting", wait=wait):
        remove_stale_temp_files(run.dir)
        overrides = options.threshold_overrides(run.overrides)
        dec = run.decisions(overrides)
        report.applied, report.shadowed = overrides.describe(), shadowed(run.ontology_decisions(), dec)
        ctx = run_context(run, dec, options)
        if relpaths is not None or out_dir is not None:
            keep = set(relpaths) if relpaths is not None else None
            images = [im for im in ctx.images if keep is None or im[0] in keep]
            ctx = replace(ctx, out_dir=Path(out_dir) if out_dir is not None else run.dir, images=images)
        report.objects_per_class = {c: 0 for c in dec.classes}
        chosen = sorted(relpaths) if relpaths is not None else None
        results = run.results(dec, relpaths=chosen, counts=report.decisions)
        results = _counted(results, report, dec, progress, formats, len(ctx.images))
        declined: set[str] = set()
        refused: dict[str, UsageError] = {}
        report.written = write_exports(ctx, formats, results, declined, refused)
        report.warnings = report.decisions.warnings(
            class_box_thresholds(dec), run.meta.candidate_floor, chosen=overrides.chosen()
        )
        if relpaths is None and out_dir is None:  # the run's own exports: they set and record its decisions
            record_exports(run, [f for f in report.written if f not in declined], dec, report.applied)
            if overrides != run.overrides:
                run.store.set_overrides(overrides.to_json())  # what later commands apply
                run.meta = replace(run.meta, overrides=overrides.to_json())
            report.stale = stale_message(run, dec)
        if refused:
            raise refusal_error(refused, report.written)
    report.seconds = time.perf_counter() - t0
    return report


def _counted(
    results: Iterator[ImageResult],
    report: ExportReport,
    dec: DecisionSettings,
    progress: Progress | None,
    formats: list[str],
    n_images: int,
) -> Iterator[ImageResult]:
    bar = progress or Progress()
    bar.start(n_images, 0, f"export {','.join(formats)}")
    try:
        for res in results:
            checkpoint()  # a deferred Ctrl-C stops here, between images
            for c in res.detections.class_id:
                report.objects_per_class[dec.classes[int(c)]] += 1
            report.images += 1
            yield res
            bar.advance()
    finally:
        bar.stop()
