"""Corrected clips back from the annotation tools, track ids kept: a CVAT for video 1.1 XML (`<track>`s over
the clip's sampled frames, as `-f cvat` wrote them under `cvat/videos/<clip>/`) and a Label Studio video task
(`videorectangle` regions, as `-f labelstudio` wrote them in `video_tasks.json`). Every sampled frame of the
clip becomes a reviewed image whose labels carry the track id the person left them with, so a track switch
fixed in the tool is fixed in the corrected COCO (`attributes.track_id`) and MOT exports.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from autolabel.annotate.records import Corrections, Reviewed
from autolabel.annotate.shapes import check_xy, cvat_shape, label_of
from autolabel.errors import UsageError
from autolabel.masks import box_mask
from autolabel.video.clip import Clip, sequence_names


def _which_clip(root: ET.Element, path: Path, clips: Mapping[str, Clip]) -> Clip:
    """The run's clip a CVAT video task is: named by its `<source>` or task name (the clip's relpath, its
    sequence name or file name), else the only clip with as many sampled frames."""
    names = sequence_names(clips)
    said = [root.findtext("meta/task/source") or "", root.findtext("meta/task/name") or ""]
    for text in said:
        for rel, clip in clips.items():
            if text.strip() and text.strip() in (rel, names[rel], PurePosixPath(rel).name):
                return clip
    size = root.findtext("meta/task/size") or ""
    same = [c for c in clips.values() if size.strip().isdigit() and len(c.frames) == int(size)]
    if len(same) == 1:
        return same[0]
    known = ", ".join(f"{names[r]} ({len(c.frames)} frames)" for r, c in sorted(clips.items())) or "none"
    raise UsageError(
        f"'{path}' is a CVAT video task ('{said[1]}', {size or '?'} frames) that matches no clip of the run",
        hint=f"name the CVAT task after its clip; the run's clips: {known}",
    )


def read_cvat_video(
    root: ET.Element,
    path: Path,
    clips: Mapping[str, Clip],
    sizes: dict[str, tuple[int, int]],
) -> Corrections:
    """A CVAT for video 1.1 file: its tracks' shapes inside view, per sampled frame, with their track ids."""
    out = Corrections("CVAT XML")
    if not clips:
        raise UsageError(f"'{path}' holds CVAT tracks (a video task) but the run has no video")
    clip = _which_clip(root, path, clips)
    frames = clip.frame_relpaths()
    w, h = sizes[frames[0]]
    reviewed = [Reviewed(rel, w, h, [], []) for rel in frames]
    for track in root.iter("track"):
        tid = _int(track.get("id"), f"{path}: <track id=…>")
        for el in track:
            if el.get("outside") == "1":
                continue
            k = _int(el.get("frame"), f"{path}: track {tid}: frame")
            if not 0 <= k < len(frames):
                raise UsageError(f"{path}: track {tid} has a shape on frame {k}; the clip has {len(frames)} frames")
            try:
                mask = cvat_shape(el, h, w)
                label = label_of(track.get("label", ""), "track label")
            except UsageError as e:
                raise UsageError(f"{path}: track {tid}, frame {k} (<{el.tag}>): {e.message}") from None
            if mask is None:
                out.ignored[el.tag] += 1
            else:
                reviewed[k].add(label, mask, tid)
    out.images.update({rv.relpath: rv for rv in reviewed})
    return out


def _int(text: str | None, what: str) -> int:
    try:
        return int(str(text))
    except ValueError:
        raise UsageError(f"{what}: expected a whole number, got {text!r}") from None


_OUR_ID = re.compile(r"^t(\d+)$")  # the region ids `-f labelstudio` gives tracks


def read_ls_video(ann: dict[str, Any], clip: Clip, sizes: dict[str, tuple[int, int]], out: Corrections) -> None:
    """One Label Studio video annotation: each `videorectangle` region's box on every sampled frame (Label
    Studio's own interpolation between keyframes), its track id from the region id (`t<id>`, new ids above
    them for regions a person drew)."""
    from autolabel.export.labelstudio_video import ls_frame

    frames = clip.frame_relpaths()
    w, h = sizes[frames[0]]
    regions = [r for r in ann.get("result") or [] if isinstance(r, dict)]
    out.ignored.update(Counter(str(r.get("type")) for r in regions if r.get("type") != "videorectangle"))
    regions = [r for r in regions if r.get("type") == "videorectangle"]
    ours = [int(m.group(1)) for r in regions if (m := _OUR_ID.match(str(r.get("id", ""))))]
    fresh = max(ours, default=-1) + 1
    reviewed = [Reviewed(rel, w, h, [], []) for rel in frames]
    for r in regions:
        m = _OUR_ID.match(str(r.get("id", "")))
        tid = int(m.group(1)) if m else fresh
        fresh += 0 if m else 1
        raw = r.get("value")
        value: dict[str, Any] = raw if isinstance(raw, dict) else {}
        label = label_of(value.get("labels"), f"Label Studio video task '{clip.relpath}', region {r.get('id')}")
        seq = sorted(_keyframes(value.get("sequence"), clip.relpath), key=lambda s: s["frame"])
        for k, (_, t) in enumerate(clip.frames):
            box = box_at(seq, ls_frame(t, clip.fps))
            if box is not None:
                x, y, bw, bh = box
                check_xy([x, x + bw], [y, y + bh], 100, 100, f"Label Studio video task '{clip.relpath}' box")
                px = [x * w / 100, y * h / 100, (x + bw) * w / 100, (y + bh) * h / 100]
                reviewed[k].add(label, box_mask(px, h, w), tid)
    out.images.update({rv.relpath: rv for rv in reviewed})


def _keyframes(seq: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(seq, list):
        raise UsageError(f"Label Studio video task '{where}': a region has no keyframe sequence")
    out = []
    for s in seq:
        vals = [s.get(k) for k in ("frame", "x", "y", "width", "height")] if isinstance(s, dict) else []
        if len(vals) != 5 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
            raise UsageError(
                f"Label Studio video task '{where}': keyframe {s!r:.80} needs finite frame, x, y, width, height"
            )
        out.append(s)
    return out


def box_at(seq: list[dict[str, Any]], frame: int) -> tuple[float, float, float, float] | None:
    """The box (x, y, width, height in percent) Label Studio shows on `frame`: a keyframe's, linearly
    interpolated between an enabled keyframe and the next, held after the last enabled one; none before the
    first keyframe or after one whose interpolation is off (`enabled: false`)."""
    prev = nxt = None
    for s in seq:
        if s["frame"] <= frame:
            prev = s
        elif nxt is None:
            nxt = s
    if prev is None:
        return None
    if prev["frame"] == frame or (prev.get("enabled", True) and nxt is None):
        return _box(prev, prev, 0.0)
    if not prev.get("enabled", True) or nxt is None:
        return None
    return _box(prev, nxt, (frame - prev["frame"]) / (nxt["frame"] - prev["frame"]))


def _box(a: dict[str, Any], b: dict[str, Any], t: float) -> tuple[float, float, float, float]:
    x, y, w, h = (float(a[k]) + t * (float(b[k]) - float(a[k])) for k in ("x", "y", "width", "height"))
    return x, y, w, h
