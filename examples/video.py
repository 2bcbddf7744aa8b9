"""Label a video clip frame by frame with tracks, in Python (`Labeler.label_video`).

    python examples/video.py ONTOLOGY CLIP_OR_FOLDER

Given a folder of images instead of a clip, it first makes a short clip from them (PyAV), so the script
runs anywhere. Prints each sampled frame's time, classes and track ids.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from autolabel import Labeler


def clip_from_images(folder: Path, out: Path, frames: int = 12) -> Path:
    import av

    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:3]
    first = np.asarray(Image.open(images[0]).convert("RGB"))
    h, w = (first.shape[0] // 2) * 2, (first.shape[1] // 2) * 2
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for k in range(frames):  # the scene drifts right a pixel per frame
            img = np.asarray(Image.open(images[(k // 4) % len(images)]).convert("RGB").resize((w, h)))
            frame = av.VideoFrame.from_ndarray(np.roll(img, k, axis=1), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return out


def main(ontology: str, source: str) -> None:
    path = Path(source)
    clip = clip_from_images(path, Path("runs/video-example/clip.mp4")) if path.is_dir() else path
    labeler = Labeler(ontology)
    for f in labeler.label_video(clip):
        names = [labeler.classes[int(k)] for k in f.detections.class_id]
        print(f"frame {f.index} at {f.time:.2f}s: {list(zip(names, f.track_ids.tolist()))}")


if __name__ == "__main__":
    main(*sys.argv[1:])
