"""Inference: a batch of images → one `Candidates` per image. The only part that needs a GPU; every
executor calls this same function. No thresholds beyond the candidate floor, no NMS, no clean-up:
those are decisions (`decisions.py`), applied later from the run store.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from .backends.base import PromptBoxes
from .geometry import box_area, clip_xyxy
from .plan import RunPlan
from .types import Candidates, RleMasks


@dataclass
class InferenceCounts:
    """What inference itself left out, summed over a run."""

    candidates: int = 0
    over_max_candidates: int = 0
    empty_boxes: int = 0
    unmatched: dict[str, int] = field(default_factory=dict)  # fired on no prompt, by token/phrase

    def add(self, other: InferenceCounts) -> None:
        self.candidates += other.candidates
        self.over_max_candidates += other.over_max_candidates
        self.empty_boxes += other.empty_boxes
        for k, v in other.unmatched.items():
            self.unmatched[k] = self.unmatched.get(k, 0) + v

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def to_candidates(pb: PromptBoxes, floor: float, max_candidates: int, width: int, height: int,
                  counts: InferenceCounts) -> tuple[Candidates, np.ndarray | None]:
    """Raw detector output → candidates: boxes clipped to the image, empty boxes and scores under the
    floor dropped, highest scores first, at most `max_candidates`. Returns the engine's own masks
    (SAM 3) for the kept candidates too."""
    for k, v in pb.unmatched.items():
        counts.unmatched[k] = counts.unmatched.get(k, 0) + v
    xyxy = clip_xyxy(pb.xyxy, width, height)
    ok = box_area(xyxy) > 0
    counts.empty_boxes += int((~ok).sum())
    if pb.scores is not None:
        ok &= np.asarray(pb.scores) >= floor
    idx = np.flatnonzero(ok)
    if pb.scores is not None:
        idx = idx[np.argsort(-np.asarray(pb.scores)[idx], kind="stable")]
    if len(idx) > max_candidates:
        counts.over_max_candidates += len(idx) - max_candidates
        idx = idx[:max_candidates]
    counts.candidates += len(idx)
    cand = Candidates(xyxy=xyxy[idx], score=None if pb.scores is None else np.asarray(pb.scores)[idx],
                      prompt_index=np.asarray(pb.prompt_index)[idx])
    return cand, (None if pb.masks is None else pb.masks[idx])


def detect_stage(images: Sequence[np.ndarray], plan: RunPlan, detector: Any, counts: InferenceCounts,
                 times: dict[str, float]) -> tuple[list[Candidates], list[Any]]:
    """One detector call for the batch (all prompts, negatives included) → candidates per image, and the
    engine's own masks (SAM 3) where it makes them."""
    t = time.perf_counter()
    floor = plan.ontology.candidate_floor()
    raw = detector.detect(list(images), list(plan.ontology.all_prompts), floor)
    times["detect_total"] = times.get("detect_total", 0.0) + time.perf_counter() - t
    cands, own_masks = [], []
    for pb, img in zip(raw, images):
        c, m = to_candidates(pb, floor, plan.ontology.detector.max_candidates,
                             int(img.shape[1]), int(img.shape[0]), counts)
        cands.append(c)
        own_masks.append(m)
    return cands, own_masks


def segment_stage(images: Sequence[np.ndarray], plan: RunPlan, segmenter: Any, cands: list[Candidates],
                  own_masks: list[Any], times: dict[str, float]) -> list[Candidates]:
    """One segmenter call for every box of the batch; masks leave as RLE."""
    if not plan.segments:
        return cands
    t = time.perf_counter()
    masks = segmenter.segment(list(images), [c.xyxy for c in cands]) if segmenter is not None else own_masks
    for c, m, img in zip(cands, masks, images):
        h, w = img.shape[:2]
        if isinstance(m, RleMasks):
            c.masks = m
        elif m is not None and len(c):
            c.masks = RleMasks.from_dense(m)
        else:
            c.masks = RleMasks([], h, w)
    times["segment_total"] = times.get("segment_total", 0.0) + time.perf_counter() - t
    return cands


def infer_batch(images: Sequence[np.ndarray], plan: RunPlan, detector: Any, segmenter: Any,
                counts: InferenceCounts, times: dict[str, float] | None = None) -> list[Candidates]:
    """images: RGB uint8 (H, W, 3) → one Candidates per image: `detect_stage` then `segment_stage`.
    The one pure batch function every executor calls (the local one overlaps the two stages of
    consecutive batches)."""
    times = times if times is not None else {}
    cands, own_masks = detect_stage(images, plan, detector, counts, times)
    return segment_stage(images, plan, segmenter, cands, own_masks, times)
