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

from autolabel.errors import UsageError
from autolabel.quality.choose import THIN, HandLabels, collect, tune_thresholds
from autolabel.quality.crossval import Expected, cross_validate
from autolabel.quality.fusion_tune import FusionChoice, tune_fusion
from autolabel.quality.groundtruth import describe_ground_truth, load_ground_truth, read_coco
from autolabel.quality.matching import ClassMatches, f_score
from autolabel.run.run import Run

METRICS = {"f1": 1.0, "f0.5": 0.5, "f2": 2.0}


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
    prompts: list[PromptResult] = field(default_factory=list)  # for classes with several prompts


@dataclass
class PromptResult:
    """One prompt of a class at the tuned thresholds: precision and recall of its detections alone, and the
    recall the class loses without it (what it adds)."""

    prompt: str
    precision: float
    recall: float
    adds: float
    detections: int


@dataclass
class TuneReport:
    metric: str
    iou: float
    images: int
    classes: list[ClassResult]
    curves: dict[str, tuple[list[float], list[float], list[float]]] = field(default_factory=dict)
    overall: float | None = None  # the threshold chosen on every class pooled (what thin classes shrink toward)
    expected: Expected = field(default_factory=Expected)  # on unseen images (cross-validated)
    ground_truth: str = ""  # which file, how many images from which import
    classes_only_in_gt: list[str] = field(default_factory=list)  # hand-labeled classes the run has not (not tuned)
    fusion: FusionChoice | None = None  # an ensemble: calibration and fusion per class

    def thresholds(self) -> dict[str, float]:
        return {c.name: c.new for c in self.classes}

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "metric": self.metric,
            "iou": self.iou,
            "images": self.images,
            "ground_truth": self.ground_truth,
            "classes_only_in_gt": self.classes_only_in_gt,
            "overall_threshold": self.overall,
            "expected_on_unseen_images": asdict(self.expected),
            "classes": [asdict(c) for c in self.classes],
            **({"fusion": asdict(self.fusion)} if self.fusion is not None else {}),
        }


def tune_run(run: Run, gt_path: str | Path, metric: str = "f1", iou: float = 0.5) -> TuneReport:
    """Per-class thresholds maximising F_beta on the run's hand-labeled images (the run's other decisions
    kept; only those images' candidates are read), and what to expect from them on unseen images."""
    if metric not in METRICS:
        raise UsageError(f"--metric '{metric}': valid: {', '.join(METRICS)}")
    dec, floor, beta = run.decisions(), run.meta.candidate_floor, METRICS[metric]
    gt_data = read_coco(gt_path)
    gt = load_ground_truth(gt_data, run.images(), dec.classes)
    cands = list(run.candidates(gt))
    hand = HandLabels(cands, gt, dec, floor, beta, iou)
    fusion = None
    if dec.fusion is not None:
        fused, fusion, (chosen, matches, overall) = tune_fusion(hand)
        hand = replace(hand, dec=replace(fused, class_thresholds=dec.class_thresholds))
        dec = hand.dec
    else:
        chosen, matches, overall = tune_thresholds(hand)
    results, curves = [], {}
    for k, name in enumerate(dec.classes):
        m, new = matches[name], chosen[name]
        p, r, _, n = m.at(new)
        note = _note(m, len(gt), overall)
        results.append(
            ClassResult(name, dec.class_thresholds[k], new, p, r, float(f_score(p, r, beta)), m.n_gt, n, note)
        )
        t, pc, rc = m.curve()
        curves[name] = (t.tolist(), pc.tolist(), rc.tolist())
    tuned = replace(hand, dec=replace(dec, class_thresholds=tuple(chosen[c] for c in dec.classes)))
    for res in results:
        res.prompts = prompt_report(tuned, res.name)
    expected = cross_validate(hand)
    only_gt = sorted({c["name"] for c in gt_data["categories"]} - set(dec.classes))
    return TuneReport(
        metric,
        iou,
        len(gt),
        results,
        curves,
        overall,
        expected,
        describe_ground_truth(gt_data, gt_path),
        only_gt,
        fusion,
    )


