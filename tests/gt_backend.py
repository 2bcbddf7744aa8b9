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
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

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
                if isinstance(seg, list):
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                elif isinstance(seg["counts"], str):  # compressed RLE
                    rle = {"size": seg["size"], "counts": seg["counts"].encode()}
                else:
                    rle = mask_utils.frPyObjects(seg, h, w)
                masks[i] = mask_utils.decode(rle).astype(bool)
                x, y, bw, bh = a["bbox"]
                boxes[i] = [x, y, x + bw, y + bh]
            out.append(
                PromptBoxes(
                    boxes, np.full(len(sel), self.score), np.array([k for _, k in sel], dtype=np.int64), masks=masks
                )
            )
        return out


class NoisyGroundTruthEngine(GroundTruthEngine):
    """The ground truth as a weaker detector would see it (a stand-in with known noise, never the product):
    each true object is missed with probability AUTOLABEL_GT_MISS (0.3); found ones score uniformly in
    [AUTOLABEL_GT_TP_LOW (0.3), 0.95]; AUTOLABEL_GT_FP (2.0) false positives per image on average, boxes and
    rectangle masks on random places with a random prompt, score in [0.1, AUTOLABEL_GT_FP_HIGH (0.7)]. The
    draws depend on the image and the seed only (AUTOLABEL_GT_SEED plus the `seed` option): two seeds are two
    independent detectors (an ensemble gives each its own `seed`)."""

    OPTIONS: ClassVar[dict[str, Any]] = {"seed": 0}

    def __init__(
        self,
        gt_json: str,
        images_dir: str,
        seed: int = 0,
        miss: float = 0.3,
        fp: float = 2.0,
        tp_low: float = 0.3,
        fp_high: float = 0.7,
    ) -> None:
        super().__init__(gt_json, images_dir)
        self.seed, self.miss, self.fp, self.tp_low, self.fp_high = seed, miss, fp, tp_low, fp_high

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> NoisyGroundTruthEngine:
        env = os.environ
        return cls(
            env["AUTOLABEL_GT_JSON"],
            env["AUTOLABEL_GT_IMAGES"],
            int(env.get("AUTOLABEL_GT_SEED", "0")) + int(getattr(cfg, "options", {}).get("seed", 0)),
            float(env.get("AUTOLABEL_GT_MISS", "0.3")),
            float(env.get("AUTOLABEL_GT_FP", "2.0")),
            float(env.get("AUTOLABEL_GT_TP_LOW", "0.3")),
            float(env.get("AUTOLABEL_GT_FP_HIGH", "0.7")),
        )

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        out = []
        for img, pb in zip(images, super().detect(images, prompts, min_score)):
            rng = np.random.default_rng([self.seed, int(_key(img)[:12], 16)])
            h, w = img.shape[:2]
            n = len(pb.prompt_index)
            kept = rng.random(n) >= self.miss
            scores = rng.uniform(self.tp_low, 0.95, n)
            n_fp = int(rng.poisson(self.fp))
            x0, y0 = rng.uniform(0, 0.8, n_fp) * w, rng.uniform(0, 0.8, n_fp) * h
            bw, bh = rng.uniform(0.05, 0.3, n_fp) * w, rng.uniform(0.05, 0.3, n_fp) * h
            fp_boxes = np.stack([x0, y0, np.minimum(x0 + bw, w), np.minimum(y0 + bh, h)], axis=1).reshape(-1, 4)
            fp_masks = np.zeros((n_fp, h, w), dtype=bool)
            for i, (a, b, c, d) in enumerate(fp_boxes.astype(int)):
                fp_masks[i, b : max(d, b + 1), a : max(c, a + 1)] = True
            masks = pb.masks if pb.masks is not None else np.zeros((n, h, w), dtype=bool)
            out.append(
                PromptBoxes(
                    np.concatenate([pb.xyxy[kept], fp_boxes]),
                    np.concatenate([scores[kept], rng.uniform(0.1, self.fp_high, n_fp)]),
                    np.concatenate([pb.prompt_index[kept], rng.integers(0, len(prompts), n_fp)]).astype(np.int64),
                    masks=np.concatenate([masks[kept], fp_masks]),
                )
            )
        return out


class OracleVerifier:
    """A verifier that knows the ground truth (a stand-in with a known error rate, never the product): a
    box whose best IoU with a true object of the asked class reaches 0.5 is a yes, else a no; each answer is
    flipped with probability AUTOLABEL_ORACLE_ERROR (0.1), drawn from the image and box. Every question
    asked is appended to AUTOLABEL_ORACLE_LOG when set (what a rerun asks again)."""

    kind = "verifier"

    def __init__(self, gt: GroundTruthEngine, error: float, log: str | None) -> None:
        self.gt, self.error, self.log = gt, error, log
        self.stats = ForwardStats()

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> OracleVerifier:
        env = os.environ
        gt = GroundTruthEngine(env["AUTOLABEL_GT_JSON"], env["AUTOLABEL_GT_IMAGES"])
        return cls(gt, float(env.get("AUTOLABEL_ORACLE_ERROR", "0.1")), env.get("AUTOLABEL_ORACLE_LOG"))

    def verify(self, image: np.ndarray, boxes: np.ndarray, questions: Sequence[str]) -> np.ndarray:
        from autolabel.geometry import box_iou

        names = list(self.gt.cats.values())
        truth = self.gt.detect([image], names, 0.0)[0]
        out = np.zeros(len(boxes))
        with self.stats.timed():
            for i, (box, q) in enumerate(zip(boxes, questions)):
                name = next(n for n in sorted(names, key=len, reverse=True) if re.search(rf"\b{re.escape(n)}\b", q))
                mine = truth.xyxy[truth.prompt_index == names.index(name)]
                yes = bool(len(mine)) and float(box_iou(np.asarray([box]), mine).max()) >= 0.5
                rng = np.random.default_rng([int(_key(image)[:12], 16), *np.asarray(box, dtype=np.int64).tolist()])
                if rng.random() < self.error:
                    yes = not yes
                out[i] = 0.9 if yes else 0.1
        if self.log:
            with open(self.log, "a") as f:
                f.write("".join(f"{_key(image)[:12]} {b.round(1).tolist()}\n" for b in boxes))
        return out
