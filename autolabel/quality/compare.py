"""`autolabel compare`: several runs of the same images (other detectors, prompts, thresholds) and
prediction files (a student's, another tool's), scored on the same hand-labeled images, in one table,
with a recommendation and how sure it is.

Every source is scored as `eval` scores it (COCO mAP, P/R/F1 at its decisions, the error breakdown), on
the hand-labeled images and classes *every* source covers; what is left out is said. A run also gets what
`tune` expects on unseen images (cross-validated F1 over the same images) and its model seconds per image
(its summary.json). The recommendation is the best F1 at the decisions; how sure: the share of image
resamples (paired, 1000) in which it stays ahead of the runner-up.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.errors import UsageError
from autolabel.quality.choose import HandLabels
from autolabel.quality.crossval import cross_validate
from autolabel.quality.evaluate import EvalReport, evaluate_run
from autolabel.quality.groundtruth import load_ground_truth, read_coco, restrict, same_size_matches
from autolabel.quality.matching import f_score
from autolabel.quality.predictions import Predictions, evaluate_predictions, read_predictions
from autolabel.run.run import Run
from autolabel.run.store import store_path

RESAMPLES = 1000
SURE = 0.9  # ahead in this share of resamples: a clear winner
MODEL_STAGES = ("prepare", "detect", "segment", "finish")


@dataclass
class Entry:
    name: str
    source: str
    kind: str  # "run" or "predictions"
    report: EvalReport
    tuned: tuple[float, float, float] | None = None  # cross-validated P, R, F1 after `tune` (runs)
    seconds_per_image: float | None = None

    @property
    def f1(self) -> float:
        return float(self.report.overall["micro"].get("f1") or 0.0)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source, "kind": self.kind, "tuned_cv": self.tuned}
        out["seconds_per_image"] = self.seconds_per_image
        r = self.report.to_json()
        out.update({k: r[k] for k in ("decisions", "metrics", "per_class", "overall", "errors", "images_matched")})
        return out


@dataclass
class Comparison:
    ground_truth: str
    entries: list[Entry]
    images: int = 0
    objects: int = 0
    classes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out, and why
    best: str | None = None
    sure: float | None = None  # share of resamples in which the best stays ahead
    recommendation: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ground_truth": self.ground_truth,
            "images": self.images,
            "objects": self.objects,
            "classes": self.classes,
            "notes": self.notes,
            "best": self.best,
            "sure": self.sure,
            "recommendation": self.recommendation,
            "sources": [e.to_json() for e in self.entries],
        }


@dataclass
class _Source:
    name: str
    path: Path
    kind: str
    covers: set[Any] = field(default_factory=set)  # ground-truth image ids it has labels for
    classes: set[str] = field(default_factory=set)
    predictions: Predictions | None = None  # a predictions file, read (and checked) once


def compare(sources: list[Path], gt: Path | None = None, operating: float = 0.25) -> Comparison:
    """Score every source on the hand-labeled images and classes they share (see the module)."""
    if len(sources) < 2:
        raise UsageError("compare needs at least two runs or prediction files")
    found = _sources(sources)
    gt_path, notes = _ground_truth(found, gt)
    gt_data = read_coco(gt_path)
    for s in found:
        _coverage(s, gt_data)
    shared_ids, classes = _shared(found, gt_data, notes)
    data = restrict(gt_data, shared_ids, classes)
    entries = []
    for s in found:
        if s.kind == "run":
            entries.append(_run_entry(s, gt_path, data, classes))
        else:
            report = evaluate_predictions(s.path, gt_path, copy.deepcopy(data), operating, s.predictions)
            entries.append(Entry(s.name, str(s.path), s.kind, report))
    objects = sum(1 for a in data["annotations"] if not a.get("iscrowd"))
    out = Comparison(entries[0].report.ground_truth, entries, len(shared_ids), objects, sorted(classes), notes)
    _recommend(out, sorted(shared_ids, key=str))
    return out


def _sources(paths: list[Path]) -> list[_Source]:
    out, names = [], set()
    for p in paths:
        if p.is_dir() and store_path(p).is_file():
            kind = "run"
        elif p.is_file() and p.suffix.lower() == ".json":
            kind = "predictions"
        else:
            raise UsageError(
                f"'{p}' is neither a run directory nor a COCO predictions file (.json)",
                hint="pass the --output directories of `autolabel label` runs, or predictions in COCO format",
            )
        name = p.name if kind == "run" else p.stem
        name = name if name not in names else str(p)
        names.add(name)
        out.append(_Source(name, p, kind))
    return out


def _ground_truth(found: list[_Source], gt: Path | None) -> tuple[Path, list[str]]:
    """--gt, else the first run's groundtruth.json; says which runs hold other hand labels."""
    saved = [s.path / "groundtruth.json" for s in found if s.kind == "run" and (s.path / "groundtruth.json").is_file()]
    path = gt if gt is not None else (saved[0] if saved else None)
    if path is None:
        raise UsageError(
            "no ground truth: give --gt FILE (hand labels in COCO)",
            hint="or import corrections into one of the runs first (`autolabel import RUN FILE`)",
        )
    notes = [
        f"{other} holds other hand labels than {path}: every source is scored on {path}"
        for other in saved
        if other.resolve() != Path(path).resolve() and other.read_bytes() != Path(path).read_bytes()
    ]
    return Path(path), notes


