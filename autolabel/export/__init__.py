"""Exporters read the run store and write datasets. They never import backends."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolabel.decisions import DecisionCounts, DecisionSettings, decide
from autolabel.errors import MissingDependencyError, UsageError
from autolabel.export.yolo import YoloOptions, recover_yolo
from autolabel.fsutil import remove_stale_temp_files
from autolabel.run.store import RunMeta, RunStore, store_path
from autolabel.types import ImageResult

FORMATS = ("coco", "yolo", "fiftyone")
DEFAULT_FORMATS = "coco,yolo,fiftyone"
COCO_PATH = Path("coco") / "annotations.json"
YOLO_DIR = Path("yolo")


@dataclass(frozen=True)
class ExportOptions:
    coco_masks: str = "polygon"
    polygon_tolerance: float | None = None  # None: the run's masks.polygon_tolerance
    yolo: YoloOptions = field(default_factory=YoloOptions)
    dataset_name: str | None = None  # FiftyOne dataset; default autolabel-<run dir name>
    fiftyone_dir: str | None = None  # also write a FiftyOneDataset directory here
    replace_edited_dataset: bool = False  # replace a FiftyOne dataset that holds review edits
    box_threshold: float | None = None  # decision override: every class's box threshold
    class_thresholds: dict[str, float] | None = None  # decision override: {class name: box threshold}


def parse_formats(text: str) -> list[str]:
    """'coco,yolo' → ['coco', 'yolo']; unknown names are an error listing the valid ones."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise UsageError(f"unknown export format(s) {', '.join(bad) or '(none)'}; valid: {', '.join(FORMATS)}")
    return list(dict.fromkeys(names))


def check_export_dependencies(formats: list[str]) -> None:
    """Fail before labeling, not after hours of it, when an exporter's package is missing."""
    try:
        missing = importlib.util.find_spec("fiftyone") is None
    except (ImportError, ValueError):  # a broken or blocked installation counts as missing
        missing = True
    if "fiftyone" in formats and missing:
        raise MissingDependencyError(
            "the FiftyOne export needs the 'fiftyone' package",
            hint="pip install 'autolabel[fiftyone]', or leave fiftyone out of --format (e.g. --format coco,yolo)",
        )


def open_run_store(run_dir: str | Path) -> RunStore:
    if not store_path(run_dir).is_file():
        raise UsageError(
            f"'{run_dir}' is not an autolabel run directory (no {store_path(run_dir).name})",
            hint="pass the --output directory of an `autolabel label` run",
        )
    return RunStore(store_path(run_dir))


def run_decisions(meta: RunMeta, options: ExportOptions) -> DecisionSettings:
    """The run's decision settings (those of its last `label`), with the export's overrides. A
    threshold under the run's candidate floor cannot be honoured: the candidates below it were never
    stored."""
    if not meta.decisions:
        raise UsageError("this run store has no decision settings", hint="rerun `autolabel label` once")
    dec = DecisionSettings.from_json(meta.decisions).with_thresholds(options.box_threshold, options.class_thresholds)
    floor = float(meta.settings.get("detector.candidate_floor", 0.0))
    low = {c: t for c, t in zip(dec.classes, dec.class_thresholds) if t < floor - 1e-9}
    if low:
        raise UsageError(
            f"box threshold {', '.join(f'{c}={t}' for c, t in low.items())} is below the run's candidate floor "
            f"{floor}: candidates scoring less were not stored",
            hint=f"use thresholds >= {floor}, or relabel with a lower detector.candidate_threshold",
        )
    return dec


def class_box_thresholds(dec: DecisionSettings) -> dict[str, float]:
    """Each class's effective box threshold."""
    return dict(zip(dec.classes, dec.class_thresholds))


def run_has_masks(meta: RunMeta) -> bool:
    return meta.settings.get("segmenter.backend") != "none"


def decided_results(
    store: RunStore,
    dec: DecisionSettings,
    counts: DecisionCounts | None = None,
    on_image: Callable[[], None] | None = None,
) -> Iterator[ImageResult]:
    """The run's images with the decisions applied, one at a time, sorted by relative path."""
    for c in store.iter_candidates():
        yield ImageResult(c.relpath, c.width, c.height, decide(c.candidates, c.width, c.height, dec, counts))
        if on_image is not None:
            on_image()


