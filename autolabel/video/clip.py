"""A video of a run (a clip) and how its frames are named: `<clip relpath>/<frame index, 7 digits>.jpg`, so
a clip's frames sort together and in order among the run's images."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from autolabel.storage import join


@dataclass(frozen=True)
class Clip:
    """A labeled video: `frames` are (index among the decoded frames, time in seconds) of the sampled ones,
    `changes` how much each differs from the sampled frame before it (`video.decode.scene_change`)."""

    relpath: str
    signature: str
    fps: float
    width: int
    height: int
    frames: tuple[tuple[int, float], ...]
    changes: tuple[float, ...] = ()

    def info(self) -> dict[str, Any]:
        frames = [list(f) for f in self.frames]
        return {"fps": self.fps, "width": self.width, "height": self.height, "frames": frames, "changes": self.changes}

    @classmethod
    def from_record(cls, relpath: str, signature: str, info: dict[str, Any]) -> Clip:
        frames = tuple((int(i), float(t)) for i, t in info["frames"])
        changes = tuple(float(c) for c in info.get("changes", ()))
        return cls(relpath, signature, float(info["fps"]), int(info["width"]), int(info["height"]), frames, changes)

    def frame_relpaths(self) -> list[str]:
        return [frame_relpath(self.relpath, i) for i, _ in self.frames]

    def frame_signatures(self) -> list[tuple[str, str]]:
        """(relpath, signature) of each sampled frame: the clip's signature with the frame's index."""
        return [(frame_relpath(self.relpath, i), f"{self.signature}#{i}") for i, _ in self.frames]


def frame_relpath(clip: str, index: int) -> str:
    return f"{clip}/{index:07d}.jpg"


def frame_index(relpath: str) -> int:
    return int(relpath.rsplit("/", 1)[1].split(".", 1)[0])


def clip_of(relpath: str, clips: Mapping[str, Any]) -> str | None:
    """The clip a relative path is a frame of, or None for a still image."""
    parent = relpath.rsplit("/", 1)[0] if "/" in relpath else None
    return parent if parent is not None and parent in clips else None


def locate(relpath: str, source: str, clips: Mapping[str, Any], frames_dir: Path | None) -> str:
    """Where an image of a run is: a video's frame in `frames_dir`, anything else under `source` (the
    labeled folder, or an object-storage URI)."""
    if frames_dir is not None and clip_of(relpath, clips) is not None:
        return str(frames_dir / relpath)
    return join(source, relpath)


def sequence_names(clips: Iterable[str]) -> dict[str, str]:
    """clip relpath → the name its sequence gets in MOT and CVAT exports: the clip's stem with its folders
    (`cams/road.mp4` → `cams_road`), as MOT tools expect; the relpath with its extension
    (`cams_road.mp4`) where two clips would share a stem."""
    from collections import Counter

    stems = {c: PurePosixPath(c).with_suffix("").as_posix().replace("/", "_") for c in clips}
    taken = Counter(stems.values())
    return {c: s if taken[s] == 1 else c.replace("/", "_") for c, s in stems.items()}
