"""MOTChallenge rows (frame numbers from 1, boxes in pixels, top-left and size): results / `det.txt`
`frame, id, x, y, w, h, conf, -1, -1, -1`, and ground truth `gt.txt` `frame, id, x, y, w, h, 1, class, 1`
(the 1s: counted in evaluation, fully visible; class = class id + 1)."""

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


def mot_gt_lines(frame_number: int, det: Detections, track_ids: np.ndarray) -> list[str]:
    """`gt.txt` rows of a frame's tracked detections (id 0, untracked, left out)."""
    out = []
    for (x0, y0, x1, y1), tid, c in zip(det.xyxy, track_ids, det.class_id):
        if tid > 0:
            out.append(f"{frame_number},{int(tid)},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},1,{int(c) + 1},1")
    return out