def _coverage(s: _Source, gt_data: dict) -> None:
    if s.kind == "predictions":
        s.predictions = read_predictions(s.path, gt_data)
        s.covers, s.classes = set(s.predictions.covers), set(s.predictions.classes)
        return
    with Run.open(s.path) as run:
        same, _ = same_size_matches(gt_data["images"], run.images())
        s.covers = {im["id"] for im in same.values()}
        s.classes = set(run.classes)


def _shared(found: list[_Source], gt_data: dict, notes: list[str]) -> tuple[set[Any], set[str]]:
    gt_classes = {c["name"] for c in gt_data["categories"]}
    ids = set.intersection(*(s.covers for s in found))
    classes = set.intersection(*(s.classes for s in found)) & gt_classes
    for s in found:
        if s.covers - ids:
            notes.append(f"{s.name}: {len(s.covers - ids)} hand-labeled images left out (not in every source)")
        left_out = (s.classes & gt_classes) - classes
        if left_out:
            notes.append(f"{s.name}: classes left out (not in every source): {', '.join(sorted(left_out))}")
    if not ids:
        raise UsageError(
            "the sources share no hand-labeled image",
            hint="label the same images (`autolabel label … --images RUN/sample.txt`) and use one ground truth",
        )
    if not classes:
        raise UsageError("the sources share no class of the ground truth", hint="use the same ontology classes")
    return ids, classes


def _run_entry(s: _Source, gt_path: Path, data: dict, classes: set[str]) -> Entry:
    report = evaluate_run(s.path, gt_path, gt_data=copy.deepcopy(data))
    with Run.open(s.path) as run:
        dec = run.decisions()
        gt = load_ground_truth(copy.deepcopy(data), run.images(), dec.classes)
        expected = cross_validate(HandLabels(list(run.candidates(gt)), gt, dec, run.meta.candidate_floor))
    tuned = None
    if expected.folds:
        tp, n, g = (sum(expected.counts[c][k] for c in classes) for k in range(3))
        p, r = (tp / n if n else 0.0), (tp / g if g else 0.0)
        tuned = (p, r, float(f_score(p, r, 1.0)))
    return Entry(s.name, str(s.path), "run", report, tuned, _seconds_per_image(s.path))


