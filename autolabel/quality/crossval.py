"""What tuned thresholds can be expected to give on *unseen* images: k-fold cross-validation over the
hand-labeled images (tune on k-1 folds — thresholds, and an ensemble's fusion —, score the held-out fold),
pooled out-of-fold counts, and a 95 % interval by resampling images. The in-sample optimum always looks
better than what a new folder gets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from autolabel.quality.choose import HandLabels, collect
from autolabel.quality.fusion_tune import tuned_decisions
from autolabel.quality.matching import f_score

FOLDS = 5
RESAMPLES = 1000


@dataclass
class Expected:
    """Out-of-fold precision, recall and F per class and over all classes, with a 95 % interval of the
    overall F (images resampled)."""

    folds: int = 0
    f: float = 0.0
    low: float = 0.0
    high: float = 0.0
    per_class: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # precision, recall, F
    counts: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # true positives, labels, objects


def folds_of(relpaths: list[str], k: int) -> list[list[str]]:
    """Images into k folds by a hash of their path (stable, spread over the folder)."""
    order = sorted(relpaths, key=lambda r: hashlib.sha256(r.encode()).hexdigest())
    return [order[i::k] for i in range(k)]


def cross_validate(h: HandLabels, k: int = FOLDS) -> Expected:
    """Per image and class (true positives, detections, ground truth) on held-out folds, then F."""
    cands, dec = h.cands, h.dec
    k = min(k, len(cands))
    if k < 2:
        return Expected()
    counts: list[np.ndarray] = []  # per held-out image: (classes, 3)
    everything = {c.relpath for c in cands}
    for fold in folds_of(sorted(everything), k):
        held = set(fold)
        tuned = tuned_decisions(h.only(everything - held))
        for c in cands:
            if c.relpath in held:
                m = collect([c], h.gt, tuned, h.iou)
                counts.append(np.array([(*m[n].at(-1.0)[2:], m[n].n_gt) for n in dec.classes], dtype=np.float64))
    per_image = np.stack(counts)  # (images, classes, [tp, detections, gt])
    return _summary(per_image, dec.classes, h.beta, k)


def _f(total: np.ndarray, beta: float) -> tuple[float, float, float]:
    tp, n, g = total
    p, r = (tp / n if n else 0.0), (tp / g if g else 0.0)
    return float(p), float(r), float(f_score(p, r, beta))


def _summary(per_image: np.ndarray, classes: tuple[str, ...], beta: float, k: int) -> Expected:
    out = Expected(folds=k)
    totals = per_image.sum(axis=0)  # (classes, [tp, detections, gt])
    for j, name in enumerate(classes):
        tp, n, g = (float(v) for v in totals[j])
        out.counts[name], out.per_class[name] = (tp, n, g), _f(totals[j], beta)
    out.f = _f(totals.sum(axis=0), beta)[2]
    rng = np.random.default_rng(0)
    draws = [
        _f(per_image[rng.integers(0, len(per_image), len(per_image))].sum(axis=(0, 1)), beta)[2]
        for _ in range(RESAMPLES)
    ]
    out.low, out.high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
    return out
