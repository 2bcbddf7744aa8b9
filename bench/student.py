"""Students follow their labels: a YOLO-seg trained from its `.yaml` (random init, same seed and split) on
coco128 labeled three ways — exact (the ground-truth stand-in detector), noisy (its noisy variant: 30 % of
objects missed, true scores overlapping two false positives per image) at the ontology's threshold, and
the same noisy candidates after `tune` on 32 hand-labeled images — each scored on 32 other held-out
hand-labeled images next to its teacher. CPU-sized: a relative measure (tiny student, few epochs), not
what a real student reaches.

    python -m bench.student [--epochs 30] [--imgsz 192] [--classes 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

COCO128 = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco-sample" / "coco128_train2017"


def _hand_sets(gt: dict, classes: list[str]) -> tuple[dict, dict]:
    """Two disjoint sets of 32 images (by a hash of the file name): one to tune on, one to score on."""
    keep = {c["id"] for c in gt["categories"] if c["name"] in classes}
    order = sorted(gt["images"], key=lambda im: hashlib.sha256(im["file_name"].encode()).hexdigest())

    def cut(images: list[dict]) -> dict:
        ids = {im["id"] for im in images}
        anns = [a for a in gt["annotations"] if a["image_id"] in ids and a["category_id"] in keep]
        cats = [c for c in gt["categories"] if c["id"] in keep]
        return {"images": images, "categories": cats, "annotations": anns}

    return cut(order[:32]), cut(order[32:64])


def _label(name: str, backend: str, classes: list[str], work: Path) -> Path:
    from autolabel.api import label_folder

    ont = {"ontology": {c: c for c in classes}, "detector": {"backend": backend}}
    out = work / name
    label_folder(ont, COCO128 / "images", out, ["yolo"])
    return out


def _tuned(noisy: Path, tune_gt: Path, work: Path) -> Path:
    from autolabel.export import ExportOptions, export_run
    from autolabel.quality.tune import tune_run
    from autolabel.run.run import Run

    out = work / "noisy-tuned"
    shutil.copytree(noisy, out, symlinks=True)
    with Run.open(out) as run:
        report = tune_run(run, tune_gt)
    export_run(out, ["yolo"], ExportOptions(class_thresholds=report.thresholds(), thresholds_source="tune"))
    return out


def _scores(r: Any) -> dict[str, Any]:
    m = r.metrics.get("segm", r.metrics.get("bbox", {}))
    micro = r.overall["micro"]
    return {
        "mAP": m.get("mAP"),
        "AP50": m.get("AP50"),
        "P": micro.get("precision"),
        "R": micro.get("recall"),
        "F1": micro.get("f1"),
    }


def run(epochs: int, imgsz: int, n_classes: int, work: Path) -> dict[str, Any]:
    from autolabel.student.train import TrainOptions, train_run

    gt = json.loads((COCO128 / "instances_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in gt["categories"]}
    counts = Counter(names[a["category_id"]] for a in gt["annotations"] if not a.get("iscrowd"))
    classes = [c for c, _ in counts.most_common(n_classes)]
    tune_set, eval_set = _hand_sets(gt, classes)
    (work / "tune.json").write_text(json.dumps(tune_set))
    (work / "eval.json").write_text(json.dumps(eval_set))
    os.environ.update(
        {"AUTOLABEL_GT_JSON": str(COCO128 / "instances_train2017.json"), "AUTOLABEL_GT_IMAGES": str(COCO128 / "images")}
    )
    runs = {
        "exact labels": _label("exact", "tests.gt_backend:GroundTruthEngine", classes, work),
        "noisy, untuned": _label("noisy", "tests.gt_backend:NoisyGroundTruthEngine", classes, work),
    }
    runs["noisy, tuned on 32"] = _tuned(runs["noisy, untuned"], work / "tune.json", work)
    opts = TrainOptions(
        model="yolov8n-seg.yaml",
        epochs=epochs,
        imgsz=imgsz,
        batch=16,
        device="cpu",
        name="bench",
        gt=work / "eval.json",
        extra={"workers": 0, "seed": 0, "deterministic": True, "plots": False},
    )
    out: dict[str, Any] = {"classes": classes, "epochs": epochs, "imgsz": imgsz, "held_out": 32, "results": {}}
    for label, run_dir in runs.items():
        t = time.perf_counter()
        res = train_run(run_dir, opts, echo=lambda _m: None)
        assert res.teacher is not None and res.student is not None
        out["results"][label] = {
            "teacher": _scores(res.teacher),
            "student": _scores(res.student),
            "train_seconds": round(time.perf_counter() - t, 1),
        }
        print(label, json.dumps(out["results"][label]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=192)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tmp) / "ultralytics"))
        result = run(a.epochs, a.imgsz, a.classes, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
