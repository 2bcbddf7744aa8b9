"""COCO instance-segmentation export: a pure converter plus a streaming, atomic writer.

Traps handled: iscrowd is 0 for every auto-label (also holed or multi-part masks), `area` is the mask
pixel area, `bbox` is absolute [x, y, w, h], category ids start at 1, polygons come from external
outlines only, `file_name` is the relative path (same names in different folders stay distinct),
and no timestamp is written so a rerun gives a byte-identical file.

Video frames (images under `RUN/frames/<clip>/`) also carry `video_id` and `frame_index` (the `videos` list
names each clip and its frame rate), and their annotations `attributes: {track_id, keyframe}`: the same
track id is the same object across the clip, as CVAT's COCO import reads tracks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from autolabel.errors import UsageError
from autolabel.export.base import COCO_MASKS as MASK_FORMATS
from autolabel.export.base import ExportContext
from autolabel.fsutil import StreamedFile
from autolabel.geometry import box_area, xyxy_to_xywh
from autolabel.masks import encode_rle, external_polygons
from autolabel.types import Detections, ImageResult
from autolabel.video.clip import clip_of, frame_index


def _num(v: float) -> float | int:
    """Integers stay integers in JSON (pixel-exact outlines), others keep 3 decimals."""
    r = round(float(v), 3)
    return int(r) if r.is_integer() else r


def _coords(poly: np.ndarray) -> list[float | int]:
    """Flat [x1, y1, …]; outlines lie on pixel corners, so they are integers unless simplified otherwise."""
    flat = poly.reshape(-1)
    if np.all(flat == np.round(flat)):
        return cast("list[float | int]", flat.astype(np.int64).tolist())
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


def is_autolabel_coco(path: Path) -> bool:
    """True for a COCO file autolabel wrote (its `info.description` comes first and says so)."""
    try:
        with open(path, "rb") as f:
            return f.read(64).startswith(b'{"info": {"description": "autolabel"')
    except OSError:
        return False


def coco_videos(ctx: ExportContext) -> dict[str, int]:
    """Ids (from 1) of the videos whose frames the export holds, in relpath order."""
    clips = sorted({c for r, _, _ in ctx.images if (c := clip_of(r, ctx.clips)) is not None})
    return {c: k + 1 for k, c in enumerate(clips)}


class CocoExporter:
    """`-f coco`: `coco/annotations.json`, streamed image by image. `images` (sizes only, all known when
    the export opens) come first, then each image's `annotations`; the file is written under a temporary
    name and renamed over the old one when complete."""

    name = "coco"
    PATH = Path("coco") / "annotations.json"

    def __init__(self, description: str = "autolabel") -> None:
        self.description = description
        self.image_ids: dict[str, int] = {}
        self.n_annotations = 0
        self.file: StreamedFile | None = None
        self._items = 0

    def open(self, ctx: ExportContext) -> None:
        if ctx.options.coco_masks not in MASK_FORMATS:
            raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {ctx.options.coco_masks!r}")
        self.path = ctx.out_dir / self.PATH
        if self.path.exists() and not is_autolabel_coco(self.path):
            raise UsageError(
                f"'{self.path}' exists and was not written by autolabel: not replacing it",
                hint="move it away, or export to another directory (-o)",
            )
        self.mask_format, self.polygon_tolerance = ctx.options.coco_masks, ctx.polygon_tolerance
        self.file = StreamedFile(self.path)
        head = {
            "info": {"description": self.description, "version": "1.0"},
            "licenses": [],
            "categories": coco_categories(ctx.classes),
        }
        self.video_ids = coco_videos(ctx)
        if self.video_ids:
            head["videos"] = [
                {"id": vid, "file_name": clip, "fps": ctx.clips[clip].fps, "frames_dir": f"frames/{clip}"}
                for clip, vid in self.video_ids.items()
            ]
        self.file.write(json.dumps(head)[:-1])
        self._section("images")
        for relpath, width, height in ctx.images:
            self.image_ids[relpath] = len(self.image_ids) + 1
            image = {"id": self.image_ids[relpath], "file_name": relpath, "width": int(width), "height": int(height)}
            clip = clip_of(relpath, ctx.clips)
            if clip is not None:
                image.update(video_id=self.video_ids[clip], frame_index=frame_index(relpath))
            self._item(image)
        self._section("annotations")

    def _section(self, section: str) -> None:
        assert self.file is not None
        if section != "images":
            self.file.write("\n]")
        self.file.write(f',\n"{section}": [\n')
        self._items = 0

    def _item(self, obj: dict[str, Any]) -> None:
        assert self.file is not None
        self.file.write((",\n" if self._items else "") + json.dumps(obj))
        self._items += 1

    def add(self, result: ImageResult) -> None:
        anns = detections_to_coco_annotations(
            result.detections,
            self.image_ids[result.relpath],
            self.n_annotations + 1,
            self.mask_format,
            self.polygon_tolerance,
        )
        for k, ann in enumerate(anns):
            if result.track_ids is not None:  # a video frame: what CVAT imports as tracks
                ann["attributes"] = {"track_id": int(result.track_ids[k]), "keyframe": True}
            self._item(ann)
        self.n_annotations += len(anns)

    def close(self) -> str:
        assert self.file is not None
        self.file.write("\n]}\n")
        self.file.commit()
        return str(self.path)

    def abort(self) -> None:
        if self.file is not None:
            self.file.discard()
