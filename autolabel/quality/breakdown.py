"""Error breakdown: every miss and false positive against the hand labels, by cause, with the fix.

A miss (a hand-labeled object no exported label matches at IoU 0.5) is explained by what only this tool
keeps, every candidate and the decision that dropped it: the best candidate of the class overlapping the
object was under the threshold, removed by NMS, by cross-class de-duplication (with which class), by a
negative prompt, by the size limits…; else another class's label covers it (wrong class), a label of its
class is off (mislocalised, IoU 0.1–0.5), or the detector gave no candidate at all. A false positive is a
duplicate of a found object, a wrong class, mislocalised, or background. Misses add up to
ground truth − true positives and false positives to labels − true positives, as `eval` counts them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel import decisions as d
from autolabel.decisions import DecisionSettings, decide_kept
from autolabel.geometry import box_iou
from autolabel.quality.groundtruth import GtImage
from autolabel.quality.matching import greedy_assign
from autolabel.types import Candidates, Detections, RleMasks

IOU, LOOSE = 0.5, 0.1
DROPPED = {
    d.BELOW: "below threshold",
    d.PROMPT_OFF: "prompt off",
    d.EMPTY_MASK: "empty mask",
    d.SIZE: "size limits",
    d.NMS: "NMS",
    d.DEDUP: "dedup",
    d.NEGATIVE: "negative prompt",
    d.OVER_MAX: "max detections",
    d.VERIFIER_NO: "verifier said no",
}
MISS_CAUSES = (*DROPPED.values(), "dropped with its track", "wrong class", "mislocalised", "no candidate")
FALSE_CAUSES = ("background", "duplicate", "wrong class", "mislocalised")


@dataclass
class ClassErrors:
    """One class's true positives, misses and false positives by cause, and by prompt."""

    tp: int = 0
    misses: dict[str, int] = field(default_factory=dict)
    false_positives: dict[str, int] = field(default_factory=dict)
    dedup_with: dict[str, int] = field(default_factory=dict)  # misses removed by dedup with this class
    confused_with: dict[str, int] = field(default_factory=dict)  # misses labeled as this class instead
    below_scores: list[float] = field(default_factory=list)  # best candidate score of each miss under threshold
    per_prompt: dict[str, dict[str, int]] = field(default_factory=dict)  # prompt → cause → count
    fix: str = ""

    def miss(self, cause: str, prompt: str) -> None:
        self._count(self.misses, "miss", cause, prompt)

    def false(self, cause: str, prompt: str) -> None:
        self._count(self.false_positives, "false", cause, prompt)

    def _count(self, table: dict[str, int], side: str, cause: str, prompt: str) -> None:
        table[cause] = table.get(cause, 0) + 1
        if prompt:
            by = self.per_prompt.setdefault(prompt, {})
            by[f"{side}: {cause}"] = by.get(f"{side}: {cause}", 0) + 1

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("below_scores")
        return out


@dataclass
class _Side:
    """Instances of one image: masks (RLEs, or None) or boxes, and their class names."""

    rles: list[dict] | None
    boxes: np.ndarray
    names: list[str]


def _iou(a: _Side, b: _Side, crowd: np.ndarray) -> np.ndarray:
    """(len a, len b) mask IoU when both sides have masks, else box IoU (crowd columns: COCO's rule)."""
    if not len(a.names) or not len(b.names):
        return np.zeros((len(a.names), len(b.names)))
    if a.rles is not None and b.rles is not None:
        from pycocotools import mask as mask_utils

        iou = mask_utils.iou(a.rles, b.rles, [int(c) for c in crowd])
        return np.asarray(iou, dtype=np.float64).reshape(len(a.names), len(b.names))
    return box_iou(a.boxes, b.boxes)


def _gt_side(gt: GtImage, classes: tuple[str, ...]) -> tuple[_Side, np.ndarray]:
    rles: list[dict] | None = []
    boxes, names, crowd = [], [], []
    for name in classes:
        r, b, c = gt.by_class[name]
        rles = None if r is None or rles is None else rles + r
        boxes.append(b)
        names += [name] * len(b)
        crowd.append(c)
    return _Side(rles, np.concatenate(boxes).reshape(-1, 4), names), np.concatenate(crowd).astype(bool)


def _det_side(xyxy: np.ndarray, masks: object, names: list[str]) -> _Side:
    return _Side(masks.rles if isinstance(masks, RleMasks) else None, xyxy, names)


