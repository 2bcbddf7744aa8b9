"""Synthetic clips written with PyAV: coloured squares on grey with known trajectories (ground truth)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from autolabel.types import Detections
from tests.fakes import BACKGROUND, COLORS

SIZE = 16  # square side in pixels


OTHER_SCENE = (90, 60, 150)  # the background after a cut


def scene(
    t: int, width: int = 160, height: int = 120, background: tuple[int, int, int] = BACKGROUND
) -> tuple[np.ndarray, dict[int, list[float]]]:
    """Frame `t`: a red square moving right, a blue one moving left a little lower (they overlap and pass, the
    blue drawn over the red),
    a green one moving down that leaves the frame at t=12 and comes back at t=22. Returns the image and
    {object id: [x0, y0, x1, y1]} of the objects in view."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = background
    boxes: dict[int, list[float]] = {}
    paths = {
        1: ("red", 5 + 4 * t, 20),
        2: ("blue", 140 - 4 * t, 28),
        3: ("green", 120, 80 + 4 * t if t < 12 else (200 if t < 22 else 60 + 2 * (t - 22))),
    }
    for oid, (color, x, y) in paths.items():
        x0, y0 = int(x), int(y)
        if x0 < 0 or y0 < 0 or x0 + SIZE > width or y0 + SIZE > height:
            continue
        img[y0 : y0 + SIZE, x0 : x0 + SIZE] = COLORS[color]
        boxes[oid] = [x0, y0, x0 + SIZE, y0 + SIZE]
    return img, boxes


def write_clip(
    path: Path, images: list[np.ndarray], fps: int = 10, times: list[float] | None = None, codec: str = "ffv1"
) -> None:
    """Frames into a video file (FFV1 in Matroska: lossless, so the colours stay exact). `times` (seconds)
    gives each frame its own timestamp: a variable frame rate."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = images[0].shape[1], images[0].shape[0]
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)  # timestamps in ms, not in 1/fps steps
        for k, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = int(round((times[k] if times else k / fps) * 1000))
            frame.time_base = stream.time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def keyframe_detections(t: int) -> Detections:
    """What a perfect detector finds in frame `t` of `scene`: every square in view, class 0, score 0.9."""
    _, boxes = scene(t)
    xyxy = np.asarray(list(boxes.values()), dtype=np.float64).reshape(-1, 4)
    return Detections(xyxy, np.zeros(len(xyxy), np.int64), np.full(len(xyxy), 0.9), ["square"] * len(xyxy))
