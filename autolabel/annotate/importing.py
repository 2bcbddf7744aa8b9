"""`autolabel import RUN FILE`: human corrections back into a run.

1. What the reviewers changed, per class, against the labels the run exports (its recorded decisions).
2. The reviewed images become ground truth: `RUN/groundtruth.json` (COCO, RLE masks), merged with earlier
   imports (a re-reviewed image replaces its old entry), what `eval` and `tune` read when no `--gt` is given.
3. A corrected dataset in any export format (default `RUN/corrected/`): reviewed images as corrected,
   the others as the run labeled them (or left out with `reviewed_only`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.annotate.changes import ClassChanges, compare, total
from autolabel.annotate.corrections import Corrections, Reviewed, read_corrections
from autolabel.errors import UsageError
from autolabel.export import ExportContext, ExportOptions, check_export_dependencies, model_version, write_exports
from autolabel.export.coco import coco_categories
from autolabel.fsutil import RunLock, is_within, write_text_atomic
from autolabel.masks import box_mask, encode_rle, mask_to_xyxy
from autolabel.run.run import Run
from autolabel.types import Detections, ImageResult

GROUND_TRUTH = "groundtruth.json"
REPORT = "corrections.json"
_GT_MARK = "autolabel ground truth"


@dataclass
class ImportReport:
    source: str
    reviewed: int
    left_out: list[str]
    unmatched: list[str]
    ignored: dict[str, int]
    changes: dict[str, ClassChanges]
    new_classes: list[str]
    ground_truth: str | None = None
    ground_truth_images: int = 0
    written: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "reviewed_images": self.reviewed,
            "left_out": self.left_out,
            "unmatched": self.unmatched,
            "ignored_results": self.ignored,
            "new_classes": self.new_classes,
            "changes": {k: v.to_json() for k, v in sorted(self.changes.items())},
            "all": total(self.changes).to_json(),
            "ground_truth": self.ground_truth,
            "ground_truth_images": self.ground_truth_images,
            "written": self.written,
        }


def _detections(reviewed: Reviewed, classes: list[str]) -> Detections:
    boxes = [mask_to_xyxy(m) for _, m in reviewed.labels]
    return Detections(
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray([classes.index(c) for c, _ in reviewed.labels], dtype=np.int64),
        None,  # a human's label has no score
        [c for c, _ in reviewed.labels],
        np.stack([m for _, m in reviewed.labels])
        if reviewed.labels
        else np.zeros((0, reviewed.height, reviewed.width), dtype=bool),
    )


def run_labels(res: ImageResult, classes: list[str]) -> list[tuple[str, np.ndarray]]:
    det = res.detections
    out = []
    for i in range(len(det)):
        if det.masks is not None:
            mask = np.asarray(det.masks[i], dtype=bool)
        else:
            mask = box_mask(det.xyxy[i], res.height, res.width)
        out.append((classes[int(det.class_id[i])], mask))
    return out


def merge_ground_truth(path: Path, corr: Corrections, classes: list[str]) -> int:
    """Write the reviewed images into the run's ground-truth file, keeping earlier imports of other images;
    returns how many images it holds."""
    old: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("info", {}).get("description") != _GT_MARK:
            raise UsageError(f"'{path}' was not written by autolabel: not replacing it", hint="move it away")
    old_names = {c["id"]: c["name"] for c in old["categories"]}
    names = classes + sorted({old_names[a["category_id"]] for a in old["annotations"]} - set(classes))
    entries: dict[str, tuple[int, int, list[tuple[str, dict]]]] = {}
    by_image: dict[int, list[dict]] = {}
    for a in old["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for im in old["images"]:
        labels = [(old_names[a["category_id"]], a) for a in by_image.get(im["id"], [])]
        entries[im["file_name"]] = (im["width"], im["height"], labels)
    for rel, rv in corr.images.items():
        entries[rel] = (rv.width, rv.height, [(c, _annotation(m)) for c, m in rv.labels])
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for k, (rel, (w, h, labels)) in enumerate(sorted(entries.items()), start=1):
        images.append({"id": k, "file_name": rel, "width": w, "height": h})
        for name, a in labels:
            anns.append({**a, "id": len(anns) + 1, "image_id": k, "category_id": names.index(name) + 1})
    data = {
        "info": {"description": _GT_MARK},
        "images": images,
        "annotations": anns,
        "categories": coco_categories(names),
    }
    write_text_atomic(path, json.dumps(data) + "\n")
    return len(images)


def _annotation(mask: np.ndarray) -> dict[str, Any]:
    box = mask_to_xyxy(mask)
    assert box is not None
    x0, y0, x1, y1 = (int(v) for v in box)
    return {"segmentation": encode_rle(mask), "area": int(mask.sum()), "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0}


def import_corrections(
    run_dir: str | Path,
    path: str | Path,
    formats: list[str],
    out_dir: str | Path | None = None,
    options: ExportOptions | None = None,
    reviewed_only: bool = False,
    ground_truth: bool = True,
) -> ImportReport:
    options = options or ExportOptions()
    check_export_dependencies(formats)
    with Run.open(run_dir) as run, RunLock(run.dir, what="importing corrections"):
        sizes = {r: (w, h) for r, w, h in run.images()}
        corr = read_corrections(path, sizes)
        if not corr.images:
            why = f"{len(corr.left_out)} left out (not reviewed, skipped or rejected), {len(corr.unmatched)} unmatched"
            raise UsageError(f"'{path}' holds no reviewed image of this run ({why})", hint=_unmatched_hint(corr))
        names = {c for rv in corr.images.values() for c, _ in rv.labels}
        new_classes = sorted(names - set(run.classes))
        classes = run.classes + new_classes
        report = ImportReport(
            corr.source, len(corr.images), corr.left_out, corr.unmatched, dict(corr.ignored), {}, new_classes
        )
        for res in run.results(relpaths=sorted(corr.images)):
            compare(run_labels(res, run.classes), corr.images[res.relpath].labels, report.changes)
        if ground_truth:
            gt = run.dir / GROUND_TRUTH
            report.ground_truth, report.ground_truth_images = str(gt), merge_ground_truth(gt, corr, classes)
        if formats:
            report.written = _write_corrected(run, corr, classes, formats, out_dir, options, reviewed_only)
        write_text_atomic(run.dir / REPORT, json.dumps(report.to_json(), indent=2) + "\n")
    return report


def _write_corrected(
    run: Run,
    corr: Corrections,
    classes: list[str],
    formats: list[str],
    out_dir: str | Path | None,
    options: ExportOptions,
    reviewed_only: bool,
) -> dict[str, str]:
    out = Path(out_dir) if out_dir is not None else run.dir / "corrected"
    if is_within(out, run.input_root):
        raise UsageError(
            f"'{out}' is inside the labeled folder '{run.input_root}': autolabel never writes there",
            hint="choose an --output outside it (default: the run directory's corrected/)",
        )
    images = [im for im in run.images() if not reviewed_only or im[0] in corr.images]
    dec = run.decisions()
    ctx = ExportContext(
        out_dir=out,
        classes=classes,
        images=images,
        input_root=run.input_root,
        source=run.source,
        clips=run.clips,
        frames_dir=run.frames_dir,
        has_masks=True,
        options=options,
        polygon_tolerance=dec.polygon_tolerance if options.polygon_tolerance is None else options.polygon_tolerance,
        dataset_name=options.dataset_name or f"autolabel-{run.dir.resolve().name}-corrected",
        info={"run_dir": str(run.dir.resolve()), "model_version": model_version(run) + " corrected"},
    )

    def results() -> Iterator[ImageResult]:
        relpaths = [r for r, _, _ in images]
        for res in run.results(dec, relpaths=relpaths):
            rv = corr.images.get(res.relpath)
            if rv is None:
                yield res
            else:  # a reviewed frame keeps its clip; its objects, drawn by hand, carry no track id
                fixed = _detections(rv, classes)
                yield ImageResult(res.relpath, res.width, res.height, fixed, res.clip, res.frame_index, res.time)

    with RunLock(out, what="exporting"):
        return write_exports(ctx, formats, results())


def _unmatched_hint(corr: Corrections) -> str:
    if corr.unmatched:
        return f"image references not in the run, e.g. {corr.unmatched[0]!r}: export from the project of this run"
    return "review (submit) some tasks first, then export again"
