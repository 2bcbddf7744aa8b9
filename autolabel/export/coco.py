"""COCO instance-segmentation export: a pure converter plus a streaming, atomic writer.

Traps handled: iscrowd is 0 for every auto-label (also holed or multi-part masks), `area` is the mask
pixel area, `bbox` is absolute [x, y, w, h], category ids start at 1, polygons come from external
outlines only, `file_name` is the relative path (same names in different folders stay distinct),
and no timestamp is written so a rerun gives a byte-identical file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np

from autolabel.fsutil import atomic_write
from autolabel.geometry import box_area, xyxy_to_xywh
from autolabel.masks import encode_rle, external_polygons
from autolabel.types import Detections, ImageResult

MASK_FORMATS = ("polygon", "rle")


def _num(v: float) -> float | int:
    """Integers stay integers in JSON (pixel-exact outlines), others keep 3 decimals."""
    r = round(float(v), 3)
    return int(r) if r.is_integer() else r


def _coords(poly: np.ndarray) -> list[float | int]:
    """Flat [x1, y1, …]; outlines lie on pixel corners, so they are integers unless simplified otherwise."""
    flat = poly.reshape(-1)
    if np.all(flat == np.round(flat)):
        return flat.astype(np.int64).tolist()
    return [_num(v) for v in flat]


def detections_to_coco_annotations(
    det: Detections, image_id: int, first_id: int, mask_format: str = "polygon", polygon_tolerance: float = 0.0
) -> list[dict[str, Any]]:
    """COCO annotation dicts for one image's Detections. Class id c → category_id c + 1.

    Masks become polygons (outer outlines of all parts) or compressed RLE. Without masks the
    annotation is box-only (area = box area, no `segmentation`). `score` is left out when the model
    gives none (never a fake 1.0).
    """
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
    anns = []
    boxes = xyxy_to_xywh(det.xyxy)
    for i in range(len(det)):
        ann: dict[str, Any] = {
            "id": first_id + i,
            "image_id": image_id,
            "category_id": int(det.class_id[i]) + 1,
            "iscrowd": 0,
        }
        if det.masks is not None:
            mask = det.masks[i]
            ann["area"] = int(mask.sum())
            if mask_format == "rle":
                ann["segmentation"] = encode_rle(mask)
            else:
                ann["segmentation"] = [_coords(p) for p in external_polygons(mask, polygon_tolerance)]
        else:
            ann["area"] = _num(box_area(det.xyxy[i : i + 1])[0])
        ann["bbox"] = [_num(v) for v in boxes[i]]
        if det.confidence is not None:
            ann["score"] = round(float(det.confidence[i]), 4)
        ann["prompt"] = det.prompt[i]
        anns.append(ann)
    return anns


def coco_categories(classes: list[str]) -> list[dict[str, Any]]:
    return [{"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(classes)]


class CocoWriter:
    """Streams a COCO file image by image: `images` first (sizes only), then `annotations`.

    Usage::

        with CocoWriter(path, classes) as w:
            for relpath, width, height in sizes: w.add_image(relpath, width, height)
            for result in results: w.add_annotations(result)
    """

    def __init__(
        self,
        path: str | Path,
        classes: list[str],
        mask_format: str = "polygon",
        polygon_tolerance: float = 0.0,
        description: str = "autolabel",
    ) -> None:
        self.path = Path(path)
        self.classes = classes
        self.mask_format = mask_format
        self.polygon_tolerance = polygon_tolerance
        self.description = description
        self.image_ids: dict[str, int] = {}
        self.n_annotations = 0
        self._ctx: Any = None
        self._f: IO[str] | None = None
        self._section = ""
        self._items = 0

    def __enter__(self) -> CocoWriter:
        self._ctx = atomic_write(self.path)
        self._f = self._ctx.__enter__()
        head = {
            "info": {"description": self.description, "version": "1.0"},
            "licenses": [],
            "categories": coco_categories(self.classes),
        }
        self._f.write(json.dumps(head)[:-1])
        return self

    def _open(self, section: str) -> None:
        assert self._f is not None
        if self._section == section:
            return
        if self._section:
            self._f.write("\n]")
        self._f.write(f',\n"{section}": [\n')
        self._section, self._items = section, 0

    def _item(self, obj: dict[str, Any]) -> None:
        assert self._f is not None
        self._f.write((",\n" if self._items else "") + json.dumps(obj))
        self._items += 1

    def add_image(self, relpath: str, width: int, height: int) -> int:
        if self._section == "annotations":
            raise RuntimeError("add every image before the first annotation")
        self._open("images")
        image_id = len(self.image_ids) + 1
        self.image_ids[relpath] = image_id
        self._item({"id": image_id, "file_name": relpath, "width": int(width), "height": int(height)})
        return image_id

    def add_annotations(self, result: ImageResult) -> None:
        if not self._section:
            self._open("images")
        self._open("annotations")
        anns = detections_to_coco_annotations(
            result.detections,
            self.image_ids[result.relpath],
            self.n_annotations + 1,
            self.mask_format,
            self.polygon_tolerance,
        )
        for ann in anns:
            self._item(ann)
        self.n_annotations += len(anns)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._f is not None
        if exc_type is None:
            if not self._section:
                self._open("images")
            self._open("annotations")
            self._f.write("\n]}\n")
        self._ctx.__exit__(exc_type, exc, tb)


def write_coco(
    path: str | Path,
    classes: list[str],
    sizes: Iterable[tuple[str, int, int]],
    results: Iterable[ImageResult],
    mask_format: str = "polygon",
    polygon_tolerance: float = 0.0,
) -> int:
    """Write a COCO file from image sizes and per-image results (both sorted the same way).
    Returns the number of annotations."""
    with CocoWriter(path, classes, mask_format, polygon_tolerance) as w:
        for relpath, width, height in sizes:
            w.add_image(relpath, width, height)
        for res in results:
            w.add_annotations(res)
    return w.n_annotations
