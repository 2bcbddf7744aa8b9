"""Two detectors or one: the ground-truth stand-in detector with two independent noise draws (each misses
30 % of the objects and makes two false positives an image at scores overlapping the true ones), labeled
alone (seed A, seed B) and as an ensemble (`detector:` both). Each run picks its own 32 images with
`sample`, is tuned on their hand labels (the ensemble: calibration, fusion per class and thresholds), and
all three are scored on the images none of them picked (F1 at IoU 0.5, mask AP). Real COCO images and
masks (coco128), never a real model: what fusion adds when two detectors err independently.

    python -m bench.ensemble [--seeds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import emit

COCO128 = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco-sample" / "coco128_train2017"
NOISY = "tests.gt_backend:NoisyGroundTruthEngine"


def _label(name: str, detector: Any, classes: list[str], work: Path) -> Path:
    from autolabel.api import label_folder

    ont = {"ontology": {c: c for c in classes}, "detector": detector}
    out = work / name
    label_folder(ont, COCO128 / "images", out, ["coco"])
    return out


def _subset(gt: dict, names: set[str], classes: list[str]) -> dict:
    ims = [im for im in gt["images"] if im["file_name"] in names]
    ids = {im["id"] for im in ims}
    keep = {c["id"] for c in gt["categories"] if c["name"] in classes}
    anns = [a for a in gt["annotations"] if a["image_id"] in ids and a["category_id"] in keep]
    return {"images": ims, "categories": [c for c in gt["categories"] if c["id"] in keep], "annotations": anns}


def _picked(run_dir: Path, n: int) -> set[str]:
    from autolabel.quality.sample import sample_run
    from autolabel.run.run import Run

    with Run.open(run_dir) as run:
        return {v.relpath for v in sample_run(run, n)}


def _tune_and_score(run_dir: Path, tune_gt: Path, eval_gt: Path) -> dict[str, Any]:
    from autolabel.overrides import ThresholdOverrides
    from autolabel.quality.evaluate import evaluate_run
    from autolabel.quality.tune import tune_run
    from autolabel.run.run import Run

    with Run.open(run_dir) as run:
        report = tune_run(run, tune_gt)
    f = report.fusion
    over = ThresholdOverrides(
        class_thresholds=report.thresholds(),
        source="tune",
        fusion_methods=f.methods if f else {},
        calibration=f.calibration if f else (),
    )
    untuned, tuned = evaluate_run(run_dir, eval_gt), evaluate_run(run_dir, eval_gt, over)
    out = {}
    for label, r in (("untuned", untuned), ("tuned", tuned)):
        micro = r.overall["micro"]
        seg = r.metrics.get("segm", {})
        out[label] = {k: micro.get(k) for k in ("precision", "recall", "f1")} | {"mask_mAP": seg.get("mAP")}
    out["expected_f1_cv"] = round(report.expected.f, 4)
    if f:
        out["fusion"] = f.methods
    return out


def run(seed: int, classes: list[str], gt: dict, work: Path) -> dict[str, Any]:
    noisy = {"backend": NOISY, "candidate_threshold": 0.05}
    runs = {
        "detector A": _label("a", {**noisy, "seed": seed * 2 + 1}, classes, work),
        "detector B": _label("b", {**noisy, "seed": seed * 2 + 2}, classes, work),
    }
    runs["ensemble A+B"] = _label(
        "ab", [{**noisy, "seed": seed * 2 + 1}, {**noisy, "seed": seed * 2 + 2}], classes, work
    )
    picks = {k: _picked(v, 32) for k, v in runs.items()}
    everything = {im["file_name"] for im in gt["images"]}
    held = everything - set().union(*picks.values())
    (work / "eval.json").write_text(json.dumps(_subset(gt, held, classes)))
    out: dict[str, Any] = {"held_out_images": len(held)}
    for name, run_dir in runs.items():
        tune_gt = work / f"tune-{run_dir.name}.json"
        tune_gt.write_text(json.dumps(_subset(gt, picks[name], classes)))
        out[name] = _tune_and_score(run_dir, tune_gt, work / "eval.json")
        print(seed, name, json.dumps(out[name]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    gt = json.loads((COCO128 / "instances_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in gt["categories"]}
    counts = Counter(names[x["category_id"]] for x in gt["annotations"] if not x.get("iscrowd"))
    classes = [c for c, _ in counts.most_common(a.classes)]
    os.environ.update({"AUTOLABEL_GT_JSON": str(COCO128 / "instances_train2017.json")})
    os.environ.update({"AUTOLABEL_GT_IMAGES": str(COCO128 / "images")})
    result: dict[str, Any] = {"classes": classes, "per_seed": []}
    for seed in range(a.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            result["per_seed"].append(run(seed, classes, gt, Path(tmp)))
    for name in ("detector A", "detector B", "ensemble A+B"):
        f1 = [s[name]["tuned"]["f1"] for s in result["per_seed"]]
        result[f"{name}: tuned held-out F1 (mean)"] = round(sum(f1) / len(f1), 4)
    best_single = [max(s["detector A"]["tuned"]["f1"], s["detector B"]["tuned"]["f1"]) for s in result["per_seed"]]
    gain = [s["ensemble A+B"]["tuned"]["f1"] - b for s, b in zip(result["per_seed"], best_single)]
    result["ensemble minus the better single detector (F1, per seed)"] = [round(g, 4) for g in gain]
    emit(result, a.json)


if __name__ == "__main__":
    main()