class Breakdown:
    """Errors of every class, added one image at a time (`add`), then `finish` names each class's fix."""

    def __init__(self, dec: DecisionSettings) -> None:
        self.dec = dec
        self.classes = {name: ClassErrors() for name in dec.classes}

    def add(self, det: Detections, cands: Candidates, width: int, height: int, gt: GtImage) -> None:
        """One image: its exported labels, its stored candidates and its hand labels."""
        dec = self.dec
        why = np.zeros(len(cands), dtype=np.int64)
        decide_kept(cands, width, height, dec, reasons=why)
        g, crowd = _gt_side(gt, dec.classes)
        dnames = [dec.classes[int(k)] for k in det.class_id]
        dside = _det_side(det.xyxy, det.masks, dnames)
        dg = _iou(dside, g, crowd)
        took = np.full(len(dnames), -1)
        ignored = np.zeros(len(dnames), dtype=bool)
        gnames, dn = np.asarray(g.names, dtype=object), np.asarray(dnames, dtype=object)
        for name in dec.classes:
            rows, cols = np.flatnonzero(dn == name), np.flatnonzero(gnames == name)
            t, ign = greedy_assign(dg[np.ix_(rows, cols)], IOU, crowd[cols])
            if len(cols):
                took[rows] = np.where(t >= 0, cols[np.maximum(t, 0)], -1)
            ignored[rows] = ign
        taken = np.zeros(len(g.names), dtype=bool)
        taken[took[took >= 0]] = True
        self._false_positives(det, dnames, dg, took, ignored, g.names, taken)
        pos = np.flatnonzero(cands.prompt_index < len(dec.prompt_class))
        cnames = [dec.classes[dec.prompt_class[int(cands.prompt_index[i])]] for i in pos]
        cside = _det_side(cands.xyxy[pos], None if cands.masks is None else cands.masks[pos], cnames)
        cg = _iou(cside, g, crowd)
        for j in np.flatnonzero(~taken & ~crowd):
            self._miss(int(j), g.names[int(j)], det, dnames, dg, cands, pos, cnames, cg, why)

    def _false_positives(
        self,
        det: Detections,
        dnames: list[str],
        dg: np.ndarray,
        took: np.ndarray,
        ignored: np.ndarray,
        gnames: list[str],
        taken: np.ndarray,
    ) -> None:
        same = np.asarray(gnames, dtype=object)[None, :] == np.asarray(dnames, dtype=object)[:, None]
        for i, name in enumerate(dnames):
            errs = self.classes[name]
            if took[i] >= 0:
                errs.tp += 1
                continue
            if ignored[i]:
                continue
            mine, others = dg[i][same[i]], dg[i][~same[i]]
            if (mine >= IOU).any():
                cause = "duplicate"
            elif (others >= IOU).any():
                cause = "wrong class"
            elif (mine >= LOOSE).any():
                cause = "mislocalised"
            else:
                cause = "background"
            errs.false(cause, det.prompt[i] if det.prompt else "")

    def _miss(
        self,
        j: int,
        name: str,
        det: Detections,
        dnames: list[str],
        dg: np.ndarray,
        cands: Candidates,
        pos: np.ndarray,
        cnames: list[str],
        cg: np.ndarray,
        why: np.ndarray,
    ) -> None:
        errs, dec = self.classes[name], self.dec
        mine = np.asarray([n == name for n in cnames], dtype=bool)
        near = np.flatnonzero(mine & (cg[:, j] >= IOU)) if len(cnames) else np.zeros(0, dtype=np.int64)
        if cands.score is not None and len(near):
            near = near[np.argsort(-cands.score[pos[near]], kind="stable")]
        dropped = [i for i in near if why[pos[i]] != d.KEPT]
        same_det = np.asarray([n == name for n in dnames], dtype=bool)
        covered = dg[:, j] >= IOU if len(dnames) else np.zeros(0, dtype=bool)
        if dropped:
            i = int(dropped[0])
            cause = DROPPED.get(int(why[pos[i]]), "no candidate")
            prompt = dec.prompts[int(cands.prompt_index[pos[i]])]
            if cause == "below threshold" and cands.score is not None:
                errs.below_scores.append(float(cands.score[pos[i]]))
            if cause == "dedup":
                by = self._deduped_by(i, pos, cands, det, dnames, name)
                errs.dedup_with[by] = errs.dedup_with.get(by, 0) + 1
            errs.miss(cause, prompt)
        elif len(near) and not (covered & same_det).any():
            errs.miss("dropped with its track", dec.prompts[int(cands.prompt_index[pos[near[0]]])])
        elif (covered & ~same_det).any():
            other = dnames[int(np.flatnonzero(covered & ~same_det)[0])]
            errs.confused_with[other] = errs.confused_with.get(other, 0) + 1
            errs.miss("wrong class", "")
        elif len(dnames) and ((dg[:, j] >= LOOSE) & same_det).any():
            errs.miss("mislocalised", "")
        else:
            errs.miss("no candidate", "")

    def _deduped_by(
        self, i: int, pos: np.ndarray, cands: Candidates, det: Detections, dnames: list[str], name: str
    ) -> str:
        """The class of the exported label overlapping the de-duplicated candidate most."""
        others = [k for k, n in enumerate(dnames) if n != name]
        if not others:
            return "?"
        one = _det_side(cands.xyxy[pos[[i]]], None if cands.masks is None else cands.masks[pos[[i]]], [name])
        masks = None if det.masks is None else det.masks[others]
        them = _det_side(det.xyxy[others], masks, [dnames[k] for k in others])
        iou = _iou(one, them, np.zeros(len(others), dtype=bool))[0]
        return dnames[others[int(np.argmax(iou))]]

    def finish(self) -> dict[str, ClassErrors]:
        thresholds = dict(zip(self.dec.classes, self.dec.class_thresholds))
        for name, errs in self.classes.items():
            errs.fix = fix_for(name, errs, thresholds[name], self.dec)
        return self.classes


