"""`-f mot`: MOTChallenge sequences of the run's videos, for box trackers (TrackEval, py-motmetrics).

Layout, one sequence per clip::

    mot/<clip>/seqinfo.ini     # name, imDir, frameRate (of the sampled frames), seqLength, size
    mot/<clip>/img1/000001.jpg # the sampled frames in order (links to RUN/frames)
    mot/<clip>/gt/gt.txt       # frame, id, x, y, w, h, 1, class (class id + 1), 1

`<clip>` is the clip's stem with its folders (`cams/road.mp4` → `cams_road`; `video.clip.sequence_names`),
the sequence name MOT tools expect.

Frame numbers count the sampled frames from 1 (as the images in img1); boxes are in pixels, top-left and
size; ids are the clip's track ids. Still images of the run are not part of it. The folder is staged and
swapped in whole.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from autolabel.errors import UsageError
from autolabel.export.base import ExportContext, ExportSkipped
from autolabel.export.yolo_writer import aside_path, recover_swap, swap_in
from autolabel.fsutil import safe_join, write_text_atomic
from autolabel.types import ImageResult
from autolabel.video.clip import Clip, clip_of, sequence_names
from autolabel.video.mot import mot_gt_lines

MARK = "MOTChallenge sequences written by autolabel"


class MotExporter:
    name = "mot"

    def __init__(self) -> None:
        self.staging: Path | None = None
        self.clip: Clip | None = None
        self.frames = 0
        self.lines: list[str] = []
        self.sequences = 0

    def open(self, ctx: ExportContext) -> None:
        if not any(clip_of(r, ctx.clips) for r, _, _ in ctx.images):
            raise ExportSkipped("mot: the run holds no video frames (MOT sequences are made of clips); skipped")
        self.ctx, self.real = ctx, ctx.out_dir / "mot"
        recover_swap(self.real)
        mark = self.real / "README.txt"
        if self.real.exists() and any(self.real.iterdir()) and not _is_ours(mark):
            raise UsageError(
                f"'{self.real}' exists and was not written by autolabel: not replacing it",
                hint="move it away, or export to another directory (-o)",
            )
        self.staging = aside_path(self.real, "staging")
        self.staging.mkdir(parents=True)
        self.names = sequence_names(ctx.clips)

    def add(self, result: ImageResult) -> None:
        assert self.staging is not None, "open() first"
        if result.clip is None:
            return
        if self.clip is None or self.clip.relpath != result.clip:
            self._finish()
            self.clip, self.frames, self.lines = self.ctx.clips[result.clip], 0, []
        self.frames += 1
        link = safe_join(self.staging, f"{self.names[result.clip]}/img1/{self.frames:06d}.jpg")
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(self.ctx.location(result.relpath)).resolve(), link)
        if result.track_ids is not None:  # a frame corrected by hand (`import`) has no track ids: no rows
            self.lines += mot_gt_lines(self.frames, result.detections, result.track_ids)

    def _finish(self) -> None:
        if self.clip is None or self.staging is None:
            return
        name = self.names[self.clip.relpath]
        seq = safe_join(self.staging, name)
        write_text_atomic(seq / "gt" / "gt.txt", "".join(line + "\n" for line in self.lines))
        write_text_atomic(seq / "seqinfo.ini", seqinfo(self.clip, self.frames, name))
        self.sequences += 1
        self.clip = None

    def close(self) -> str:
        assert self.staging is not None, "open() first"
        self._finish()
        write_text_atomic(self.staging / "README.txt", f"{MARK}: one folder per clip (seqinfo.ini, img1/, gt/gt.txt)\n")
        swap_in(self.staging, self.real)
        self.staging = None
        return f"{self.real} ({self.sequences} sequences)"

    def abort(self) -> None:
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging = None


def _is_ours(mark: Path) -> bool:
    try:
        return mark.read_text(encoding="utf-8").startswith(MARK)
    except (OSError, UnicodeDecodeError):
        return False


def seqinfo(clip: Clip, frames: int, name: str) -> str:
    """`seqinfo.ini` of a clip's sequence; the frame rate is that of its sampled frames."""
    times = [t for _, t in clip.frames]
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    rate = (len(times) - 1) / span if span > 0 else clip.fps
    return (
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={rate:.3f}\nseqLength={frames}\n"
        f"imWidth={clip.width}\nimHeight={clip.height}\nimExt=.jpg\n"
    )
