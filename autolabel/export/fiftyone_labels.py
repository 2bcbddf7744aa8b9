"""FiftyOne labels of a decided image (`to_fiftyone_detections`) and the dataset names an export works
with (staging, set aside), shared by the image and the video datasets."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from autolabel.types import ImageResult

LABEL_FIELD = "autolabel"


def max_iou_with_other_class(det: Any) -> np.ndarray:
    """For each instance, its highest IoU (mask IoU when masks exist, else box IoU) with an instance of
    another class in the same image — what the review view 'class-overlaps' filters on."""
    from autolabel.geometry import box_iou
    from autolabel.masks import mask_iou
    from autolabel.types import RleMasks

    n = len(det)
    out = np.zeros(n)
    if n < 2:
        return out
    if isinstance(det.masks, RleMasks):  # all pairs on the RLE at once, nothing decoded
        iou = det.masks.iou(det.masks)
        iou[det.class_id[:, None] == det.class_id[None, :]] = 0.0
        return iou.max(axis=1)
    iou = box_iou(det.xyxy, det.xyxy)
    for i in range(n):
        for j in range(i + 1, n):
            if det.class_id[i] == det.class_id[j] or iou[i, j] == 0:
                continue
            v = mask_iou(det.masks[i], det.masks[j]) if det.masks is not None else iou[i, j]
            out[i], out[j] = max(out[i], v), max(out[j], v)
    return out


def to_fiftyone_detections(fo: Any, result: ImageResult, classes: list[str]) -> Any:
    det = result.detections
    w, h = result.width, result.height
    overlap = max_iou_with_other_class(det)
    items = []
    for i in range(len(det)):
        x0, y0, x1, y1 = (float(v) for v in det.xyxy[i])
        kwargs: dict[str, Any] = {
            "label": classes[int(det.class_id[i])],
            "bounding_box": [x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h],
            "confidence": None if det.confidence is None else float(det.confidence[i]),
            "prompt": det.prompt[i],
            "max_iou_other_class": round(float(overlap[i]), 4),
        }
        area = float(det.masks[i].sum()) if det.masks is not None else (x1 - x0) * (y1 - y0)
        kwargs["area"] = area  # mask pixels (box area without masks)
        kwargs["area_fraction"] = round(area / (w * h), 6)
        if det.masks is not None:
            r0, r1 = int(np.floor(y0)), max(int(np.ceil(y1)), int(np.floor(y0)) + 1)
            c0, c1 = int(np.floor(x0)), max(int(np.ceil(x1)), int(np.floor(x0)) + 1)
            kwargs["mask"] = det.masks[i][r0:r1, c0:c1].copy()
        items.append(fo.Detection(**kwargs))
    return fo.Detections(detections=items)


STAGING, OLD = ".autolabel-staging", ".autolabel-old"  # suffixes of the datasets an export works with


def recover_dataset(fo: Any, name: str) -> None:
    """Finish or undo an export of dataset `name` that was killed mid-way (called under the run lock):
    a dataset set aside whose replacement never arrived comes back; staging and set-aside leftovers go."""
    leftovers = [d for d in fo.list_datasets() if d.startswith((name + STAGING, name + OLD))]
    if not fo.dataset_exists(name):
        for d in sorted(leftovers):
            if d.startswith(name + OLD):
                fo.load_dataset(d).name = name
                leftovers.remove(d)
                break
    for d in leftovers:
        fo.delete_dataset(d)


def swap_dataset(fo: Any, ds: Any, name: str) -> None:
    """Put a finished staging dataset in place as `name`: the old one is set aside by a rename (one record),
    never deleted while it is the dataset, and deleted once the new one has the name."""
    old = None
    if fo.dataset_exists(name):
        old = fo.load_dataset(name)
        old.name = f"{name}{OLD}-{os.getpid()}"
    ds.name = name
    if old is not None:
        old.delete()
