"""The Ray Data executor: the same fixed batches and the same `label_batch` as the one-process executor,
spread over a pool of model replicas (one per GPU, or fractional-CPU actors without GPUs).

    pending fixed batches → read/decode tasks → map_batches(LabelWorker actor pool) → driver → run store

Only the driver writes the run store (one transaction per image, exactly as locally), so resume,
skips and exit codes are the same. A worker that dies is restarted and its batch retried by Ray; a
batch whose worker keeps dying has its images skipped with the reason. Images must be readable by every
worker at the same path (a shared filesystem on a cluster).
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.config.plan import RunPlan
from autolabel.errors import MissingDependencyError, UsageError
from autolabel.images import load_image
from autolabel.inference.stages import InferenceCounts
from autolabel.run.executors.local import StoreWriter
from autolabel.run.executors.pipeline import FailureStreak, label_batch
from autolabel.run.settings import LabelJob, RayOptions, RunSettings, RunSummary
from autolabel.types import Done, ImageInfo, Outcome, Skipped

WORKER_RETRIES = 3  # restarts of a dead worker, and retries of the batch it held


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependencyError("--ray needs Ray Data", hint="pip install 'autolabel[ray]'") from None
    return ray


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    """A read task: decode one fixed batch's images (on any node: paths must be shared)."""
    from autolabel.errors import ImageError
    from autolabel.run.executors.pipeline import signature

    items = []
    max_pixels = int(row["max_pixels"])
    for relpath, path in pickle.loads(row["items"]):
        try:
            img, why = load_image(path, max_pixels), None
        except ImageError as e:
            img, why = None, e.message
        items.append((relpath, path, img, why, signature(path)))
    return {"batch": row["batch"], "payload": pickle.dumps(items, protocol=5)}


