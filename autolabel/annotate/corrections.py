"""Human-corrected labels read back from an annotation tool: a Label Studio JSON export, a CVAT for images
1.1 XML or a COCO instances file. Images are matched to the run's by path; every label becomes a full-image
mask (a box drawn in the tool is its rectangle). Tasks that were skipped or rejected are left out and said.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
from pycocotools import mask as mask_utils

from autolabel.annotate.records import Corrections, Reviewed
from autolabel.annotate.video_corrections import read_cvat_video, read_ls_video
from autolabel.errors import UsageError
from autolabel.masks import box_mask
from autolabel.tool_rle import cvat_decode, ls_decode
from autolabel.video.clip import Clip

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names with this


def match_path(ref: str, relpaths: Mapping[str, Any], basenames: Counter) -> str | None:
    """The run image a tool's image reference names: the path itself, a path ending in it (a local-files
    `?d=` parameter, a URL), else a base name unique in the run (Label Studio's upload prefix removed)."""
    if "?" in ref and "d" in parse_qs(urlparse(ref).query):
        ref = parse_qs(urlparse(ref).query)["d"][0]
    elif "://" in ref:
        ref = unquote(urlparse(ref).path)
    ref = ref.replace("\\", "/").lstrip("./")
    if ref in relpaths:
        return ref
    ends = [r for r in relpaths if ref.endswith("/" + r)]
    if ends:
        return max(ends, key=len)
    base = _UPLOAD_PREFIX.sub("", PurePosixPath(ref).name)
    for name in (PurePosixPath(ref).name, base):
        found = [r for r in relpaths if PurePosixPath(r).name == name]
        if len(found) == 1 and basenames[name] == 1:
            return found[0]
    return None


def _polygon_mask(flat: list[float], height: int, width: int) -> np.ndarray:
    """A polygon (pixel coordinates) rasterised as pycocotools does (as autolabel's polygons are written)."""
    if len(flat) < 6:
        return np.zeros((height, width), dtype=bool)
    rle = mask_utils.merge(mask_utils.frPyObjects([[float(v) for v in flat]], height, width))
    return np.asarray(mask_utils.decode(rle), dtype=bool)


def _ls_region(r: dict, height: int, width: int) -> tuple[str, np.ndarray] | None:
    """One Label Studio result as (label, mask); None for results that are no shape (choices, text…)."""
    kind, v = str(r.get("type", "")).lower(), r.get("value") or {}
    if kind == "brushlabels" and v.get("format", "rle") == "rle":
        return v["brushlabels"][0], ls_decode(v["rle"], height, width)
    if kind == "polygonlabels":
        flat = [c for x, y in v["points"] for c in (x * width / 100.0, y * height / 100.0)]
        return v["polygonlabels"][0], _polygon_mask(flat, height, width)
    if kind == "rectanglelabels":
        x, y, w, h = (v[k] for k in ("x", "y", "width", "height"))
        if v.get("rotation"):
            t = np.deg2rad(v["rotation"])
            pts = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
            rot = pts @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) + (x, y)
            flat = [c for px, py in rot for c in (px * width / 100.0, py * height / 100.0)]
            return v["rectanglelabels"][0], _polygon_mask(flat, height, width)
        px = (x * width / 100.0, y * height / 100.0, (x + w) * width / 100.0, (y + h) * height / 100.0)
        return v["rectanglelabels"][0], box_mask(px, height, width)
    return None


def _final_annotation(task: dict) -> tuple[dict | None, str]:
    """The annotation that counts (the last one not skipped), or None with why the task is left out."""
    anns = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
    if not anns:
        return None, "not reviewed"
    kept = [a for a in anns if not a.get("was_cancelled")]
    if not kept:
        return None, "skipped in Label Studio"
    last = max(kept, key=lambda a: (str(a.get("updated_at") or ""), a.get("id") or 0))
    reviews = [rv for rv in last.get("reviews") or [] if isinstance(rv, dict)]
    if (reviews and reviews[-1].get("accepted") is False) or last.get("review_result") == "rejected":
        return None, "rejected in review"
    return last, ""


def read_labelstudio(
    tasks: list, sizes: dict[str, tuple[int, int]], clips: Mapping[str, Clip] | None = None
) -> Corrections:
    out = Corrections("Label Studio JSON")
    basenames = Counter(PurePosixPath(r).name for r in sizes)
    clips = clips or {}
    clip_names = Counter(PurePosixPath(c).name for c in clips)
    for k, task in enumerate(tasks):
        data = task.get("data") or {} if isinstance(task, dict) else {}
        if "video" in data:  # a clip: its objects are video rectangles over its frames
            ref = str(data.get("relpath") or data.get("video") or "")
            clip = match_path(ref, clips, clip_names) if ref else None
            if clip is None:
                out.unmatched.append(ref or f"task {k} (no data.video)")
                continue
            ann, why = _final_annotation(task)
            if ann is None:
                out.left_out += [f"{r}: {why}" for r in clips[clip].frame_relpaths()]
                continue
            read_ls_video(ann, clips[clip], sizes, out)
            continue
        ref = str(data.get("relpath") or data.get("image") or "")
        rel = match_path(ref, sizes, basenames) if ref else None
        if rel is None:
            out.unmatched.append(ref or f"task {k} (no data.image)")
            continue
        ann, why = _final_annotation(task)
        if ann is None:
            out.left_out.append(f"{rel}: {why}")
            continue
        w, h = sizes[rel]
        reviewed = Reviewed(rel, w, h)
        for r in ann.get("result") or []:
            size = (r.get("original_width", w), r.get("original_height", h))
            if size != (w, h):
                raise UsageError(
                    f"Label Studio result on '{rel}' is for a {size[0]}×{size[1]} image; the run's is {w}×{h}",
                    hint="the task points at another picture than the run labeled",
                )
            region = _ls_region(r, h, w)
            if region is None:
                out.ignored[str(r.get("type"))] += 1
            elif region[1].any():
                reviewed.labels.append(region)
        out.images[rel] = reviewed
    return out


