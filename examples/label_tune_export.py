"""Label a folder, fit per-class thresholds on a few hand-labeled images, re-export with them, and read the
error breakdown — the quality loop in Python.

    python examples/label_tune_export.py ONTOLOGY FOLDER [HAND_LABELS.json]

HAND_LABELS: COCO instances of some of FOLDER's images (file_name relative to FOLDER) [default: hand.json
beside, if present]. Writes runs/example/ (COCO, YOLO-seg, thresholds.yaml, report.html).
"""

from __future__ import annotations

import sys
from pathlib import Path

from autolabel.api import label_folder
from autolabel.config.thresholds import thresholds_yaml
from autolabel.export import ExportOptions, export_run
from autolabel.quality.evaluate import evaluate_run
from autolabel.quality.report_html import write_report
from autolabel.quality.tune import tune_run
from autolabel.run.run import Run


def main(ontology: str, folder: str, hand: str = "hand.json") -> None:
    run = Path("runs/example")
    summary, written = label_folder(ontology, folder, run, formats=["coco", "yolo"])
    print(f"labeled {summary.images_total} images: {summary.objects_per_class}; exports: {sorted(written)}")
    if Path(hand).is_file():
        with Run.open(run) as opened:
            tuned = tune_run(opened, hand)
        (run / "thresholds.yaml").write_text(
            thresholds_yaml(tuned.thresholds(), {c.name: c.note for c in tuned.classes})
        )
        print("tuned thresholds:", {k: round(v, 3) for k, v in tuned.thresholds().items()})
        export_run(run, ["coco", "yolo"], ExportOptions(class_thresholds=tuned.thresholds(), thresholds_source="tune"))
        report = evaluate_run(run, hand)
        print(f"micro F1 at the tuned thresholds: {report.overall['micro']['f1']}")
        for name, errors in report.errors.items():
            print(f"  {name}: {errors.fix or 'no error'}")
    print(f"report: {write_report(run)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
