"""Label Studio video tasks (`-f labelstudio` on a run with videos): one task per clip in
`labelstudio/video_tasks.json`, for a project with `labelstudio/video_config.xml` (Video, VideoRectangle,
Labels). Each object the run tracked is one `videorectangle` region whose id is `t<track id>`: its box on
every sampled frame it is in is a keyframe (`frame` is 1-based, counted at the clip's frame rate, which the
task gives the player as `$fps`); where it leaves view a keyframe with `enabled: false` stops Label Studio
from interpolating through the gap. Boxes only: Label Studio has no video masks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from autolabel.export.base import PALETTE, percent
from autolabel.types import ImageResult
from autolabel.video.clip import Clip

VIDEO, BOX, LABELS = "video", "box", "videoLabels"  # the tag names of the video labeling config


def label_tags(classes: list[str]) -> str:
    """The `<Label>` lines of a labeling config: every class with its colour."""
    return "".join(
        f"    <Label value={quoteattr(c)} background={quoteattr(PALETTE[i % len(PALETTE)])}/>\n"
        for i, c in enumerate(classes)
    )


def video_config(classes: list[str]) -> str:
    labels = label_tags(classes)
    return (
        "<View>\n"
        f'  <Labels name="{LABELS}" toName="{VIDEO}" allowEmpty="true">\n{labels}  </Labels>\n'
        f'  <Video name="{VIDEO}" value="$video" framerate="$fps"/>\n'
        f'  <VideoRectangle name="{BOX}" toName="{VIDEO}"/>\n'
        "</View>\n"
    )


def ls_frame(time: float, fps: float) -> int:
    """Label Studio's 1-based frame number of a time (s) in a video played at `fps`."""
    return int(round(time * fps)) + 1


def frames_count(clip: Clip) -> int:
    return ls_frame(clip.frames[-1][1], clip.fps) if clip.frames else 0


@dataclass
class _Region:
    label: str
    score: list[float] = field(default_factory=list)
    sequence: list[dict[str, Any]] = field(default_factory=list)


class ClipRegions:
    """One clip's tracks as video rectangles, gathered frame by frame (`add`, in order)."""

    def __init__(self, clip: Clip, classes: list[str]) -> None:
        self.clip, self.classes = clip, classes
        self.regions: dict[int, _Region] = {}
        self.last: dict[int, int] = {}  # track → position of the last sampled frame it was in
        self.k = 0  # position of the next sampled frame

    def add(self, result: ImageResult) -> None:
        det, ids, k = result.detections, result.track_ids, self.k
        self.k += 1
        if ids is None:  # a frame corrected by hand without track ids: nothing to link
            return
        t = result.time if result.time is not None else self.clip.frames[k][1]
        w, h = result.width, result.height
        for i in range(len(det)):
            tid = int(ids[i])
            region = self.regions.setdefault(tid, _Region(self.classes[int(det.class_id[i])]))
            x0, y0, x1, y1 = (float(v) for v in det.xyxy[i])
            frame = ls_frame(t, self.clip.fps)
            region.sequence.append(
                {
                    "frame": frame,
                    "enabled": True,
                    "rotation": 0,
                    "x": percent(x0, w),
                    "y": percent(y0, h),
                    "width": percent(x1 - x0, w),
                    "height": percent(y1 - y0, h),
                    "time": round((frame - 1) / self.clip.fps, 6),
                }
            )
            if det.confidence is not None:
                region.score.append(float(det.confidence[i]))
            self.last[tid] = k

    def results(self) -> list[dict[str, Any]]:
        count = frames_count(self.clip)
        out = []
        for tid, region in sorted(self.regions.items()):
            value = {
                "framesCount": count,
                "duration": round(count / self.clip.fps, 6),
                "sequence": _with_gaps(region.sequence, self.clip),
                "labels": [region.label],
            }
            r: dict[str, Any] = {"id": f"t{tid}", "type": "videorectangle", "from_name": BOX, "to_name": VIDEO}
            if region.score:
                r["score"] = round(sum(region.score) / len(region.score), 4)
            out.append({**r, "value": value})
        return out

    def task(self, video_ref: str, model_version: str) -> str:
        regions = self.results()
        prediction: dict[str, Any] = {"model_version": model_version, "result": regions}
        scores = [r["score"] for r in regions if "score" in r]
        if scores:
            prediction["score"] = min(scores)
        data = {VIDEO: video_ref, "fps": self.clip.fps, "relpath": self.clip.relpath}
        return json.dumps({"data": data, "predictions": [prediction]}, ensure_ascii=False)


def _with_gaps(sequence: list[dict[str, Any]], clip: Clip) -> list[dict[str, Any]]:
    """The keyframes, with the last one before each gap (and the track's end) set `enabled: false`."""
    sampled = [ls_frame(t, clip.fps) for _, t in clip.frames]
    position = {f: k for k, f in enumerate(sampled)}
    out = [dict(s) for s in sequence]
    for j, s in enumerate(out):
        k = position.get(s["frame"], -1)
        nxt = out[j + 1]["frame"] if j + 1 < len(out) else None
        expected = sampled[k + 1] if 0 <= k < len(sampled) - 1 else None
        if expected is not None and nxt != expected:
            s["enabled"] = False  # the object leaves view after this frame
    return out
