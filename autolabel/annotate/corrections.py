"""Human-corrected labels read back from an annotation tool: a Label Studio JSON export, a CVAT for images
1.1 XML or a COCO instances file. Images are matched to the run's by path; every label becomes a full-image
mask (a box drawn in the tool is its rectangle). Tasks that were skipped or rejected are left out and said.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
from pycocotools import mask as mask_utils

from autolabel.annotate.jsonstream import first_char, json_array_items
from autolabel.annotate.records import Corrections, Reviewed
from autolabel.annotate.shapes import ShapeError, cvat_shape, label_of, ls_region, whole
from autolabel.annotate.video_corrections import read_cvat_video, read_ls_video
from autolabel.errors import UsageError
from autolabel.fsutil import export_names
from autolabel.masks import box_mask
from autolabel.video.clip import Clip

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names with this


def export_aliases(relpaths: Mapping[str, Any]) -> dict[str, str]:
    """The names exports gave the run's images where they differ from the relative path (`export_name`)."""
    return {a: r for r, a in export_names(relpaths).items() if a != r}


def match_path(
    ref: str, relpaths: Mapping[str, Any], basenames: Counter, aliases: Mapping[str, str] | None = None
) -> str | None:
    """The run image a tool's image reference names: the path itself, a path ending in it (a local-files
    `?d=` parameter, a URL), else a base name unique in the run (Label Studio's upload prefix removed)."""
    if "?" in ref and "d" in parse_qs(urlparse(ref).query):
        ref = parse_qs(urlparse(ref).query)["d"][0]
    elif "://" in ref:
        ref = unquote(urlparse(ref).path)
    if ref in relpaths:  # a name as it is (backslashes and all)
        return ref
    if aliases and ref in aliases:  # the name an export gave it (`fsutil.export_name`)
        return aliases[ref]
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


def _id_order(v: Any) -> tuple[int, str]:
    """Annotation ids sort as numbers when they are numbers (ids of mixed types do not crash the sort)."""
    return (int(v), "") if isinstance(v, int) and not isinstance(v, bool) else (-1, str(v))


FIX = "fix or remove that shape in the file (or export it again); nothing was imported"


def _final_annotation(task: dict) -> tuple[dict | None, str]:
    """The annotation that counts (the last one not skipped), or None with why the task is left out."""
    anns = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
    if not anns:
        return None, "not reviewed"
    kept = [a for a in anns if not a.get("was_cancelled")]
    if not kept:
        return None, "skipped in Label Studio"
    last = max(kept, key=lambda a: (str(a.get("updated_at") or ""), _id_order(a.get("id"))))
    reviews = [rv for rv in last.get("reviews") or [] if isinstance(rv, dict)]
    if (reviews and reviews[-1].get("accepted") is False) or last.get("review_result") == "rejected":
        return None, "rejected in review"
    return last, ""


def read_labelstudio(
    tasks: Iterable[Any], sizes: dict[str, tuple[int, int]], clips: Mapping[str, Clip] | None = None, where: str = ""
) -> Corrections:
    out = Corrections("Label Studio JSON")
    basenames = Counter(PurePosixPath(r).name for r in sizes)
    clips = clips or {}
    clip_names = Counter(PurePosixPath(c).name for c in clips)
    task_of: dict[str, str] = {}
    for k, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise UsageError(f"{where}: task {k} is not an object", hint="export JSON from Label Studio again")
        raw = task.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        name = f"task {str(task.get('id', k))[:40]}"
        video = "video" in data  # a clip: its objects are video rectangles over its frames
        key, known, names = ("video", clips, clip_names) if video else ("image", sizes, basenames)
        ref = str(data.get("relpath") or data.get(key) or "")
        rel = match_path(ref, known, names) if ref else None
        if rel is None:
            out.unmatched.append(ref or f"{name} (no data.{key})")
            continue
        ann, why = _final_annotation(task)
        if ann is None:
            out.left_out += [f"{r}: {why}" for r in (clips[rel].frame_relpaths() if video else [rel])]
            continue
        if video:
            read_ls_video(ann, clips[rel], sizes, out)
            continue
        if rel in task_of:  # the same image twice: the later task wins, and that is said
            out.notes.append(f"{rel}: {name} replaces {task_of[rel]} (the same image twice; the later one counts)")
        task_of[rel] = name
        out.images[rel] = _ls_image(ann, rel, sizes[rel], out, f"{where}: {name} ('{rel}')")
    return out


def _ls_image(ann: dict, rel: str, size: tuple[int, int], out: Corrections, where: str) -> Reviewed:
    w, h = size
    reviewed = Reviewed(rel, w, h)
    results = ann.get("result") or []
    for j, r in enumerate(results if isinstance(results, list) else [results]):
        at = f"{where}, result {j} ({r.get('type') if isinstance(r, dict) else '?'})"
        if not isinstance(r, dict):
            raise UsageError(f"{at}: not an object", hint=FIX)
        if (r.get("original_width", w), r.get("original_height", h)) != (w, h):
            raise UsageError(
                f"{at}: for a {r.get('original_width')}×{r.get('original_height')} image; the run's is {w}×{h}",
                hint="the task points at another picture than the run labeled",
            )
        try:
            region = ls_region(r, h, w)
        except UsageError as e:
            raise UsageError(f"{at}: {e.message}", hint=e.hint or FIX) from None
        if region is None:
            out.ignored[str(r.get("type"))[:40]] += 1
        else:
            reviewed.add(*region)
    return reviewed


