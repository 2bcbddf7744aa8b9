"""One shape of a corrections file → a full-image mask, every value checked before a rasteriser sees it.

A NaN, infinite or huge coordinate makes pycocotools' `frPyObjects` crash the process (a segfault) or
allocate gigabytes; a brush RLE with junk after the mask makes the decoder read hundreds of megabytes. So:
coordinates must be finite and within `geometry.REACH` image sizes of the image, RLE bytes 0–255 with no more data
than the mask can take, counts whole and adding up. A bad shape raises `ShapeError` saying what is wrong;
the readers add the file, task or image and the shape.
"""

from __future__ import annotations

import math
import unicodedata
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from autolabel.errors import UsageError
from autolabel.geometry import REACH, within_reach
from autolabel.masks import box_mask
from autolabel.tool_rle import cvat_decode, ls_decode

MAX_NAME = 200  # characters of a class name


class ShapeError(UsageError):
    """A shape of a corrections file that cannot be read."""


def number(v: Any, what: str) -> float:
    """A finite number (int, float, or its text); else a ShapeError naming `what`."""
    try:
        x = float(v) if isinstance(v, (int, float, str)) and not isinstance(v, bool) else math.nan
    except (ValueError, OverflowError):
        x = math.nan
    if not math.isfinite(x):
        raise ShapeError(f"{what} must be a finite number, got {str(v)[:40]!r}")
    return x


def whole(v: Any, what: str) -> int:
    """A whole number (`481` or `481.0`)."""
    x = number(v, what)
    if x != int(x):
        raise ShapeError(f"{what} must be a whole number, got {str(v)[:40]!r}")
    return int(x)


def check_xy(xs: list[float], ys: list[float], width: int, height: int, what: str) -> None:
    if not within_reach(xs, ys, width, height):
        raise ShapeError(f"{what} lies far outside the {width}×{height} image (more than {REACH:g} image sizes)")


def label_of(v: Any, what: str) -> str:
    """A class name from a tool: non-empty text, no control characters, at most MAX_NAME characters."""
    name = v[0] if isinstance(v, list) and v else v
    if not isinstance(name, str) or not name.strip():
        raise ShapeError(f"{what}: the label must be non-empty text, got {str(v)[:40]!r}")
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cs", "Cf")]
    if not name.strip(" ./\\"):
        raise ShapeError(f"{what}: the label {name!r} is no name (only dots and slashes)")
    if bad or len(name) > MAX_NAME:
        why = f"control character {bad[0]!r}" if bad else f"{len(name)} characters (at most {MAX_NAME})"
        raise ShapeError(f"{what}: the label {name[:40]!r} has {why}")
    return name.strip()


def polygon_mask(flat: list[Any], height: int, width: int, what: str = "polygon") -> np.ndarray:
    """A polygon (pixel coordinates) rasterised as pycocotools does (as autolabel's polygons are written)."""
    pts = [number(v, f"{what} coordinate") for v in flat]
    check_xy(pts[0::2], pts[1::2], width, height, what)
    if len(pts) < 6:
        return np.zeros((height, width), dtype=bool)
    rle = mask_utils.merge(mask_utils.frPyObjects([pts], height, width))
    return np.asarray(mask_utils.decode(rle), dtype=bool)


def ls_region(r: dict, height: int, width: int) -> tuple[str, np.ndarray] | None:
    """One Label Studio result as (label, mask); None for results that are no shape (choices, text…)."""
    kind, v = str(r.get("type", "")).lower(), r.get("value")
    if not isinstance(v, dict):
        if kind in ("brushlabels", "polygonlabels", "rectanglelabels"):
            raise ShapeError(f"a {kind} result has no value")
        return None
    if kind == "brushlabels" and v.get("format", "rle") == "rle":
        return label_of(v.get("brushlabels"), "brushlabels"), ls_decode(_rle_bytes(v.get("rle")), height, width)
    if kind == "polygonlabels":
        points = v.get("points")
        if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
            raise ShapeError("polygon points must be a list of [x, y] pairs (percent of the image)")
        flat = [c for x, y in points for c in (number(x, "x") * width / 100.0, number(y, "y") * height / 100.0)]
        return label_of(v.get("polygonlabels"), "polygonlabels"), polygon_mask(flat, height, width)
    if kind == "rectanglelabels":
        label = label_of(v.get("rectanglelabels"), "rectanglelabels")
        x, y, w, h = (number(v.get(k), f"rectangle {k}") for k in ("x", "y", "width", "height"))
        t = np.deg2rad(number(v.get("rotation", 0), "rectangle rotation"))
        pts = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
        rot = pts @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) + (x, y)
        flat = [c for px, py in rot for c in (px * width / 100.0, py * height / 100.0)]
        if t:
            return label, polygon_mask(flat, height, width, "rectangle")
        check_xy(flat[0::2], flat[1::2], width, height, "rectangle")
        return label, box_mask((flat[0], flat[1], flat[4], flat[5]), height, width)
    return None


def _rle_bytes(rle: Any) -> bytes:
    if not isinstance(rle, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in rle):
        raise ShapeError("a brush mask's rle must be a list of whole numbers (bytes)")
    if rle and (min(rle) < 0 or max(rle) > 255):
        raise ShapeError("a brush mask's rle holds values outside 0–255 (not bytes)")
    return bytes(rle)


def cvat_shape(el: ET.Element, h: int, w: int) -> np.ndarray | None:
    """A CVAT `<mask>`, `<polygon>` or `<box>` as a full-image mask; None for other elements."""
    if el.tag == "mask":
        counts = [whole(c, "mask rle count") for c in el.get("rle", "").split(",") if c.strip()]
        left, top, width, height = (whole(el.get(k, "0"), f"mask {k}") for k in ("left", "top", "width", "height"))
        return cvat_decode(counts, left, top, width, height, h, w)
    if el.tag == "polygon":
        pairs = [pt.split(",") for pt in el.get("points", "").split(";") if pt.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ShapeError(f"polygon points must be 'x,y;x,y;…', got {el.get('points', '')[:40]!r}")
        return polygon_mask([c for p in pairs for c in p], h, w)
    if el.tag == "box":
        xyxy = [number(el.get(k), f"box {k}") for k in ("xtl", "ytl", "xbr", "ybr")]
        check_xy(xyxy[0::2], xyxy[1::2], w, h, "box")
        return box_mask(xyxy, h, w)
    return None
