"""`tracker: sam2`: the frames of the clips are tracked in this process, one clip after another (a SAM 2
session follows its clip in order), every frame committed to the store as it is made. The tracker's state
is saved at a keyframe every `AUTOLABEL_TRACK_STATE_SECONDS` (30) seconds at most, beside the clip's frames:
a clip interrupted part-way resumes at its last saved keyframe whose earlier frames are all in the store
(else from its start), and ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import os
from typing import Any

from autolabel.backends.base import Detector
from autolabel.config.plan import fingerprint, inference_settings
from autolabel.inference.clip_tracking import Resume, track_clip, track_clip_sam3
from autolabel.run.clips import frames_root
from autolabel.run.executors.local import StoreWriter
from autolabel.run.settings import LabelJob
from autolabel.types import ImageInfo, Skipped
from autolabel.video.clip import Clip

STATE = ".track-state"  # RUN/frames/<clip>/.track-state.{json,safetensors}


def run_tracked(
    job: LabelJob,
    clips: dict[str, Clip],
    frames: dict[str, ImageInfo],
    detector: Detector | None,
    video: Any,
    device: str,
) -> None:
    """Track every clip with a frame not done; `video` is (Sam2VideoModel, Sam2VideoProcessor), or with
    `tracker: sam3` (Sam3VideoModel, Sam3VideoProcessor) — no detector: SAM 3 detects on every frame, and an
    interrupted clip is followed again from its first frame (its stored frames are not written again; the
    result is the same: the session is deterministic)."""
    key = fingerprint(inference_settings(job.plan, identities=False))
    every = float(os.environ.get("AUTOLABEL_TRACK_STATE_SECONDS", "30"))
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
            resume = Resume(
                frames_root(job.output_dir) / clip.relpath / STATE,
                f"{clip.signature}:{key}",
                _prefix(relpaths, job.done),
                every,
            )
            sam3 = job.plan.tracker == "sam3"  # followed again from the start: stored frames stay as they are
            try:
                if sam3:
                    outcomes = track_clip_sam3(infos, changes, job.plan, video, device)
                else:
                    assert detector is not None
                    outcomes = track_clip(infos, changes, job.plan, detector, video, device, resume)
                for outcome in outcomes:
                    made.add(outcome.relpath)
                    if not (sam3 and outcome.relpath in job.done):
                        writer.put(outcome)
            except Exception as e:  # a model error on this clip: its frames are skipped with it, the run goes on
                why = f"tracking the clip failed: {type(e).__name__}: {e}"
                for r in relpaths:
                    if r not in made:
                        writer.put(Skipped(r, why))
    finally:
        writer.close()


def _prefix(relpaths: list[str], done: set[str]) -> int:
    """How many of the clip's first frames are in the store (a saved state from up to there is usable)."""
    n = 0
    while n < len(relpaths) and relpaths[n] in done:
        n += 1
    return n