def read_cvat(path: Path, sizes: dict[str, tuple[int, int]], clips: Mapping[str, Clip] | None = None) -> Corrections:
    out = Corrections("CVAT XML")
    basenames = Counter(PurePosixPath(r).name for r in sizes)
    aliases = export_aliases(sizes)
    try:
        for im in _cvat_images(path):
            _cvat_image(im, path, sizes, basenames, aliases, out)
    except _VideoTask:
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            raise UsageError(f"'{path}' is not valid XML ({e})") from None
        return read_cvat_video(root, path, clips or {}, sizes)
    return out


class _VideoTask(Exception):
    """The file is a CVAT for video task (tracks), not images."""


def _cvat_images(path: Path) -> Iterator[ET.Element]:
    """The `<image>` elements of a CVAT XML, streamed: each is dropped once read, so memory stays near one
    image's shapes however large the file (a 200 MB export took 2.2 GB parsed whole)."""
    try:
        context = ET.iterparse(path, events=("start", "end"))
        _, root = next(context)
        if root.tag != "annotations":
            raise UsageError(f"'{path}' is not a CVAT XML file", hint="export the task as 'CVAT for images 1.1'")
        for event, el in context:
            if (event == "start" and el.tag == "track") or (
                event == "end" and el.tag == "mode" and (el.text or "").strip() == "interpolation"
            ):
                raise _VideoTask
            if event == "end" and el.tag == "image":
                yield el
                root.clear()
    except ET.ParseError as e:
        raise UsageError(f"'{path}' is not valid XML ({e})") from None


def _cvat_image(
    im: ET.Element,
    path: Path,
    sizes: dict[str, tuple[int, int]],
    basenames: Counter,
    aliases: Mapping[str, str],
    out: Corrections,
) -> None:
    rel = match_path(im.get("name", ""), sizes, basenames, aliases)
    if rel is None:
        out.unmatched.append(im.get("name", "?"))
        return
    w, h = sizes[rel]
    try:
        size = (whole(im.get("width", w), "width"), whole(im.get("height", h), "height"))
    except ShapeError as e:
        raise UsageError(f"{path}: image '{rel}': {e.message}", hint=FIX) from None
    if size != (w, h):
        raise UsageError(f"CVAT image '{rel}' is {im.get('width')}×{im.get('height')}; the run's is {w}×{h}")
    reviewed = Reviewed(rel, w, h)
    labels: list[tuple[str, np.ndarray]] = []
    groups: dict[str, int] = {}
    for j, el in enumerate(im):
        try:
            mask = cvat_shape(el, h, w)
            label = label_of(el.get("label", ""), "label") if mask is not None else ""
        except UsageError as e:
            raise UsageError(f"{path}: image '{rel}', shape {j} (<{el.tag}>): {e.message}", hint=FIX) from None
        if mask is None:
            out.ignored[el.tag] += 1
            continue
        group = el.get("group_id", "0")
        if el.tag == "polygon" and group != "0" and group in groups:  # another part of the same object
            labels[groups[group]][1][mask] = True
            continue
        groups[group] = len(labels)
        labels.append((label, mask))
    for label, mask in labels:
        reviewed.add(label, mask)
    out.images[rel] = reviewed


def read_coco_corrections(data: dict, sizes: dict[str, tuple[int, int]]) -> Corrections:
    from autolabel.quality.groundtruth import ann_rle, coco_problems

    data.setdefault("annotations", [])
    if not isinstance(data.get("categories"), list) or not isinstance(data["annotations"], list):
        raise UsageError("a COCO file needs 'categories' and 'annotations' lists", hint="nothing was imported")
    problems = [p for p in coco_problems(data) if not p.startswith("no annotations at all")]  # all removed: fine
    for c in data["categories"]:
        try:
            label_of(c.get("name"), f"categories (id {str(c.get('id'))[:20]})")
        except UsageError as e:
            problems.append(e.message)
    if problems:
        raise UsageError("; ".join(problems[:5]), hint="fix the COCO file; nothing was imported")
    out = Corrections("COCO")
    basenames = Counter(PurePosixPath(r).name for r in sizes)
    names = {c["id"]: c["name"].strip() for c in data["categories"]}
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
            reviewed.add(names[a["category_id"]], mask)
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
    if first_char(p) == "[":  # a Label Studio export: tasks streamed one at a time
        return read_labelstudio(json_array_items(p), sizes, clips, str(p))
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"'{p}' is neither JSON nor CVAT XML ({e})") from None
    except RecursionError:
        raise UsageError(f"'{p}' is JSON nested too deeply to be an annotation export") from None
    if isinstance(data, list):
        return read_labelstudio(data, sizes, clips, str(p))
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        return read_coco_corrections(data, sizes)
    raise UsageError(
        f"'{p}' is not a Label Studio JSON export, a COCO file or a CVAT XML",
        hint="in Label Studio export as 'JSON' (not JSON-MIN: it has no masks); in CVAT as 'CVAT for images 1.1'",
    )
