"""`autolabel eval`: compare a run's auto-labels with a hand-labelled COCO file (pycocotools COCOeval).

Images are matched by relative path (`file_name`), else by unique base name; classes by name. Classes and
images that do not match are reported, never silently dropped. A model without scores (Florence-2) is
ranked with score 1.0 for evaluation only.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.errors import UsageError
from autolabel.masks import encode_rle
from autolabel.overrides import ThresholdOverrides
from autolabel.quality.breakdown import Breakdown, ClassErrors
from autolabel.quality.groundtruth import (
    GtImage,
    describe_ground_truth,
    load_ground_truth,
    match_detections,
    read_coco,
    same_size_matches,
)
from autolabel.quality.matching import ClassMatches, f_score
from autolabel.run.run import Run
from autolabel.types import Detections, RleMasks


@dataclass
class EvalReport:
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # iou_type → {mAP, AP50, AP75, AR100}
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)  # class → {bbox AP, gt, pred, …}
    images_matched: int = 0
    images_only_in_gt: list[str] = field(default_factory=list)
    images_only_in_run: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    classes_only_in_gt: list[str] = field(default_factory=list)
    classes_only_in_run: list[str] = field(default_factory=list)
    decisions: str = "ontology"  # which decisions were scored (`ontology + tuned.yaml (…)`)
    gt_boxes_as_masks: int = 0  # GT annotations without segmentation, evaluated in segm as their box
    ground_truth: str = ""  # which file, how many images from which import (what people checked)
    overall: dict[str, dict[str, float | None]] = field(default_factory=dict)  # micro / macro P, R, F1 and mAP
    errors: dict[str, ClassErrors] = field(default_factory=dict)  # per class: misses and false positives by cause
    image_counts: dict[int | str, tuple[int, int, int]] = field(default_factory=dict)  # GT image id: tp, labels, gt

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out["errors"] = {k: v.to_json() for k, v in self.errors.items()}
        return out


def fill_gt_defaults(gt_data: dict) -> int:
    """pycocotools needs `iscrowd` and `area`; a GT without masks on some annotations is evaluated in segm
    as its box. Returns how many annotations were given their box as mask."""
    anns = gt_data["annotations"]
    gt_has_segm = any("segmentation" in a for a in anns)
    missing = 0
    for a in anns:
        a.setdefault("iscrowd", 0)
        a.setdefault("area", float(a["bbox"][2] * a["bbox"][3]))
        if gt_has_segm and not a.get("segmentation"):
            x, y, w, h = a["bbox"]
            a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
            missing += 1
    return missing


@dataclass
class _Predictions:
    """The run's exported labels on the matched images, for COCOeval and for the operating point."""

    coco: dict[str, list[dict]] = field(default_factory=lambda: {"bbox": [], "segm": []})
    count: Counter[str] = field(default_factory=Counter)
    has_masks: bool = False

    def add(self, det: Detections, image_id: int, classes: list[str], gt_names: dict[str, int]) -> None:
        for i in range(len(det)):
            name = classes[int(det.class_id[i])]
            if name not in gt_names:
                continue
            self.count[name] += 1
            x0, y0, x1, y1 = (float(v) for v in det.xyxy[i])
            base = {
                "image_id": image_id,
                "category_id": gt_names[name],
                "score": 1.0 if det.confidence is None else float(det.confidence[i]),
            }
            self.coco["bbox"].append({**base, "bbox": [x0, y0, x1 - x0, y1 - y0]})
            if det.masks is not None:
                self.has_masks = True
                rle = det.masks.rles[i] if isinstance(det.masks, RleMasks) else encode_rle(det.masks[i])
                self.coco["segm"].append({**base, "segmentation": rle})


