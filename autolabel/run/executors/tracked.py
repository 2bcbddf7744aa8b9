"""`tracker: sam2`: the frames of the clips are tracked in this process, one clip after another (a SAM 2
session follows its clip in order), every frame committed to the store as it is made. A clip tracked
part-way when a run stopped is tracked again from its start (the session's memory at a frame depends on
every keyframe before it); finished clips are kept."""

from __future__ import annotations

from typing import Any

from autolabel.backends.base import Detector
from autolabel.inference.clip_tracking import track_clip
from autolabel.run.executors.local import StoreWriter
from autolabel.run.settings import LabelJob
from autolabel.types import ImageInfo, Skipped
from autolabel.video.clip import Clip


def run_tracked(
    job: LabelJob, clips: dict[str, Clip], frames: dict[str, ImageInfo], detector: Detector, video: Any, device: str
) -> None:
    """Track every clip with a frame not done; `video` is (Sam2VideoModel, Sam2VideoProcessor)."""
    writer = StoreWriter(job.output_dir, job.summary, job.progress)
    writer.start()
    try:
        for clip in clips.values():
            relpaths = clip.frame_relpaths()
            if job.done.issuperset(relpaths):
                continue
            infos = [frames[r] for r in relpaths]
            changes = list(clip.changes) or [0.0] * len(infos)
            made: set[str] = set()
            try:
                for outcome in track_clip(infos, changes, job.plan, detector, video, device):
                    writer.put(outcome)
                    made.add(outcome.relpath)
            except Exception as e:  # a model error on this clip: its frames are skipped with it, the run goes on
                why = f"tracking the clip failed: {type(e).__name__}: {e}"
                for r in relpaths:
                    if r not in made:
                        writer.put(Skipped(r, why))
    finally:
        writer.close()
