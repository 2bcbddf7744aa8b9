"""A plugin engine that returns COCO ground truth as detections (never part of the product).

It lets tests check everything around the models exactly: `backend: tests.gt_backend:GroundTruthEngine`
with AUTOLABEL_GT_JSON (a COCO instances file) and AUTOLABEL_GT_IMAGES (its image folder). Images are
recognised by a hash of their decoded pixels; each prompt is a category name; scores are 0.9, or
AUTOLABEL_GT_SCORE. Crowd annotations are left out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from autolabel.backends.base import ForwardStats, PromptBoxes
from autolabel.images import load_image


def _key(img: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()


class GroundTruthEngine:
    kind = "engine"
    has_scores = True
    segments = True

    def __init__(self, gt_json: str, images_dir: str, score: float = 0.9) -> None:
        self.stats = ForwardStats()
        self.score = score
        d = json.loads(Path(gt_json).read_text())
        self.cats = {c["id"]: c["name"] for c in d["categories"]}
        by_image: dict[int, list[dict]] = {}
        for a in d["annotations"]:
            if not a.get("iscrowd"):
                by_image.setdefault(a["image_id"], []).append(a)
        self.anns: dict[str, tuple[dict, list[dict]]] = {}
        for im in d["images"]:
            p = Path(images_dir) / im["file_name"]
            if p.exists():
                self.anns[_key(load_image(p))] = (im, by_image.get(im["id"], []))

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> GroundTruthEngine:
        return cls(
            os.environ["AUTOLABEL_GT_JSON"],
            os.environ["AUTOLABEL_GT_IMAGES"],
            float(os.environ.get("AUTOLABEL_GT_SCORE", "0.9")),
        )

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        out = []
        for img in images:
            h, w = img.shape[:2]
            _im, anns = self.anns.get(_key(img), ({}, []))
            sel = [
                (a, prompts.index(self.cats[a["category_id"]])) for a in anns if self.cats[a["category_id"]] in prompts
            ]
            masks = np.zeros((len(sel), h, w), dtype=bool)
            boxes = np.zeros((len(sel), 4))
            for i, (a, _) in enumerate(sel):
                seg = a["segmentation"]
                rle = (
                    mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                    if isinstance(seg, list)
                    else mask_utils.frPyObjects(seg, h, w)
                )
                masks[i] = mask_utils.decode(rle).astype(bool)
                x, y, bw, bh = a["bbox"]
                boxes[i] = [x, y, x + bw, y + bh]
            out.append(
                PromptBoxes(
                    boxes, np.full(len(sel), self.score), np.array([k for _, k in sel], dtype=np.int64), masks=masks
                )
            )
        return out