def _seconds_per_image(run_dir: Path) -> float | None:
    """Model seconds per image of the run's last `label` (None when it labeled nothing new)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        processed = int(summary.get("processed") or 0)
        seconds = sum(float(summary.get("stage_seconds", {}).get(k, 0.0)) for k in MODEL_STAGES)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return seconds / processed if processed and seconds else None


def _recommend(c: Comparison, ids: list[Any]) -> None:
    ranked = sorted(c.entries, key=lambda e: (e.f1, e.report.metrics.get("bbox", {}).get("mAP", 0.0)), reverse=True)
    best, second = ranked[0], ranked[1]
    c.best = best.name
    c.sure = _resampled_lead(best.report, second.report, ids)
    lead = best.f1 - second.f1
    c.recommendation = (
        f"{best.name}: F1 {best.f1:.3f} vs {second.f1:.3f} for {second.name} ({lead:+.3f}) on {c.images} hand-labeled "
        f"images with {c.objects} objects; ahead in {100 * c.sure:.0f} % of {RESAMPLES} resamples of the images"
    )
    if c.sure < SURE:
        c.recommendation += " — not a clear winner: hand-label more images (`autolabel sample`) to decide"
    tuned = [e for e in c.entries if e.tuned is not None]
    if tuned:
        top = max(tuned, key=lambda e: e.tuned[2] if e.tuned else 0.0)
        if top is not best and top.tuned and best.tuned and top.tuned[2] > best.tuned[2]:
            c.recommendation += (
                f"; after `autolabel tune`, {top.name} is expected to do better (cross-validated F1 "
                f"{top.tuned[2]:.3f} vs {best.tuned[2]:.3f})"
            )


def _resampled_lead(a: EvalReport, b: EvalReport, ids: list[Any]) -> float:
    """Share of paired image resamples in which `a`'s micro F1 beats `b`'s (ties count half)."""
    ca = np.array([a.image_counts.get(i, (0, 0, 0)) for i in ids], dtype=np.float64)
    cb = np.array([b.image_counts.get(i, (0, 0, 0)) for i in ids], dtype=np.float64)
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(ids), size=(RESAMPLES, len(ids)))
    fa, fb = _f1(ca[draws].sum(axis=1)), _f1(cb[draws].sum(axis=1))
    return float(np.mean((fa > fb) + 0.5 * (fa == fb)))


def _f1(totals: np.ndarray) -> np.ndarray:
    tp, n, g = totals[:, 0], totals[:, 1], totals[:, 2]
    p = np.where(n > 0, tp / np.maximum(n, 1), 0.0)
    r = np.where(g > 0, tp / np.maximum(g, 1), 0.0)
    return np.asarray(f_score(p, r, 1.0))


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def format_comparison(c: Comparison) -> str:
    lines = [
        f"ground truth: {c.ground_truth}",
        f"compared on {c.images} hand-labeled images, {c.objects} objects; classes: {', '.join(c.classes)}",
    ]
    lines += [f"note: {n}" for n in c.notes]
    width = max(12, *(len(e.name) for e in c.entries))
    lines.append(
        f"{'source':{width}} {'segm mAP':>8} {'bbox mAP':>8} {'AP50':>6} {'P':>6} {'R':>6} {'F1':>6} "
        f"{'F1 tuned':>8} {'s/image':>8}   (P/R/F1 at each source's decisions, IoU 0.5; tuned: cross-validated)"
    )
    for e in c.entries:
        m, micro = e.report.metrics, e.report.overall["micro"]
        main = m.get("segm", m.get("bbox", {}))
        lines.append(
            f"{e.name:{width}} {_fmt(m['segm']['mAP']) if 'segm' in m else '-':>8} {_fmt(m['bbox']['mAP']):>8} "
            f"{_fmt(main.get('AP50')):>6} {_fmt(micro.get('precision')):>6} {_fmt(micro.get('recall')):>6} "
            f"{_fmt(micro.get('f1')):>6} {_fmt(e.tuned[2]) if e.tuned else '-':>8} "
            f"{f'{e.seconds_per_image:.3f}' if e.seconds_per_image else '-':>8}"
        )
    lines.append("per class: AP (segm, else bbox) / F1 at the decisions")
    lines.append(f"{'class':20} " + " ".join(f"{e.name:>{max(13, len(e.name))}}" for e in c.entries))
    for name in c.classes:
        cells = []
        for e in c.entries:
            row = e.report.per_class.get(name, {})
            ap = row.get("segm_AP", row.get("bbox_AP"))
            cells.append(f"{_fmt(ap) + ' / ' + _fmt(row.get('f1')):>{max(13, len(e.name))}}")
        lines.append(f"{name:20} " + " ".join(cells))
    fixes = [f"  {e.name}: {err.fix}" for e in c.entries for n, err in e.report.errors.items() if err.fix]
    if fixes:
        lines.append("largest error source per class (the fix):")
        lines += fixes
    for e in c.entries:
        lines.append(f"{e.name}: {e.kind} {e.source}; decisions: {e.report.decisions}")
    lines.append(f"recommended: {c.recommendation}")
    return "\n".join(lines)