@dataclass
class ExportReport:
    written: dict[str, str] = field(default_factory=dict)
    decisions: DecisionCounts = field(default_factory=DecisionCounts)
    objects_per_class: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def export_run(
    run_dir: str | Path, formats: list[str], options: ExportOptions = ExportOptions(), progress: Any = None
) -> ExportReport:
    """Write the requested exports of a run directory from its store, applying the decisions. No model
    is loaded. Each export replaces the previous one whole or not at all."""
    import time

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    check_export_dependencies(formats)
    store = open_run_store(run_dir)
    remove_stale_temp_files(run_dir)
    recover_yolo(run_dir / YOLO_DIR)
    report = ExportReport()
    try:
        meta = store.get_meta()
        if meta is None:
            raise UsageError(f"'{run_dir}' holds no run metadata", hint="rerun `autolabel label`")
        dec = run_decisions(meta, options)
        tolerance = dec.polygon_tolerance if options.polygon_tolerance is None else options.polygon_tolerance
        n_images = store.count_done()
        first = [True]

        def results(fmt: str) -> Iterator[ImageResult]:
            counts = report.decisions if first[0] else None
            first[0] = False
            if progress is not None:
                progress.start(n_images, 0, f"export {fmt}")
            try:
                for res in decided_results(store, dec, counts, progress.advance if progress else None):
                    if counts is not None:
                        for c in res.detections.class_id:
                            report.objects_per_class[dec.classes[int(c)]] += 1
                    yield res
            finally:
                if progress is not None:
                    progress.stop()

        report.objects_per_class = {c: 0 for c in dec.classes}
        _write_formats(run_dir, meta, formats, options, store, results, tolerance, dec, report)
    finally:
        store.close()
    report.seconds = time.perf_counter() - t0
    return report


def _write_formats(
    run_dir: Path,
    meta: RunMeta,
    formats: list[str],
    options: ExportOptions,
    store: RunStore,
    results: Callable[[str], Iterator[ImageResult]],
    tolerance: float,
    dec: DecisionSettings,
    report: ExportReport,
) -> None:
    from autolabel.export.coco import write_coco
    from autolabel.export.yolo import write_yolo

    written = report.written
    if "coco" in formats:
        path = run_dir / COCO_PATH
        write_coco(path, meta.classes, store.iter_image_sizes(), results("coco"), options.coco_masks, tolerance)
        written["coco"] = str(path)
    if "yolo" in formats:
        relpaths = [r for r, _, _ in store.iter_image_sizes()]
        counts = write_yolo(
            run_dir / YOLO_DIR,
            meta.classes,
            meta.input_root,
            results("yolo"),
            relpaths,
            run_has_masks(meta),
            options.yolo,
            tolerance,
        )
        split = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        written["yolo"] = f"{run_dir / YOLO_DIR / 'data.yaml'} ({split})"
    if "fiftyone" in formats:
        from autolabel.export.fiftyone import ReviewedDatasetKept, default_dataset_name, write_fiftyone

        info = {"run_dir": str(run_dir.resolve()), "box_thresholds": class_box_thresholds(dec)}
        name = options.dataset_name or default_dataset_name(run_dir)
        try:
            write_fiftyone(
                name,
                meta.classes,
                meta.input_root,
                results("fiftyone"),
                options.fiftyone_dir,
                info,
                replace_edited=options.replace_edited_dataset,
            )
            written["fiftyone"] = f"dataset '{name}'" + (
                f", directory {options.fiftyone_dir}" if options.fiftyone_dir else ""
            )
        except ReviewedDatasetKept:
            written["fiftyone"] = (
                f"dataset '{name}' kept: it has review edits (export them with "
                f"`autolabel export --from-fiftyone {name}`, rebuild it with "
                "`autolabel review RUN --refresh`, or pick --dataset-name)"
            )


def run_results(store: RunStore) -> Iterator[ImageResult]:
    """The run's images with the run's own decisions applied (what `export` writes by default)."""
    meta = store.get_meta()
    if meta is None:
        raise UsageError(f"'{store.path.parent}' holds no run metadata", hint="rerun `autolabel label`")
    yield from decided_results(store, run_decisions(meta, ExportOptions()))
