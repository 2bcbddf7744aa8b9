"""SAHI-style tiling for small objects, around any detector.

Every image of a batch is cut into overlapping square tiles; all tiles of the batch (and the whole
images, unless `whole_image` is false) go through the detector in one call; boxes are mapped back to
image coordinates and merged across tile seams: boxes of the same prompt whose overlap covers
`merge_ios` of the smaller one are one object (their union box, the best score). The segmenter then
works on the full image with the merged boxes. NumPy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autolabel.backends.base import Detector, PromptBoxes, PromptChecker
from autolabel.geometry import box_area


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets along one axis: tiles of `tile` pixels overlapping by `overlap`·tile, the last
    flush with the far edge. One tile when the image is not longer than a tile."""
    if length <= tile:
        return [0]
    step = max(1, int(round(tile * (1 - overlap))))
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def tiles_of(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of every tile of an image."""
    return [
        (x, y, min(x + tile, width), min(y + tile, height))
        for y in tile_origins(height, tile, overlap)
        for x in tile_origins(width, tile, overlap)
    ]


def intersection_over_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection area ÷ the smaller box's area."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(axis=2)
    smaller = np.minimum(box_area(a)[:, None], box_area(b)[None, :])
    return np.where(smaller > 0, inter / np.maximum(smaller, 1e-12), 0.0)


def merge_boxes(pb: PromptBoxes, merge_ios: float) -> PromptBoxes:
    """Greedy non-maximum merging per prompt (SAHI's NMM with intersection-over-smaller): the
    highest-scored box absorbs every box of its prompt overlapping it enough, growing to their union."""
    n = len(pb.xyxy)
    if n == 0:
        return pb
    scores = pb.scores if pb.scores is not None else np.ones(n)
    order = np.argsort(-scores, kind="stable")
    xyxy = pb.xyxy[order].copy()
    pidx = pb.prompt_index[order]
    ios = intersection_over_smaller(xyxy, xyxy)
    used = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for i in range(n):
        if used[i]:
            continue
        group = np.flatnonzero(~used & (pidx == pidx[i]) & (ios[i] >= merge_ios))
        group = np.union1d(group, [i])
        used[group] = True
        xyxy[i, :2] = xyxy[group, :2].min(axis=0)
        xyxy[i, 2:] = xyxy[group, 2:].max(axis=0)
        keep.append(i)
    k = np.asarray(keep, dtype=np.int64)
    return PromptBoxes(xyxy[k], None if pb.scores is None else scores[order][k], pidx[k], unmatched=pb.unmatched)


class TiledDetector:
    """Wraps a detector: the same `detect` contract, on tiles plus (optionally) the whole image."""

    kind = "detector"
    segments = False

    def __init__(self, inner: Detector, tile: int, overlap: float, whole_image: bool = True, merge_ios: float = 0.5):
        self.inner, self.tile, self.overlap = inner, tile, overlap
        self.whole_image, self.merge_ios = whole_image, merge_ios
        self.has_scores = inner.has_scores
        self.stats = inner.stats

    def check_prompts(self, prompts: Sequence[str]) -> None:
        if isinstance(self.inner, PromptChecker):
            self.inner.check_prompts(prompts)

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        crops: list[np.ndarray] = []
        where: list[tuple[int, int, int]] = []  # (image index, x offset, y offset)
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            for x0, y0, x1, y1 in tiles_of(w, h, self.tile, self.overlap):
                if self.whole_image and (x1 - x0, y1 - y0) == (w, h):
                    continue  # the only tile is the image itself
                crops.append(np.ascontiguousarray(img[y0:y1, x0:x1]))
                where.append((i, x0, y0))
            if self.whole_image:
                crops.append(img)
                where.append((i, 0, 0))
        raw = self.inner.detect(crops, prompts, min_score)
        parts: list[list[PromptBoxes]] = [[] for _ in images]
        for pb, (i, dx, dy) in zip(raw, where):
            shifted = pb.xyxy + [dx, dy, dx, dy]  # noqa: RUF005 - NumPy arithmetic, not concatenation
            parts[i].append(PromptBoxes(shifted, pb.scores, pb.prompt_index, unmatched=pb.unmatched))
        return [merge_boxes(PromptBoxes.merge(p, self.has_scores), self.merge_ios) for p in parts]
