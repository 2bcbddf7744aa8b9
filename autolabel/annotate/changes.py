"""What the reviewers changed: the run's labels (as exported) against the corrected ones, per class.

Labels are paired one to one across classes by mask IoU (highest first, at least `MATCH_IOU`). A pair of
the same class is *unchanged* when its IoU is at least `SAME_IOU` (a brush or polygon round trip is
exact), else *mask edited*; a pair of two classes is *reclassified*; a run label without a pair was
*removed*, a corrected one without a pair was *added* (the detector missed it). The correction rate of a
class is the share of its run labels the reviewers did not accept as they were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pycocotools import mask as mask_utils

MATCH_IOU = 0.5
SAME_IOU = 0.98


@dataclass
class ClassChanges:
    predicted: int = 0  # run labels on the reviewed images
    unchanged: int = 0
    edited: int = 0  # same class, mask changed
    reclassified: int = 0  # run label given another class
    removed: int = 0  # run label deleted
    added: int = 0  # drawn by a reviewer where the run had nothing

    def add(self, other: ClassChanges) -> None:
        """Add another count (another image's, another class's) to this one."""
        for k in ("predicted", "unchanged", "edited", "reclassified", "removed", "added"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    @property
    def correction_rate(self) -> float | None:
        return (self.predicted - self.unchanged) / self.predicted if self.predicted else None

    def to_json(self) -> dict:
        return {**asdict(self), "correction_rate": self.correction_rate}


def _rles(masks: list[np.ndarray]) -> list[dict]:
    return [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]


def pair(run_masks: list[np.ndarray], new_masks: list[np.ndarray]) -> list[tuple[int, int, float]]:
    """One-to-one pairs (run index, corrected index, IoU), highest IoU first, IoU ≥ MATCH_IOU."""
    if not run_masks or not new_masks:
        return []
    iou = np.asarray(mask_utils.iou(_rles(run_masks), _rles(new_masks), [0] * len(new_masks)))
    iou = iou.reshape(len(run_masks), len(new_masks))
    order = np.argsort(-iou, axis=None, kind="stable")
    used_run, used_new, out = set(), set(), []
    for flat in order:
        i, j = divmod(int(flat), len(new_masks))
        if iou[i, j] < MATCH_IOU:
            break
        if i not in used_run and j not in used_new:
            used_run.add(i)
            used_new.add(j)
            out.append((i, j, float(iou[i, j])))
    return out


def compare(
    run_labels: list[tuple[str, np.ndarray]], new_labels: list[tuple[str, np.ndarray]], into: dict[str, ClassChanges]
) -> None:
    """Add one image's changes to the per-class counts."""
    for name, _ in run_labels + new_labels:
        into.setdefault(name, ClassChanges())
    for name, _ in run_labels:
        into[name].predicted += 1
    pairs = pair([m for _, m in run_labels], [m for _, m in new_labels])
    for i, j, iou in pairs:
        old, new = run_labels[i][0], new_labels[j][0]
        if old != new:
            into[old].reclassified += 1
        elif iou >= SAME_IOU:
            into[old].unchanged += 1
        else:
            into[old].edited += 1
    paired_run, paired_new = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
    for i, (name, _) in enumerate(run_labels):
        if i not in paired_run:
            into[name].removed += 1
    for j, (name, _) in enumerate(new_labels):
        if j not in paired_new:
            into[name].added += 1


def total(changes: dict[str, ClassChanges]) -> ClassChanges:
    out = ClassChanges()
    for c in changes.values():
        out.add(c)
    return out


def format_changes(changes: dict[str, ClassChanges]) -> str:
    head = f"{'class':<16} {'run':>5} {'kept':>5} {'edited':>6} {'reclass':>7} {'removed':>7} {'added':>5}  corrected"
    rows = [head]
    for name, c in [*sorted(changes.items()), ("all", total(changes))]:
        rate = "n/a" if c.correction_rate is None else f"{c.correction_rate:.0%}"
        rows.append(
            f"{name[:16]:<16} {c.predicted:>5} {c.unchanged:>5} {c.edited:>6} {c.reclassified:>7} "
            f"{c.removed:>7} {c.added:>5}  {rate}"
        )
    return "\n".join(rows)