class LabelWorker:
    """One model replica. Loads the models once; labels one fixed batch per call."""

    def __init__(self, plan: RunPlan, settings: RunSettings, sys_path: list[str]) -> None:
        for p in sys_path:  # plugins (module:Class) resolve as on the driver
            if p not in sys.path:
                sys.path.append(p)
        from autolabel.inference.models import load_models

        device = settings.device
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.plan = plan
        self.detector, self.segmenter = load_models(plan, device, settings.precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        k = int(batch["batch"][0])
        items = pickle.loads(batch["payload"][0])
        summary = RunSummary()
        out: list[Outcome] = []
        errors: list[str] = []
        passes = self._passes()
        good = []
        for relpath, path, img, why, sig in items:
            if img is None:
                out.append(Skipped(relpath, why or "unreadable"))
            else:
                good.append((ImageInfo(relpath, path), img, sig))
        sigs = {info.relpath: sig for info, _, sig in good}

        def emit(item: Outcome) -> None:  # the signature of the file as it was decoded
            out.append(Done(item.result, sigs.get(item.relpath)) if isinstance(item, Done) else item)

        fatal = None
        try:
            if good:
                label_batch(
                    [(info, img) for info, img, _ in good],
                    self.plan,
                    self.detector,
                    self.segmenter,
                    summary,
                    emit,
                    errors,
                )
        except UsageError as e:  # e.g. a prompt the text encoder cannot take: stops the run on the driver
            fatal = (e.message, e.hint)
        after = self._passes()
        meta = {
            "fatal": fatal,
            "errors": errors,
            "n_good": len(good),
            "inference": summary.inference,
            "stages": summary.stage_seconds,
            "passes": (after[0] - passes[0], after[1] - passes[1]),
        }
        return {"batch": np.array([k]), "results": np.array([pickle.dumps((out, meta), protocol=5)], dtype=object)}

    def _passes(self) -> tuple[int, int]:
        return (
            self.detector.stats.passes if self.detector is not None else 0,
            self.segmenter.stats.passes if self.segmenter is not None else 0,
        )


def _init_ray(ray: Any, opts: RayOptions) -> bool:
    """Join a cluster (address / RAY_ADDRESS) or start a local Ray. True when we started it."""
    address = opts.address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return False
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # local workers import what the driver can
    import logging

    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(
            include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, runtime_env={"env_vars": env}
        )
    return True


def _pool(ray: Any, opts: RayOptions) -> tuple[int, float, float]:
    """(workers, gpus per worker, cpus per worker)."""
    gpus = float(ray.cluster_resources().get("GPU", 0))
    per_gpu = opts.gpus_per_worker if gpus > 0 else 0.0
    workers = opts.workers or (max(1, int(gpus // per_gpu)) if per_gpu else 1)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    cpus = opts.cpus_per_worker if opts.cpus_per_worker is not None else (1.0 if per_gpu else 0.5)
    return workers, per_gpu, cpus


def run_ray(job: LabelJob, opts: RayOptions) -> None:
    """Label the job's batches on a Ray cluster (joined, or started here and shut down after)."""
    ray = import_ray()
    started = _init_ray(ray, opts)
    try:
        _run(ray, job, opts)
    finally:
        if started:
            ray.shutdown()


def _run(ray: Any, job: LabelJob, opts: RayOptions) -> None:
    batches, done, plan, settings, summary = job.batches, job.done, job.plan, job.settings, job.summary
    import logging

    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # our progress bar is the one the user watches
    ctx = DataContext.get_current()
    ctx.max_errored_blocks = -1  # a batch whose worker keeps dying is reported below, not fatal to the run
    ctx.enable_progress_bars = False
    workers, gpus, cpus = _pool(ray, opts)
    rows = [
        {
            "batch": k,
            "max_pixels": settings.max_image_pixels or 0,
            "items": pickle.dumps([(im.relpath, str(Path(im.path).absolute())) for im in b]),
        }
        for k, b in enumerate(batches)
    ]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
    ds = ds.map(_decode, num_cpus=0.25)
    ds = ds.map_batches(
        LabelWorker,
        fn_constructor_kwargs={"plan": plan, "settings": settings, "sys_path": [os.getcwd(), *sys.path]},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=4),
        num_gpus=gpus or None,
        num_cpus=cpus,
        batch_format="numpy",
        max_restarts=WORKER_RETRIES,
        max_task_retries=WORKER_RETRIES,
    )
    writer = StoreWriter(job.output_dir, summary, job.progress)
    writer.start()
    streak = FailureStreak(settings.max_same_failures)
    seen: set[int] = set()
    t0 = time.perf_counter()
    arrivals: list[float] = []
    try:
        for row in ds.iter_rows():
            arrivals.append(time.perf_counter())
            k = int(row["batch"])
            seen.add(k)
            out, meta = pickle.loads(row["results"])
            if meta["fatal"]:
                raise UsageError(*meta["fatal"])
            _merge(summary, meta)
            for outcome in out:
                if outcome.relpath not in done:
                    writer.put(outcome)
            streak.batch_done(meta["errors"], meta["n_good"])
        for k, b in enumerate(batches):  # batches Ray gave up on (their worker died on every retry)
            if k not in seen:
                for im in b:
                    if im.relpath not in done:
                        writer.put(Skipped(im.relpath, f"worker failed {WORKER_RETRIES + 1} times on this batch (Ray)"))
    finally:
        summary.add_time("ray_pipeline", time.perf_counter() - t0)
        if len(arrivals) > workers:  # worker start (model loading) vs the steady state after every worker's first
            summary.add_time("ray_first_result", arrivals[0] - t0)
            summary.add_time("ray_steady", arrivals[-1] - arrivals[workers - 1])
        writer.close()


def _merge(summary: RunSummary, meta: dict[str, Any]) -> None:
    inf: InferenceCounts = meta["inference"]
    summary.inference.add(inf)
    for k, v in meta["stages"].items():
        summary.add_time(k, v)
    summary.detector_passes += meta["passes"][0]
    summary.segmenter_passes += meta["passes"][1]
