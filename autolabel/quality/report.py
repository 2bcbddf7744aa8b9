"""`autolabel report RUN`: one self-contained HTML page about a run (`RUN/report.html`, written atomically).

What it shows: settings and decisions (and which exports are out of step), per-class counts and score
histograms with each class's threshold, tune's table and PR curves and eval's results and error breakdown
when the run has them, example images with their masks (per class: the lowest-confidence and the largest
label), skipped images with reasons, time per stage, and for a video run a strip of frames per track.

Fast on big runs: counts and histograms come from an even sample of at most `SAMPLE` images (said on the
page), examples are decided only for the images they are picked from. Images are inlined (JPEG, base64):
the page works offline, moved or mailed, and never requests anything.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.decisions import DecisionCounts
from autolabel.export.records import stale_message
from autolabel.images import load_image
from autolabel.run.run import Run
from autolabel.types import ImageResult

SAMPLE = 2000  # images read for counts and histograms
THUMB = 320
BINS = 20


@dataclass
class ReportData:
    run_dir: str
    source: str
    classes: list[str]
    images: int
    sampled: int
    decisions: str
    stale: str | None
    thresholds: dict[str, float]
    counts: DecisionCounts
    scores: dict[str, list[float]] = field(default_factory=dict)  # kept labels' scores per class (sample)
    candidate_scores: dict[str, list[float]] = field(default_factory=dict)  # every candidate's score (sample)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (caption, data: URI)
    tracks: list[tuple[str, list[str]]] = field(default_factory=list)  # (track caption, frame data: URIs)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    tune: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None
    pictures: dict[str, str] = field(default_factory=dict)  # title → data: URI (PR curves, errors)


def collect(run_dir: str | Path) -> ReportData:
    run_dir = Path(run_dir)
    with Run.open(run_dir) as run:
        sizes = run.images()
        dec = run.decisions()
        step = max(1, -(-len(sizes) // SAMPLE))
        sample = [r for r, _, _ in sizes[::step]]
        data = ReportData(
            str(run_dir),
            run.source,
            run.classes,
            len(sizes),
            len(sample),
            run.applied().describe(),
            stale_message(run),
            dict(zip(dec.classes, dec.class_thresholds)),
            DecisionCounts(),
        )
        picks = _scan(run, dec, sample, data)
        data.examples = [(cap, _thumb(run, res)) for cap, res in picks]
        data.tracks = _tracks(run, dec) if run.clips else []
        data.skipped = run.store.skipped()
    data.summary = _json(run_dir / "summary.json") or {}
    data.tune = _json(run_dir / "thresholds.json")
    data.eval = _json(run_dir / "eval.json")
    for title, name in (("PR curves (tune)", "thresholds_pr.png"), ("errors by cause (eval)", "eval_errors.png")):
        if (run_dir / name).is_file():
            data.pictures[title] = "data:image/png;base64," + base64.b64encode((run_dir / name).read_bytes()).decode()
    return data


def _scan(run: Run, dec: Any, sample: list[str], data: ReportData) -> list[tuple[str, ImageResult]]:
    """Counts and scores of the sample; per class the image of its lowest-scored and of its largest label."""
    low: dict[str, tuple[float, str]] = {}
    big: dict[str, tuple[float, str]] = {}
    for c, res in run.results_with_candidates(dec, relpaths=sample, counts=data.counts):
        cands = c.candidates
        if cands.score is not None:
            for p, s in zip(cands.prompt_index, cands.score):
                if p < len(dec.prompt_class):
                    data.candidate_scores.setdefault(dec.classes[dec.prompt_class[int(p)]], []).append(float(s))
        det = res.detections
        area = (det.xyxy[:, 2] - det.xyxy[:, 0]) * (det.xyxy[:, 3] - det.xyxy[:, 1]) if len(det) else []
        for i in range(len(det)):
            name = dec.classes[int(det.class_id[i])]
            score = 1.0 if det.confidence is None else float(det.confidence[i])
            data.scores.setdefault(name, []).append(score)
            if name not in low or score < low[name][0]:
                low[name] = (score, res.relpath)
            if name not in big or area[i] > big[name][0]:
                big[name] = (float(area[i]), res.relpath)
    wanted = {rel for _, rel in low.values()} | {rel for _, rel in big.values()}
    decided = {r.relpath: r for r in run.results(dec, relpaths=sorted(wanted))}
    picks = []
    for name in dec.classes:
        if name in low:
            picks.append((f"{name}: lowest score {low[name][0]:.2f} — {low[name][1]}", decided[low[name][1]]))
        if name in big and big[name][1] != low[name][1]:
            picks.append((f"{name}: largest — {big[name][1]}", decided[big[name][1]]))
    return picks


def _jpeg(rgb: np.ndarray, size: int) -> str:
    from PIL import Image

    im = Image.fromarray(rgb)
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _thumb(run: Run, res: ImageResult) -> str:
    from autolabel.quality.preview import render_overlay

    try:
        img = load_image(run.location(res.relpath))
    except Exception:  # an image gone since labeling: the page says so instead of a picture
        return ""
    return _jpeg(render_overlay(img, res, run.classes), THUMB)


def _tracks(run: Run, dec: Any, clips: int = 2, per_clip: int = 6, frames: int = 6) -> list[tuple[str, list[str]]]:
    """For the first clips: a strip of crops of each of their longest tracks, evenly through the track."""
    out = []
    for clip in sorted(run.clips)[:clips]:
        results = list(run.results(dec, relpaths=run.clips[clip].frame_relpaths()))
        seen: dict[int, list[tuple[ImageResult, int]]] = {}
        for res in results:
            for i, tid in enumerate(res.track_ids if res.track_ids is not None else []):
                seen.setdefault(int(tid), []).append((res, i))
        for tid, hits in sorted(seen.items(), key=lambda kv: -len(kv[1]))[:per_clip]:
            pick = [hits[int(k)] for k in np.linspace(0, len(hits) - 1, min(frames, len(hits)))]
            name = run.classes[int(pick[0][0].detections.class_id[pick[0][1]])]
            strip = [_crop(run, res, i) for res, i in pick]
            out.append((f"{clip} · track {tid} ({name}, {len(hits)} frames)", [s for s in strip if s]))
    return out


def _crop(run: Run, res: ImageResult, i: int) -> str:
    try:
        img = load_image(run.location(res.relpath))
    except Exception:
        return ""
    x0, y0, x1, y1 = (int(round(v)) for v in res.detections.xyxy[i])
    pad = max(4, (x1 - x0) // 5)
    crop = img[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad]
    return _jpeg(crop, 128) if crop.size else ""


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def histogram(values: list[float]) -> list[int]:
    counts, _ = np.histogram(np.clip(values, 0, 1), bins=BINS, range=(0.0, 1.0))
    return [int(v) for v in counts]


def class_counts(data: ReportData) -> list[tuple[str, int, int, int]]:
    """(class, candidates, kept, under its threshold) in the sample."""
    c = data.counts
    return [(n, c.class_candidates.get(n, 0), c.class_kept.get(n, 0), c.class_below.get(n, 0)) for n in data.classes]
