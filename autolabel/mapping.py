"""From raw detector output to ontology Detections: class ids, thresholds, NMS and cross-class dedup."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backends.base import PromptBoxes
from .geometry import box_area, classwise_nms, nms
from .masks import clean_mask, mask_to_xyxy
from .ontology import Ontology
from .types import Detections


@dataclass
class MappingCounts:
    """What the filters removed, summed over a run."""

    below_threshold: int = 0
    bad_size: int = 0
    nms_removed: int = 0
    dedup_removed: int = 0
    over_max: int = 0
    empty_masks: int = 0
    unmatched: dict[str, int] = field(default_factory=dict)

    def add_unmatched(self, unmatched: dict[str, int]) -> None:
        for k, v in unmatched.items():
            self.unmatched[k] = self.unmatched.get(k, 0) + v


def min_threshold(ontology: Ontology) -> float:
    """The lowest box threshold over all classes: what the detector must at least return."""
    return min(ontology.box_threshold_of_class(c) for c in range(len(ontology.classes)))


def to_detections(pb: PromptBoxes, ontology: Ontology, width: int, height: int, counts: MappingCounts) -> Detections:
    """Map prompts to classes and filter. Output is ordered by descending score (stable), masks kept."""
    counts.add_unmatched(pb.unmatched)
    prompt_class = np.asarray(ontology.prompt_class, dtype=np.int64)
    det = Detections(xyxy=pb.xyxy, class_id=prompt_class[pb.prompt_index], confidence=pb.scores,
                     prompt=[ontology.prompts[i] for i in pb.prompt_index], masks=pb.masks)
    if det.confidence is not None and len(det):
        thr = np.array([ontology.box_threshold_of_class(int(c)) for c in det.class_id])
        ok = det.confidence >= thr
        counts.below_threshold += int((~ok).sum())
        det = det.select(ok)
    post = ontology.postprocess
    area = box_area(det.xyxy)
    ok = (area > 0) & (area >= post.min_box_area) & (area <= post.max_box_fraction * width * height)
    counts.bad_size += int((~ok).sum())
    det = det.select(ok)
    if det.confidence is not None and len(det):
        det = det.select(np.argsort(-det.confidence, kind="stable"))
    keep = classwise_nms(det.xyxy, det.confidence, det.class_id, post.nms_iou)
    counts.nms_removed += len(det) - len(keep)
    det = det.select(keep)  # ascending indices of the score-sorted list: order kept
    if post.cross_class_iou is not None and len(det):
        keep = np.sort(nms(det.xyxy, det.confidence, post.cross_class_iou))
        counts.dedup_removed += len(det) - len(keep)
        det = det.select(keep)
    if len(det) > post.max_detections:
        counts.over_max += len(det) - post.max_detections
        det = det.select(np.arange(post.max_detections))
    return det


def finish_masks(det: Detections, masks: np.ndarray | None, ontology: Ontology, counts: MappingCounts) -> Detections:
    """Attach masks, clean them up, drop instances whose mask ends up empty, and set each box to
    its mask's tight box (so box, mask and area always describe the same instance)."""
    if masks is None:
        return det
    cleanup = ontology.masks.cleanup
    det = Detections(det.xyxy, det.class_id, det.confidence, det.prompt, masks=np.asarray(masks, dtype=bool))
    keep = np.ones(len(det), dtype=bool)
    for i in range(len(det)):
        m = clean_mask(det.masks[i], cleanup) if cleanup.enabled else det.masks[i]  # type: ignore[index]
        box = mask_to_xyxy(m)
        if box is None:
            keep[i] = False
            continue
        det.masks[i] = m  # type: ignore[index]
        det.xyxy[i] = box
    counts.empty_masks += int((~keep).sum())
    return det.select(keep)
