from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from autolabel.decisions import greedy_suppress
from autolabel.geometry import box_iou, cxcywh_norm_to_xyxy, xyxy_to_cxcywh_norm, xyxy_to_xywh
from autolabel.masks import MaskCleanup, clean_mask, encode_rle, external_polygons, mask_to_xyxy


def test_box_conversions_round_trip() -> None:
    xyxy = np.array([[10, 20, 30, 60], [0, 0, 100, 50]], dtype=float)
    assert xyxy_to_xywh(xyxy).tolist() == [[10, 20, 20, 40], [0, 0, 100, 50]]
    back = cxcywh_norm_to_xyxy(xyxy_to_cxcywh_norm(xyxy, 100, 50), 100, 50)
    np.testing.assert_allclose(back, xyxy)


def test_iou_and_nms() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=float)
    assert box_iou(boxes[:1], boxes[2:]).item() == 0
    assert box_iou(boxes[:1], boxes[:1]).item() == 1
    by_score = boxes[[1, 2, 0]]  # the one NMS (decisions) takes instances sorted by descending score
    assert greedy_suppress(box_iou(by_score, by_score), None, 0.5).tolist() == [True, True, False]
    assert greedy_suppress(box_iou(boxes, boxes), None, 0.5).tolist() == [True, False, True]  # earlier wins
    # same boxes, different classes: class-wise NMS keeps both
    assert greedy_suppress(box_iou(boxes[:2], boxes[:2]), np.array([1, 0]), 0.5).tolist() == [True, True]


def test_rle_round_trip_and_tight_box() -> None:
    m = np.zeros((5, 5), dtype=bool)
    m[1:3, 2:5] = True
    rle = encode_rle(m)
    assert (mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool) == m).all()
    assert mask_to_xyxy(m).tolist() == [2, 1, 5, 3]
    assert mask_to_xyxy(np.zeros((5, 5), bool)) is None


def _poly_to_mask(polys: list[np.ndarray], h: int, w: int) -> np.ndarray:
    rles = mask_utils.frPyObjects([p.reshape(-1).tolist() for p in polys], h, w)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


@pytest.mark.parametrize(
    "pixels",
    [
        [(2, 2)],  # one pixel
        [(0, 0), (0, 1), (1, 0)],  # an L at the corner of the image
        [(1, 1), (2, 2), (3, 3)],  # a diagonal line (8-connected)
    ],
)
def test_polygons_trace_pixel_edges_exactly_for_tiny_masks(pixels: list[tuple[int, int]]) -> None:
    m = np.zeros((5, 5), dtype=bool)
    for y, x in pixels:
        m[y, x] = True
    polys = external_polygons(m)
    assert all(len(p) >= 3 for p in polys)
    assert (_poly_to_mask(polys, 5, 5) == m).all()


def test_polygons_are_external_only_and_cover_every_part() -> None:
    m = np.zeros((40, 60), dtype=bool)
    m[5:30, 5:30] = True
    m[12:20, 12:20] = False  # a hole
    m[10:20, 40:55] = True  # a second part
    polys = external_polygons(m)
    assert len(polys) == 2  # two parts, the hole is not a polygon
    filled = m.copy()
    filled[12:20, 12:20] = True
    assert (_poly_to_mask(polys, 40, 60) == filled).all()


def test_polygon_simplification_reduces_points() -> None:
    yy, xx = np.mgrid[:100, :100]
    disk = (yy - 50) ** 2 + (xx - 50) ** 2 < 40**2
    full, simple = external_polygons(disk), external_polygons(disk, tolerance=1.5)
    assert len(simple[0]) < len(full[0]) / 3
    got = _poly_to_mask(simple, 100, 100)
    assert (got & disk).sum() / (got | disk).sum() > 0.97


def test_cleanup_fills_small_holes_drops_small_islands_keeps_largest() -> None:
    m = np.zeros((30, 30), dtype=bool)
    m[2:20, 2:20] = True
    m[8:10, 8:10] = False  # 4-pixel hole
    m[25:27, 25:27] = True  # 4-pixel island
    m[2:6, 24:29] = True  # 20-pixel island
    out = clean_mask(m, MaskCleanup(fill_holes_below=5))
    assert out[8:10, 8:10].all() and out[25:27, 25:27].all()
    out = clean_mask(m, MaskCleanup(drop_islands_below=5))
    assert not out[25:27, 25:27].any() and out[2:6, 24:29].all()
    out = clean_mask(m, MaskCleanup(keep_largest_part=True))
    assert not out[2:6, 24:29].any() and out[2:20, 2:8].all()
    # a hole touching nothing but the mask, larger than the limit, stays
    assert not clean_mask(m, MaskCleanup(fill_holes_below=3))[8:10, 8:10].any()
