"""Decisions per track (`tracker: detect`): the frames of a clip are decided as images are, down to the
track threshold `track_low`; their detections are linked into tracks (ByteTrack-style, `video.track`:
detections reaching their class's box threshold start and continue tracks, weaker ones only continue
them; at a scene cut, where the colours of the picture change by `scene_cut` or more, every track ends);
then each track is kept or dropped as a whole by its mean score against its class threshold
(`video.tracks`), so a label does not flicker on and off while its score wavers around the threshold.

Pure and re-runnable like every decision: thresholds and track settings change at export, no model.
Frames tracked at inference (`tracker: sam2`) keep their stored object ids; the keep-or-drop per track is
the same, over the keyframes that saw each object.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from autolabel.decisions import DecisionCounts, DecisionSettings, decide, decide_kept
from autolabel.types import CandidateResult, Detections, ImageResult
from autolabel.video.clip import Clip, frame_index
from autolabel.video.track import DetectTracker
from autolabel.video.tracks import kept_tracks, only_kept


def decide_clip(
    frames: list[CandidateResult], clip: Clip, dec: DecisionSettings, counts: DecisionCounts
) -> Iterator[ImageResult]:
    """The decided frames of one clip (in order), each detection with its track id."""
    if any(f.candidates.track_id is not None for f in frames):
        yield from _decide_tracked(frames, clip, dec, counts)
        return
    loose = replace(dec, class_thresholds=tuple(min(t, dec.track_low) for t in dec.class_thresholds))
    thresholds = np.asarray(dec.class_thresholds)
    tracker = DetectTracker(iou=dec.track_iou, low=dec.track_low, max_missed=dec.track_max_missed)
    decided: list[tuple[CandidateResult, Detections, np.ndarray]] = []
    change = dict(zip((i for i, _ in clip.frames), clip.changes))
    for c in frames:
        if dec.scene_cut is not None and change.get(frame_index(c.relpath), 0.0) >= dec.scene_cut:
            tracker.tracks = []  # a scene cut: no object continues across it (ids go on counting)
        det = decide(c.candidates, c.width, c.height, loose, counts)
        confident = None if det.confidence is None else det.confidence >= thresholds[det.class_id] - 1e-12
        decided.append((c, det, tracker.update(det, confident)))
    kept = kept_tracks([(d, ids) for _, d, ids in decided], dec.class_thresholds)
    yield from _kept_frames(decided, kept, clip, dec, counts)


def _decide_tracked(
    frames: list[CandidateResult], clip: Clip, dec: DecisionSettings, counts: DecisionCounts
) -> Iterator[ImageResult]:
    """Frames tracked at inference (`tracker: sam2`): the ids are stored; each object is kept or dropped as a
    whole by its mean score over the keyframes that saw it. Clean-up, size limits and NMS apply per frame."""
    anyscore = replace(dec, class_thresholds=tuple(0.0 for _ in dec.class_thresholds))
    decided: list[tuple[CandidateResult, Detections, np.ndarray]] = []
    seen_on: list[np.ndarray] = []  # per frame: which of its detections the detector saw (a keyframe)
    for c in frames:
        det, kept = decide_kept(c.candidates, c.width, c.height, anyscore, counts)
        n = len(c.candidates)
        ids = (c.candidates.track_id if c.candidates.track_id is not None else np.zeros(n, np.int64))[kept]
        seen_on.append((c.candidates.keyframe if c.candidates.keyframe is not None else np.zeros(n, bool))[kept])
        decided.append((c, det, ids))
    seen_tracks = [(d.select(seen), ids[seen]) for (_, d, ids), seen in zip(decided, seen_on)]
    yield from _kept_frames(decided, kept_tracks(seen_tracks, dec.class_thresholds), clip, dec, counts)


def _kept_frames(
    decided: list[tuple[CandidateResult, Detections, np.ndarray]],
    kept: set[int],
    clip: Clip,
    dec: DecisionSettings,
    counts: DecisionCounts,
) -> Iterator[ImageResult]:
    """Each decided frame with the detections of the kept tracks and their ids."""
    times = dict(clip.frames)
    for c, det, ids in decided:
        out, out_ids = only_kept(det, ids, kept)
        _count_dropped(counts, dec, det, out)
        index = frame_index(c.relpath)
        yield ImageResult(c.relpath, c.width, c.height, out, clip.relpath, index, times.get(index), out_ids)


def _count_dropped(counts: DecisionCounts, dec: DecisionSettings, before: Detections, after: Detections) -> None:
    counts.track_dropped += len(before) - len(after)
    counts.kept -= len(before) - len(after)
    for k in range(len(dec.classes)):
        lost = int((before.class_id == k).sum() - (after.class_id == k).sum())
        if lost:
            name = dec.classes[k]
            counts.class_kept[name] = counts.class_kept.get(name, 0) - lost
