"""Exporters read the run store and write datasets. They never import backends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..store import RunStore, store_path

FORMATS = ("coco",)
COCO_PATH = Path("coco") / "annotations.json"


@dataclass(frozen=True)
class ExportOptions:
    coco_masks: str = "polygon"
    polygon_tolerance: float = 0.0


def parse_formats(text: str) -> list[str]:
    """'coco,yolo' → ['coco', 'yolo']; unknown names are an error listing the valid ones."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise UsageError(f"unknown export format(s) {', '.join(bad) or '(none)'}; valid: {', '.join(FORMATS)}")
    return list(dict.fromkeys(names))


def open_run_store(run_dir: str | Path) -> RunStore:
    if not store_path(run_dir).is_file():
        raise UsageError(f"'{run_dir}' is not an autolabel run directory (no {store_path(run_dir).name})",
                         hint="pass the --output directory of an `autolabel label` run")
    return RunStore(store_path(run_dir))


def export_run(run_dir: str | Path, formats: list[str], options: ExportOptions = ExportOptions()) -> dict[str, Path]:
    """Write the requested exports of a run directory from its store. No model is loaded."""
    from .coco import write_coco

    run_dir = Path(run_dir)
    store = open_run_store(run_dir)
    written: dict[str, Path] = {}
    try:
        meta = store.get_meta()
        if meta is None:
            raise UsageError(f"'{run_dir}' holds no finished run metadata", hint="rerun `autolabel label`")
        if "coco" in formats:
            path = run_dir / COCO_PATH
            write_coco(path, meta.classes, store.iter_image_sizes(), store.iter_results(),
                       options.coco_masks, options.polygon_tolerance)
            written["coco"] = path
    finally:
        store.close()
    return written