def prompt_report(h: HandLabels, name: str) -> list[PromptResult]:
    """Which wording works: each prompt of a class with several, alone and left out (a decision: the
    thresholds file's `prompts: {p: off}` switches one off without a model)."""
    dec = h.dec
    k = dec.classes.index(name)
    mine = [p for p, c in zip(dec.prompts, dec.prompt_class) if c == k]
    if len(mine) < 2:
        return []

    def matches(off: tuple[str, ...]) -> ClassMatches:
        return collect(h.cands, h.gt, replace(dec, prompts_off=off), h.iou, only=name)[name]

    recall_all = matches(dec.prompts_off).at(-1.0)[1]
    out = []
    for p in mine:
        alone, without = matches(tuple(q for q in mine if q != p)), matches((p,))
        precision, recall, _, n = alone.at(-1.0)
        out.append(PromptResult(p, precision, recall, recall_all - without.at(-1.0)[1], n))
    return out


def _note(m: ClassMatches, images: int, overall: float | None) -> str:
    """Where the evidence for a class is thin, say so with the counts."""
    pooled = f"shrunk toward the overall {overall:.3f}" if overall is not None else "kept"
    if not m.scores and not m.n_gt:
        return f"not on the {images} images, no detection: threshold kept"
    if not m.scores:
        return f"{m.n_gt} objects but no detection: threshold kept (a lower candidate_threshold may help)"
    if not m.n_gt:
        return f"no ground truth on the {images} images but {len(m.scores)} detections (all false): raised, {pooled}"
    if m.n_gt < THIN:
        return f"thin evidence: {m.n_gt} objects, {len(m.scores)} detections: {pooled}"
    return ""


def format_tune(r: TuneReport) -> str:
    lines = [f"ground truth: {r.ground_truth}"] if r.ground_truth else []
    if r.classes_only_in_gt:
        lines.append(f"classes only in the ground truth (not tuned): {', '.join(r.classes_only_in_gt)}")
    lines += [
        f"{r.images} hand-labeled images; metric {r.metric} at IoU {r.iou}",
        f"{'class':20} {'threshold':>17} {'precision':>9} {'recall':>7} {r.metric:>6} {'gt':>5} {'dets':>5}",
    ]
    for c in r.classes:
        lines.append(
            f"{c.name:20} {c.old:>7.3f} → {c.new:<7.4f} {c.precision:>9.3f} {c.recall:>7.3f} {c.f:>6.3f} "
            f"{c.n_gt:>5} {c.n_det:>5}" + (f"  ({c.note})" if c.note else "")
        )
        for p in c.prompts:
            lines.append(
                f"  prompt {p.prompt!r}: precision {p.precision:.3f}, recall {p.recall:.3f} alone, adds "
                f"{p.adds:+.3f} recall, {p.detections} detections"
            )
    if r.fusion is not None:
        lines += _fusion_lines(r)
    if r.overall is not None:
        lines.append(f"all classes pooled: {r.overall:.4f} (what classes with little evidence are shrunk toward)")
    e = r.expected
    if e.folds:
        lines.append(
            f"expected on unseen images ({e.folds}-fold cross-validation over the hand-labeled images): "
            f"{r.metric} {e.f:.3f} (95 % interval {e.low:.3f}–{e.high:.3f}); the table above is in-sample"
        )
    return "\n".join(lines)


def _fusion_lines(r: TuneReport) -> list[str]:
    """An ensemble: each source's calibration and each class's fusion, with the F of each method."""
    f = r.fusion
    assert f is not None
    lines = ["ensemble: scores calibrated per detector (p = sigmoid(a·score + b)), fusion chosen per class"]
    for s, ((a, b), (true, n)) in enumerate(zip(f.calibration, f.labels_by_source)):
        lines.append(f"  detector {s}: a {a:.2f}, b {b:.2f} (fitted on {n} candidates, {true} true)")
    for name, method in f.methods.items():
        others = ", ".join(f"{m} {v:.3f}" for m, v in f.f_by_method.get(name, {}).items())
        lines.append(f"  {name}: {method} ({r.metric}: {others})")
    return lines


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
