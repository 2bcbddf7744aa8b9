"""The student and its teacher (the run's labels) scored on the same held-out hand-labeled images."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.quality.evaluate import EvalReport, Scorer, evaluate_run, fill_gt_defaults
from autolabel.quality.groundtruth import (
    describe_ground_truth,
    load_ground_truth,
    read_coco,
    restrict,
    same_size_matches,
)
from autolabel.run.run import Run
from autolabel.types import Detections, RleMasks

if TYPE_CHECKING:
    from autolabel.student.data import StudentData
    from autolabel.student.train import TrainOptions

MAX_DET = 100  # COCO's maxDets


def score_student(run_dir: Any, data: StudentData, weights: Any, opts: TrainOptions) -> tuple[EvalReport, EvalReport]:
    """(student, teacher) on the held-out images: the student's mAP from all its labels, its P/R/F1 at
    `opts.conf`; the teacher at the run's decisions."""
    assert data.gt_path is not None
    gt_data = read_coco(data.gt_path)
    with Run.open(run_dir) as run:
        sizes = [s for s in run.images() if s[0] in data.held_out]
    matched, _ = same_size_matches(gt_data["images"], sizes)  # an image of another size is not comparable
    ids = {im["id"] for im in matched.values()}
    held = restrict(gt_data, ids)
    teacher = evaluate_run(run_dir, data.gt_path, gt_data=copy.deepcopy(held))
    student = EvalReport(
        gt_boxes_as_masks=fill_gt_defaults(held),
        ground_truth=describe_ground_truth(held, data.gt_path),
        decisions=f"student {weights}, labels scoring >= {opts.conf:g} (mAP: every label)",
    )
    gt = load_ground_truth(held, sizes, tuple(data.classes))
    scorer = Scorer(held, gt, tuple(data.classes), opts.conf)
    from ultralytics import YOLO

    model = YOLO(str(weights))
    for rel, w, h in sizes:
        if rel not in matched:
            continue  # not a hand-labeled image of this size
        det = predict(model, data.held_out[rel], opts, w, h, len(data.classes))
        scorer.add(rel, det, matched[rel]["id"])
        student.images_matched += 1
    scorer.finish(student, sorted(ids, key=str))
    return student, teacher


def predict(model: Any, image: Any, opts: TrainOptions, width: int, height: int, n_classes: int) -> Detections:
    """The student's labels of one image at its full size (masks at the image's resolution)."""
    kwargs: dict[str, Any] = {"imgsz": opts.imgsz, "conf": 0.001, "max_det": MAX_DET, "verbose": False}
    if opts.device is not None:
        kwargs["device"] = opts.device
    res = model.predict(str(image), retina_masks=True, **kwargs)[0]
    boxes = res.boxes
    xyxy = boxes.xyxy.cpu().numpy().astype(np.float64).reshape(-1, 4)
    cls = boxes.cls.cpu().numpy().astype(np.int64)
    conf = boxes.conf.cpu().numpy().astype(np.float64)
    order = np.argsort(-conf, kind="stable")
    keep = order[cls[order] < n_classes]
    masks = None
    if res.masks is not None:
        dense = res.masks.data.cpu().numpy()[keep] > 0.5
        if dense.shape[1:] != (height, width):  # EXIF-rotated or resized: ultralytics' own size wins
            dense = np.stack([_resize(m, width, height) for m in dense]) if len(dense) else dense
        masks = RleMasks.from_dense(dense.reshape(len(keep), height, width))
    return Detections(xyxy=xyxy[keep], class_id=cls[keep], confidence=conf[keep], prompt=[""] * len(keep), masks=masks)


def _resize(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return (
        np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)) > 127
    )
