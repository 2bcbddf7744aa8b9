"""How many images per second the Ray driver commits: what arrives from the replicas (pickled outcomes of
a fixed batch, ~30 candidates with COCO RLE masks per image) unpickled, merged into the summary and written
by the store writer, one transaction per image, exactly as `run/executors/ray.py` does. Part of
`make bench`; prints JSON too.

    python -m bench.driver_commit [--images 4000] [--candidates 30] [--size 1280x960]

64 GPUs at ~30 images/s each (Grounding DINO-T + SAM 2 on an H100, batch 8) produce ~2,000 images/s: the
driver must commit comfortably more.
"""

from __future__ import annotations

import argparse
import json
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from autolabel.inference.stages import InferenceCounts
from autolabel.progress import Progress
from autolabel.run.executors.local import StoreWriter
from autolabel.run.executors.ray import _merge
from autolabel.run.settings import RunSummary
from autolabel.run.store import RunStore, store_path
from autolabel.types import CandidateResult, Candidates, Done, RleMasks


def candidates(rng: np.random.Generator, n: int, h: int, w: int) -> Candidates:
    yy, xx = np.mgrid[:h, :w]
    rles, boxes = [], []
    for _ in range(n):
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        rx, ry = rng.uniform(0.02, 0.2) * w, rng.uniform(0.02, 0.2) * h
        m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        rles.append(mask_utils.encode(np.asfortranarray(m.astype(np.uint8))))
        boxes.append([cx - rx, cy - ry, cx + rx, cy + ry])
    return Candidates(np.asarray(boxes), rng.uniform(0.1, 0.9, n), rng.integers(0, 12, n), RleMasks(rles, h, w))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--candidates", type=int, default=30)
    ap.add_argument("--size", default="1280x960")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    rng = np.random.default_rng(0)
    pool = [candidates(rng, a.candidates, h, w) for _ in range(16)]  # payloads of distinct images, reused
    rows = []
    for k in range(0, a.images, a.batch):
        out = [
            Done(CandidateResult(f"img{i:07d}.jpg", w, h, pool[i % len(pool)]), "123:456")
            for i in range(k, min(k + a.batch, a.images))
        ]
        meta = {"fatal": None, "errors": [], "n_good": len(out), "inference": InferenceCounts(), "stages": {}}
        rows.append(pickle.dumps((out, meta), protocol=5))
    payload_kb = sum(len(r) for r in rows) / a.images / 1024
    with tempfile.TemporaryDirectory(prefix="autolabel-commit-") as d:
        RunStore(store_path(d)).close()
        summary = RunSummary()
        writer = StoreWriter(Path(d), summary, Progress())
        writer.start()
        t = time.perf_counter()
        for row in rows:  # the driver's loop
            out, meta = pickle.loads(row)
            _merge(summary, meta)
            for outcome in out:
                writer.put(outcome)
        writer.close()
        seconds = time.perf_counter() - t
    r = {
        "images": a.images,
        "candidates_per_image": a.candidates,
        "image_size": a.size,
        "payload_kb_per_image": round(payload_kb, 1),
        "images_per_s": round(a.images / seconds, 1),
        "goal_images_per_s": 2000,
    }
    print(json.dumps(r, indent=2))
    print(
        f"\nRay driver commits {r['images_per_s']:.0f} images/s ({a.candidates} candidates with RLE masks, "
        f"{payload_kb:.1f} KB per image; goal ≥ 2000, what 64 GPUs produce)"
    )
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
