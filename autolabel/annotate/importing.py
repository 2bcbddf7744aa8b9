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

from autolabel.annotate.changes import ClassChanges, compare, pair, total
from autolabel.annotate.corrections import Corrections, Reviewed, read_corrections
from autolabel.annotate.reviewed import NOT_REVIEWED, ReviewedRule, handed_over, select
from autolabel.errors import UsageError
from autolabel.export import ExportContext, ExportOptions, check_export_dependencies, model_version, write_exports
from autolabel.export.coco import coco_categories
from autolabel.fsutil import RunLock, is_within, write_text_atomic
from autolabel.masks import box_mask, coded_rle, mask_to_xyxy
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
    rule: str = "auto"  # what counted as reviewed (`--reviewed`)
    unreviewed: int = 0  # images of the file left out as not reviewed (CVAT/COCO: unchanged, not handed over)
    notes: list[str] = field(default_factory=list)  # e.g. which of two tasks of one image counted

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "reviewed_images": self.reviewed,
            "reviewed_rule": self.rule,
            "notes": self.notes,
            "unreviewed_images": self.unreviewed,
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
    labels = reviewed.labels  # decoded once, for this image
    boxes = [mask_to_xyxy(m) for _, m in labels]
    return Detections(
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray([classes.index(c) for c, _ in labels], dtype=np.int64),
        None,  # a human's label has no score
        [c for c, _ in labels],
        np.stack([m for _, m in labels]) if labels else np.zeros((0, reviewed.height, reviewed.width), dtype=bool),
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


def merge_ground_truth(path: Path, corr: Corrections, classes: list[str], origin: dict[str, Any] | None = None) -> int:
    """Write the reviewed images into the run's ground-truth file (see `ground_truth_text`); returns how
    many images it holds."""
    text, n = ground_truth_text(path, corr, classes, origin)
    write_text_atomic(path, text)
    return n


def ground_truth_text(
    path: Path, corr: Corrections, classes: list[str], origin: dict[str, Any] | None = None
) -> tuple[str, int]:
    """The run's ground-truth file with the reviewed images merged in, keeping earlier imports of other images,
    and how many images it holds. Each image records which import it came from (`info.imports`, the
    image's `autolabel_import`), so every score can be traced back to what people checked."""
    old: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("info", {}).get("description") != _GT_MARK:
            raise UsageError(f"'{path}' was not written by autolabel: not replacing it", hint="move it away")
    old_names = {c["id"]: c["name"] for c in old["categories"]}
    names = classes + sorted({old_names[a["category_id"]] for a in old["annotations"]} - set(classes))
    old_imports = list(old.get("info", {}).get("imports", []))
    entries: dict[str, tuple[int, int, list[tuple[str, dict]], dict | None]] = {}
    by_image: dict[int, list[dict]] = {}
    for a in old["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for old_im in old["images"]:
        labels = [(old_names[a["category_id"]], a) for a in by_image.get(old_im["id"], [])]
        k = old_im.get("autolabel_import")
        came = None
        if isinstance(k, int) and 0 <= k < len(old_imports) and isinstance(old_imports[k], dict):
            came = {key: v for key, v in old_imports[k].items() if key != "images"}
        entries[old_im["file_name"]] = (old_im["width"], old_im["height"], labels, came)
    for rel, rv in corr.images.items():
        entries[rel] = (rv.width, rv.height, [(c, _annotation(r)) for c, r in rv.rles], origin)
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    imports: list[dict] = []
    for k, (rel, (w, h, labels, came)) in enumerate(sorted(entries.items()), start=1):
        im: dict[str, Any] = {"id": k, "file_name": rel, "width": w, "height": h}
        if came is not None:
            if came not in imports:
                imports.append(came)
            im["autolabel_import"] = imports.index(came)
        images.append(im)
        for name, a in labels:
            anns.append({**a, "id": len(anns) + 1, "image_id": k, "category_id": names.index(name) + 1})
    data = {
        "info": {
            "description": _GT_MARK,
            "imports": [{**i, "images": _count(images, n)} for n, i in enumerate(imports)],
        },
        "images": images,
        "annotations": anns,
        "categories": coco_categories(names),
    }
    return json.dumps(data) + "\n", len(images)


def _count(images: list[dict[str, Any]], k: int) -> int:
    return sum(1 for im in images if im.get("autolabel_import") == k)


def _annotation(rle: dict[str, Any]) -> dict[str, Any]:
    """A COCO annotation of a label kept as RLE (`{"size", "counts": str}`): its area and tight box."""
    from pycocotools import mask as mask_utils

    coded = coded_rle(rle)
    x, y, w, h = (int(v) for v in mask_utils.toBbox(coded))
    return {"segmentation": rle, "area": int(mask_utils.area(coded)), "bbox": [x, y, w, h], "iscrowd": 0}


def import_corrections(
    run_dir: str | Path,
    path: str | Path,
    formats: list[str],
    out_dir: str | Path | None = None,
    options: ExportOptions | None = None,
    reviewed_only: bool = False,
    ground_truth: bool = True,
    reviewed: ReviewedRule | str = "auto",
) -> ImportReport:
    """Read a corrections file, count what the reviewers changed, save the images a person reviewed (see
    `annotate.reviewed`) as ground truth and write a corrected dataset. Everything is checked before the
    first file is written."""
    options = options or ExportOptions()
    rule = reviewed if isinstance(reviewed, ReviewedRule) else ReviewedRule.parse(reviewed)
    check_export_dependencies(formats)
    with Run.open(run_dir) as run, RunLock(run.dir, what="importing corrections"):
        sizes = {r: (w, h) for r, w, h in run.images()}
        corr = read_corrections(path, sizes, run.clips)
        per_image, relinked = {}, set()
        for res in run.results(relpaths=sorted(corr.images)):
            mine, rv = run_labels(res, run.classes), corr.images[res.relpath]
            theirs = rv.labels  # decoded once, for this image
            per_image[res.relpath] = _changes(mine, theirs)
            if _ids_changed(mine, res.track_ids, theirs, rv.track_ids):
                relinked.add(res.relpath)
        changed = relinked | {r for r, c in per_image.items() if _any_change(c)}
        keep, unreviewed = select(rule, corr.source, sorted(corr.images), changed, handed_over(run.dir))
        corr.images = {r: corr.images[r] for r in keep}
        corr.left_out += unreviewed
        if not corr.images:
            why = f"{len(corr.left_out)} left out (not reviewed, skipped or rejected), {len(corr.unmatched)} unmatched"
            raise UsageError(f"'{path}' holds no reviewed image of this run ({why})", hint=_unmatched_hint(corr))
        names = {c for rv in corr.images.values() for c, _ in rv.rles}
        new_classes = sorted(names - set(run.classes))
        classes = run.classes + new_classes
        report = ImportReport(
            corr.source, len(corr.images), corr.left_out, corr.unmatched, dict(corr.ignored), {}, new_classes
        )
        report.rule, report.unreviewed, report.notes = rule.describe(), len(unreviewed), corr.notes
        for rel in keep:
            for name, c in per_image[rel].items():
                report.changes.setdefault(name, ClassChanges()).add(c)
        gt, gt_text = run.dir / GROUND_TRUTH, ""
        if ground_truth:  # made (and checked) before anything is written: a refused import changes nothing
            origin = {"file": str(Path(path).resolve()), "source": corr.source, "reviewed": rule.describe()}
            gt_text, report.ground_truth_images = ground_truth_text(gt, corr, classes, origin)
        if formats:
            report.written = _write_corrected(run, corr, classes, formats, out_dir, options, reviewed_only)
        if ground_truth:
            write_text_atomic(gt, gt_text)
            report.ground_truth = str(gt)
        write_text_atomic(run.dir / REPORT, json.dumps(report.to_json(), indent=2) + "\n")
    return report


def _changes(run: list[tuple[str, np.ndarray]], new: list[tuple[str, np.ndarray]]) -> dict[str, ClassChanges]:
    out: dict[str, ClassChanges] = {}
    compare(run, new, out)
    return out


def _ids_changed(
    mine: list[tuple[str, np.ndarray]],
    ids: np.ndarray | None,
    theirs: list[tuple[str, np.ndarray]],
    their_ids: list[int] | None,
) -> bool:
    """A video frame whose objects kept their shapes but got other track ids (a track switch fixed)."""
    if ids is None or their_ids is None:
        return False
    pairs = pair([m for _, m in mine], [m for _, m in theirs])
    return any(int(ids[i]) != their_ids[j] for i, j, _ in pairs)


def _any_change(changes: dict[str, ClassChanges]) -> bool:
    return any(c.edited or c.reclassified or c.removed or c.added for c in changes.values())


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
            else:  # a reviewed frame keeps its clip, and its objects the track ids the tool gave them
                fixed = _detections(rv, classes)
                tracks = None if rv.track_ids is None else np.asarray(rv.track_ids, dtype=np.int64)
                yield ImageResult(
                    res.relpath, res.width, res.height, fixed, res.clip, res.frame_index, res.time, tracks
                )

    with RunLock(out, what="exporting", tidy=True):
        return write_exports(ctx, formats, results())


def _unmatched_hint(corr: Corrections) -> str:
    if corr.unmatched:
        return f"image references not in the run, e.g. {corr.unmatched[0]!r}: export from the project of this run"
    if any(x.endswith(NOT_REVIEWED) for x in corr.left_out):
        return (
            "nobody changed an image of the file and none was handed over by `autolabel sample -f`: if people "
            "checked them, import with --reviewed all (or --reviewed FILE listing the checked images)"
        )
    return "review (submit) some tasks first, then export again"
