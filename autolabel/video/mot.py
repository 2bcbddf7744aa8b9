"""MOTChallenge `gt.txt` / `det.txt` rows: `frame, id, x, y, w, h, conf, -1, -1, -1` (frame numbers from 1,
boxes in pixels, top-left and size)."""

from __future__ import annotations

import numpy as np

from autolabel.types import Detections


def mot_lines(frame_number: int, det: Detections, track_ids: np.ndarray) -> list[str]:
    """One line per tracked detection of a frame (untracked ones, id 0, are left out)."""
    conf = det.confidence if det.confidence is not None else np.ones(len(det))
    out = []
    for (x0, y0, x1, y1), tid, c in zip(det.xyxy, track_ids, conf):
        if tid > 0:
            out.append(f"{frame_number},{int(tid)},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},{c:.4f},-1,-1,-1")
    return out
