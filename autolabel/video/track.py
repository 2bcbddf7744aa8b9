"""`tracker: detect`: detections of every sampled frame linked into tracks, ByteTrack-style.

Each frame: the confident detections (score >= `high`, or the class's own threshold) are matched to the
live tracks first, then the weak ones (`low` <= score < `high`) to the tracks still unmatched, so an object
whose score dips for a frame keeps its track instead of being dropped; a weak detection never starts a
track. Matching is an optimal assignment (Hungarian) on box IoU with each track's box moved by its last
centre velocity, only within a class and only at IoU >= `iou`; confident detections left over get a second
chance on buffered IoU (both boxes grown by half their size, as C-BIoU does), which keeps an object whose
box shrank or jumped behind an occluder. A track that finds no detection for `max_missed` frames ends.
Works with any detector, segmenter or engine (the per-frame detections are those of images).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from autolabel.geometry import box_iou
from autolabel.types import Detections

BUFFER = 0.5  # the second round's buffered IoU: boxes grown by half their size on every side


@dataclass
class Track:
    id: int
    class_id: int
    box: np.ndarray  # xyxy at its last detection
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # of the box centre, pixels a frame
    missed: int = 0

    def predicted(self) -> np.ndarray:
        """The last box moved by the centre's velocity (its size kept: a box that shrank behind an occluder
        does not predict a box shrinking on)."""
        return self.box + np.tile(self.velocity, 2) * (self.missed + 1)


@dataclass
class DetectTracker:
    high: float = 0.5
    low: float = 0.1
    iou: float = 0.3
    max_missed: int = 30
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def update(self, det: Detections, confident: np.ndarray | None = None) -> np.ndarray:
        """Track ids of this frame's detections (int64, 0 for a weak detection that matched no track).
        `confident` (bool per detection) replaces `score >= high`, e.g. each class's own threshold."""
        n = len(det)
        ids = np.zeros(n, dtype=np.int64)
        scores = det.confidence if det.confidence is not None else np.ones(n)
        sure = scores >= self.high if confident is None else np.asarray(confident, dtype=bool)
        strong = np.flatnonzero(sure)
        weak = np.flatnonzero((scores >= self.low) & ~sure)
        free = list(range(len(self.tracks)))
        for group, buffer in ((strong, 0.0), (strong, BUFFER), (weak, 0.0)):
            group = np.asarray([d for d in group if ids[d] == 0], dtype=np.int64)
            pairs = self._assign(det, group, free, buffer)
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

    def _assign(self, det: Detections, rows: np.ndarray, free: list[int], buffer: float) -> list[tuple[int, int]]:
        from scipy.optimize import linear_sum_assignment

        if not len(rows) or not free:
            return []
        predicted = np.stack([self.tracks[t].predicted() for t in free])
        iou = box_iou(_grown(det.xyxy[rows], buffer), _grown(predicted, buffer))
        same = det.class_id[rows][:, None] == np.array([self.tracks[t].class_id for t in free])[None, :]
        iou = np.where(same, iou, 0.0)
        r, c = linear_sum_assignment(-iou)
        return [(int(rows[i]), free[j]) for i, j in zip(r, c) if iou[i, j] >= self.iou]

    @staticmethod
    def _follow(track: Track, box: np.ndarray) -> None:
        track.velocity = (_centre(box) - _centre(track.box)) / (track.missed + 1)
        track.box, track.missed = box.copy(), 0


def _centre(box: np.ndarray) -> np.ndarray:
    return (box[:2] + box[2:]) / 2


def _grown(xyxy: np.ndarray, buffer: float) -> np.ndarray:
    """Boxes grown by `buffer` × their width and height on every side."""
    if not buffer:
        return xyxy
    pad = np.tile(xyxy[:, 2:] - xyxy[:, :2], 2) * buffer
    return xyxy + np.concatenate([-pad[:, :2], pad[:, 2:]], axis=1)
