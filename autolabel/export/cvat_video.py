"""CVAT for video 1.1: one clip of a run as a CVAT task, its objects as `<track>`s (the track ids the run
decided), in `cvat/videos/<sequence>/annotations.xml` beside `images/frame_000000.jpg …` (its sampled
frames in order: CVAT frame k is the clip's k-th sampled frame).

Every frame an object is in is a keyframe; where it is not in view (a gap, or after its last frame) a shape
with `outside="1"` ends it, so CVAT does not interpolate through the gap. CVAT and datumaro take polygons
and boxes in tracks (datumaro reads no mask track): a mask becomes the polygon of its largest part, a
box-only run gives boxes. Objects without a track id (a frame corrected by hand) get ids of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from autolabel.export.base import PALETTE, coord
from autolabel.fsutil import safe_join, write_text_atomic
from autolabel.masks import external_polygons
from autolabel.types import Detections, ImageResult
from autolabel.video.clip import Clip

MARK = "<!-- CVAT for video 1.1, written by autolabel -->"


def cvat_labels(classes: list[str]) -> str:
    """The `<labels>` content of a CVAT task's meta: every class with its colour."""
    return "".join(
        f"<label><name>{escape(c)}</name><color>{PALETTE[i % len(PALETTE)]}</color><type>any</type>"
        "<attributes></attributes></label>"
        for i, c in enumerate(classes)
    )


def track_shape(det: Detections, i: int, tolerance: float) -> tuple[str, str] | None:
    """(tag, geometry attributes) of detection i in a track: the polygon of its mask's largest part, or its
    box; None for an empty mask."""
    if det.masks is None:
        x0, y0, x1, y1 = det.xyxy[i]
        return "box", f'xtl="{coord(x0)}" ytl="{coord(y0)}" xbr="{coord(x1)}" ybr="{coord(y1)}"'
    polys = external_polygons(det.masks[i], tolerance)
    if not polys:
        return None
    return "polygon", 'points="' + ";".join(f"{coord(x)},{coord(y)}" for x, y in polys[0]) + '"'


@dataclass
class _Track:
    label: str
    shapes: list[tuple[int, str, str]] = field(default_factory=list)  # (frame, tag, geometry)


class ClipTracks:
    """The tracks of one clip, gathered frame by frame (`add`, in order), then written (`write`)."""

    def __init__(self, clip: Clip, name: str, classes: list[str], tolerance: float) -> None:
        self.clip, self.name, self.classes, self.tolerance = clip, name, classes, tolerance
        self.frames: list[str] = []  # where each sampled frame is
        self.tracks: dict[tuple[int, str], _Track] = {}
        self.loose: list[tuple[str, int, str, str]] = []  # objects without a track id: (label, frame, tag, geometry)

    def add(self, result: ImageResult, location: str) -> None:
        k = len(self.frames)
        self.frames.append(location)
        det, ids = result.detections, result.track_ids
        for i in range(len(det)):
            shape = track_shape(det, i, self.tolerance)
            if shape is None:
                continue
            label = self.classes[int(det.class_id[i])]
            if ids is None:
                self.loose.append((label, k, *shape))
                continue
            self.tracks.setdefault((int(ids[i]), label), _Track(label)).shapes.append((k, *shape))

    def numbered(self) -> list[tuple[int, _Track]]:
        """(CVAT track id, track): the run's track ids kept (one label a track: an id seen with a second label,
        and every object without an id, gets a new one above them)."""
        out: list[tuple[int, _Track]] = []
        used: set[int] = set()
        extra: list[_Track] = []
        for (tid, _), track in sorted(self.tracks.items()):
            if tid in used or tid < 0:
                extra.append(track)
            else:
                used.add(tid)
                out.append((tid, track))
        extra += [_Track(label, [(k, tag, geo)]) for label, k, tag, geo in self.loose]
        nxt = max(used, default=-1) + 1
        for track in extra:
            out.append((nxt, track))
            nxt += 1
        return out

    def xml(self) -> str:
        n = len(self.frames)
        labels = cvat_labels(self.classes)
        lines = [
            '<?xml version="1.0" encoding="utf-8"?>',
            MARK,
            "<annotations>",
            "  <version>1.1</version>",
            f"  <meta><task><name>{escape(self.name)}</name><size>{n}</size><mode>interpolation</mode>"
            f"<overlap>0</overlap><start_frame>0</start_frame><stop_frame>{max(n - 1, 0)}</stop_frame>"
            f"<labels>{labels}</labels><original_size><width>{self.clip.width}</width>"
            f"<height>{self.clip.height}</height></original_size>"
            f"<source>{escape(self.clip.relpath)}</source></task></meta>",
        ]
        for tid, track in self.numbered():
            lines.append(f'  <track id="{tid}" label={quoteattr(track.label)} source="auto">')
            lines += [f"    {s}" for s in _keyframes(track.shapes, n)]
            lines.append("  </track>")
        lines.append("</annotations>")
        return "\n".join(lines) + "\n"

    def write(self, videos: Path, media: str) -> None:
        """`videos/<name>/annotations.xml` and `videos/<name>/images/frame_%06d.jpg`."""
        from autolabel.export.yolo_writer import place_media

        folder = safe_join(videos, self.name)
        for k, where in enumerate(self.frames):
            place_media(Path(where), folder / "images" / f"frame_{k:06d}.jpg", media)
        write_text_atomic(folder / "annotations.xml", self.xml())


def _keyframes(shapes: list[tuple[int, str, str]], frames: int) -> list[str]:
    """Each shape a keyframe; an `outside` shape where the object leaves view (a gap, or after its last frame)."""
    out = []
    for j, (k, tag, geo) in enumerate(shapes):
        out.append(f'<{tag} frame="{k}" keyframe="1" outside="0" occluded="0" z_order="0" {geo}></{tag}>')
        following = shapes[j + 1][0] if j + 1 < len(shapes) else frames
        if following > k + 1 and k + 1 < frames:
            out.append(f'<{tag} frame="{k + 1}" keyframe="1" outside="1" occluded="0" z_order="0" {geo}></{tag}>')
    return out
