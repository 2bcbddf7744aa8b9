"""Choosing per-class thresholds from a few hand-labeled images (pure: matches in, thresholds out).

- A threshold is placed *between* scores: halfway between the last detection kept and the first one
  dropped (below the lowest kept score: halfway to the candidate floor), never on a score, so the next
  image's detection that scores a hair lower is not lost.
- A class seen a few times is shrunk toward the threshold chosen on every class pooled: with n pieces
  of evidence (its ground-truth objects and its detections) the class's own choice weighs
  n² / (n² + PRIOR²): half with 2, 0.8 with 4, 0.96 with 10 — strong where evidence is thin, almost nothing
  once it is not (`bench/tune.py`: n / (n + PRIOR) cost held-out F1 at 64 images).
- Detections of a class on hand-labeled images that do not contain it are false positives; a class with
  no ground truth but detections is pushed above them (as far as its evidence allows).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from autolabel.decisions import DecisionSettings, decide
from autolabel.quality.groundtruth import GtImage, match_detections
from autolabel.quality.matching import ClassMatches, f_score
from autolabel.types import CandidateResult

PRIOR = 2  # evidence at which a class's own choice and the pooled one weigh the same
THIN = 10  # fewer ground-truth objects than this: say the evidence is thin


def collect(
    cands: list[CandidateResult],
    gt: dict[str, GtImage],
    dec: DecisionSettings,
    iou_threshold: float,
    only: str | None = None,
) -> dict[str, ClassMatches]:
    """Per-class matches of the hand-labeled images' detections under `dec`."""
    matches = {c: ClassMatches() for c in dec.classes}
    for c in cands:
        det = decide(c.candidates, c.width, c.height, dec)
        match_detections(det, gt[c.relpath], dec.classes, iou_threshold, matches, only)
    return matches


def choose(m: ClassMatches, beta: float, floor: float) -> float | None:
    """The threshold maximising F_beta, between scores; above every detection when none is right (or the
    class has no ground truth); None without any detection."""
    thr, precision, recall = m.curve()
    if not len(thr):
        return None
    f = f_score(precision, recall, beta)
    if not m.n_gt or float(f.max()) == 0.0:
        return float(min(1.0, (thr[0] + 1.0) / 2))  # every detection is wrong: keep none of them
    k = int(np.argmax(f))
    lower = thr[k + 1] if k + 1 < len(thr) else floor
    return float(max((thr[k] + lower) / 2, floor))


def pooled(matches: dict[str, ClassMatches]) -> ClassMatches:
    out = ClassMatches()
    for m in matches.values():
        out.extend(m)
    return out


def evidence(m: ClassMatches) -> int:
    """Ground-truth objects plus detections: false positives say where the threshold must be, too."""
    return m.n_gt + len(m.scores)


def shrink(own: float | None, overall: float | None, m: ClassMatches, fallback: float) -> float:
    """The class's own choice weighed by its evidence against the pooled choice."""
    if own is None:  # no detection of the class at all: nothing to learn from
        return fallback
    if overall is None:
        return own
    n = evidence(m)
    w = n * n / (n * n + PRIOR * PRIOR)
    return float(w * own + (1 - w) * overall)


@dataclass(frozen=True)
class HandLabels:
    """The hand-labeled images' candidates and ground truth, the run's other decisions, and how to score
    (the candidate floor, F_beta, the IoU of a match)."""

    cands: list[CandidateResult]
    gt: dict[str, GtImage]
    dec: DecisionSettings
    floor: float
    beta: float = 1.0
    iou: float = 0.5

    def only(self, relpaths: set[str]) -> HandLabels:
        return replace(self, cands=[c for c in self.cands if c.relpath in relpaths])


def tune_thresholds(h: HandLabels) -> tuple[dict[str, float], dict[str, ClassMatches], float | None]:
    """(threshold per class, each class's matches with the others at their thresholds, the pooled
    threshold). First every class at the floor; then each class again with the others at their choice
    (cross-class de-duplication depends on them)."""
    cands, gt, dec, floor, beta, iou = h.cands, h.gt, h.dec, h.floor, h.beta, h.iou
    at_floor = replace(dec, class_thresholds=tuple(floor for _ in dec.classes))
    first = collect(cands, gt, at_floor, iou)
    overall = choose(pooled(first), beta, floor)
    current = dict(zip(dec.classes, dec.class_thresholds))
    chosen = {n: shrink(choose(m, beta, floor), overall, m, current[n]) for n, m in first.items()}
    final: dict[str, ClassMatches] = {}
    for k, name in enumerate(dec.classes):
        others = tuple(floor if j == k else chosen[c] for j, c in enumerate(dec.classes))
        m = collect(cands, gt, replace(dec, class_thresholds=others), iou, only=name)[name]
        chosen[name] = shrink(choose(m, beta, floor), overall, m, current[name])
        final[name] = m
    return chosen, final, overall
