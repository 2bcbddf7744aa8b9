"""The report page: plain HTML and inline SVG (histograms with the thresholds drawn), no script, no
request to anywhere (a Content-Security-Policy says so to the browser too)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from autolabel.fsutil import write_text_atomic
from autolabel.quality.report import BINS, ReportData, class_counts, collect, histogram

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#1d2330;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 9px;border-bottom:1px solid #eef;text-align:right}
td:first-child,th:first-child{text-align:left}.muted{color:#667}
.warn{background:#fff4d6;padding:6px 10px;border-radius:4px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0;width:320px}
.grid img{max-width:320px;border-radius:3px}
figcaption{font-size:12px;color:#445;word-break:break-all}.strip img{height:96px;margin-right:3px;border-radius:2px}
.hist{display:inline-block;margin:0 14px 10px 0}code{background:#f3f4f8;padding:1px 4px;border-radius:3px}
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(v: Any) -> str:
    return html.escape(str(v))


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else _e(v))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _svg_hist(name: str, kept: list[float], cands: list[float], threshold: float) -> str:
    w, h, pad = 260, 90, 4
    all_counts, kept_counts = histogram(cands or kept), histogram(kept)
    top = max(all_counts + kept_counts + [1])
    bw = (w - 2 * pad) / BINS
    bars = []
    for k in range(BINS):
        for counts, color in ((all_counts, "#c9cfdd"), (kept_counts, "#4a78c2")):
            bh = (h - 18) * counts[k] / top
            x, y = pad + k * bw, h - 14 - bh
            bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 1:.1f}" height="{bh:.1f}" fill="{color}"/>')
    tx = pad + threshold * (w - 2 * pad)
    line = f'<line x1="{tx:.1f}" y1="2" x2="{tx:.1f}" y2="{h - 14}" stroke="#d33" stroke-width="2"/>'
    axis = f'<text x="{pad}" y="{h - 2}" font-size="10">0</text><text x="{w - 12}" y="{h - 2}" font-size="10">1</text>'
    title = f"{_e(name)}: {len(kept)} kept of {len(cands)} candidates, threshold {threshold:g}"
    return (
        f'<div class="hist"><div class="muted">{title}</div><svg width="{w}" height="{h}" role="img">'
        f"<title>{title}</title>{''.join(bars)}{line}{axis}</svg></div>"
    )


def render(d: ReportData) -> str:
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>autolabel report — {_e(d.run_dir)}</title><style>{CSS}</style></head><body>",
        f"<h1>autolabel report</h1><div class='muted'>{_e(d.run_dir)} · images from {_e(d.source)}</div>",
        _settings(d),
        _classes(d),
    ]
    parts += [_tune(d.tune), _eval(d.eval)]
    parts += [
        f"<h2>{_e(t)}</h2><img alt='{_e(t)}' src='{uri}' style='max-width:100%'>" for t, uri in d.pictures.items()
    ]
    parts += [_examples(d), _tracks(d), _skipped(d), _timing(d.summary), "</body></html>"]
    return "\n".join(p for p in parts if p)


def _settings(d: ReportData) -> str:
    rows: list[list[Any]] = [["images", d.images], ["classes", ", ".join(d.classes)], ["decisions", d.decisions]]
    s = d.summary
    if s:
        rows += [["last label: images labeled", s.get("processed")], ["skipped", len(d.skipped)]]
    stale = (
        f"<p class='warn'>{_e(d.stale)}</p>"
        if d.stale
        else "<p class='muted'>every export is in step with the decisions</p>"
    )
    return "<h2>Run</h2>" + _table(["", ""], rows) + stale


def _classes(d: ReportData) -> str:
    note = "" if d.sampled == d.images else f" (an even sample of {d.sampled} of {d.images} images)"
    rows = [[n, cands, kept, below, d.thresholds.get(n)] for n, cands, kept, below in class_counts(d)]
    hists = "".join(
        _svg_hist(n, d.scores.get(n, []), d.candidate_scores.get(n, []), d.thresholds.get(n, 0.0)) for n in d.classes
    )
    legend = "<p class='muted'>grey: every stored candidate; blue: the labels kept; red: the class threshold</p>"
    return (
        f"<h2>Classes{_e(note)}</h2>"
        + _table(["class", "candidates", "kept", "under threshold", "threshold"], rows)
        + hists
        + legend
    )


def _tune(t: dict[str, Any] | None) -> str:
    if not t:
        return ""
    rows = [
        [c["name"], c["old"], c["new"], c["precision"], c["recall"], c["f"], c["n_gt"], c.get("note", "")]
        for c in t.get("classes", [])
    ]
    e = t.get("expected_on_unseen_images") or {}
    exp = ""
    if e.get("folds"):
        interval = f"{_fmt(e.get('low'))}–{_fmt(e.get('high'))}"
        score = f"{t.get('metric')} {_fmt(e.get('f'))} ({interval})"
        exp = f"<p>expected on unseen images ({e.get('folds')}-fold): {score}</p>"
    return "<h2>Tune</h2>" + _table(["class", "old", "new", "P", "R", t.get("metric", "f"), "gt", "note"], rows) + exp


def _eval(ev: dict[str, Any] | None) -> str:
    if not ev:
        return ""
    rows = [[k, m.get("mAP"), m.get("AP50"), m.get("AP75"), m.get("AR100")] for k, m in ev.get("metrics", {}).items()]
    per = [
        [
            c,
            v.get("gt"),
            v.get("pred"),
            v.get("bbox_AP"),
            v.get("segm_AP"),
            v.get("precision"),
            v.get("recall"),
            v.get("f1"),
        ]
        for c, v in ev.get("per_class", {}).items()
    ]
    fixes = [f"<li>{_e(e['fix'])}</li>" for e in (ev.get("errors") or {}).values() if e.get("fix")]
    return (
        f"<h2>Eval</h2><p class='muted'>{_e(ev.get('ground_truth', ''))} · decisions: {_e(ev.get('decisions', ''))}</p>"
        + _table(["", "mAP", "AP50", "AP75", "AR100"], rows)
        + _table(["class", "gt", "pred", "bbox AP", "segm AP", "P", "R", "F1"], per)
        + (f"<p>largest error source per class:</p><ul>{''.join(fixes)}</ul>" if fixes else "")
    )


def _examples(d: ReportData) -> str:
    if not d.examples:
        return "<h2>Examples</h2><p class='muted'>no labels</p>"
    figs = "".join(
        f"<figure>{f'<img alt={_e(cap)!r} src={uri!r}>' if uri else '<p class=muted>(image unreadable)</p>'}"
        f"<figcaption>{_e(cap)}</figcaption></figure>"
        for cap, uri in d.examples
    )
    return f"<h2>Examples</h2><div class='grid'>{figs}</div>"


def _tracks(d: ReportData) -> str:
    if not d.tracks:
        return ""
    rows = "".join(
        f"<p class='muted'>{_e(cap)}</p><div class='strip'>{''.join(f'<img alt=frame src={u!r}>' for u in strip)}</div>"
        for cap, strip in d.tracks
    )
    return f"<h2>Tracks</h2>{rows}"


def _skipped(d: ReportData) -> str:
    if not d.skipped:
        return ""
    rows = [[r, why] for r, why in d.skipped[:200]]
    more = f"<p class='muted'>… and {len(d.skipped) - 200} more (RUN/skipped.txt)</p>" if len(d.skipped) > 200 else ""
    return f"<h2>Skipped images ({len(d.skipped)})</h2>" + _table(["image", "reason"], rows) + more


def _timing(s: dict[str, Any]) -> str:
    stages = s.get("stage_seconds") or {}
    if not stages:
        return ""
    rows = [[k, float(v)] for k, v in sorted(stages.items()) if not k.endswith("_cpu")]
    wall = s.get("wall_seconds")
    return f"<h2>Time per stage (last label, wall {_fmt(wall)} s)</h2>" + _table(["stage", "seconds"], rows)


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Collect and render the run's report; written atomically (RUN/report.html by default)."""
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    write_text_atomic(path, render(collect(run_dir)))
    return path
