"""Deterministic fake backends for engine/CLI/export tests (never part of the product).

Test images are drawn with pure colours on a grey background. FakeDetector finds each connected blob
of a known colour and maps it to the first prompt that names that colour; FakeSegmenter returns the
non-background pixels inside each box, so holes and separate parts in the drawing survive into masks.
Both are loadable as plugins: `backend: tests.fakes:FakeDetector`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from autolabel.backends.base import ForwardStats, PromptBoxes

COLORS = {"red": (220, 20, 20), "blue": (20, 20, 220), "green": (20, 200, 20)}
BACKGROUND = (128, 128, 128)


def color_mask(img: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.abs(img.astype(np.int16) - np.array(rgb, dtype=np.int16)).sum(axis=2) < 60


class FakeDetector:
    kind = "detector"
    has_scores = True
    segments = False

    def __init__(self, with_scores: bool = True) -> None:
        self.stats = ForwardStats()
        self.has_scores = with_scores
        self.calls: list[int] = []  # batch sizes seen

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> FakeDetector:
        return cls()

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        self.calls.append(len(images))
        die = os.environ.get("AUTOLABEL_FAKE_DIE_ONCE")  # a worker process that dies once (Ray retry tests)
        if die and not os.path.exists(die):
            open(die, "w").close()
            os._exit(1)
        poison = int(os.environ.get("AUTOLABEL_FAKE_DIE_ON_WIDTH", "0"))  # a batch that kills its worker every time
        if poison and any(img.shape[1] == poison for img in images):
            os._exit(1)
        delay = float(os.environ.get("AUTOLABEL_FAKE_DELAY", "0"))  # seconds per image (kill tests)
        if delay:
            time.sleep(delay * len(images))
        out = []
        with self.stats.timed():
            for img in images:
                boxes, scores, pidx = [], [], []
                unmatched: dict[str, int] = {}
                for color, rgb in COLORS.items():
                    m = color_mask(img, rgb).astype(np.uint8)
                    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
                    matches = [k for k, p in enumerate(prompts) if color in p.lower()]
                    for j in range(1, n):
                        x, y, w, h, area = stats[j]
                        if area < 4:
                            continue
                        if not matches:
                            unmatched[color] = unmatched.get(color, 0) + 1
                            continue
                        boxes.append([x, y, x + w, y + h])
                        scores.append(0.5 + 0.4 * min(1.0, area / 5000))
                        pidx.append(matches[0])
                out.append(
                    PromptBoxes(
                        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                        np.asarray(scores) if self.has_scores else None,
                        np.asarray(pidx, dtype=np.int64),
                        unmatched=unmatched,
                    )
                )
        return out


class FakeSegmenter:
    kind = "segmenter"

    def __init__(self) -> None:
        self.stats = ForwardStats()

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> FakeSegmenter:
        return cls()

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        with self.stats.timed():
            for img, b in zip(images, boxes):
                fg = ~color_mask(img, BACKGROUND)
                masks = np.zeros((len(b), *img.shape[:2]), dtype=bool)
                for i, (x0, y0, x1, y1) in enumerate(np.asarray(b).round().astype(int)):
                    masks[i, y0:y1, x0:x1] = fg[y0:y1, x0:x1]
                out.append(masks)
        return out


class LowResDetector(FakeDetector):
    """Sees images the way real detectors do: shrunk to at most `max_side` pixels, so small objects of a
    large image vanish (what tiling is for). Boxes come back in the image's own pixels."""

    max_side = 320

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        small, scales = [], []
        for img in images:
            s = min(1.0, self.max_side / max(img.shape[:2]))
            small.append(img if s == 1.0 else cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA))
            scales.append(s)
        out = super().detect(small, prompts, min_score)
        return [
            PromptBoxes(pb.xyxy / s, pb.scores, pb.prompt_index, unmatched=pb.unmatched) for pb, s in zip(out, scales)
        ]


class FakeEngine(FakeDetector):
    """FakeDetector's boxes with masks of its own (an engine, like SAM 3): each mask fills its box, so a
    test can tell them from FakeSegmenter's (the drawing's pixels inside the box)."""

    kind = "engine"
    segments = True

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> FakeEngine:
        return cls()

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        out = []
        for img, pb in zip(images, super().detect(images, prompts, min_score)):
            masks = np.zeros((len(pb.xyxy), *img.shape[:2]), dtype=bool)
            for i, (x0, y0, x1, y1) in enumerate(pb.xyxy.astype(int)):
                masks[i, y0:y1, x0:x1] = True
            out.append(PromptBoxes(pb.xyxy, pb.scores, pb.prompt_index, masks=masks, unmatched=pb.unmatched))
        return out
