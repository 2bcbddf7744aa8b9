"""What `eval` prints: the COCO metrics, the per-class table at the run's decisions, the overall rows,
what was not evaluated, and the error breakdown."""

from __future__ import annotations

from typing import Any

from autolabel.quality.breakdown import format_breakdown
from autolabel.quality.evaluate import EvalReport


def format_report(r: EvalReport) -> str:
    lines = [f"ground truth: {r.ground_truth}"] if r.ground_truth else []
    lines.append(f"images matched: {r.images_matched}")
    for t, m in r.metrics.items():
        lines.append(
            f"{t:5}  mAP {m['mAP']:.3f}  AP50 {m['AP50']:.3f}  AP75 {m['AP75']:.3f}  recall(AR100) {m['AR100']:.3f}"
        )
    lines.append(
        f"{'class':20} {'gt':>6} {'pred':>6} {'bbox AP':>8} {'segm AP':>8} {'P':>6} {'R':>6} {'F1':>6}"
        "   (P/R/F1 at the run's thresholds, IoU 0.5)"
    )

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for c, v in r.per_class.items():
        seg = fmt(v["segm_AP"]) if "segm_AP" in v else "-"
        lines.append(
            f"{c:20} {int(v['gt'] or 0):>6} {int(v['pred'] or 0):>6} {fmt(v.get('bbox_AP')):>8} {seg:>8} "
            f"{fmt(v.get('precision')):>6} {fmt(v.get('recall')):>6} {fmt(v.get('f1')):>6}"
        )
    for kind, v in r.overall.items():
        lines.append(
            f"{'all (' + kind + ')':20} {'':>6} {'':>6} {fmt(v.get('bbox_mAP')):>8} "
            f"{fmt(v['segm_mAP']) if 'segm_mAP' in v else '-':>8} "
            f"{fmt(v.get('precision')):>6} {fmt(v.get('recall')):>6} {fmt(v.get('f1')):>6}"
        )
    for label, items in (
        ("classes only in the ground truth (not evaluated)", r.classes_only_in_gt),
        ("classes only in the run (not evaluated)", r.classes_only_in_run),
        ("run images without ground truth", r.images_only_in_run),
        ("ground-truth images not in the run", r.images_only_in_gt),
        ("images whose size differs from the ground truth (skipped)", r.size_mismatch),
    ):
        if items:
            lines.append(f"{label}: {len(items)} — {', '.join(items[:10])}{' …' if len(items) > 10 else ''}")
    if r.errors:
        lines += format_breakdown(r.errors)
    if r.gt_boxes_as_masks:
        lines.append(
            f"ground-truth annotations without segmentation, evaluated in segm as their box: {r.gt_boxes_as_masks}"
        )
    return "\n".join(lines)
