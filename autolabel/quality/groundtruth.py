"""Ground truth for `eval` and `tune`: a hand-labeled COCO file read and checked, its images matched to
the run's (by relative path, else by unique base name), and detections matched to it the COCO way."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autolabel.errors import UsageError, joined, shown
from autolabel.geometry import box_iou, within_reach
from autolabel.masks import coded_rle
from autolabel.quality.matching import ClassMatches, greedy_match
from autolabel.types import Detections, RleMasks


def read_coco(path: str | Path) -> dict:
    """A COCO instances file as a dict with `images`, `categories` and `annotations`, checked like an
    ontology: every problem at once, with the file and the entry (a duplicate id or an unknown category
    would otherwise give a silently wrong mAP)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"ground-truth file '{p}' not found")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if (
            not isinstance(data, dict)
            or not isinstance(data["images"], list)
            or not isinstance(data["categories"], list)
        ):
            raise TypeError("images and categories must be lists")
        if not isinstance(data.setdefault("annotations", []), list):
            raise TypeError("annotations must be a list")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"'{p}' is not a COCO instances file ({e})") from None
    except RecursionError:
        raise UsageError(f"'{p}' is JSON nested too deeply to be a COCO file") from None
    problems = coco_problems(data)
    if problems:
        raise UsageError(joined([f"{p}: {x}" for x in problems]), hint="fix the ground-truth file; nothing was scored")
    return data


def describe_ground_truth(data: dict, path: str | Path) -> str:
    """Where the ground truth came from: `RUN/groundtruth.json: 16 images — 2 from CVAT XML cvat.xml
    (reviewed: auto), 14 from …` for what `autolabel import` saved, else the file and its image count."""
    n = len(data["images"])
    info = data.get("info")
    imports = info.get("imports") if isinstance(info, dict) and isinstance(info.get("imports"), list) else []
    if not imports:
        return f"{path}: {n} hand-labeled images"
    counts = Counter(im.get("autolabel_import") for im in data["images"] if isinstance(im, dict))
    parts = [
        f"{counts.get(k, 0)} from {i.get('source', '?')} {Path(str(i.get('file', '?'))).name} "
        f"(reviewed: {i.get('reviewed', '?')})"
        for k, i in enumerate(imports)
        if isinstance(i, dict) and counts.get(k)
    ]
    older = sum(v for k, v in counts.items() if not isinstance(k, int) or not 0 <= k < len(imports))
    if older:
        parts.append(f"{older} from earlier imports")
    return f"{path}: {n} images — " + ", ".join(parts)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def coco_problems(data: dict) -> list[str]:
    """What is wrong with COCO instances data (unique ids, known categories, boxes, polygons). Annotations
    of images not in the file are allowed (a file cut down to some images) and ignored."""
    out: list[str] = []
    image_ids: set = set()
    for k, im in enumerate(data["images"]):
        ok = (
            isinstance(im, dict)
            and isinstance(im.get("file_name"), str)
            and all(isinstance(im.get(f), int) and im[f] > 0 for f in ("width", "height"))
            and "id" in im
        )
        if not ok:
            out.append(f"images[{k}]: needs id, file_name and positive integer width and height")
        elif im["id"] in image_ids:
            out.append(f"images[{k}]: id {shown(im['id'])} repeats")
        else:
            image_ids.add(im["id"])
    cat_ids = {c.get("id") for c in data["categories"] if isinstance(c, dict) and isinstance(c.get("name"), str)}
    if len(cat_ids) != len(data["categories"]):
        out.append("categories: each needs a unique id and a name")
    ann_ids: set = set()
    image_size = {
        im["id"]: (im["width"], im["height"])
        for im in data["images"]
        if isinstance(im, dict) and isinstance(im.get("width"), int) and isinstance(im.get("height"), int)
    }
    for k, a in enumerate(data["annotations"]):
        where = f"annotations[{k}]" + (f" (id {shown(a.get('id'))})" if isinstance(a, dict) else "")
        if not isinstance(a, dict):
            out.append(f"{where}: not an object")
            continue
        if a.get("id") in ann_ids:
            out.append(f"{where}: id repeats (every annotation needs its own id)")
        ann_ids.add(a.get("id"))
        if a.get("category_id") not in cat_ids:
            out.append(f"{where}: category_id {shown(a.get('category_id'))} is not in categories")
        box = a.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_is_num(v) for v in box) and box[2] >= 0 <= box[3]):
            out.append(f"{where}: bbox must be [x, y, width, height] (finite, width and height >= 0)")
        seg_problems = _segmentation_problems(a.get("segmentation"))
        out += [f"{where}: {x}" for x in seg_problems]
        size = image_size.get(a.get("image_id")) if isinstance(a.get("image_id"), (int, str)) else None
        if size is not None and not seg_problems:
            out += [f"{where}: {x}" for x in _extent_problems(a, *size)]
    if not data["annotations"] and data["images"]:
        out.append(
            "no annotations at all: nothing to compare with (an empty image needs no annotation, "
            "but a file without any is almost surely the wrong file)"
        )
    return out


