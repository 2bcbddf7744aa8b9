"""Decisions per track: a track is kept or dropped as a whole by its mean score over the frames it was seen
in against its class's box threshold, so labels do not flicker from frame to frame (a frame whose score
dipped keeps its label; a track that was weak throughout is gone from every frame)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from autolabel.types import Detections


def kept_tracks(frames: list[tuple[Detections, np.ndarray]], thresholds: tuple[float, ...]) -> set[int]:
    """Track ids whose mean score reaches their class's threshold."""
    scores: dict[int, list[float]] = defaultdict(list)
    classes: dict[int, int] = {}
    for det, ids in frames:
        conf = det.confidence if det.confidence is not None else np.ones(len(det))
        for tid, c, s in zip(ids, det.class_id, conf):
            if tid > 0:
                scores[int(tid)].append(float(s))
                classes[int(tid)] = int(c)
    return {t for t, s in scores.items() if np.mean(s) >= thresholds[classes[t]] - 1e-12}


def only_kept(det: Detections, ids: np.ndarray, kept: set[int]) -> tuple[Detections, np.ndarray]:
    """A frame's detections of kept tracks (in order), and their ids."""
    keep = np.array([int(t) in kept for t in ids], dtype=bool)
    return det.select(keep), ids[keep]