def _top(counts: dict[str, int]) -> tuple[str, int]:
    return max(counts.items(), key=lambda kv: kv[1]) if counts else ("", 0)


def fix_for(name: str, e: ClassErrors, threshold: float, dec: DecisionSettings) -> str:
    """What to change for the largest error source of a class (empty when it has no error)."""
    missed, false = sum(e.misses.values()), sum(e.false_positives.values())
    (mc, mn), (fc, fn) = _top(e.misses), _top(e.false_positives)
    if not mn and not fn:
        return ""
    if fn > mn:
        return _false_fix(name, fc, fn, false, threshold, dec)
    of = f"{name}: {mn} of {missed} misses"
    if mc == "below threshold":
        best = max(e.below_scores) if e.below_scores else None
        at = f" (best {best:.2f})" if best is not None else ""
        return f"{of} had a candidate under the threshold {threshold:g}{at} — lower it or run `autolabel tune`"
    if mc == "dedup":
        by = ", ".join(f"{k} ({v})" for k, v in Counter(e.dedup_with).most_common(3))
        return (
            f"{of} removed by cross-class dedup with {by} — raise cross_class_iou ({dec.cross_class_iou}) or "
            "tune both classes' thresholds"
        )
    if mc == "wrong class":
        by = ", ".join(f"{k} ({v})" for k, v in Counter(e.confused_with).most_common(3))
        return f"{of} were labeled as {by} — make the prompts of these classes more distinct"
    fixes = {
        "NMS": f"removed by NMS next to another {name} — raise nms_iou ({dec.nms_iou})",
        "negative prompt": "suppressed by a negative prompt — drop or reword it",
        "size limits": "outside the box size limits — lower min_box_area or raise max_box_fraction",
        "empty mask": "lost their mask to clean-up — relax mask clean-up (min_area, fill holes)",
        "prompt off": "came from a prompt switched off — switch it back on",
        "max detections": f"fell past max_detections ({dec.max_detections}) — raise it",
        "dropped with its track": "were dropped with their track — lower track_low",
        "mislocalised": "had a label of the class off the object (IoU 0.1–0.5) — check the segmenter and clean-up",
        "no candidate": "had no candidate at all — add a synonym prompt, lower candidate_threshold, or try "
        "another detector (`autolabel compare`)",
    }
    return f"{of} {fixes[mc]}"


def _false_fix(name: str, cause: str, n: int, total: int, threshold: float, dec: DecisionSettings) -> str:
    of = f"{name}: {n} of {total} false positives"
    fixes = {
        "background": f"are on background — raise the threshold {threshold:g} (or run `autolabel tune`), or add "
        "a negative prompt for what it fires on",
        "duplicate": f"duplicate a found object — lower nms_iou ({dec.nms_iou})",
        "wrong class": "cover an object of another class — make the prompts more distinct, or set "
        "cross_class_iou to de-duplicate",
        "mislocalised": "are off the object (IoU 0.1–0.5) — check the segmenter and mask clean-up",
    }
    return f"{of} {fixes[cause]}"


def format_breakdown(errors: dict[str, ClassErrors]) -> list[str]:
    lines = ["errors at IoU 0.5 (misses and false positives by cause):"]
    for name, e in errors.items():
        missed, false = sum(e.misses.values()), sum(e.false_positives.values())
        if not missed and not false:
            continue
        parts = [f"{n} {c}" for c, n in sorted(e.misses.items(), key=lambda kv: -kv[1])]
        fparts = [f"{n} {c}" for c, n in sorted(e.false_positives.items(), key=lambda kv: -kv[1])]
        lines.append(
            f"  {name:18} {missed} missed"
            + (f" ({', '.join(parts)})" if parts else "")
            + f"; {false} false"
            + (f" ({', '.join(fparts)})" if fparts else "")
        )
        if e.fix:
            lines.append(f"    fix: {e.fix}")
    return lines if len(lines) > 1 else ["errors at IoU 0.5: none"]


def plot_breakdown(errors: dict[str, ClassErrors], path: str | Path) -> bool:
    """A stacked bar per class: misses by cause (left bar) and false positives by cause (right bar)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(errors)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 3), 4))
    x = np.arange(len(names))
    cmap = plt.get_cmap("tab20")
    for side, causes, offset in (("misses", MISS_CAUSES, -0.2), ("false_positives", FALSE_CAUSES, 0.2)):
        bottom = np.zeros(len(names))
        for k, cause in enumerate(causes):
            vals = np.array([getattr(errors[n], side).get(cause, 0) for n in names], dtype=float)
            if not vals.any():
                continue
            color = cmap(k if side == "misses" else 13 + k)
            label = f"{'missed' if side == 'misses' else 'false'}: {cause}"
            ax.bar(x + offset, vals, 0.38, bottom=bottom, label=label, color=color)
            bottom += vals
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("objects (left: missed, right: false)")
    ax.set_title("errors by cause")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