def _extent_problems(a: dict, width: int, height: int) -> list[str]:
    """Coordinates far outside the image, an RLE of another size or whose counts do not cover it: each would
    make pycocotools allocate gigabytes, or write past its buffer (a crash, not an error)."""
    out = []
    box = a.get("bbox")
    if isinstance(box, list) and len(box) == 4 and all(_is_num(v) for v in box):
        x, y, w, h = box
        if not within_reach([x, x + w], [y, y + h], width, height):
            out.append(f"bbox {box} lies far outside the {width}×{height} image")
    seg = a.get("segmentation")
    if isinstance(seg, list):
        for k, poly in enumerate(seg):
            if not within_reach(poly[0::2], poly[1::2], width, height):
                out.append(f"segmentation polygon {k} lies far outside the {width}×{height} image")
    elif isinstance(seg, dict):
        out += _rle_problems(seg, width, height)
    return out


def _rle_problems(seg: dict, width: int, height: int) -> list[str]:
    if seg.get("size") != [height, width]:
        return [f"RLE size {shown(seg.get('size'))} is not the image's [{height}, {width}]"]
    counts = seg.get("counts")
    if isinstance(counts, str):
        counts = _string_counts(counts)
    if not isinstance(counts, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        return ["RLE counts must be whole numbers (a list, or COCO's compressed string)"]
    if min(counts, default=0) < 0 or sum(counts) != width * height:
        return [f"RLE counts cover {sum(counts)} pixels, not the image's {width}×{height}"]
    return []


def _string_counts(s: str) -> list[int] | None:
    """The counts of COCO's compressed RLE string (pycocotools' rleFrString), None when it is not one."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = k = 0
        more = True
        while more:
            if p >= len(s) or not 48 <= ord(s[p]) <= 111:
                return None
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _segmentation_problems(seg: object) -> list[str]:
    if seg is None or seg == []:
        return []
    if isinstance(seg, list):
        bad = [
            k
            for k, poly in enumerate(seg)
            if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0 and all(_is_num(v) for v in poly))
        ]
        return [f"segmentation polygon {k} needs an even number (>= 6) of finite coordinates" for k in bad]
    if isinstance(seg, dict) and isinstance(seg.get("size"), list) and "counts" in seg:
        return []
    return ["segmentation must be a list of polygons or an RLE {size, counts}"]


def match_images(gt_images: list[dict], run_relpaths: list[str]) -> dict[str, dict]:
    """relpath → GT image: by exact relative path, else by base name when it is unique on both sides."""
    by_path = {im["file_name"].replace("\\", "/").lstrip("./"): im for im in gt_images}
    gt_base = Counter(Path(p).name for p in by_path)
    run_base = Counter(Path(r).name for r in run_relpaths)
    by_base = {Path(p).name: im for p, im in by_path.items() if gt_base[Path(p).name] == 1}
    out = {}
    for rel in run_relpaths:
        if rel in by_path:
            out[rel] = by_path[rel]
        elif run_base[Path(rel).name] == 1 and Path(rel).name in by_base:
            out[rel] = by_base[Path(rel).name]
    return out


def same_size_matches(
    gt_images: list[dict], sizes: list[tuple[str, int, int]]
) -> tuple[dict[str, dict], dict[str, dict]]:
    """The run images (relpath, width, height) the ground truth covers: at the same size (relpath → GT image),
    and at another size (not comparable: reported, never scored), each in the order of `sizes`."""
    matched = match_images(gt_images, [r for r, _, _ in sizes])
    same: dict[str, dict] = {}
    other: dict[str, dict] = {}
    for r, w, h in sizes:
        if r in matched:
            (same if (matched[r]["width"], matched[r]["height"]) == (w, h) else other)[r] = matched[r]
    return same, other


def restrict(data: dict, ids: set, classes: set[str] | None = None) -> dict:
    """COCO data cut down to the images `ids` (and the categories named in `classes`); `data` itself when
    nothing is cut."""
    cats = [c for c in data["categories"] if classes is None or c["name"] in classes]
    if len(ids) == len(data["images"]) and len(cats) == len(data["categories"]):
        return data
    keep = {c["id"] for c in cats}
    return {
        **data,
        "images": [im for im in data["images"] if im["id"] in ids],
        "categories": cats,
        "annotations": [a for a in data["annotations"] if a["image_id"] in ids and a["category_id"] in keep],
    }


@dataclass
class GtImage:
    """Ground truth of one image for the run's classes: class name → (RLEs or None, xyxy, crowd)."""

    by_class: dict[str, tuple[list[dict] | None, np.ndarray, np.ndarray]] = field(default_factory=dict)


def ann_rle(ann: dict, height: int, width: int) -> dict | None:
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if not seg:
        return None
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    if isinstance(seg.get("counts"), list):
        return mask_utils.frPyObjects(seg, height, width)
    return coded_rle(seg)


def load_ground_truth(
    data: dict, sizes: list[tuple[str, int, int]], classes: tuple[str, ...] | list[str]
) -> dict[str, GtImage]:
    """relpath → ground truth of the run's classes, for the run images the COCO data (`read_coco`) covers
    with the same size."""
    images, cats, anns = data["images"], data["categories"], data["annotations"]
    names = {c["id"]: c["name"] for c in cats}
    if not set(names.values()) & set(classes):
        raise UsageError(
            "no class name of the run appears in the ground truth",
            hint=f"run classes: {', '.join(classes)}; GT: {', '.join(sorted(set(names.values())))}",
        )
    matched, _ = same_size_matches(images, sizes)
    by_id: dict[int, list[dict]] = {}
    for a in anns:
        by_id.setdefault(a["image_id"], []).append(a)
    out: dict[str, GtImage] = {}
    for rel, im in matched.items():
        w, h = im["width"], im["height"]
        gi = GtImage()
        for name in classes:
            sel = [a for a in by_id.get(im["id"], []) if names.get(a["category_id"]) == name]
            rles = [ann_rle(a, h, w) for a in sel]
            boxes = np.array(
                [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in sel],
                dtype=np.float64,
            ).reshape(-1, 4)
            crowd = np.array([bool(a.get("iscrowd", 0)) for a in sel], dtype=bool)
            masks = [r for r in rles if r is not None]
            gi.by_class[name] = (masks if len(masks) == len(rles) else None, boxes, crowd)
        out[rel] = gi
    if not out:
        raise UsageError(
            "no image of the run matches the ground truth by file name (and size)",
            hint="GT file_name must be the path relative to the labeled folder (or a unique base name)",
        )
    return out


def match_detections(
    det: Detections,
    gt: GtImage,
    classes: tuple[str, ...],
    iou_threshold: float,
    into: dict[str, ClassMatches],
    only: str | None = None,
) -> None:
    """Add one image's detections (sorted by descending score) to the per-class matches."""
    from pycocotools import mask as mask_utils

    for k, name in enumerate(classes):
        if only is not None and name != only:
            continue
        rles, boxes, crowd = gt.by_class[name]
        idx = np.flatnonzero(det.class_id == k)
        if isinstance(det.masks, RleMasks) and rles is not None and len(idx) and len(rles):
            iou = np.asarray(mask_utils.iou([det.masks.rles[i] for i in idx], rles, [int(c) for c in crowd]))
            iou = iou.reshape(len(idx), len(rles))
        else:
            iou = box_iou(det.xyxy[idx], boxes)
        tp, ignored = greedy_match(iou, iou_threshold, crowd)
        scores = det.confidence[idx] if det.confidence is not None else np.ones(len(idx))
        into[name].add(scores, tp, ignored, int((~crowd).sum()))
