"""Ensemble fusion: candidates of several detectors (`detector:` a list) that find the same object become
one. A decision like the others (pure, no model): changing how sources are fused re-runs at export.

Candidates of one class from different sources whose masks (boxes without masks) overlap by `iou` or
more are one object. Each source's score is first calibrated (`calibration[s] = (a, b)`: p = sigmoid(a·score
+ b), fitted by `autolabel tune` on hand labels; identity without), then:

- `mean`: the weighted mean over *all* sources, a source that found nothing counting 0 — agreement lifts
  an object, one source alone gets its share of the weight;
- `max`: the best calibrated score (any source may find an object alone).

The object's mask and box are its best-scored member's (`mask: best`), or the pixels more than half of its
members' weight covers (`mask: vote`, with 3+ sources). NumPy + pycocotools only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from autolabel.geometry import box_iou
from autolabel.types import Candidates, RleMasks

SCORES = ("mean", "max")
MASKS = ("best", "vote")


@dataclass(frozen=True)
class FusionSettings:
    """How an ensemble's candidates are fused (decision settings; `sources` names each detector)."""

    sources: tuple[str, ...]
    iou: float = 0.5
    score: str = "mean"  # the default of every class: mean | max
    mask: str = "best"
    weights: tuple[float, ...] = ()  # per source; () → all 1
    calibration: tuple[tuple[float, float], ...] = ()  # per source (a, b); () → the raw scores
    class_score: tuple[str, ...] = ()  # per class: its own method ('' → `score`), chosen by tune
    source_thresholds: tuple[float, ...] = ()  # per source: its candidates under this take no part

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FusionSettings:
        d = dict(d)
        for k in ("sources", "weights", "class_score", "source_thresholds"):
            d[k] = tuple(d.get(k, ()))
        d["calibration"] = tuple(tuple(ab) for ab in d.get("calibration", ()))
        return cls(**d)

    def method(self, class_id: int) -> str:
        m = self.class_score[class_id] if 0 <= class_id < len(self.class_score) else ""
        return m or self.score

    def weight(self) -> np.ndarray:
        return np.asarray(self.weights or [1.0] * len(self.sources), dtype=np.float64)

    def with_class_score(self, n_classes: int, chosen: dict[int, str]) -> FusionSettings:
        methods = [self.method(k) for k in range(n_classes)]
        for k, m in chosen.items():
            methods[k] = m
        return replace(self, class_score=tuple(methods))


def calibrated(score: np.ndarray, source: np.ndarray, f: FusionSettings) -> np.ndarray:
    """Each candidate's score on its source's calibration (the raw score without one)."""
    if not f.calibration:
        return np.asarray(score, dtype=np.float64)
    ab = np.asarray(f.calibration, dtype=np.float64)[source]
    return 1.0 / (1.0 + np.exp(-(ab[:, 0] * score + ab[:, 1])))


def fuse(c: Candidates, class_id: np.ndarray, f: FusionSettings) -> tuple[Candidates, np.ndarray, np.ndarray]:
    """One image's candidates → (one candidate per object, the object each candidate became part of
    (-1: under its source's threshold), each object's best member). An object keeps its best member's
    box, prompt and mask (or the vote), with the fused score. Without scores (Florence-2 in an ensemble)
    the calibrated score is 1."""
    n = len(c)
    source = c.source if c.source is not None else np.zeros(n, dtype=np.int64)
    raw = c.score if c.score is not None else np.ones(n)
    p = calibrated(raw, source, f)
    eligible = np.ones(n, dtype=bool)
    if f.source_thresholds:
        eligible = raw >= np.asarray(f.source_thresholds, dtype=np.float64)[source]
    order = np.flatnonzero(eligible)
    order = order[np.argsort(-p[order], kind="stable")]
    iou = c.masks.iou(c.masks) if c.masks is not None else box_iou(c.xyxy, c.xyxy)
    group = np.full(n, -1, dtype=np.int64)
    groups: list[list[int]] = []
    for i in order:
        if group[i] >= 0:
            continue
        members = [int(i)]
        group[i] = len(groups)
        for s in range(len(f.sources)):
            if s == source[i]:
                continue
            cand = np.flatnonzero((group < 0) & eligible & (source == s) & (class_id == class_id[i]))
            cand = cand[iou[i, cand] >= f.iou]
            if len(cand):
                j = int(cand[np.argmax(iou[i, cand])])
                group[j] = len(groups)
                members.append(j)
        groups.append(members)
    best = np.asarray([g[0] for g in groups], dtype=np.int64)
    return _fused(c, groups, best, p, source, class_id, f), group, best


def _fused(
    c: Candidates,
    groups: list[list[int]],
    best: np.ndarray,
    p: np.ndarray,
    source: np.ndarray,
    class_id: np.ndarray,
    f: FusionSettings,
) -> Candidates:
    out = c.select(best)
    w = f.weight()
    scores = []
    for g in groups:
        k = int(class_id[g[0]])
        if f.method(k) == "max":
            scores.append(float(p[g].max()))
        else:
            scores.append(float((w[source[g]] * p[g]).sum() / w.sum()))
    out.score = np.asarray(scores, dtype=np.float64)
    if f.mask == "vote" and c.masks is not None:
        out.masks = RleMasks([_vote(c.masks, g, w[source[g]]) for g in groups], c.masks.height, c.masks.width)
    return out


def _vote(masks: RleMasks, members: list[int], weights: np.ndarray) -> dict:
    """The pixels more than half of the members' weight covers (the best member's alone when one)."""
    if len(members) == 1:
        return masks.rles[members[0]]
    from pycocotools import mask as mask_utils

    acc = np.zeros((masks.height, masks.width), dtype=np.float64)
    for i, wt in zip(members, weights):
        acc += wt * masks[i]
    m = acc > weights.sum() / 2
    if not m.any():
        return masks.rles[members[0]]
    return mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
