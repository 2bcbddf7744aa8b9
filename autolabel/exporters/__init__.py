"""Exporters read the run store and write datasets. They never import backends."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MissingDependencyError, UsageError
from ..fsutil import remove_stale_temp_files
from ..store import RunMeta, RunStore, store_path
from .yolo import YoloOptions

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
            hint="pip install 'autolabel[fiftyone]', or leave fiftyone out of --format (e.g. --format coco,yolo)")


def open_run_store(run_dir: str | Path) -> RunStore:
    if not store_path(run_dir).is_file():
        raise UsageError(f"'{run_dir}' is not an autolabel run directory (no {store_path(run_dir).name})",
                         hint="pass the --output directory of an `autolabel label` run")
    return RunStore(store_path(run_dir))


def class_box_thresholds(meta: RunMeta) -> dict[str, float]:
    """Each class's effective box threshold in the run (per-class override or the detector's)."""
    ont = meta.settings.get("ontology", {})
    default = float(ont.get("detector", {}).get("box_threshold", 0.0))
    per = ont.get("class_box_threshold") or [None] * len(meta.classes)
    return {c: float(default if t is None else t) for c, t in zip(meta.classes, per)}


def run_has_masks(meta: RunMeta) -> bool:
    ont = meta.settings.get("ontology", {})
    return ont.get("segmenter", {}).get("backend") != "none"


def export_run(run_dir: str | Path, formats: list[str], options: ExportOptions = ExportOptions()) -> dict[str, str]:
    """Write the requested exports of a run directory from its store. No model is loaded.
    Returns {format: where it went}."""
    from .coco import write_coco
    from .yolo import write_yolo

    run_dir = Path(run_dir)
    check_export_dependencies(formats)
    store = open_run_store(run_dir)
    remove_stale_temp_files(run_dir)
    written: dict[str, str] = {}
    try:
        meta = store.get_meta()
        if meta is None:
            raise UsageError(f"'{run_dir}' holds no run metadata", hint="rerun `autolabel label`")
        tolerance = options.polygon_tolerance
        if tolerance is None:
            tolerance = float(meta.settings.get("ontology", {}).get("masks", {}).get("polygon_tolerance", 0.0))
        if "coco" in formats:
            path = run_dir / COCO_PATH
            write_coco(path, meta.classes, store.iter_image_sizes(), store.iter_results(), options.coco_masks, tolerance)
            written["coco"] = str(path)
        if "yolo" in formats:
            relpaths = [r for r, _, _ in store.iter_image_sizes()]
            counts = write_yolo(run_dir / YOLO_DIR, meta.classes, meta.input_root, store.iter_results(), relpaths,
                                run_has_masks(meta), options.yolo, tolerance)
            split = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            written["yolo"] = f"{run_dir / YOLO_DIR / 'data.yaml'} ({split})"
        if "fiftyone" in formats:
            from .fiftyone import ReviewedDatasetKept, default_dataset_name, write_fiftyone

            info = {"run_dir": str(run_dir.resolve()), "box_thresholds": class_box_thresholds(meta)}
            name = options.dataset_name or default_dataset_name(run_dir)
            try:
                write_fiftyone(name, meta.classes, meta.input_root, store.iter_results(), options.fiftyone_dir,
                               info, replace_edited=options.replace_edited_dataset)
                written["fiftyone"] = f"dataset '{name}'" + (f", directory {options.fiftyone_dir}"
                                                             if options.fiftyone_dir else "")
            except ReviewedDatasetKept:
                written["fiftyone"] = (f"dataset '{name}' kept: it has review edits (export them with "
                                       f"`autolabel export --from-fiftyone {name}`, rebuild it with "
                                       "`autolabel review RUN --refresh`, or pick --dataset-name)")
    finally:
        store.close()
    return written
