"""Videos in a run. Each clip's sampled frames are decoded once (PyAV, rotated, timed by their timestamps)
and written as JPEG under `RUN/frames/<clip relpath>/<frame index>.jpg`; from there on a frame is an image
of the run: labeled by any executor, stored as it is made, resumed frame by frame. Its relative path is
`<clip relpath>/<frame index, 7 digits>.jpg`, so a clip's frames sort together and in order, and its
signature is the video's (size + mtime, and the clip settings: sampling, tracker) with the frame index: a
changed video, or changed clip settings, and the clip is extracted and labeled again (the images are not).

The run store records each clip (`clips` table): its signature, frame rate, size and sampled frames.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

from autolabel.errors import ImageError
from autolabel.fsutil import atomic_write, is_within
from autolabel.progress import Progress
from autolabel.run.store import RunStore, file_signature, store_path
from autolabel.types import ImageInfo
from autolabel.video.clip import Clip, frame_relpath

FRAMES_DIR = "frames"
JPEG_QUALITY = 95


def recorded_clips(store: RunStore) -> dict[str, Clip]:
    return {r: Clip.from_record(r, sig, info) for r, (sig, info) in store.clips().items()}


def frames_root(run_dir: Path) -> Path:
    return run_dir / FRAMES_DIR


def clip_signature(path: str, settings: str) -> str:
    """A video file as labeled: its size and mtime, and the digest of the clip settings (`RunPlan.clip_settings`)."""
    return f"{file_signature(path)}|{settings}"


def extract_clips(
    videos: list[ImageInfo], run_dir: Path, video: Any, store: RunStore, settings: str, progress: Progress | None = None
) -> tuple[list[ImageInfo], dict[str, Clip], list[tuple[str, str]]]:
    """The frames of every video as images of the run, extracting those not yet (or no longer) on disk;
    `video` is the ontology's `VideoConfig`, `settings` the clip settings' digest. Returns (frames, clips by
    relpath, problems): a video that cannot be read is a problem (relpath, why) and the run goes on."""
    from autolabel.video.decode import Sampling

    sampling = Sampling(every=video.stride, fps=video.fps, max_frames=video.max_frames)
    recorded = recorded_clips(store)
    root = frames_root(run_dir)
    frames: list[ImageInfo] = []
    clips: dict[str, Clip] = {}
    problems: list[tuple[str, str]] = []
    bar = progress or Progress()
    bar.start(len(videos), 0, "video frames")
    try:
        for v in videos:
            try:
                clip = _clip(v, recorded.get(v.relpath), run_dir, sampling, store, settings)
            except ImageError as e:
                problems.append((v.relpath, e.message))
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                    raise  # the run's disk, not the video: the command stops and says so
                problems.append((v.relpath, f"cannot read the video: {e.strerror or e}"))
            else:
                clips[v.relpath] = clip
                frames += [ImageInfo(r, str(root / r), sig) for r, sig in clip.frame_signatures()]
            bar.advance()
    finally:
        bar.stop()
    return frames, clips, problems


def _clip(v: ImageInfo, recorded: Clip | None, run_dir: Path, sampling: Any, store: RunStore, settings: str) -> Clip:
    """One video as recorded, extracted (and recorded) again when it changed or its frames are not on disk."""
    sig = clip_signature(v.path, settings)
    if recorded is not None and recorded.signature == sig and _on_disk(recorded, run_dir):
        return recorded
    clip = _extract(v, sig, run_dir, sampling)
    store.put_clip(clip.relpath, clip.signature, clip.info())
    return clip


def _on_disk(clip: Clip, run_dir: Path) -> bool:
    root = frames_root(run_dir)
    return all((root / r).is_file() for r in clip.frame_relpaths())


def _extract(v: ImageInfo, sig: str, run_dir: Path, sampling: Any) -> Clip:
    """Decode the clip's sampled frames into JPEG files; earlier frames of the clip not sampled now go."""
    from PIL import Image

    from autolabel.video.decode import VideoError, frame_rate, frames

    folder = frames_root(run_dir) / v.relpath
    if not is_within(folder, frames_root(run_dir)):
        raise VideoError(f"unsafe video path '{v.relpath}'")
    kept: list[tuple[int, float]] = []
    changes: list[float] = []
    size = (0, 0)
    for f in frames(v.path, sampling):
        with atomic_write(frames_root(run_dir) / frame_relpath(v.relpath, f.index), "wb") as out:
            Image.fromarray(f.image).save(out, format="JPEG", quality=JPEG_QUALITY)
        kept.append((f.index, round(f.time, 6)))
        changes.append(f.change)
        size = (f.image.shape[1], f.image.shape[0])
    names = {Path(frame_relpath(v.relpath, i)).name for i, _ in kept}
    for old in folder.iterdir() if folder.is_dir() else []:
        if old.suffix == ".jpg" and old.name not in names and not old.is_symlink():
            old.unlink()
    return Clip(v.relpath, sig, frame_rate(v.path), size[0], size[1], tuple(kept), tuple(changes))


def videos_pending(
    videos: list[ImageInfo], run_dir: Path, done: dict[str, str | None], fresh: bool, settings: str
) -> bool:
    """Whether a video is new, changed (or its clip settings), or has frames not labeled yet (models are
    needed); `done` maps the run's done images to their signatures, `fresh` says the run starts empty."""
    if not videos:
        return False
    if fresh:
        return True
    store = RunStore(store_path(run_dir))
    try:
        clips = recorded_clips(store)
    finally:
        store.close()
    for v in videos:
        clip = clips.get(v.relpath)
        try:
            if clip is None or clip.signature != clip_signature(v.path, settings):
                return True
        except OSError:
            continue  # unreadable: skipped with the reason, nothing to label
        if any(done.get(r) != sig for r, sig in clip.frame_signatures()):
            return True
    return False


def clip_frames(
    videos: list[ImageInfo], run_dir: Path, video: Any, settings: str, progress: Progress | None = None
) -> tuple[list[ImageInfo], dict[str, Clip]]:
    """Under the run lock: the sampled frames of the videos (extracted where needed) as images of the run,
    and the clips of the run by relpath; unreadable videos are recorded as skipped."""
    if not videos:
        return [], {}
    store = RunStore(store_path(run_dir))
    try:
        frames, clips, problems = extract_clips(videos, run_dir, video, store, settings, progress)
        with store.transaction():
            for relpath, why in problems:
                store.put_skipped(relpath, why)
    finally:
        store.close()
    return frames, clips


def forget_gone(run_dir: Path, gone: list[str], clips: set[str], listed: set[str] | None = None) -> None:
    """Images and videos no longer in the input folder leave the run (and the frames autolabel extracted);
    with `listed` (everything the input holds now), so do the skipped entries of files no longer there (an
    object deleted from a bucket stays out of skipped.txt once the prefix is listed again)."""
    store = RunStore(store_path(run_dir))
    try:
        gone_clips = sorted(set(store.clips()) - clips)
        stale = sorted({r for r, _ in store.skipped()} - listed) if listed is not None else []
        store.forget(gone + gone_clips + stale)
    finally:
        store.close()
    root = frames_root(run_dir)
    for clip in gone_clips:
        folder = root / clip
        if folder.is_dir() and not folder.is_symlink() and is_within(folder, root):
            shutil.rmtree(folder)
