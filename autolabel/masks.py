"""Binary instance masks: RLE, polygons, areas and clean-up. NumPy + OpenCV + pycocotools only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def encode_rle(mask: np.ndarray) -> dict:
    """(H, W) bool → COCO compressed RLE `{"size": [H, W], "counts": str}`."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def coded_rle(rle: dict) -> dict:
    """A compressed RLE as JSON holds it (`counts` text) → as pycocotools takes it (`counts` bytes)."""
    counts = rle["counts"]
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode_rle(rle: dict) -> np.ndarray:
    """`encode_rle`'s output (or any compressed RLE) → (H, W) bool."""
    return np.asarray(mask_utils.decode(coded_rle(rle)), dtype=bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks of the same shape (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def mask_to_xyxy(mask: np.ndarray) -> np.ndarray | None:
    """Tight box around the True pixels as xyxy with exclusive right/bottom edges; None when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if len(ys) == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=np.float64)


def box_mask(xyxy: Sequence[float] | np.ndarray, height: int, width: int) -> np.ndarray:
    """A box (xyxy pixels, rounded) as an (H, W) bool mask of at least one pixel: the mask of a box-only
    label (a box-only run, a rectangle drawn in an annotation tool)."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in xyxy)
    c0, r0 = max(x0, 0), max(y0, 0)
    m = np.zeros((height, width), dtype=bool)
    m[r0 : max(y1, r0 + 1), c0 : max(x1, c0 + 1)] = True
    return m


def external_polygons(mask: np.ndarray, tolerance: float = 0.0, max_parts: int | None = None) -> list[np.ndarray]:
    """Outer outlines of every part of a mask as (K, 2) float arrays of x, y pixel-corner coordinates.

    The outline follows pixel edges, not pixel centres: the contour is traced on a 2× nearest-neighbour
    upsample, where boundary pixel u maps back to edge ceil(u / 2). A polygon rasterised by pycocotools
    therefore gives back exactly the pixels of a hole-free mask (a lone pixel becomes its unit square).
    Holes are not returned (RETR_EXTERNAL): polygons describe parts, never holes; use RLE to keep holes.
    `tolerance` > 0 simplifies with Douglas-Peucker (pixels). Parts are ordered largest first;
    `max_parts` keeps only that many of the largest (time and memory stay bounded for speckled masks).
    """
    m = np.asarray(mask, dtype=bool)
    box = mask_to_xyxy(m)
    if box is None:
        return []
    x0, y0, x1, y1 = (int(v) for v in box)
    crop = m[y0:y1, x0:x1].astype(np.uint8)
    up = np.pad(np.kron(crop, np.ones((2, 2), dtype=np.uint8)), 1)  # pad: contours never touch the border
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if max_parts is not None and len(contours) > max_parts:
        order = np.argsort([-cv2.contourArea(c) for c in contours], kind="stable")[:max_parts]
        contours = [contours[i] for i in order]
    polys: list[tuple[float, np.ndarray]] = []
    for c in contours:
        pts = np.ceil((c.reshape(-1, 2) - 1) / 2).astype(np.float64) + (x0, y0)  # noqa: RUF005 - NumPy arithmetic, not concatenation
        pts = pts[np.any(pts != np.roll(pts, 1, axis=0), axis=1)]  # drop repeated points
        if tolerance > 0 and len(pts) > 3:
            simple = cv2.approxPolyDP(pts.astype(np.float32).reshape(-1, 1, 2), tolerance, True).reshape(-1, 2)
            pts = simple.astype(np.float64) if len(simple) >= 3 else pts
        if len(pts) < 3:
            continue
        polys.append((abs(float(cv2.contourArea(pts.astype(np.float32)))), pts))
    polys.sort(key=lambda p: -p[0])
    return [p for _, p in polys]


def centre_polygons(mask: np.ndarray, tolerance: float = 0.0, max_parts: int | None = None) -> list[np.ndarray]:
    """Outer outlines of every part of a mask through the *centres* of its boundary pixels, as (K, 2)
    float x, y arrays (pixel centre = index + 0.5): the polygons ultralytics' rasteriser (`polygon2mask`:
    cv2.fillPoly on truncated integer points, boundary included) turns back into exactly the mask's
    pixels, at any resolution the coordinates are scaled to. A part one pixel wide or a lone pixel gives a
    degenerate polygon that still fills its pixels. Holes are not returned; parts are largest first;
    `tolerance` and `max_parts` as in `external_polygons`."""
    m = np.asarray(mask, dtype=bool)
    box = mask_to_xyxy(m)
    if box is None:
        return []
    x0, y0, x1, y1 = (int(v) for v in box)
    contours, _ = cv2.findContours(m[y0:y1, x0:x1].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    parts = sorted(contours, key=lambda c: (-cv2.contourArea(c), -len(c)))[: max_parts or len(contours)]
    out = []
    for c in parts:
        pts = c.reshape(-1, 2).astype(np.float64)
        if tolerance > 0 and len(pts) > 3:
            simple = cv2.approxPolyDP(pts.astype(np.float32).reshape(-1, 1, 2), tolerance, True).reshape(-1, 2)
            pts = simple.astype(np.float64) if len(simple) >= 3 else pts
        pts = np.concatenate([pts, np.repeat(pts[-1:], max(0, 3 - len(pts)), axis=0)])  # at least 3 points
        out.append(pts + (x0 + 0.5, y0 + 0.5))  # noqa: RUF005 - NumPy arithmetic, not concatenation
    return out


@dataclass(frozen=True)
class MaskCleanup:
    """Mask post-processing shared by every segmenter (pixel units; 0 disables a step)."""

    fill_holes_below: int = 0
    drop_islands_below: int = 0
    keep_largest_part: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.fill_holes_below or self.drop_islands_below or self.keep_largest_part)


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return labels, stats[1:n, cv2.CC_STAT_AREA]


def clean_mask(mask: np.ndarray, cfg: MaskCleanup) -> np.ndarray:
    """Fill small holes, drop small islands, optionally keep only the largest part. Returns a new mask."""
    out = np.asarray(mask, dtype=bool).copy()
    if cfg.fill_holes_below > 0:
        # holes are background components that do not touch the border (4-connectivity for background)
        inv = (~out).astype(np.uint8)
        _n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
        small = stats[:, cv2.CC_STAT_AREA] < cfg.fill_holes_below
        small[0] = False  # label 0 is the mask itself
        small[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = False  # not holes
        if small.any():
            out |= small[labels]
    if cfg.drop_islands_below > 0 or cfg.keep_largest_part:
        labels, areas = _components(out)
        if len(areas):
            keep = np.ones(len(areas), dtype=bool)
            if cfg.drop_islands_below > 0:
                keep &= areas >= cfg.drop_islands_below
            if cfg.keep_largest_part:
                largest = np.zeros(len(areas), dtype=bool)
                largest[int(np.argmax(areas))] = True
                keep &= largest
            out = np.isin(labels, np.flatnonzero(keep) + 1)
    return out
