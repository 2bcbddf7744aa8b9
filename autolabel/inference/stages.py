"""Inference: a batch of images → one `Candidates` per image. The only part that needs a GPU; every
executor calls this same function. No thresholds beyond the candidate floor, no NMS, no clean-up:
those are decisions (`decisions.py`), applied later from the run store.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from autolabel.backends.base import Detector, PromptBoxes, Segmenter, StagedDetector, StagedSegmenter
from autolabel.config.plan import RunPlan
from autolabel.geometry import box_area, clip_xyxy
from autolabel.types import Candidates, RleMasks


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


def to_candidates(
    pb: PromptBoxes, floor: float, max_candidates: int, width: int, height: int, counts: InferenceCounts
) -> tuple[Candidates, np.ndarray | None]:
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
    cand = Candidates(
        xyxy=xyxy[idx],
        score=None if pb.scores is None else np.asarray(pb.scores)[idx],
        prompt_index=np.asarray(pb.prompt_index)[idx],
    )
    return cand, (None if pb.masks is None else pb.masks[idx])


@dataclass
class Staged:
    """A batch between the three stages: prepared model inputs → raw model outputs → candidates."""

    images: Sequence[np.ndarray]
    det_inputs: Any = None  # detector.prepare(images), when the detector splits its preprocessing out
    seg_inputs: Any = None  # segmenter.prepare(images), likewise
    cands: list[Candidates] = field(default_factory=list)
    raw_masks: list[Any] = field(default_factory=list)  # masks per image: RLE, dense, or low-res logits
    lowres: bool = False  # raw_masks came from segment_raw: the segmenter's `finish` makes them full-size


def _shapes(images: Sequence[np.ndarray]) -> list[tuple[int, int]]:
    return [(int(img.shape[0]), int(img.shape[1])) for img in images]


def prepare_stage(
    images: Sequence[np.ndarray],
    plan: RunPlan,
    detector: Detector,
    segmenter: Segmenter | None,
    times: dict[str, float],
) -> Staged:
    """CPU work before the models (resize, normalise, pad into batch tensors) for backends that split
    it out (`prepare`); the others do it inside their own call."""
    t = _now()
    staged = Staged(images)
    if isinstance(detector, StagedDetector):
        staged.det_inputs = detector.prepare(list(images))
    if plan.segments and isinstance(segmenter, StagedSegmenter):
        staged.seg_inputs = segmenter.prepare(list(images))
    _add(times, "prepare", t)
    return staged


def model_stage(
    staged: Staged,
    plan: RunPlan,
    detector: Detector,
    segmenter: Segmenter | None,
    counts: InferenceCounts,
    times: dict[str, float],
) -> Staged:
    """The models: one detector call for the batch (all prompts, negatives included) → candidates per
    image; then the segmenter's forward passes for every box of the batch (low-res masks). The prepared
    inputs are released here, so their buffers can be reused."""
    images, shapes = staged.images, _shapes(staged.images)
    t = _now()
    floor = plan.ontology.candidate_floor()
    prompts = list(plan.ontology.all_prompts)
    if staged.det_inputs is not None and isinstance(detector, StagedDetector):
        raw = detector.detect_prepared(staged.det_inputs, shapes, prompts, floor)
    else:
        raw = detector.detect(list(images), prompts, floor)
    staged.det_inputs = None
    _add(times, "detect", t)
    own_masks = []
    for pb, (h, w) in zip(raw, shapes):
        c, m = to_candidates(pb, floor, plan.ontology.detector.max_candidates, w, h, counts)
        staged.cands.append(c)
        own_masks.append(m)
    staged.raw_masks = own_masks
    if plan.segments and segmenter is not None:
        t = _now()
        boxes = [c.xyxy for c in staged.cands]
        if staged.seg_inputs is not None and isinstance(segmenter, StagedSegmenter):
            staged.raw_masks = segmenter.segment_raw(staged.seg_inputs, shapes, boxes)
            staged.lowres = True
        else:
            staged.raw_masks = segmenter.segment(list(images), boxes)
        staged.seg_inputs = None
        _add(times, "segment", t)
    return staged


def finish_stage(
    staged: Staged, plan: RunPlan, segmenter: Segmenter | None, times: dict[str, float]
) -> list[Candidates]:
    """CPU work after the models: low-res masks → full-size RLE (only around each mask)."""
    if not plan.segments:
        return staged.cands
    t = _now()
    for c, m, (h, w) in zip(staged.cands, staged.raw_masks, _shapes(staged.images)):
        if staged.lowres and isinstance(segmenter, StagedSegmenter):
            c.masks = segmenter.finish(m, h, w)
        elif isinstance(m, RleMasks):
            c.masks = m
        elif m is not None and len(c):
            c.masks = RleMasks.from_dense(m)
        else:
            c.masks = RleMasks([], h, w)
    _add(times, "finish", t)
    return staged.cands


def _add(times: dict[str, float], key: str, since: tuple[float, float]) -> None:
    """Wall seconds under `key`, and this thread's CPU seconds under `key_cpu` (stages overlap)."""
    times[key] = times.get(key, 0.0) + time.perf_counter() - since[0]
    times[key + "_cpu"] = times.get(key + "_cpu", 0.0) + time.thread_time() - since[1]


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.thread_time()


def infer_batch(
    images: Sequence[np.ndarray],
    plan: RunPlan,
    detector: Detector,
    segmenter: Segmenter | None,
    counts: InferenceCounts,
    times: dict[str, float] | None = None,
) -> list[Candidates]:
    """images: RGB uint8 (H, W, 3) → one Candidates per image: `prepare_stage`, `model_stage`, then
    `finish_stage`. The one pure batch function every executor calls (the local one runs the three
    stages of consecutive batches at the same time, in three threads)."""
    times = times if times is not None else {}
    staged = model_stage(
        prepare_stage(images, plan, detector, segmenter, times), plan, detector, segmenter, counts, times
    )
    return finish_stage(staged, plan, segmenter, times)
