"""Interactive help while a person labels in Label Studio: their box becomes the segmenter's mask for that
object, their point picks the labeled object under it, their typed text runs the detector on that image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.masks import box_mask
from autolabel.serve.labelconfig import Target, regions
from autolabel.serve.sources import Refused
from autolabel.types import Detections, RleMasks

if TYPE_CHECKING:
    from autolabel.serve.backend import Backend


def answer(b: Backend, task: dict[str, Any], context: dict[str, Any], target: Target) -> dict[str, Any]:
    items = [r for r in context.get("result", []) if isinstance(r, dict) and isinstance(r.get("value"), dict)]
    boxes = [r for r in items if r.get("type") == "rectanglelabels"]
    points = [r for r in items if r.get("type") == "keypointlabels"]
    texts = [r for r in items if r.get("type") == "textarea"]
    if boxes:
        det, w, h = _box(b, task, target, boxes[-1])
    elif points:
        det, w, h = _point(b, task, target, points)
    elif texts:
        det, w, h = _text(b, task, target, texts[-1])
    else:
        raise Refused("the context holds no box, keypoint or text to answer", 400)
    result = regions(det, _names(det), target, w, h)
    score = float(np.mean(det.confidence)) if det.confidence is not None and len(det) else 0.0
    return {"result": result, "score": round(score, 4), "model_version": b.engine.model_version}


def _names(det: Detections) -> tuple[str, ...]:
    return tuple(det.class_names or ())


def _chosen(b: Backend, item: dict[str, Any], target: Target) -> str:
    """The ontology class of the label the person picked (else the config's first one the ontology has)."""
    picked = [v for k, v in item["value"].items() if k.endswith("labels") and isinstance(v, list)]
    for label in picked[0] if picked else []:
        if label in target.class_of:
            return target.class_of[label]
    return next(iter(target.label_of))


def _size(item: dict[str, Any], img: np.ndarray) -> tuple[int, int]:
    h, w = img.shape[:2]
    return int(item.get("original_width") or w), int(item.get("original_height") or h)


def _box(b: Backend, task: dict[str, Any], target: Target, item: dict[str, Any]) -> tuple[Detections, int, int]:
    img = b.image(task, target)
    h, w = img.shape[:2]
    v = item["value"]
    try:
        x, y, bw, bh = (float(v[k]) for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError):
        raise Refused("the box needs x, y, width and height (percent)", 400) from None
    if not all(np.isfinite([x, y, bw, bh])) or bw <= 0 or bh <= 0:
        raise Refused("the box is empty or not finite", 400)
    box = np.array([[x * w / 100, y * h / 100, (x + bw) * w / 100, (y + bh) * h / 100]])
    box = np.clip(box, 0, [w, h, w, h])
    seg = b.engine.labeler.segmenter
    if seg is None:
        mask = box_mask(box[0], h, w)  # an engine or a box-only ontology: the box itself
    else:
        mask = np.asarray(b.engine.call(lambda: seg.segment([img], [box])[0]))[0].astype(bool)
    name = _chosen(b, item, target)
    det = Detections(
        xyxy=box, class_id=np.zeros(1, dtype=np.int64), confidence=np.ones(1), prompt=[name], masks=mask[None]
    )
    det.class_names = (name,)
    return det, w, h


def _point(
    b: Backend, task: dict[str, Any], target: Target, items: list[dict[str, Any]]
) -> tuple[Detections, int, int]:
    """The labeled object under the person's positive point(s) (the run's, or the models' labels)."""
    det, w, h = b.labels(task, target)
    pts = []
    for it in items:
        if it.get("is_positive", 1) in (0, False):
            continue
        try:
            pts.append((float(it["value"]["x"]) * w / 100, float(it["value"]["y"]) * h / 100))
        except (KeyError, TypeError, ValueError):
            raise Refused("a keypoint needs x and y (percent)", 400) from None
    for i in range(len(det)):  # highest score first
        m = det.masks[i] if det.masks is not None else box_mask(det.xyxy[i], h, w)
        if pts and all(0 <= int(y) < h and 0 <= int(x) < w and m[int(y), int(x)] for x, y in pts):
            name = _chosen(b, items[-1], target)
            one = Detections(
                det.xyxy[[i]],
                np.zeros(1, dtype=np.int64),
                None if det.confidence is None else det.confidence[[i]],
                [name],
                None if det.masks is None else m[None],
            )
            one.class_names = (name,)
            return one, w, h
    raise Refused("no labeled object under the point: draw a box around it instead", 422)


def _text(b: Backend, task: dict[str, Any], target: Target, item: dict[str, Any]) -> tuple[Detections, int, int]:
    """The detector (and segmenter) run on the image with the typed text as the only prompt."""
    text = item["value"].get("text")
    prompt = (text[0] if isinstance(text, list) and text else text) if text else None
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > 500:
        raise Refused("the text prompt is empty (or over 500 characters)", 400)
    img = b.image(task, target)
    h, w = img.shape[:2]
    lab = b.engine.labeler
    threshold = float(lab.ontology.detector.box_threshold)

    def run() -> tuple[Any, Any]:
        pb = lab.detector.detect([img], [prompt.strip()], threshold)[0]
        masks = pb.masks
        if masks is None and lab.segmenter is not None and len(pb.xyxy):
            masks = lab.segmenter.segment([img], [pb.xyxy])[0]
        return pb, masks

    pb, masks = b.engine.call(run)
    keep = np.ones(len(pb.xyxy), dtype=bool) if pb.scores is None else pb.scores >= threshold
    label = next((c for c in target.label_of if c.casefold() == prompt.strip().casefold()), None)
    name = label or _chosen(b, item, target)
    dense = None if masks is None else np.asarray(masks.dense() if isinstance(masks, RleMasks) else masks, dtype=bool)
    det = Detections(
        xyxy=np.asarray(pb.xyxy, dtype=np.float64)[keep].reshape(-1, 4),
        class_id=np.zeros(int(keep.sum()), dtype=np.int64),
        confidence=None if pb.scores is None else np.asarray(pb.scores, dtype=np.float64)[keep],
        prompt=[prompt] * int(keep.sum()),
        masks=None if dense is None else dense[keep],
    )
    det.class_names = (name,)
    return det, w, h