class Scorer:
    """Labels of the hand-labeled images, one image at a time (`add`), scored against the ground truth:
    COCO mAP, each class's precision/recall/F1 at `operating` (keeping scores >= it; -1: every label) and
    each image's (true positives, labels, objects) over the classes evaluated."""

    def __init__(self, gt_data: dict, gt: dict[str, GtImage], classes: tuple[str, ...], operating: float = -1.0):
        self.gt_data, self.gt, self.classes, self.operating = gt_data, gt, classes, operating
        self.gt_names = {c["name"]: c["id"] for c in gt_data["categories"]}
        self.shared = [c for c in classes if c in self.gt_names]
        self.preds, self.matches = _Predictions(), {c: ClassMatches() for c in classes}
        self.image_counts: dict[int | str, tuple[int, int, int]] = {}

    def add(self, relpath: str, det: Detections, image_id: int) -> None:
        self.preds.add(det, image_id, list(self.classes), self.gt_names)
        one = {c: ClassMatches() for c in self.classes}
        match_detections(det, self.gt[relpath], self.classes, 0.5, one)
        counts = [0, 0, 0]
        for c in self.classes:
            self.matches[c].extend(one[c])
            if c in self.gt_names:
                _, _, tp, n = one[c].at(self.operating)
                counts = [counts[0] + tp, counts[1] + n, counts[2] + one[c].n_gt]
        self.image_counts[image_id] = (counts[0], counts[1], counts[2])

    def finish(self, report: EvalReport, img_ids: list[int]) -> None:
        prf: dict[str, dict[str, float | None]] = {}
        for c in self.shared:
            p, r, _, n = self.matches[c].at(self.operating)
            precision = p if n else None  # no prediction: n/a, not 0
            recall = r if self.matches[c].n_gt else None  # no ground truth: n/a, not 0
            f1 = float(f_score(p, r, 1.0)) if precision is not None and recall is not None else None
            prf[c] = {"precision": precision, "recall": recall, "f1": f1}
        _coco_metrics(report, self.gt_data, self.preds, img_ids, self.shared, self.gt_names, prf)
        report.overall = overall_scores(report, [self.matches[c] for c in self.shared], self.operating)
        report.image_counts = self.image_counts


def evaluate_run(
    run_dir: str | Path,
    gt_path: str | Path,
    overrides: ThresholdOverrides | None = None,
    gt_data: dict | None = None,
) -> EvalReport:
    """COCO bbox (and segm, when the run has masks) metrics of the run against the GT file (or `gt_data`,
    a COCO dict already read), each class's precision/recall/F1 at the run's thresholds and every error
    by cause. Each image is decided once."""
    gt_data = read_coco(gt_path) if gt_data is None else gt_data
    report = EvalReport(
        gt_boxes_as_masks=fill_gt_defaults(gt_data), ground_truth=describe_ground_truth(gt_data, gt_path)
    )
    with Run.open(run_dir) as run:
        classes = run.classes
        gt_names = {c["name"]: c["id"] for c in gt_data["categories"]}
        report.classes_only_in_gt = sorted(set(gt_names) - set(classes))
        report.classes_only_in_run = [c for c in classes if c not in gt_names]
        if not any(c in gt_names for c in classes):
            raise UsageError(
                "no class name of the run appears in the ground truth",
                hint=f"run classes: {', '.join(classes)}; GT: {', '.join(sorted(gt_names))}",
            )
        sizes = run.images()
        matched = _matched_images(report, gt_data, sizes)
        same = list(matched)
        gt = load_ground_truth(gt_data, sizes, classes)
        dec = run.decisions(overrides)  # what the run exports, unless other thresholds are asked for
        report.decisions = run.applied(overrides).describe()
        scorer = Scorer(gt_data, gt, dec.classes)
        breakdown = Breakdown(dec)
        for c, res in run.results_with_candidates(dec, relpaths=same):
            report.images_matched += 1
            scorer.add(res.relpath, res.detections, matched[res.relpath]["id"])
            breakdown.add(res.detections, c.candidates, c.width, c.height, gt[res.relpath])
        report.errors = {k: v for k, v in breakdown.finish().items() if k in gt_names}
    scorer.finish(report, sorted(matched[r]["id"] for r in same))
    return report


def _matched_images(report: EvalReport, gt_data: dict, sizes: list[tuple[str, int, int]]) -> dict[str, dict]:
    """The run images the ground truth covers at the same size (relpath → GT image); the rest is reported."""
    same, other = same_size_matches(gt_data["images"], sizes)
    report.size_mismatch = list(other)
    report.images_only_in_run = [r for r, _, _ in sizes if r not in same and r not in other]
    matched_ids = {im["id"] for im in [*same.values(), *other.values()]}
    report.images_only_in_gt = sorted(im["file_name"] for im in gt_data["images"] if im["id"] not in matched_ids)
    if not same:
        raise UsageError(
            "no image of the run matches the ground truth by file name",
            hint="GT file_name must be the path relative to the labeled folder (or a unique base name)",
        )
    return same


