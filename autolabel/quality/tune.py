"""`autolabel tune`: choose per-class box thresholds against a hand-labeled subset. No model is loaded.

For every class, the run's candidates on the hand-labeled images go through the same decisions as an
export (NMS, cross-class de-duplication, negatives, clean-up), are matched to the ground truth greedily
by score at IoU >= `iou` (mask IoU when both sides have masks), and the threshold that maximises the
F-score is chosen (between the last kept and the first dropped score). A second pass re-tunes each class
with the other classes at their tuned thresholds, since cross-class de-duplication depends on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.decisions import DecisionSettings, decide
from autolabel.errors import UsageError
from autolabel.quality.groundtruth import GtImage, load_ground_truth, match_detections, read_coco
from autolabel.quality.matching import ClassMatches, f_score
from autolabel.run.run import Run
from autolabel.types import CandidateResult

METRICS = {"f1": 1.0, "f0.5": 0.5, "f2": 2.0}


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


def best_threshold(m: ClassMatches, beta: float, floor: float) -> float | None:
    """The threshold maximising F_beta (the highest such one), between the last kept and the first
    dropped score; None when the class has no ground truth or no detection."""
    thr, precision, recall = m.curve()
    if not len(thr) or not m.n_gt:
        return None
    f = f_score(precision, recall, beta)
    k = int(np.argmax(f))
    value = (thr[k] + thr[k + 1]) / 2 if k + 1 < len(thr) else thr[k]
    return float(max(value, floor))


@dataclass
class ClassResult:
    name: str
    old: float
    new: float
    precision: float
    recall: float
    f: float
    n_gt: int
    n_det: int
    note: str = ""


@dataclass
class TuneReport:
    metric: str
    iou: float
    images: int
    classes: list[ClassResult]
    curves: dict[str, tuple[list[float], list[float], list[float]]] = field(default_factory=dict)

    def thresholds(self) -> dict[str, float]:
        return {c.name: c.new for c in self.classes}

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "metric": self.metric,
            "iou": self.iou,
            "images": self.images,
            "classes": [asdict(c) for c in self.classes],
        }


def tune_run(run: Run, gt_path: str | Path, metric: str = "f1", iou: float = 0.5) -> TuneReport:
    """Per-class thresholds maximising F_beta on the run's hand-labeled images (the run's other decisions
    kept); only those images' candidates are read."""
    if metric not in METRICS:
        raise UsageError(f"--metric '{metric}': valid: {', '.join(METRICS)}")
    dec, floor = run.decisions(), run.meta.candidate_floor
    gt = load_ground_truth(read_coco(gt_path), run.images(), dec.classes)
    cands = list(run.candidates(gt))
    beta = METRICS[metric]
    thresholds = dict(zip(dec.classes, dec.class_thresholds))
    at_floor = replace(dec, class_thresholds=tuple(floor for _ in dec.classes))
    first = collect(cands, gt, at_floor, iou)
    for name, m in first.items():
        thresholds[name] = best_threshold(m, beta, floor) or thresholds[name]
    results, curves = [], {}
    for k, name in enumerate(dec.classes):  # second pass: the others at their tuned thresholds
        others = tuple(floor if j == k else thresholds[c] for j, c in enumerate(dec.classes))
        m = collect(cands, gt, replace(dec, class_thresholds=others), iou, only=name)[name]
        new = best_threshold(m, beta, floor)
        note = (
            ""
            if new is not None
            else ("no ground truth: threshold kept" if not m.n_gt else "no detection: threshold kept")
        )
        new = dec.class_thresholds[k] if new is None else new
        thresholds[name] = new
        p, r, _, n = m.at(new)
        results.append(
            ClassResult(name, dec.class_thresholds[k], new, p, r, float(f_score(p, r, beta)), m.n_gt, n, note)
        )
        t, pc, rc = m.curve()
        curves[name] = (t.tolist(), pc.tolist(), rc.tolist())
    return TuneReport(metric, iou, len(gt), results, curves)


def format_tune(r: TuneReport) -> str:
    lines = [
        f"{r.images} hand-labeled images; metric {r.metric} at IoU {r.iou}",
        f"{'class':20} {'threshold':>17} {'precision':>9} {'recall':>7} {r.metric:>6} {'gt':>5} {'dets':>5}",
    ]
    for c in r.classes:
        lines.append(
            f"{c.name:20} {c.old:>7.3f} → {c.new:<7.4f} {c.precision:>9.3f} {c.recall:>7.3f} {c.f:>6.3f} "
            f"{c.n_gt:>5} {c.n_det:>5}" + (f"  ({c.note})" if c.note else "")
        )
    return "\n".join(lines)


def plot_curves(r: TuneReport, path: str | Path) -> bool:
    """One PNG with a precision-recall curve per class and the chosen point. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    n = max(len(r.classes), 1)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    for ax, c in zip(axes.flat, r.classes):
        _t, p, rc = r.curves.get(c.name, ([], [], []))
        ax.plot(rc, p, lw=1.5)
        ax.plot([c.recall], [c.precision], "o", color="crimson", label=f"thr {c.new:.3f}")
        ax.set_title(f"{c.name} (gt {c.n_gt})", fontsize=10)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    for ax in list(axes.flat)[len(r.classes) :]:
        ax.axis("off")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
