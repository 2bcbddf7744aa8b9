"""`tune` for an ensemble: calibrate each detector's scores, then choose per class how its sources fuse
(`mean` or `max`) and its threshold on the fused score, on the hand-labeled images. No model is loaded.

- Calibration: per source a logistic fit p = sigmoid(a·score + b) of "this candidate is a true object of its
  class" (its best IoU with a hand label of the class reaches `iou`) on the source's candidates of the
  hand-labeled images — scores of different detectors become comparable (OWLv2's 0.2 may mean what
  Grounding DINO's 0.5 does). Lightly regularised, so 16 images do not give a cliff.
- Fusion per class: each method tuned as thresholds are (`choose.tune_thresholds`), the better F kept (ties
  keep the ontology's); the final thresholds are tuned once more with every class at its method.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from autolabel.decisions import DecisionSettings
from autolabel.fusion import SCORES, FusionSettings
from autolabel.geometry import box_iou
from autolabel.quality.choose import HandLabels, tune_thresholds
from autolabel.quality.matching import ClassMatches, f_score
from autolabel.types import Candidates

L2 = 1.0  # ridge on (a, b): a handful of images cannot make a step function


@dataclass
class FusionChoice:
    """What tune chose for an ensemble: per-source calibration, per-class method, and each method's F."""

    calibration: tuple[tuple[float, float], ...]
    methods: dict[str, str]
    f_by_method: dict[str, dict[str, float]] = field(default_factory=dict)  # class → method → F (in-sample)
    labels_by_source: list[tuple[int, int]] = field(default_factory=list)  # (true, all) candidates per source


def candidate_truth(h: HandLabels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, source, is-true) of every candidate of an ontology prompt on the hand-labeled images."""
    dec = h.dec
    n_pos = len(dec.prompt_class)
    scores, sources, truth = [], [], []
    for r in h.cands:
        c = r.candidates
        if c.score is None or c.source is None:
            continue
        gt = h.gt[r.relpath]
        for i in np.flatnonzero(c.prompt_index < n_pos):
            name = dec.classes[dec.prompt_class[int(c.prompt_index[i])]]
            rles, boxes, _crowd = gt.by_class.get(name, (None, np.zeros((0, 4)), np.zeros(0, bool)))
            best = _best_iou(c, int(i), rles, boxes)
            scores.append(float(c.score[i]))
            sources.append(int(c.source[i]))
            truth.append(best >= h.iou)
    return np.asarray(scores), np.asarray(sources, dtype=np.int64), np.asarray(truth, dtype=bool)


def _best_iou(c: Candidates, i: int, rles: list[dict] | None, boxes: np.ndarray) -> float:
    if not len(boxes):
        return 0.0
    if rles is not None and c.masks is not None:
        from pycocotools import mask as mask_utils

        return float(np.max(mask_utils.iou([c.masks.rles[i]], rles, [0] * len(rles))))
    return float(box_iou(c.xyxy[i : i + 1], boxes).max())


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """(a, b) of p = sigmoid(a·x + b) by Newton's method with a ridge of L2; (1, 0)-like without both labels."""
    if len(x) == 0 or y.all() or not y.any():
        return (1.0, 0.0) if len(x) == 0 else ((4.0, -2.0) if y.any() else (4.0, -6.0))
    X = np.stack([x, np.ones_like(x)], axis=1)
    w = np.zeros(2)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-X @ w))
        grad = X.T @ (p - y) + L2 * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + L2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def calibrate(h: HandLabels) -> tuple[tuple[tuple[float, float], ...], list[tuple[int, int]]]:
    """Per source (a, b), and (true, all) candidates each was fitted on."""
    assert h.dec.fusion is not None
    score, source, truth = candidate_truth(h)
    out, counts = [], []
    for s in range(len(h.dec.fusion.sources)):
        mine = source == s
        out.append(fit_logistic(score[mine], truth[mine].astype(np.float64)))
        counts.append((int(truth[mine].sum()), int(mine.sum())))
    return tuple(out), counts


Tuned = tuple[dict[str, float], dict[str, ClassMatches], float | None]  # what `tune_thresholds` returns


def tune_fusion(h: HandLabels) -> tuple[DecisionSettings, FusionChoice, Tuned]:
    """(the tuned decisions, what was chosen, `tune_thresholds`' result for them)."""
    f0 = h.dec.fusion
    assert f0 is not None
    cal, counts = calibrate(h)
    base = replace(f0, calibration=cal)
    k = len(h.dec.classes)
    f_by: dict[str, dict[str, float]] = {c: {} for c in h.dec.classes}
    for method in SCORES:
        dec = replace(h.dec, fusion=replace(base, class_score=(method,) * k))
        chosen, matches, _ = tune_thresholds(replace(h, dec=dec))
        for name in h.dec.classes:
            p, r, _, _ = matches[name].at(chosen[name])
            f_by[name][method] = float(f_score(p, r, h.beta))
    methods = {}
    for j, name in enumerate(h.dec.classes):
        default = f0.method(j)
        best = max(SCORES, key=lambda m: (f_by[name][m], m == default))
        methods[name] = best
    fusion: FusionSettings = replace(base, class_score=tuple(methods[c] for c in h.dec.classes))
    dec = replace(h.dec, fusion=fusion)
    result = tune_thresholds(replace(h, dec=dec))
    chosen = result[0]
    dec = replace(dec, class_thresholds=tuple(chosen[c] for c in dec.classes))
    return dec, FusionChoice(cal, methods, f_by, counts), result


def tuned_decisions(h: HandLabels) -> DecisionSettings:
    """The decisions tune would choose on these images (thresholds; for an ensemble its fusion too): what
    cross-validation re-chooses on every fold."""
    if h.dec.fusion is not None and any(r.candidates.source is not None for r in h.cands):
        return tune_fusion(h)[0]
    chosen, _, _ = tune_thresholds(h)
    return replace(h.dec, class_thresholds=tuple(chosen[c] for c in h.dec.classes))
