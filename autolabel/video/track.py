"""`tracker: detect`: detections of every sampled frame linked into tracks, ByteTrack-style.

Each frame: the confident detections (score >= `high`) are matched to the live tracks first, then the
weak ones (`low` <= score < `high`) to the tracks still unmatched, so an object whose score dips for a frame
keeps its track instead of being dropped; a weak detection never starts a track. Matching is an optimal
assignment (Hungarian) on box IoU with each track's box moved by its last velocity, only within a class
and only at IoU >= `iou`. A track that finds no detection for `max_missed` frames ends. Works with any
detector, segmenter or engine (the per-frame detections are those of images).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from autolabel.geometry import box_iou
from autolabel.types import Detections


@dataclass
class Track:
    id: int
    class_id: int
    box: np.ndarray  # xyxy at its last detection
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    missed: int = 0

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity * (self.missed + 1)


@dataclass
class DetectTracker:
    high: float = 0.5
    low: float = 0.1
    iou: float = 0.3
    max_missed: int = 30
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def update(self, det: Detections) -> np.ndarray:
        """Track ids of this frame's detections (int64, 0 for a weak detection that matched no track)."""
        n = len(det)
        ids = np.zeros(n, dtype=np.int64)
        scores = det.confidence if det.confidence is not None else np.ones(n)
        strong = np.flatnonzero(scores >= self.high)
        weak = np.flatnonzero((scores >= self.low) & (scores < self.high))
        free = list(range(len(self.tracks)))
        for group in (strong, weak):
            pairs = self._assign(det, group, free)
            for d, t in pairs:
                self._follow(self.tracks[t], det.xyxy[d])
                ids[int(d)] = self.tracks[t].id
            used = {t for _, t in pairs}
            free = [t for t in free if t not in used]
        for t in free:
            self.tracks[t].missed += 1
        for d in strong.tolist():
            if ids[d] == 0:
                self.tracks.append(Track(self.next_id, int(det.class_id[d]), det.xyxy[d].copy()))
                ids[d] = self.next_id
                self.next_id += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return ids

    def _assign(self, det: Detections, rows: np.ndarray, free: list[int]) -> list[tuple[int, int]]:
        from scipy.optimize import linear_sum_assignment

        if not len(rows) or not free:
            return []
        predicted = np.stack([self.tracks[t].predicted() for t in free])
        iou = box_iou(det.xyxy[rows], predicted)
        same = det.class_id[rows][:, None] == np.array([self.tracks[t].class_id for t in free])[None, :]
        iou = np.where(same, iou, 0.0)
        r, c = linear_sum_assignment(-iou)
        return [(int(rows[i]), free[j]) for i, j in zip(r, c) if iou[i, j] >= self.iou]

    @staticmethod
    def _follow(track: Track, box: np.ndarray) -> None:
        track.velocity = (box - track.box) / (track.missed + 1)
        track.box, track.missed = box.copy(), 0