def overall_scores(
    report: EvalReport, matches: list[ClassMatches], operating: float = -1.0
) -> dict[str, dict[str, float | None]]:
    """All classes in one row: micro (every object counts once), macro (every class counts once, over the
    classes with ground truth or predictions), and the COCO mAP of each IoU type."""
    tp = pred = gt = 0
    for m in matches:
        _, _, t, n = m.at(operating)
        tp, pred, gt = tp + t, pred + n, gt + m.n_gt
    p, r = (tp / pred if pred else None), (tp / gt if gt else None)
    micro: dict[str, float | None] = {"precision": p, "recall": r, "f1": _f1(p, r), "tp": tp, "pred": pred, "gt": gt}
    rows = [v for v in report.per_class.values() if v.get("gt") or v.get("pred")]
    macro: dict[str, float | None] = {}
    for k in ("precision", "recall", "f1"):
        vals = [float(v[k] or 0.0) for v in rows]
        macro[k] = float(np.mean(vals)) if vals else None
    for iou_type, coco in report.metrics.items():
        micro[f"{iou_type}_mAP"] = macro[f"{iou_type}_mAP"] = coco["mAP"]
    return {"micro": micro, "macro": macro}


def _f1(p: float | None, r: float | None) -> float | None:
    return float(f_score(p, r, 1.0)) if p is not None and r is not None else None


def _coco_metrics(
    report: EvalReport,
    gt_data: dict,
    preds: _Predictions,
    img_ids: list[int],
    shared: list[str],
    gt_names: dict[str, int],
    prf: dict[str, dict[str, float | None]],
) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = COCO()  # from the data already read and checked, not the file again
    coco_gt.dataset = gt_data
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
    ids = set(img_ids)
    gt_count = Counter(
        coco_gt.cats[a["category_id"]]["name"]
        for a in coco_gt.dataset["annotations"]
        if a["image_id"] in ids and not a.get("iscrowd")
    )
    for c in shared:
        report.per_class[c] = {"gt": float(gt_count[c]), "pred": float(preds.count[c]), **prf[c]}
    gt_has_segm = any("segmentation" in a for a in gt_data["annotations"])
    for iou_type in ("bbox", "segm"):
        if iou_type == "segm" and (not preds.has_masks or not gt_has_segm):
            continue
        cat_ids = [gt_names[c] for c in shared]
        report.metrics[iou_type], per_class = _cocoeval(
            COCOeval, coco_gt, preds.coco[iou_type], iou_type, img_ids, cat_ids
        )
        for cid, ap in per_class.items():
            report.per_class[coco_gt.cats[cid]["name"]][f"{iou_type}_AP"] = ap


def _cocoeval(
    cls: Any, coco_gt: Any, preds: list[dict], iou_type: str, img_ids: list[int], cat_ids: list[int]
) -> tuple[dict[str, float], dict[int, float | None]]:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(preds) if preds else _empty_res(coco_gt)
        ev = cls(coco_gt, coco_dt, iou_type)
        ev.params.imgIds, ev.params.catIds = img_ids, cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [max(float(v), 0.0) for v in ev.stats]  # -1 (no GT at all) reads as 0
    precision = ev.eval["precision"]  # [T, R, K, A, M]; K follows ev.params.catIds, which pycocotools sorts
    per_class: dict[int, float | None] = {}
    for k, cid in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        per_class[int(cid)] = float(np.mean(p[p > -1])) if (p > -1).any() else None  # None: no ground truth
    return {"mAP": stats[0], "AP50": stats[1], "AP75": stats[2], "AR100": stats[8]}, per_class


def _empty_res(coco_gt: Any) -> Any:
    from pycocotools.coco import COCO

    res = COCO()
    res.dataset = {"images": coco_gt.dataset["images"], "categories": coco_gt.dataset["categories"], "annotations": []}
    res.createIndex()
    return res
