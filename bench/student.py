"""Students follow their labels: a YOLO-seg trained from its `.yaml` (random init, same seed and split) on
one image set labeled three ways — exact (the ground-truth stand-in detector), noisy (its noisy variant:
30 % of objects missed, true scores overlapping two false positives per image) at a box threshold of
0.15 (a user who lowered it for recall), and the same noisy candidates after `tune` on 32 hand-labeled
images — each scored on 32 (or 48) other held-out hand-labeled images next to its teacher. CPU-sized:
a relative measure (tiny student, few epochs), not what a real student reaches.

`--data synthetic` (default): 300 generated 128 px images of squares and disks in random colours on a
noisy background (exact COCO masks), which a random-init student learns in CPU minutes. `--data coco128`:
the real images, where a random-init student stays near 0 mAP in CPU minutes whatever its labels (40
epochs at 192 px: mAP < 0.001 for all three) — a GPU and a pretrained checkpoint are needed there.

    python -m bench.student [--data synthetic|coco128] [--epochs 30] [--imgsz 128] [--json FILE]
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

from bench.common import emit

COCO128 = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco-sample" / "coco128_train2017"


def synthetic(folder: Path, n: int = 300, size: int = 128) -> Path:
    """`n` images of 1–4 squares and disks (random colour, size, place) on a noisy grey background, and
    their COCO instances file (RLE masks); returns the file."""
    import numpy as np
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        base = rng.normal(128, 12, (size, size, 3)).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(base)
        drawn = np.zeros((0, size, size), dtype=bool)
        for _ in range(int(rng.integers(1, 5))):
            cls = int(rng.integers(0, 2))
            r = int(rng.integers(8, 24))
            cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
            layer = Image.new("L", (size, size), 0)
            shape = (cx - r, cy - r, cx + r, cy + r)
            (ImageDraw.Draw(layer).rectangle if cls == 0 else ImageDraw.Draw(layer).ellipse)(shape, fill=255)
            m = np.asarray(layer) > 0
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            img.paste(Image.new("RGB", (size, size), colour), mask=layer)
            drawn = np.concatenate([drawn & ~m, m[None]])  # later shapes cover earlier ones
            anns.append({"image_id": i + 1, "category_id": cls + 1, "iscrowd": 0})
        name = f"s{i:04d}.png"
        img.save(folder / name)
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        mine = [a for a in anns if a["image_id"] == i + 1]
        for a, m in zip(mine, drawn):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            a["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            a["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
            a["area"] = float(mask_utils.area(rle))
    anns = [dict(a, id=k + 1) for k, a in enumerate(a for a in anns if a.get("area", 0) > 0)]
    cats = [{"id": 1, "name": "square"}, {"id": 2, "name": "disk"}]
    path = folder.parent / "synthetic.json"
    path.write_text(json.dumps({"images": images, "categories": cats, "annotations": anns}))
    return path


def _hand_sets(gt: dict, classes: list[str], n: int) -> tuple[dict, dict]:
    """Two disjoint sets of images (by a hash of the file name): 32 to tune on, `n` to score on."""
    keep = {c["id"] for c in gt["categories"] if c["name"] in classes}
    order = sorted(gt["images"], key=lambda im: hashlib.sha256(im["file_name"].encode()).hexdigest())

    def cut(images: list[dict]) -> dict:
        ids = {im["id"] for im in images}
        anns = [a for a in gt["annotations"] if a["image_id"] in ids and a["category_id"] in keep]
        cats = [c for c in gt["categories"] if c["id"] in keep]
        return {"images": images, "categories": cats, "annotations": anns}

    return cut(order[:32]), cut(order[32 : 32 + n])


def _label(name: str, backend: str, classes: list[str], images: Path, work: Path, threshold: float = 0.3) -> Path:
    from autolabel.api import label_folder

    detector = {"backend": backend, "box_threshold": threshold, "candidate_threshold": min(threshold, 0.1)}
    ont = {"ontology": {c: c for c in classes}, "detector": detector}
    out = work / name
    label_folder(ont, images, out, ["yolo"])
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


def run(data: str, epochs: int, imgsz: int, n_classes: int, work: Path, threshold: float = 0.15) -> dict[str, Any]:
    from autolabel.student.train import TrainOptions, train_run

    if data == "coco128":
        gt_json, images, held = COCO128 / "instances_train2017.json", COCO128 / "images", 32
    else:
        gt_json, images, held = synthetic(work / "images"), work / "images", 48
    gt = json.loads(gt_json.read_text())
    names = {c["id"]: c["name"] for c in gt["categories"]}
    counts = Counter(names[a["category_id"]] for a in gt["annotations"] if not a.get("iscrowd"))
    classes = [c for c, _ in counts.most_common(n_classes)]
    tune_set, eval_set = _hand_sets(gt, classes, held)
    (work / "tune.json").write_text(json.dumps(tune_set))
    (work / "eval.json").write_text(json.dumps(eval_set))
    os.environ.update({"AUTOLABEL_GT_JSON": str(gt_json), "AUTOLABEL_GT_IMAGES": str(images)})
    runs = {
        "exact labels": _label("exact", "tests.gt_backend:GroundTruthEngine", classes, images, work),
        "noisy, untuned": _label("noisy", "tests.gt_backend:NoisyGroundTruthEngine", classes, images, work, threshold),
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
    out: dict[str, Any] = {"data": data, "classes": classes, "epochs": epochs, "imgsz": imgsz, "held_out": held}
    out["noisy_threshold"] = threshold
    out["results"] = {}
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
    ap.add_argument("--data", choices=("synthetic", "coco128"), default="synthetic")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=0.15, help="the noisy run's box threshold (untuned)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tmp) / "ultralytics"))
        result = run(a.data, a.epochs, a.imgsz, a.classes, Path(tmp), a.threshold)
    emit(result, a.json)


if __name__ == "__main__":
    main()
