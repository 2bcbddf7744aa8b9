"""Labels from elsewhere (a student's predictions, another tool's output) scored like a run's: a COCO
results list (`[{image_id, category_id, bbox, score, segmentation?}]`, ids of the ground truth's images
and categories, or image ids that are file stems, as ultralytics writes them) or a COCO dataset with
scores (images matched by file name, categories by name). Checked like a ground-truth file."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autolabel.errors import UsageError, joined, shown
from autolabel.quality.evaluate import EvalReport, Scorer, fill_gt_defaults
from autolabel.quality.groundtruth import (
    GtImage,
    ann_rle,
    coco_problems,
    describe_ground_truth,
    load_ground_truth,
    match_images,
    read_coco,
)
from autolabel.types import Detections, RleMasks


@dataclass
class Predictions:
    """Labels per ground-truth image id, the class names they use (the ground truth's), and which of the
    ground truth's images they cover."""

    by_image: dict[int | str, Detections]
    classes: tuple[str, ...]
    covers: set[int | str]
    form: str  # how the file was read, said in the report


def read_predictions(path: str | Path, gt_data: dict) -> Predictions:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise UsageError(f"predictions '{p}' cannot be read as JSON ({e})") from None
    if isinstance(data, list):
        anns, covers, form = _from_results(p, data, gt_data)
    elif isinstance(data, dict) and isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list):
        anns, covers, form = _from_dataset(p, data, gt_data)
    else:
        raise UsageError(
            f"'{p}' is neither a COCO results list nor a COCO dataset with scores",
            hint="ultralytics writes one with `yolo val save_json=True` (predictions.json)",
        )
    checked = {"images": gt_data["images"], "categories": gt_data["categories"], "annotations": anns}
    problems = [x for x in coco_problems(checked) if not x.startswith("no annotations")]
    problems += [f"annotations[{k}]: score must be a finite number" for k, a in enumerate(anns) if not _score(a)]
    if problems:
        raise UsageError(joined([f"{p}: {x}" for x in problems]), hint="fix the predictions file; nothing was scored")
    return Predictions(_detections(anns, gt_data), tuple(c["name"] for c in gt_data["categories"]), covers, form)


def _score(a: dict) -> bool:
    s = a.get("score")
    return isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s)


def _from_results(p: Path, data: list, gt_data: dict) -> tuple[list[dict], set[int | str], str]:
    ids = {im["id"] for im in gt_data["images"]}
    stem = {im["id"]: Path(im["file_name"]).stem for im in gt_data["images"]}
    stems = Counter(stem.values())
    by_stem = {s: i for i, s in stem.items() if stems[s] == 1}
    anns, unknown = [], set()
    for k, a in enumerate(data):
        if not isinstance(a, dict):
            raise UsageError(f"{p}: [{k}] is not an object")
        img = a.get("image_id")
        gid = img if img in ids else by_stem.get(str(img))
        if gid is None:
            unknown.add(shown(img))
            continue
        anns.append({**a, "id": k, "image_id": gid})
    if unknown:
        raise UsageError(
            f"{p}: image_id {', '.join(sorted(unknown)[:5])} is neither an image id nor a file stem of the "
            "ground truth",
            hint="score predictions of the hand-labeled images, with the ground truth's image ids",
        )
    return anns, ids, "COCO results list (covers every ground-truth image)"


def _from_dataset(p: Path, data: dict, gt_data: dict) -> tuple[list[dict], set[int | str], str]:
    gt_by_name = {c["name"]: c["id"] for c in gt_data["categories"]}
    cats = {c.get("id"): gt_by_name.get(c.get("name")) for c in data.get("categories", []) if isinstance(c, dict)}
    images = [im for im in data["images"] if isinstance(im, dict) and isinstance(im.get("file_name"), str)]
    matched = match_images(images, [im["file_name"] for im in gt_data["images"]])
    gt_id = {im["file_name"]: im["id"] for im in gt_data["images"]}
    to_gt = {pim["id"]: gt_id[name] for name, pim in matched.items()}
    anns = []
    for k, a in enumerate(data["annotations"]):
        if isinstance(a, dict) and a.get("image_id") in to_gt and cats.get(a.get("category_id")) is not None:
            anns.append({**a, "id": k, "image_id": to_gt[a["image_id"]], "category_id": cats[a["category_id"]]})
    return anns, set(to_gt.values()), f"COCO dataset ({len(to_gt)} of its images are hand-labeled)"


def _detections(anns: list[dict], gt_data: dict) -> dict[int | str, Detections]:
    names = {c["id"]: c["name"] for c in gt_data["categories"]}
    order = [c["name"] for c in gt_data["categories"]]
    size = {im["id"]: (im["width"], im["height"]) for im in gt_data["images"]}
    by_image: dict[int | str, list[dict]] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    out: dict[int | str, Detections] = {}
    for img, mine in by_image.items():
        mine.sort(key=lambda a: -float(a["score"]))
        w, h = size[img]
        xyxy = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in mine)], dtype=np.float64)
        rles = [ann_rle(a, h, w) for a in mine]
        masks = RleMasks([r for r in rles if r is not None], h, w) if all(r is not None for r in rles) else None
        out[img] = Detections(
            xyxy=xyxy.reshape(-1, 4),
            class_id=np.array([order.index(names[a["category_id"]]) for a in mine], dtype=np.int64),
            confidence=np.array([float(a["score"]) for a in mine]),
            prompt=[names[a["category_id"]] for a in mine],
            masks=masks,
        )
    return out


def evaluate_predictions(
    path: str | Path,
    gt_path: str | Path,
    gt_data: dict | None = None,
    operating: float = 0.25,
    preds: Predictions | None = None,
) -> EvalReport:
    """COCO metrics of a predictions file on the hand-labeled images it covers (all of its labels), and
    precision/recall/F1 of its labels scoring `operating` or more (ultralytics' default confidence).
    `gt_data`: the ground truth already read (or cut down); `preds`: the file already read, against the
    whole ground truth (it may label images `gt_data` leaves out)."""
    gt_data = read_coco(gt_path) if gt_data is None else gt_data
    preds = read_predictions(path, gt_data) if preds is None else preds
    report = EvalReport(
        gt_boxes_as_masks=fill_gt_defaults(gt_data),
        ground_truth=describe_ground_truth(gt_data, gt_path),
        decisions=f"{preds.form}; labels scoring >= {operating:g} (mAP: every label)",
    )
    covered = [im for im in gt_data["images"] if im["id"] in preds.covers]  # in gt_data, labeled or not
    if not covered:
        raise UsageError(f"'{path}' has no label of a hand-labeled image", hint="check its image ids / file names")
    sizes = [(im["file_name"], im["width"], im["height"]) for im in covered]
    gt: dict[str, GtImage] = load_ground_truth(gt_data, sizes, preds.classes)
    scorer = Scorer(gt_data, gt, preds.classes, operating)
    for im in covered:
        det = preds.by_image.get(im["id"]) or _no_labels()
        scorer.add(im["file_name"], det, im["id"])
        report.images_matched += 1
    report.images_only_in_gt = sorted(im["file_name"] for im in gt_data["images"] if im["id"] not in preds.covers)
    scorer.finish(report, sorted(im["id"] for im in covered))
    return report


def _no_labels() -> Detections:
    return Detections(xyxy=np.zeros((0, 4)), class_id=np.zeros(0, dtype=np.int64), confidence=np.zeros(0))