def read_cvat(path: Path, sizes: dict[str, tuple[int, int]], clips: Mapping[str, Clip] | None = None) -> Corrections:
    out = Corrections("CVAT XML")
    basenames = Counter(PurePosixPath(r).name for r in sizes)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise UsageError(f"'{path}' is not valid XML ({e})") from None
    if root.tag != "annotations":
        raise UsageError(f"'{path}' is not a CVAT XML file", hint="export the task as 'CVAT for images 1.1'")
    if root.find("track") is not None or root.findtext("meta/task/mode") == "interpolation":
        return read_cvat_video(root, path, clips or {}, sizes, cvat_shape)
    for im in root.iter("image"):
        rel = match_path(im.get("name", ""), sizes, basenames)
        if rel is None:
            out.unmatched.append(im.get("name", "?"))
            continue
        w, h = sizes[rel]
        if (int(im.get("width", w)), int(im.get("height", h))) != (w, h):
            raise UsageError(f"CVAT image '{rel}' is {im.get('width')}×{im.get('height')}; the run's is {w}×{h}")
        reviewed = Reviewed(rel, w, h)
        groups: dict[str, int] = {}
        for el in im:
            mask = cvat_shape(el, h, w)
            if mask is None:
                out.ignored[el.tag] += 1
                continue
            group = el.get("group_id", "0")
            if el.tag == "polygon" and group != "0" and group in groups:  # another part of the same object
                reviewed.labels[groups[group]][1][mask] = True
                continue
            groups[group] = len(reviewed.labels)
            reviewed.labels.append((el.get("label", ""), mask))
        out.images[rel] = reviewed
    return out


def cvat_shape(el: ET.Element, h: int, w: int) -> np.ndarray | None:
    if el.tag == "mask":
        counts = [int(c) for c in el.get("rle", "").split(",") if c.strip()]
        left, top, width, height = (int(float(el.get(k, "0"))) for k in ("left", "top", "width", "height"))
        return cvat_decode(counts, left, top, width, height, h, w)
    if el.tag == "polygon":
        flat = [float(c) for pt in el.get("points", "").split(";") for c in pt.split(",")]
        return _polygon_mask(flat, h, w)
    if el.tag == "box":
        x0, y0, x1, y1 = (float(el.get(k, "0")) for k in ("xtl", "ytl", "xbr", "ybr"))
        return box_mask([x0, y0, x1, y1], h, w)
    return None


def read_coco_corrections(data: dict, sizes: dict[str, tuple[int, int]]) -> Corrections:
    from autolabel.quality.groundtruth import ann_rle, coco_problems

    data.setdefault("annotations", [])
    problems = [p for p in coco_problems(data) if not p.startswith("no annotations at all")]  # all removed: fine
    if problems:
        raise UsageError("; ".join(problems[:5]), hint="fix the COCO file; nothing was imported")
    out = Corrections("COCO")
    basenames = Counter(PurePosixPath(r).name for r in sizes)
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_image: dict[Any, list[dict]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for im in data["images"]:
        rel = match_path(im["file_name"], sizes, basenames)
        if rel is None:
            out.unmatched.append(im["file_name"])
            continue
        w, h = sizes[rel]
        reviewed = Reviewed(rel, w, h)
        for a in by_image.get(im["id"], []):
            rle = ann_rle(a, h, w)
            if rle is not None:
                mask = np.asarray(mask_utils.decode(rle), dtype=bool)
            else:
                x, y, bw, bh = a["bbox"]
                mask = box_mask([x, y, x + bw, y + bh], h, w)
            reviewed.labels.append((names[a["category_id"]], mask))
        out.images[rel] = reviewed
    return out


def read_corrections(
    path: str | Path, sizes: dict[str, tuple[int, int]], clips: Mapping[str, Clip] | None = None
) -> Corrections:
    """Corrections from a file, its kind told by its content: a Label Studio JSON export (a list of tasks),
    a COCO instances file (a dict with images) or a CVAT XML."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"corrections file '{p}' not found")
    if p.suffix.lower() == ".xml":
        return read_cvat(p, sizes, clips)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"'{p}' is neither JSON nor CVAT XML ({e})") from None
    if isinstance(data, list):
        return read_labelstudio(data, sizes, clips)
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        return read_coco_corrections(data, sizes)
    raise UsageError(
        f"'{p}' is not a Label Studio JSON export, a COCO file or a CVAT XML",
        hint="in Label Studio export as 'JSON' (not JSON-MIN: it has no masks); in CVAT as 'CVAT for images 1.1'",
    )
