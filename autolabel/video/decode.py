"""Video frames for labeling: decoded sequentially with PyAV (its wheel bundles FFmpeg), rotated as the
file's display matrix says, timed by their presentation timestamps (variable frame rates stay exact), and
sampled (`every` k-th frame, or `fps` frames a second, at most `max_frames`).

A file that cannot be labeled (corrupt, no video stream, no frame, an unsupported codec) raises
`VideoError` with the reason, as an unreadable image does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.errors import ImageError, MissingDependencyError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm")


class VideoError(ImageError):
    """A video that cannot be labeled; `message` says why."""


@dataclass(frozen=True)
class Sampling:
    """Which decoded frames become dataset frames: every `every`-th one, or `fps` a second (by their
    timestamps), at most `max_frames` of them."""

    every: int = 1
    fps: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1 or (self.fps is not None and self.fps <= 0) or (self.max_frames or 1) < 1:
            raise ValueError(f"bad sampling {self}: every >= 1, fps > 0, max_frames >= 1")


@dataclass(frozen=True)
class Frame:
    index: int  # the frame's position among all decoded frames of the clip (0-based)
    time: float  # its presentation time in seconds
    image: np.ndarray  # RGB uint8 (H, W, 3), rotated for display
    change: float = 0.0  # how much its colours differ from the previous sampled frame's (scene cuts): 0..1


def colour_histogram(image: np.ndarray, bins: int = 16) -> np.ndarray:
    """(3, bins) per-channel colour histogram of an RGB image (every 4th pixel), each channel summing to 1."""
    pixels = image[::4, ::4].reshape(-1, 3)
    hist = np.stack([np.bincount(pixels[:, c] // (256 // bins), minlength=bins) for c in range(3)])
    return hist / max(len(pixels), 1)


def scene_change(before: np.ndarray | None, after: np.ndarray) -> float:
    """1 − histogram intersection (mean over the channels): ~0 for objects moving over one scene, ~1 at a
    cut to another scene. Colour histograms ignore where things are, so motion and pans barely count."""
    return 0.0 if before is None else round(1.0 - float(np.minimum(before, after).sum()) / 3, 4)


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise MissingDependencyError("videos need PyAV", hint="pip install 'autolabel[video]'") from None
    return av


def _rotated(image: np.ndarray, degrees: int) -> np.ndarray:
    """The frame as a player shows it: the display matrix's rotation is counter-clockwise in degrees."""
    turns = (round(degrees / 90) % 4) if degrees else 0
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def frames(path: str | Path, sampling: Sampling = Sampling()) -> Iterator[Frame]:
    """The sampled frames of a video file, in order."""
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.EOFError:
        raise VideoError("the video holds no frame (the file ends before its first one)") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoError(f"cannot open the video: {getattr(e, 'strerror', None) or e}") from None
    with container:
        if not container.streams.video:
            raise VideoError("no video stream (audio only?)")
        if container.format.name.endswith("_pipe") or container.format.name in ("image2", "gif"):
            raise VideoError(
                f"not a video but an image ({container.format.long_name}) named like one: rename it to its "
                "image extension to label it as an image"
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        kept, next_time, index = 0, 0.0, -1
        hist = None
        try:
            for frame in container.decode(stream):
                index += 1
                t = (
                    float(frame.pts * stream.time_base)
                    if frame.pts is not None
                    else index / float(stream.average_rate or 1)
                )
                if index % sampling.every:
                    continue
                if sampling.fps is not None:
                    if t + 1e-9 < next_time:
                        continue
                    next_time = t + 1.0 / sampling.fps
                image = _rotated(frame.to_ndarray(format="rgb24"), int(frame.rotation or 0))
                before, hist = hist, colour_histogram(image)
                yield Frame(index, t, image, scene_change(before, hist))
                kept += 1
                if sampling.max_frames is not None and kept >= sampling.max_frames:
                    return
        except av.error.FFmpegError as e:
            if index < 0:
                raise VideoError(f"cannot decode the video: {e}") from None
            raise VideoError(f"the video is damaged after frame {index}: {e}") from None
        if index < 0:
            raise VideoError("the video holds no frame")


def frame_rate(path: str | Path) -> float:
    """The clip's average frame rate as its container states it (0.0 when unknown)."""
    av = _av()
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate if container.streams.video else None
    return float(rate) if rate else 0.0
