"""`tracker: sam2` memory on a long clip: the tiny random-weight Sam2VideoModel (256 px) streams a synthetic
10-minute clip sampled at 2 frames a second, keyframes every 8 frames; RSS after minute 1 and after minute
10, with the session pruned and (for the first minutes only) without. Part of `make bench`; prints JSON.

    python -m bench.video_memory [--minutes 10] [--fps 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from tests.tiny_models import tiny_sam2_video
from tests.video.clips import keyframe_detections, scene


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stream(minutes: float, fps: float, prune: bool, marks: list[float]) -> dict[str, float]:
    from autolabel.video.sam2_track import Sam2Tracker

    model, processor = tiny_sam2_video()
    tracker = Sam2Tracker(
        model, processor, prune=prune, min_area=0, full_frame=1.01, max_negative=10**6, max_missed=10**6, max_objects=3
    )
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for k in range(int(minutes * 60 * fps)):
        t = k % 36  # the synthetic scene loops
        tracker.step(k, scene(t)[0], keyframe_detections(t) if k % 8 == 0 else None)
        minute = (k + 1) / fps / 60
        for m in marks:
            if abs(minute - m) < 1e-9:
                out[f"rss_mb_at_minute_{m:g}"] = round(rss_mb(), 1)
    out["s_per_frame"] = round((time.perf_counter() - t0) / (minutes * 60 * fps), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--fps", type=float, default=2)
    a = ap.parse_args()
    r = {
        "pruned": stream(a.minutes, a.fps, True, [1, a.minutes]),
        "unpruned (3 minutes)": stream(3, a.fps, False, [1, 3]),
    }
    print(json.dumps(r, indent=2))
    p = r["pruned"]
    print(
        f"\ntracker: sam2, tiny model, {a.fps:g} frames/s: RSS after minute 1 {p['rss_mb_at_minute_1']} MB, after "
        f"minute {a.minutes:g} {p[f'rss_mb_at_minute_{a.minutes:g}']} MB (pruned); unpruned "
        f"{r['unpruned (3 minutes)']['rss_mb_at_minute_1']} → {r['unpruned (3 minutes)']['rss_mb_at_minute_3']} MB "
        "in 3 minutes"
    )


if __name__ == "__main__":
    main()
