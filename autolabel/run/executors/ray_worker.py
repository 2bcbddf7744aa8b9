"""What runs on Ray workers: decoding a fixed batch (a read task) and labeling it (a model replica).

A replica takes `RayOptions.batches_per_replica` (3) batches at once (Ray Data's threaded actor calls) and
runs each through the three stages under one lock per stage, so, as in the local pipeline, one batch is prepared while
another is in the models and a third is finished: the device does not wait for CPU work.

Ray restarts a dead replica and retries its batch (Ray Data's default, without limit); a batch that keeps
killing its replica (an image that runs the process out of memory) must not loop forever. Each batch's
starts are counted on a small named actor. A retried batch runs alone in its replica (holding every stage
lock) and counts its start only once it holds them, so batches that merely shared a replica with a bad one
are not blamed; past `WORKER_RETRIES` retries a batch's images are skipped with the reason instead.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from typing import Any

import numpy as np

from autolabel.config.plan import RunPlan
from autolabel.errors import UsageError
from autolabel.images import load_image
from autolabel.run.executors.pipeline import StageLocks, label_batch, label_staged, signature
from autolabel.run.settings import RunSettings, RunSummary
from autolabel.types import ImageInfo, Outcome, Skipped

WORKER_RETRIES = 3  # retries of a batch whose replica died on it


class Attempts:
    """A named actor counting the starts of each batch of a run (cheap: one small dict)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def first(self, batch: int) -> bool:
        """True (and counted) when the batch was never started; False for a retry (counted by `start`)."""
        if batch in self.counts:
            return False
        self.counts[batch] = 1
        return True

    def start(self, batch: int) -> int:
        self.counts[batch] = self.counts.get(batch, 0) + 1
        return self.counts[batch]


def decode_batch(row: dict[str, Any]) -> dict[str, Any]:
    """A read task: decode one fixed batch's images (on any node: paths must be shared)."""
    from autolabel.errors import ImageError

    items = []
    max_pixels = int(row["max_pixels"])
    for relpath, path, listed in pickle.loads(row["items"]):
        try:
            img, why = load_image(path, max_pixels), None
        except ImageError as e:
            img, why = None, e.message
        items.append((relpath, path, img, why, listed or signature(path)))
    return {"batch": row["batch"], "payload": pickle.dumps(items, protocol=5)}


class LabelWorker:
    """One model replica. Loads the models once; labels one fixed batch per call, several calls at once."""

    def __init__(self, plan: RunPlan, settings: RunSettings, sys_path: list[str], attempts: str) -> None:
        for p in sys_path:  # plugins (module:Class) resolve as on the driver
            if p not in sys.path:
                sys.path.append(p)
        from autolabel.inference.models import load_models

        device = settings.device
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.plan, self.locks, self.attempts_name = plan, StageLocks(), attempts
        self.detector, self.segmenter = load_models(plan, device, settings.precision)

    def _counter(self) -> Any:
        import ray

        return ray.get_actor(self.attempts_name)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        k = int(batch["batch"][0])
        items = pickle.loads(batch["payload"][0])
        import ray

        counter = self._counter()
        if ray.get(counter.first.remote(k)):  # one round trip on the usual path
            return self._label(k, items)
        with self.locks.prepare, self.locks.models, self.locks.finish:  # a retry: alone in the replica
            return self._label(k, items, int(ray.get(counter.start.remote(k))), alone=True)

    def _label(self, k: int, items: list[Any], attempt: int = 1, alone: bool = False) -> dict[str, np.ndarray]:
        summary = RunSummary()
        out: list[Outcome] = []
        errors: list[str] = []
        fatal = None
        good = []
        for relpath, path, img, why, sig in items:
            if attempt > WORKER_RETRIES + 1:
                out.append(Skipped(relpath, f"its Ray worker died on this batch {attempt - 1} times"))
            elif img is None:
                out.append(Skipped(relpath, why or "unreadable"))
            else:  # signed as the file was when decoded (an object: as listed)
                good.append((ImageInfo(relpath, path, sig), img))
        emit = out.append
        try:
            if good and alone:
                label_batch(good, self.plan, self.detector, self.segmenter, summary, emit, errors)
            elif good:
                label_staged(good, self.plan, self.detector, self.segmenter, summary, emit, errors, self.locks)
        except UsageError as e:  # e.g. a prompt the text encoder cannot take: stops the run on the driver
            fatal = (e.message, e.hint)
        meta = {
            "fatal": fatal,
            "errors": errors,
            "n_good": len(good),
            "inference": summary.inference,
            "stages": summary.stage_seconds,
            "replica": self._replica(),
        }
        return {"batch": np.array([k]), "results": np.array([pickle.dumps((out, meta), protocol=5)], dtype=object)}

    def _replica(self) -> dict[str, float]:
        """This replica's running totals: forward passes and seconds (utilisation is computed from them)."""
        det, seg = self.detector.stats, self.segmenter.stats if self.segmenter is not None else None
        return {
            "pid": float(os.getpid()),
            "t": time.time(),  # when this call ended, on the replica's clock
            "detector_passes": float(det.passes),
            "segmenter_passes": float(seg.passes if seg is not None else 0),
            "forward_s": det.seconds + (seg.seconds if seg is not None else 0.0),
        }
