"""Decisions: from stored candidates to the Detections that are exported. Pure, cheap, re-runnable.

Inference stores every candidate above the run's candidate floor (see `Ontology.candidate_floor`);
everything here can change after labeling without loading a model: per-class box thresholds, mask
clean-up, box size limits, class-wise NMS and cross-class de-duplication (on mask IoU when the run has
masks, box IoU otherwise), negative-prompt suppression and the per-image cap. NumPy + pycocotools only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from autolabel.errors import UsageError
from autolabel.fusion import FusionSettings, fuse
from autolabel.geometry import box_area, box_iou
from autolabel.masks import MaskCleanup, clean_mask
from autolabel.types import Candidates, Detections, RleMasks
from autolabel.verification import VerifierSettings, rejected


@dataclass(frozen=True)
class DecisionSettings:
    """Everything applied between the run store and an export. `class_thresholds[c]` is class c's
    box threshold; negatives use `negative_threshold` (the detector's global box threshold)."""

    classes: tuple[str, ...]
    prompt_class: tuple[int, ...]  # class of each ontology prompt; prompts beyond it are negatives
    prompts: tuple[str, ...]  # every prompt given to the detector (ontology prompts, then negatives)
    class_thresholds: tuple[float, ...]
    negative_threshold: float = 0.35
    nms_iou: float = 0.5
    cross_class_iou: float | None = 0.9
    negative_iou: float = 0.5
    min_box_area: float = 0.0
    max_box_fraction: float = 1.0
    max_detections: int = 100
    cleanup: MaskCleanup = field(default_factory=MaskCleanup)
    polygon_tolerance: float = 0.0
    prompts_off: tuple[str, ...] = ()  # prompts whose candidates are dropped (a decision: no model)
    track_iou: float = 0.3  # video frames: see `video.clip_decisions`
    track_low: float = 0.1
    track_max_missed: int = 30
    scene_cut: float | None = 0.5  # a frame whose colours change this much from the last starts new tracks
    fusion: FusionSettings | None = None  # an ensemble (`detector:` a list): how its sources' candidates fuse
    verifier: VerifierSettings | None = None  # a verifier: its doubtful band and the answer that keeps
    min_presence: float | None = None  # SAM 3: candidates whose prompt's presence score is under this go

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("fusion", "verifier", "min_presence"):  # a run without them reads as it always has
            if d[k] is None:
                d.pop(k)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DecisionSettings:
        d = dict(d)
        d["cleanup"] = MaskCleanup(**d.get("cleanup", {}))
        d["fusion"] = FusionSettings.from_json(d["fusion"]) if d.get("fusion") else None
        d["verifier"] = VerifierSettings(**d["verifier"]) if d.get("verifier") else None
        for k in ("classes", "prompt_class", "prompts", "class_thresholds", "prompts_off"):
            d[k] = tuple(d.get(k, ()))
        return cls(**d)

    def with_thresholds(
        self, box_threshold: float | None = None, per_class: dict[str, float] | None = None
    ) -> DecisionSettings:
        """A global box threshold replaces every class's; then `per_class` {name: threshold} overrides."""
        thr = list(self.class_thresholds)
        if box_threshold is not None:
            thr = [float(box_threshold)] * len(thr)
        for name, value in (per_class or {}).items():
            if name not in self.classes:
                raise UsageError(f"thresholds: class '{name}' is not in the run; classes: {', '.join(self.classes)}")
            thr[self.classes.index(name)] = float(value)
        neg = self.negative_threshold if box_threshold is None else float(box_threshold)
        return replace(self, class_thresholds=tuple(thr), negative_threshold=neg)


@dataclass
class DecisionCounts:
    """What the decisions removed, summed over the images they ran on."""

    candidates: int = 0
    kept: int = 0
    below_threshold: int = 0
    bad_size: int = 0
    empty_masks: int = 0
    nms_removed: int = 0
    dedup_removed: int = 0
    negative_suppressed: int = 0
    negatives_detected: int = 0
    over_max: int = 0
    track_dropped: int = 0  # video frames: detections of tracks dropped as a whole (or weak, in no track)
    prompts_off: int = 0  # candidates of prompts switched off
    verifier_rejected: int = 0  # doubtful candidates (over their threshold) the verifier answered no
    class_candidates: dict[str, int] = field(default_factory=dict)  # per class: candidates seen
    class_kept: dict[str, int] = field(default_factory=dict)  # per class: kept
    class_best: dict[str, float] = field(default_factory=dict)  # per class: the best candidate score
    class_below: dict[str, int] = field(default_factory=dict)  # per class: candidates under its threshold

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def add_class(self, name: str, candidates: int, kept: int, best: float | None, below: int = 0) -> None:
        self.class_candidates[name] = self.class_candidates.get(name, 0) + candidates
        self.class_kept[name] = self.class_kept.get(name, 0) + kept
        self.class_below[name] = self.class_below.get(name, 0) + below
        if best is not None:
            self.class_best[name] = max(self.class_best.get(name, best), best)

    def warnings(
        self, thresholds: dict[str, float], floor: float, many: int = 10, chosen: dict[str, str] | None = None
    ) -> list[str]:
        """What looks wrong with the decided dataset, with the fix: a class that keeps (almost) nothing of
        many candidates, or keeps everything at the candidate floor; a dataset left empty. A class whose
        threshold was chosen on purpose (`chosen`: class → by whom and why, e.g. tune's note) is not
        suspicious: its line (starting `note:`) says what was chosen instead."""
        out = []
        chosen = chosen or {}
        if self.candidates and not self.kept:
            out.append(f"the dataset is empty: {self.candidates} candidates → 0 kept")
        for name, n in self.class_candidates.items():
            kept, thr = self.class_kept.get(name, 0), thresholds.get(name, 0.0)
            if n >= many and kept <= n // 100 and name in chosen:
                out.append(f"note: {name}: {n} candidates, {kept} kept at {thr:g}, {chosen[name]}")
            elif n >= many and kept <= n // 100:
                out.append(f"{name}: {n} candidates, {kept} kept: {self._why_dropped(name, thr)}")
            elif n >= many and kept == n and thr <= floor + 1e-9 and name not in chosen:
                out.append(
                    f"{name}: keeps all {n} candidates (threshold {thr:g} = the candidate floor) — likely many "
                    "false positives: raise it or run `autolabel tune`"
                )
        return out

    def _why_dropped(self, name: str, thr: float) -> str:
        n, kept, best = self.class_candidates[name], self.class_kept.get(name, 0), self.class_best.get(name)
        below = self.class_below.get(name, 0)
        later = n - below - kept
        parts = []
        if below:
            parts.append(f"{below} under its threshold {thr:g}" + (f", best {best:.2f}" if best is not None else ""))
        if later:
            parts.append(f"{later} dropped by NMS/size/dedup/negatives")
        fix = "lower its threshold or run `autolabel tune`" if below >= later else "check nms_iou, cross_class_iou"
        return "; ".join(parts) + f" — {fix}"


def pairwise_iou(masks: RleMasks | None, xyxy: np.ndarray) -> np.ndarray:
    """(N, N) IoU of the instances: mask IoU when there are masks, else box IoU."""
    if masks is not None:
        return masks.iou(masks)
    return box_iou(xyxy, xyxy)


def greedy_suppress(iou: np.ndarray, groups: np.ndarray | None, threshold: float) -> np.ndarray:
    """Greedy NMS over instances already sorted by descending score. `groups` limits suppression to
    instances of the same group (class-wise NMS); None suppresses across groups. Returns a keep mask."""
    n = len(iou)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        hit = iou[i, i + 1 :] > threshold
        if groups is not None:
            hit &= groups[i + 1 :] == groups[i]
        keep[i + 1 :] &= ~hit
    return keep


def _clean(c: Candidates, cleanup: MaskCleanup) -> tuple[np.ndarray, RleMasks | None, np.ndarray]:
    """Clean masks (when asked), set each box to its mask's tight box; returns (xyxy, masks, non-empty)."""
    if c.masks is None:
        return c.xyxy.copy(), None, np.ones(len(c), dtype=bool)
    from pycocotools import mask as mask_utils

    xyxy = c.xyxy.copy()
    rles = list(c.masks.rles)
    ok = np.ones(len(c), dtype=bool)
    for i in range(len(c)):
        if cleanup.enabled:
            m = clean_mask(c.masks[i], cleanup)
            rles[i] = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        bbox = mask_utils.toBbox(rles[i])  # x, y, w, h of the mask, exclusive right/bottom
        if bbox[2] <= 0 or bbox[3] <= 0:
            ok[i] = False
            continue
        xyxy[i] = [bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]
    return xyxy, RleMasks(rles, c.masks.height, c.masks.width), ok


def decide(
    c: Candidates, width: int, height: int, s: DecisionSettings, counts: DecisionCounts | None = None
) -> Detections:
    """Stored candidates of one image → the Detections to export (see `decide_kept`)."""
    return decide_kept(c, width, height, s, counts)[0]


# Why a candidate is not exported (`decide_kept(..., reasons=)`): the first decision that dropped it.
KEPT, BELOW, PROMPT_OFF, EMPTY_MASK, SIZE, NMS, DEDUP, NEGATIVE, OVER_MAX, IS_NEGATIVE, VERIFIER_NO = range(11)


def decide_kept(
    c: Candidates,
    width: int,
    height: int,
    s: DecisionSettings,
    counts: DecisionCounts | None = None,
    reasons: np.ndarray | None = None,
) -> tuple[Detections, np.ndarray]:
    """Stored candidates of one image → the Detections to export and the index of each among the
    candidates (see `decide_single`). An ensemble's candidates are fused first (`fusion.fuse`): the
    decisions then run on one candidate per object, and a candidate merged into an object shares its
    fate in `reasons` (one under its source's threshold is `BELOW`)."""
    if s.fusion is None or c.source is None:
        return decide_single(c, width, height, s, counts, reasons)
    n_pos = len(s.prompt_class)
    class_id = np.asarray((*s.prompt_class, -1), dtype=np.int64)[np.minimum(c.prompt_index, n_pos)]
    fused, group, best = fuse(c, class_id, s.fusion)
    why = np.zeros(len(fused), dtype=np.int64)
    det, at = decide_single(fused, width, height, s, counts, why)
    if reasons is not None:
        reasons[:] = np.where(group >= 0, why[np.maximum(group, 0)], BELOW)
    return det, best[at]


def decide_single(
    c: Candidates,
    width: int,
    height: int,
    s: DecisionSettings,
    counts: DecisionCounts | None = None,
    reasons: np.ndarray | None = None,
) -> tuple[Detections, np.ndarray]:
    """Stored candidates of one image → the Detections to export, ordered by descending score, and the
    index of each among the candidates.

    Order: per-class threshold (negatives: `negative_threshold`) → mask clean-up and tight boxes (empty
    masks dropped) → size limits → class-wise NMS → cross-class de-duplication → negative-prompt
    suppression → `max_detections`. Without scores (Florence-2) thresholds do not apply and earlier
    candidates win ties. `reasons` (an int array, one per candidate) receives why each was dropped
    (`BELOW` … `OVER_MAX`; `IS_NEGATIVE` for a negative prompt's candidate, `KEPT` for the exported).
    """
    why = reasons if reasons is not None else np.zeros(len(c), dtype=np.int64)
    counts = counts if counts is not None else DecisionCounts()
    n_pos = len(s.prompt_class)
    counts.candidates += int((c.prompt_index < n_pos).sum())
    negative = c.prompt_index >= n_pos
    prompt_class = np.asarray((*s.prompt_class, -1), dtype=np.int64)
    class_id = class_id_all = prompt_class[np.minimum(c.prompt_index, n_pos)]
    keep = np.ones(len(c), dtype=bool)
    if c.score is not None and len(c):
        thr = np.where(
            negative,
            s.negative_threshold,
            np.asarray((*s.class_thresholds, 0.0))[np.where(negative, len(s.classes), class_id)],
        )
        keep = c.score >= thr
        if s.min_presence is not None and c.presence is not None:
            keep &= c.presence >= s.min_presence
        counts.below_threshold += int((~keep & ~negative).sum())
    why[:] = np.where(negative, IS_NEGATIVE, np.where(keep, KEPT, BELOW))
    if s.prompts_off:
        off = np.isin(c.prompt_index, [s.prompts.index(p) for p in s.prompts_off])
        counts.prompts_off += int((keep & off).sum())
        why[keep & off & ~negative] = PROMPT_OFF
        keep &= ~off
    if s.verifier is not None:
        no = keep & rejected(c, n_pos, s.verifier)
        counts.verifier_rejected += int(no.sum())
        why[no] = VERIFIER_NO
        keep &= ~no
    sub = _subset(c, keep)
    sub_idx = np.flatnonzero(keep)
    class_id, negative = class_id[keep], negative[keep]
    xyxy, masks, ok = _clean(sub, s.cleanup)
    counts.empty_masks += int((~ok & ~negative).sum())
    why[sub_idx[~ok & ~negative]] = EMPTY_MASK
    area = box_area(xyxy)
    size_ok = (area > 0) & (area >= s.min_box_area) & (area <= s.max_box_fraction * width * height)
    counts.bad_size += int((ok & ~size_ok & ~negative).sum())
    why[sub_idx[ok & ~size_ok & ~negative]] = SIZE
    ok &= size_ok
    order = np.flatnonzero(ok)
    if sub.score is not None:
        order = order[np.argsort(-sub.score[order], kind="stable")]
    xyxy, class_id, negative = xyxy[order], class_id[order], negative[order]
    masks = masks[order] if masks is not None else None
    score = sub.score[order] if sub.score is not None else None
    iou = pairwise_iou(masks, xyxy)
    pos = ~negative
    keep = pos & greedy_suppress(iou, class_id, s.nms_iou)
    counts.nms_removed += int((pos & ~keep).sum())
    at = sub_idx[order]  # candidate index of each instance from here on
    why[at[pos & ~keep]] = NMS
    if s.cross_class_iou is not None:
        sub_iou = iou[np.ix_(keep, keep)]
        dedup = greedy_suppress(sub_iou, None, s.cross_class_iou)
        idx = np.flatnonzero(keep)
        counts.dedup_removed += int((~dedup).sum())
        why[at[idx[~dedup]]] = DEDUP
        keep[idx[~dedup]] = False
    counts.negatives_detected += int(negative.sum())
    if negative.any():
        # a kept detection overlapping an earlier (higher-scored) negative by negative_iou or more goes
        earlier = np.tril(np.ones_like(iou, dtype=bool), k=-1)
        hit = (iou >= s.negative_iou) & earlier & negative[None, :]
        suppressed = keep & hit.any(axis=1)
        counts.negative_suppressed += int(suppressed.sum())
        why[at[suppressed]] = NEGATIVE
        keep &= ~suppressed
    idx = np.flatnonzero(keep)
    if len(idx) > s.max_detections:
        counts.over_max += len(idx) - s.max_detections
        why[at[idx[s.max_detections :]]] = OVER_MAX
        idx = idx[: s.max_detections]
    counts.kept += len(idx)
    _count_classes(counts, s, c, class_id_all, class_id[idx])
    prompts = [s.prompts[int(p)] for p in sub.prompt_index[order][idx]]
    det = Detections(
        xyxy=xyxy[idx],
        class_id=class_id[idx],
        confidence=None if score is None else score[idx],
        prompt=prompts,
        masks=None if masks is None else masks[idx],
    )
    return det, at[idx]


def _count_classes(
    counts: DecisionCounts, s: DecisionSettings, c: Candidates, class_id: np.ndarray, kept: np.ndarray
) -> None:
    """Per-class candidates, kept and best score (for the warnings about suspicious classes)."""
    for k in np.unique(class_id[class_id >= 0]):
        mine = class_id == k
        best = None if c.score is None else float(c.score[mine].max())
        below = 0 if c.score is None else int((c.score[mine] < s.class_thresholds[int(k)]).sum())
        counts.add_class(s.classes[int(k)], int(mine.sum()), int((kept == k).sum()), best, below)


def _subset(c: Candidates, keep: np.ndarray) -> Candidates:
    return c.select(np.flatnonzero(keep))
