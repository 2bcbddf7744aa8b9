"""Box geometry in NumPy. Inside autolabel boxes are `xyxy` in absolute pixels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def xyxy_to_xywh(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) x1 y1 x2 y2 → (N, 4) x y w h, same units."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    out = xyxy.copy()
    out[:, 2:] = xyxy[:, 2:] - xyxy[:, :2]
    return out


def cxcywh_norm_to_xyxy(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) centre x/y, width, height normalised to [0, 1] → absolute xyxy pixels."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    half = b[:, 2:] / 2
    xyxy = np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)
    return xyxy * np.array([width, height, width, height], dtype=np.float64)


def xyxy_to_cxcywh_norm(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Absolute xyxy pixels → (N, 4) centre x/y, width, height normalised to [0, 1]."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4) / np.array([width, height, width, height])
    return np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)


def clip_xyxy(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the image rectangle [0, width] × [0, height]."""
    out = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def box_area(xyxy: np.ndarray) -> np.ndarray:
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes → (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


REACH = 2.0  # image sizes a coordinate may lie outside its image (drawn past the edge); no further


def within_reach(xs: Sequence[float], ys: Sequence[float], width: int, height: int) -> bool:
    """Every x within [-REACH·width, (1 + REACH)·width] and every y likewise: farther out, pycocotools'
    rasteriser allocates gigabytes or crashes, and no hand-drawn shape lies there."""
    lo_x, hi_x, lo_y, hi_y = -REACH * width, (1 + REACH) * width, -REACH * height, (1 + REACH) * height
    return all(lo_x <= x <= hi_x for x in xs) and all(lo_y <= y <= hi_y for y in ys)
