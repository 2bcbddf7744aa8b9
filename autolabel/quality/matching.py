"""Matching detections to ground truth (the COCO way) and precision/recall/F-score. NumPy only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def greedy_match(
    iou: np.ndarray, iou_threshold: float, gt_crowd: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Detections (rows of `iou`, already sorted by descending score) take, in order, the unmatched
    ground truth they overlap most, as COCO evaluation does. Returns (true_positive, ignored) bool
    arrays over detections; `ignored` marks detections that only cover crowd regions."""
    taken_by, ignored = greedy_assign(iou, iou_threshold, gt_crowd)
    return taken_by >= 0, ignored


def greedy_assign(
    iou: np.ndarray, iou_threshold: float, gt_crowd: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """As `greedy_match`, but returns the ground truth each detection took (-1: none) and `ignored`."""
    n_det, n_gt = iou.shape
    crowd = np.zeros(n_gt, dtype=bool) if gt_crowd is None else np.asarray(gt_crowd, dtype=bool)
    taken = np.zeros(n_gt, dtype=bool)
    took = np.full(n_det, -1, dtype=np.int64)
    ignored = np.zeros(n_det, dtype=bool)
    for d in range(n_det):
        free = ~taken & ~crowd & (iou[d] >= iou_threshold)
        if free.any():
            g = int(np.argmax(np.where(free, iou[d], -1.0)))
            taken[g] = True
            took[d] = g
        elif (crowd & (iou[d] >= iou_threshold)).any():
            ignored[d] = True
    return took, ignored


def f_score(precision: np.ndarray | float, recall: np.ndarray | float, beta: float) -> np.ndarray:
    p, r = np.asarray(precision, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    b2 = beta * beta
    den = b2 * p + r
    return np.where(den > 0, (1 + b2) * p * r / np.maximum(den, 1e-12), 0.0)


@dataclass
class ClassMatches:
    """Every scored detection of one class over the images compared, and its ground-truth count."""

    scores: list[float] = field(default_factory=list)
    tp: list[bool] = field(default_factory=list)
    n_gt: int = 0

    def add(self, scores: np.ndarray, tp: np.ndarray, ignored: np.ndarray, n_gt: int) -> None:
        self.scores += [float(s) for s in scores[~ignored]]
        self.tp += [bool(t) for t in tp[~ignored]]
        self.n_gt += n_gt

    def extend(self, other: ClassMatches) -> None:
        self.scores += other.scores
        self.tp += other.tp
        self.n_gt += other.n_gt

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, precision, recall) at every distinct score, highest threshold first: keeping
        the detections scoring >= thresholds[k] gives precision[k] and recall[k]."""
        if not self.scores:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        s = np.asarray(self.scores)
        order = np.argsort(-s, kind="stable")
        s, tp = s[order], np.asarray(self.tp)[order]
        ctp = np.cumsum(tp)
        last = np.r_[s[1:] != s[:-1], True]  # cut only between distinct scores
        n = np.arange(1, len(s) + 1)
        precision = ctp / n
        recall = ctp / self.n_gt if self.n_gt else np.zeros(len(s))
        return s[last], precision[last], recall[last]

    def at(self, threshold: float) -> tuple[float, float, int, int]:
        """(precision, recall, true positives, detections) keeping scores >= threshold."""
        s = np.asarray(self.scores)
        keep = s >= threshold
        tp = int(np.asarray(self.tp, dtype=bool)[keep].sum()) if len(s) else 0
        n = int(keep.sum())
        return (tp / n if n else 0.0), (tp / self.n_gt if self.n_gt else 0.0), tp, n
