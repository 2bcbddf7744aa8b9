"""`tracker: sam2` at inference: one clip, frame by frame, through one streaming SAM 2 video session
(`video.sam2_track.Sam2Tracker`). The detector runs on keyframes — every `detect_every`-th sampled frame,
and at a scene cut, where the session starts afresh — and its decided detections (the run's thresholds,
NMS and negatives) are matched to the live objects or start new ones; between keyframes SAM 2 carries each
object's mask on. Every frame becomes candidates with the object ids as track ids: an object's score is its
detection's on the keyframes that saw it (`keyframe`), its last one elsewhere.

Frames are read from `RUN/frames` in order; session frame numbers count the sampled frames (SAM 2's memory
reads the frames just before), so the result depends on the sampling only, not on decoded indices.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.backends.base import Detector
from autolabel.config.plan import RunPlan
from autolabel.decisions import decide_kept
from autolabel.errors import ImageError
from autolabel.images import load_image
from autolabel.inference.stages import InferenceCounts, infer_batch
from autolabel.masks import mask_to_xyxy
from autolabel.types import CandidateResult, Candidates, Done, ImageInfo, Outcome, RleMasks, Skipped


def track_clip(
    frames: list[ImageInfo],
    changes: list[float],
    plan: RunPlan,
    detector: Detector,
    video: Any,
    device: str,
    resume: Resume | None = None,
) -> Iterator[Outcome]:
    """The clip's frames (in order) as outcomes; `video` is (Sam2VideoModel, Sam2VideoProcessor). With
    `resume`, the tracker's state is saved at keyframes and a saved one is picked up: the frames before it
    are not produced again."""
    from autolabel.video.sam2_track import Sam2Tracker

    v = plan.ontology.video
    boxes_only = replace(plan, ontology=plan.ontology.with_overrides(segmenter={"backend": "none"}))
    tracker = Sam2Tracker(video[0], video[1], device=device, max_objects=v.max_objects)
    objects: dict[int, tuple[int, float | None]] = {}  # object id → (prompt index, score at its last keyframe)
    start = resume.load(tracker, objects) if resume is not None else 0
    counts = InferenceCounts()
    for k in range(start, len(frames)):
        info = frames[k]
        cut = k > 0 and v.scene_cut is not None and changes[k] >= v.scene_cut
        keyframe = k % v.detect_every == 0 or cut
        if resume is not None and keyframe and k > start:
            resume.save(tracker, objects, k)
        if cut:
            tracker.cut()
        image = _read(info)
        if isinstance(image, Skipped):
            yield image
            continue
        h, w = image.shape[:2]
        found, prompts, scores = _detections(image, boxes_only, detector, counts) if keyframe else (None, [], None)
        masks = tracker.step(k, image, found)
        for oid, i in tracker.assigned.items():
            objects[oid] = (prompts[i], None if scores is None else float(scores[i]))
        cands = _candidates(masks, objects, set(tracker.assigned), h, w)
        yield Done(CandidateResult(info.relpath, w, h, cands), info.signature)
    if resume is not None:
        resume.finished()


def track_clip_sam3(
    frames: list[ImageInfo], changes: list[float], plan: RunPlan, video: Any, device: str
) -> Iterator[Outcome]:
    """`tracker: sam3`: the clip's frames (in order) through one streaming SAM 3 video session
    (`video.sam3_track.Sam3Tracker`), every frame a detection frame; a scene cut starts a new session."""
    from autolabel.video.sam3_track import Sam3Tracker

    v = plan.ontology.video
    tracker = Sam3Tracker(video[0], video[1], list(plan.ontology.all_prompts), device=device, max_objects=v.max_objects)
    for k, info in enumerate(frames):
        if k > 0 and v.scene_cut is not None and changes[k] >= v.scene_cut:
            tracker.cut()
        image = _read(info)
        if isinstance(image, Skipped):
            yield image
            continue
        h, w = image.shape[:2]
        found = tracker.step(k, image)
        objects = {oid: (found.prompts[oid], found.scores[oid]) for oid in found.masks}
        cands = _candidates(found.masks, dict(objects), set(found.masks), h, w)
        yield Done(CandidateResult(info.relpath, w, h, cands), info.signature)


@dataclass
class Resume:
    """Where a clip's tracker state is saved (`stem`), what it must belong to (`key`), from which frame a
    saved state may be used (`usable_to`: the frames before it are in the store), and how often it is saved
    (at a keyframe, `every` seconds at most)."""

    stem: Path
    key: str
    usable_to: int
    every: float = 30.0
    last: float = field(default_factory=time.monotonic)

    def load(self, tracker: Any, objects: dict[int, tuple[int, float | None]]) -> int:
        from autolabel.video.session_state import load_state, remove_state

        extra = load_state(self.stem, tracker, self.key, lambda e: 0 < int(e["frame"]) <= self.usable_to)
        if extra is None:  # none, another run's, or frames before it are missing from the store: from the start
            remove_state(self.stem)
            return 0
        objects.update({int(o): (int(p), s) for o, p, s in extra["objects"]})
        return int(extra["frame"])

    def save(self, tracker: Any, objects: dict[int, tuple[int, float | None]], frame: int) -> None:
        from autolabel.video.session_state import save_state

        if time.monotonic() - self.last < self.every:
            return
        save_state(self.stem, tracker, self.key, {"frame": frame, "objects": [[o, *v] for o, v in objects.items()]})
        self.last = time.monotonic()

    def finished(self) -> None:
        from autolabel.video.session_state import remove_state

        remove_state(self.stem)


def _read(info: ImageInfo) -> np.ndarray | Skipped:
    """A frame's pixels, or why it cannot be read (the frame is skipped, the clip goes on)."""
    try:
        return load_image(info.path)
    except ImageError as e:
        return Skipped(info.relpath, e.message)


def _detections(
    image: np.ndarray, plan: RunPlan, detector: Detector, counts: InferenceCounts
) -> tuple[Any, list[int], Any]:
    """A keyframe's decided detections (boxes: `plan` segments nothing), their prompt indices and scores."""
    cands = infer_batch([image], plan, detector, None, counts)[0]
    det, kept = decide_kept(cands, image.shape[1], image.shape[0], plan.decisions)
    return det, cands.prompt_index[kept].tolist(), det.confidence


def _candidates(
    masks: dict[int, np.ndarray], objects: dict[int, tuple[int, float | None]], seen: set[int], h: int, w: int
) -> Candidates:
    boxes = {oid: box for oid in sorted(masks) if (box := mask_to_xyxy(masks[oid])) is not None}  # empty: gone
    ids = list(boxes)
    xyxy = np.asarray([boxes[oid] for oid in ids], dtype=np.float64).reshape(-1, 4)
    scores = [objects[oid][1] for oid in ids]
    dense = np.stack([masks[oid] for oid in ids]) if ids else np.zeros((0, h, w), dtype=bool)
    return Candidates(
        xyxy=xyxy,
        score=None if any(s is None for s in scores) else np.asarray(scores, dtype=np.float64),
        prompt_index=np.asarray([objects[oid][0] for oid in ids], dtype=np.int64),
        masks=RleMasks.from_dense(dense) if ids else RleMasks([], h, w),
        track_id=np.asarray(ids, dtype=np.int64),
        keyframe=np.asarray([oid in seen for oid in ids], dtype=bool),
    )
