"""YOLO-seg / YOLO-detect export (ultralytics YOLOv8/YOLO11 layout) with data.yaml and a seeded split.

Layout::

    yolo/data.yaml
    yolo/images/<split>/<relpath>          # symlink, hardlink or copy of the source image
    yolo/labels/<split>/<relpath stem>.txt  # one line per instance; empty file for an image without objects

Segmentation rows are `class x1 y1 x2 y2 …` normalised to [0, 1] and clamped, ≥ 3 points, from the outer
outline only; a multi-part mask is bridged into one polygon (as ultralytics' `merge_multi_segment`) or
reduced to its largest part. A box-only run writes detection rows `class cx cy w h`; rows are never mixed.
Every file is written atomically and replaced on re-export (never appended to).
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import numpy as np

from autolabel.errors import UsageError
from autolabel.export.base import MULTIPART_MODES
from autolabel.fsutil import export_names
from autolabel.geometry import xyxy_to_cxcywh_norm
from autolabel.masks import centre_polygons
from autolabel.types import Detections

SPLITS = ("train", "val", "test")
MAX_BRIDGED_PARTS = 64  # a speckled mask is bridged over its largest parts only (one polygon of 10^5 parts is noise)


def parse_split(text: str) -> tuple[float, ...]:
    """'0.8,0.2' or '0.7,0.2,0.1' → fractions for train, val[, test] that sum to 1."""
    try:
        parts = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise UsageError(f"--split '{text}': expected numbers like 0.8,0.2 or 0.7,0.2,0.1") from None
    if not 2 <= len(parts) <= 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6 or parts[0] <= 0:
        raise UsageError(
            f"--split '{text}': give 2 or 3 non-negative fractions (train, val[, test]) summing to 1, train > 0"
        )
    return parts


def assign_splits(
    relpaths: list[str], fractions: tuple[float, ...], seed: int, group: dict[str, str] | None = None
) -> dict[str, str]:
    """Seeded, reproducible split: groups (by default each image alone; the frames of one video share their
    clip's group, so a clip never lands in two splits) ordered by a hash of (seed, group); single images
    are cut by fraction; groups go whole, largest first, each to the split that leaves the image counts
    closest to those asked (squared error).

    Counts are round(fraction × N); val (and test) get at least one group when their fraction is > 0
    and there are enough groups.
    """
    members: dict[str, list[str]] = {}
    for r in relpaths:
        members.setdefault(group.get(r, r) if group else r, []).append(r)
    order = sorted(members, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    n = len(relpaths)
    counts = [int(round(f * n)) for f in fractions]
    for k in range(1, len(counts)):
        if fractions[k] > 0 and counts[k] == 0 and n - sum(counts) + counts[0] > 1:
            counts[k] = 1
    counts[0] = n - sum(counts[1:])
    chosen: list[list[str]] = [[] for _ in counts]
    if all(len(m) == 1 for m in members.values()):  # images alone: cut the ordered list
        bounds = np.cumsum(counts)
        for start, g in enumerate(order):
            chosen[int(np.searchsorted(bounds, start, side="right"))].append(g)
    else:  # clips: largest first (equal sizes in seeded order), each where the counts end closest to asked
        have = np.zeros(len(counts))
        for g in sorted(order, key=lambda g: -len(members[g])):
            k = int(
                np.argmin(
                    [
                        ((have + len(members[g]) * (np.arange(len(counts)) == k) - counts) ** 2).sum()
                        for k in range(len(counts))
                    ]
                )
            )
            chosen[k].append(g)
            have[k] += len(members[g])
    for k in range(1, len(counts)):  # a split asked for gets a group while train keeps one
        if counts[k] and not chosen[k] and len(chosen[0]) > 1:
            chosen[k].append(chosen[0].pop())
    return {r: name for name, groups in zip(SPLITS, chosen) for g in groups for r in members[g]}


_PAIR_CHUNK = 1 << 21  # distance-matrix elements per step: memory stays ~16 MB for any polygon size


def _closest_pair(p: np.ndarray, q: np.ndarray) -> tuple[int, int]:
    """Indices of the closest points of two (N, 2) / (M, 2) arrays (first minimum, like np.argmin).
    Computed in row chunks, so two 7,500-vertex outlines never need a 56M-element matrix at once."""
    qq = (q * q).sum(1)
    rows = max(1, _PAIR_CHUNK // max(len(q), 1))
    best, best_ab = np.inf, (0, 0)
    for start in range(0, len(p), rows):
        c = p[start : start + rows]
        d = (c * c).sum(1)[:, None] + qq[None, :] - 2.0 * c @ q.T  # squared distances
        a, b = np.unravel_index(int(np.argmin(d)), d.shape)
        if d[a, b] < best:
            best, best_ab = float(d[a, b]), (int(a) + start, int(b))
    return best_ab


def merge_multi_segment(segments: list[np.ndarray]) -> np.ndarray:
    """Join several polygons into one by thin bridges between their closest points (the ultralytics way).

    Each part is entered at its closest point to the previous part, walked, and left the same way back,
    so the bridges have zero width and every part keeps its outline.
    """
    if len(segments) == 1:
        return segments[0]
    segs = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in segments]
    idx: list[list[int]] = [[] for _ in segs]
    for i in range(1, len(segs)):
        a, b = _closest_pair(segs[i - 1], segs[i])
        idx[i - 1].append(int(a))
        idx[i].append(int(b))
    out: list[np.ndarray] = []
    last = len(segs) - 1
    for i, ix in enumerate(idx):  # forward: enter each part, walk to the point that leads to the next
        if len(ix) == 2 and ix[0] > ix[1]:
            ix = [len(segs[i]) - 1 - x for x in ix]
            segs[i] = segs[i][::-1]
        segs[i] = np.roll(segs[i], -ix[0], axis=0)
        segs[i] = np.concatenate([segs[i], segs[i][:1]])
        out.append(segs[i] if i in (0, last) else segs[i][: ix[1] - ix[0] + 1])
    for i in range(last - 1, 0, -1):  # backward: the rest of each middle part, back to the first
        out.append(segs[i][abs(idx[i][1] - idx[i][0]) :])
    return np.concatenate(out)


def _fmt(values: np.ndarray) -> str:
    """Space-separated, 6 decimals, trailing zeros dropped (0.5, 0.291667, 1)."""
    text = np.char.rstrip(np.char.rstrip(np.char.mod("%.6f", np.asarray(values, dtype=np.float64)), "0"), ".")
    return " ".join(text.tolist())


def detections_to_yolo_lines(
    det: Detections,
    width: int,
    height: int,
    segments: bool = True,
    multipart: str = "merge",
    polygon_tolerance: float = 0.0,
) -> list[str]:
    """YOLO label lines for one image. `segments=False` (or no masks) writes `class cx cy w h` rows."""
    if multipart not in MULTIPART_MODES:
        raise ValueError(f"multipart must be one of {MULTIPART_MODES}")
    lines = []
    scale = np.array([width, height], dtype=np.float64)
    for i in range(len(det)):
        cls = int(det.class_id[i])
        if segments and det.masks is not None:
            polys = centre_polygons(det.masks[i], polygon_tolerance, MAX_BRIDGED_PARTS if multipart == "merge" else 1)
            if not polys:
                continue
            poly = merge_multi_segment(polys) if multipart == "merge" else polys[0]
            pts = (poly / scale).clip(0, 1)
            lines.append(f"{cls} {_fmt(pts.reshape(-1))}")
        else:
            box = xyxy_to_cxcywh_norm(det.xyxy[i : i + 1], width, height)[0].clip(0, 1)
            lines.append(f"{cls} {_fmt(box)}")
    return lines


def _no_images_dirs(relpath: str, taken: set[str]) -> str:
    """ultralytics finds an image's label file by replacing the *last* `/images/` of its path with
    `/labels/`; a folder named `images` inside the input tree (`data/images/x.jpg`) would send it to the
    wrong place. Such folders become `images_` (more underscores if that name is taken)."""
    parts = relpath.split("/")
    if "images" not in parts[:-1]:
        return relpath
    suffix = "_"
    while True:
        cand = "/".join([p + suffix if p == "images" else p for p in parts[:-1]] + parts[-1:])
        if cand not in taken:
            return cand
        suffix += "_"


def yolo_image_names(relpaths: list[str]) -> dict[str, str]:
    """Export names for images: the relative path made writable (`fsutil.export_name`: no `..`, backslash,
    empty or over-long parts), except (1) where two images would share a label file
    (`x.jpg` and `x.png` in one folder → both `x.txt`): those get their extension folded into the name;
    (2) folders named `images` are renamed `images_` (see `_no_images_dirs`)."""
    safe = export_names(relpaths)
    stems: dict[str, list[str]] = {}
    for r in relpaths:
        stems.setdefault(str(PurePosixPath(safe[r]).with_suffix("")), []).append(r)
    out = {}
    for group in stems.values():
        for r in group:
            p = PurePosixPath(safe[r])
            out[r] = (
                safe[r] if len(group) == 1 else str(p.with_name(f"{p.stem}_{p.suffix.lstrip('.').lower()}{p.suffix}"))
            )
    taken = {str(PurePosixPath(v).with_suffix("")) for v in out.values()}
    for r, name in out.items():
        new = _no_images_dirs(name, taken)
        if new != name:
            taken.add(str(PurePosixPath(new).with_suffix("")))
            out[r] = new
    return out


def data_yaml(out: Path, classes: list[str], counts: dict[str, int]) -> str:
    """ultralytics data.yaml: `path` is the dataset root; train/val/test are relative to it.
    Without val images, val points at train (ultralytics needs a val set)."""
    import json

    lines = [
        "# YOLO dataset written by autolabel. Moved this folder? Update `path` (train/val are relative to it).",
        f"path: {json.dumps(str(out), ensure_ascii=False)}",
        "train: images/train",
        f"val: images/{'val' if counts['val'] else 'train'}",
    ]
    if counts["test"]:
        lines.append("test: images/test")
    lines.append(f"nc: {len(classes)}")
    lines.append("names:")
    lines += [f"  {i}: {json.dumps(name, ensure_ascii=False)}" for i, name in enumerate(classes)]  # YAML reads UTF-8
    return "\n".join(lines) + "\n"
