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
from autolabel.inference.ensemble import parts
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
        presence=None if pb.presence is None else np.asarray(pb.presence)[idx],
    )
    return cand, (None if pb.masks is None else pb.masks[idx])


@dataclass
class Staged:
    """A batch between the three stages: prepared model inputs → raw model outputs → candidates."""

    images: Sequence[np.ndarray]
    det_inputs: list[Any] = field(default_factory=list)  # per detector: its prepare(images), or None
    seg_inputs: Any = None  # segmenter.prepare(images), when the segmenter splits its preprocessing out
    cands: list[Candidates] = field(default_factory=list)
    raw_masks: list[Any] = field(default_factory=list)  # masks per image: RLE, dense, or low-res logits
    own_masks: list[list[Any]] = field(default_factory=list)  # an ensemble: per image, each source's own masks
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
    for part in parts(detector):
        staged.det_inputs.append(part.prepare(list(images)) if isinstance(part, StagedDetector) else None)
    if plan.segments and isinstance(segmenter, StagedSegmenter):
        staged.seg_inputs = segmenter.prepare(list(images))
    _add(times, "prepare", t)
    return staged


def _detect(
    staged: Staged, plan: RunPlan, detector: Detector, counts: InferenceCounts
) -> list[list[tuple[Candidates, Any]]]:
    """Each detector on the batch → per detector, per image: (candidates, the engine's own masks)."""
    images, shapes = staged.images, _shapes(staged.images)
    prompts = list(plan.ontology.all_prompts)
    floors = (
        [plan.ontology.candidate_floor()]
        if not plan.ontology.ensemble
        else [d.candidate_threshold for d in plan.sources]
    )
    out = []
    for part, inputs, floor, cfg in zip(parts(detector), staged.det_inputs, floors, plan.sources):
        if inputs is not None and isinstance(part, StagedDetector):
            raw = part.detect_prepared(inputs, shapes, prompts, floor)
        else:
            raw = part.detect(list(images), prompts, floor)
        out.append([to_candidates(pb, floor, cfg.max_candidates, w, h, counts) for pb, (h, w) in zip(raw, shapes)])
    staged.det_inputs = []
    return out


def model_stage(
    staged: Staged,
    plan: RunPlan,
    detector: Detector,
    segmenter: Segmenter | None,
    counts: InferenceCounts,
    times: dict[str, float],
) -> Staged:
    """The models: one call of each detector for the batch (all prompts, negatives included) →
    candidates per image; then the segmenter's forward passes for every box of the batch that has no
    mask of its own (low-res masks). The prepared inputs are released here, so their buffers can be reused."""
    images, shapes = staged.images, _shapes(staged.images)
    t = _now()
    per_source = _detect(staged, plan, detector, counts)
    _add(times, "detect", t)
    if len(per_source) == 1:
        staged.cands = [c for c, _ in per_source[0]]
        staged.raw_masks = [m for _, m in per_source[0]]
    else:
        for i in range(len(images)):
            parts = [src[i] for src in per_source]
            staged.cands.append(_joined([c for c, _ in parts]))
            staged.own_masks.append([m for _, m in parts])
        staged.raw_masks = [None] * len(images)
    if plan.segments and segmenter is not None:
        t = _now()
        boxes = [c.xyxy[_needs_mask(staged, i)] for i, c in enumerate(staged.cands)]
        if staged.seg_inputs is not None and isinstance(segmenter, StagedSegmenter):
            staged.raw_masks = segmenter.segment_raw(staged.seg_inputs, shapes, boxes)
            staged.lowres = True
        else:
            staged.raw_masks = segmenter.segment(list(images), boxes)
        staged.seg_inputs = None
        _add(times, "segment", t)
    return staged


def _joined(parts: list[Candidates]) -> Candidates:
    """One image's candidates of an ensemble's detectors, in their order, each with its `source`."""
    return Candidates(
        xyxy=np.concatenate([c.xyxy for c in parts]),
        score=None if any(c.score is None for c in parts) else np.concatenate([c.score for c in parts]),
        prompt_index=np.concatenate([c.prompt_index for c in parts]),
        source=np.concatenate([np.full(len(c), s, dtype=np.int64) for s, c in enumerate(parts)]),
        presence=None if any(c.presence is None for c in parts) else np.concatenate([c.presence for c in parts]),
    )


def _needs_mask(staged: Staged, i: int) -> np.ndarray:
    """Which candidates of image i the segmenter makes masks for: all, or an ensemble's boxes whose
    detector made no mask of its own."""
    c = staged.cands[i]
    if not staged.own_masks:
        return np.arange(len(c))
    own = np.asarray([m is not None for m in staged.own_masks[i]])
    assert c.source is not None
    return np.flatnonzero(~own[c.source])


def finish_stage(
    staged: Staged, plan: RunPlan, segmenter: Segmenter | None, times: dict[str, float]
) -> list[Candidates]:
    """CPU work after the models: low-res masks → full-size RLE (only around each mask)."""
    if not plan.segments:
        return staged.cands
    t = _now()
    for i, (c, m, (h, w)) in enumerate(zip(staged.cands, staged.raw_masks, _shapes(staged.images))):
        if staged.lowres and isinstance(segmenter, StagedSegmenter):
            made = segmenter.finish(m, h, w)
        elif isinstance(m, RleMasks):
            made = m
        elif m is not None and len(m):
            made = RleMasks.from_dense(m)
        else:
            made = RleMasks([], h, w)
        c.masks = made if not staged.own_masks else _assembled(c, staged.own_masks[i], _needs_mask(staged, i), made)
    _add(times, "finish", t)
    return staged.cands


def _assembled(c: Candidates, own: list[Any], segmented: np.ndarray, made: RleMasks) -> RleMasks:
    """An ensemble's masks in candidate order: the segmenter's for `segmented`, each engine's own else."""
    h, w = made.height, made.width
    rles: list[dict] = [{}] * len(c)
    for k, j in enumerate(segmented):
        rles[int(j)] = made.rles[k]
    assert c.source is not None
    for s, m in enumerate(own):
        if m is None:
            continue
        rows = np.flatnonzero(c.source == s)
        rle = m if isinstance(m, RleMasks) else RleMasks.from_dense(m) if len(m) else RleMasks([], h, w)
        for k, j in enumerate(rows):
            rles[int(j)] = rle.rles[k]
    return RleMasks(rles, h, w)


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
