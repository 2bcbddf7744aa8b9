"""The Ray Data executor: the same fixed batches and the same three stages as the one-process executor,
spread over a pool of model replicas (one per GPU, or fractional-CPU actors without GPUs).

    pending fixed batches → read/decode tasks → map_batches(LabelWorker actor pool) → driver → run store

Only the driver writes the run store (each image whole or not at all, exactly as locally), so resume,
skips and exit codes are the same. A worker that dies is restarted and its batch retried by Ray; a
batch whose worker keeps dying has its images skipped with the reason (`ray_worker.py`). Images must be
readable by every worker at the same path (a shared filesystem on a cluster).

Ray's own messages (its logging, and what its C++ core and log monitor print on the driver's stdout and
stderr) go to `RUN/ray.log`; the terminal shows only autolabel's progress and summary.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from autolabel.errors import AutolabelError, MissingDependencyError, UsageError
from autolabel.inference.stages import InferenceCounts
from autolabel.run.executors.local import StoreWriter
from autolabel.run.executors.pipeline import FailureStreak
from autolabel.run.executors.ray_cluster import NodesLost, NodeWatch, needs_text, ray_output_to
from autolabel.run.executors.ray_worker import Attempts, LabelWorker, decode_batch
from autolabel.run.settings import LabelJob, RayOptions, RunSummary
from autolabel.storage import credentials_env, is_uri
from autolabel.types import Skipped

RAY_LOG = "ray.log"
ATTEMPTS_PREFIX = "autolabel-attempts-"


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependencyError("--ray needs Ray Data", hint="pip install 'autolabel[ray]'") from None
    return ray


def _init_ray(ray: Any, opts: RayOptions) -> bool:
    """Join a cluster (address / RAY_ADDRESS) or start a local Ray. True when we started it."""
    address = opts.address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return False
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **credentials_env()}  # what the driver has
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(  # one machine: its nodes talk over the loopback interface only
            address="local",  # our own: by default Ray joins any cluster whose raylet runs on the machine
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": env},
            _node_ip_address="127.0.0.1",
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
    job.summary.ray_log = str(job.output_dir / RAY_LOG)
    with ray_output_to(job.output_dir / RAY_LOG):
        started = _init_ray(ray, opts)
        try:
            _run(ray, job, opts)
        except ray.exceptions.RayError as e:  # a raylet, an agent or the cluster itself went away
            raise RayFailure(
                f"Ray failed while labeling: {type(e).__name__}: {_first_line(e)}",
                hint=f"finished images are kept and a rerun of the same command resumes; Ray's own messages are "
                f"in {job.output_dir / RAY_LOG}",
            ) from None
        finally:
            if started:
                try:
                    ray.shutdown()
                except Exception:  # a cluster already gone: nothing left to shut down
                    logging.getLogger(__name__).debug("ray.shutdown failed", exc_info=True)


class RayFailure(AutolabelError):
    """Ray itself failed (a killed raylet or agent, a lost cluster): the run stops, finished images kept."""

    exit_code = 1


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0][:300] if lines else "(no message)"


def _run(ray: Any, job: LabelJob, opts: RayOptions) -> None:
    batches, done, plan, settings, summary = job.batches, job.done, job.plan, job.settings, job.summary
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.max_errored_blocks = -1  # a batch whose worker keeps dying is reported below, not fatal to the run
    ctx.enable_progress_bars = False
    workers, gpus, cpus = _pool(ray, opts)
    rows = [
        {
            "batch": k,
            "max_pixels": settings.max_image_pixels or 0,
            "items": pickle.dumps([(im.relpath, _where(im.path), im.signature) for im in b]),
        }
        for k, b in enumerate(batches)
    ]
    attempts = f"{ATTEMPTS_PREFIX}{uuid.uuid4().hex[:12]}"
    counter = ray.remote(num_cpus=0)(Attempts).options(name=attempts).remote()
    ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
    ds = ds.map(decode_batch, num_cpus=0.25)
    pool = ray.data.ActorPoolStrategy(
        size=workers,
        max_tasks_in_flight_per_actor=opts.batches_per_replica + 1,
        max_concurrent_calls_per_actor=opts.batches_per_replica,
        enable_true_multi_threading=opts.batches_per_replica > 1,
    )
    kwargs = {"plan": plan, "settings": settings, "sys_path": [os.getcwd(), *sys.path], "attempts": attempts}
    ds = ds.map_batches(
        LabelWorker,
        fn_constructor_kwargs=kwargs,
        batch_size=1,
        compute=pool,
        num_gpus=gpus or None,
        num_cpus=cpus,
        resources=dict(opts.resources) or None,
        batch_format="numpy",
    )
    needs = {**dict(opts.resources), **({"GPU": gpus} if gpus else {})}
    writer = StoreWriter(job.output_dir, summary, job.progress)
    writer.start()
    streak = FailureStreak(settings.max_same_failures)
    seen: set[int] = set()
    t0 = time.perf_counter()
    arrivals: list[float] = []
    replicas: dict[float, list[dict[str, float]]] = {}
    watch = NodeWatch(ray, needs)
    try:
        for row in ds.iter_rows():
            arrivals.append(time.perf_counter())
            k = int(row["batch"])
            seen.add(k)
            out, meta = pickle.loads(row["results"])
            if meta["fatal"]:
                raise UsageError(*meta["fatal"])
            _merge(summary, meta)
            replicas.setdefault(meta["replica"]["pid"], []).append(meta["replica"])
            for outcome in out:
                if outcome.relpath not in done:
                    writer.put(outcome)
            streak.batch_done(meta["errors"], meta["n_good"])
        for k, b in enumerate(batches):  # batches Ray dropped (an error outside the labeling: see ray.log)
            if k not in seen:
                for im in b:
                    if im.relpath not in done:
                        writer.put(Skipped(im.relpath, f"Ray dropped this batch (its error is in {RAY_LOG})"))
    except KeyboardInterrupt:
        if watch.lost:
            raise NodesLost(
                f"no node of the Ray cluster offers what a model replica needs any more ({needs_text(needs)})",
                hint="bring such a node back (or run with other --ray-resource / --gpus-per-worker) and rerun the "
                "same command: every finished image is kept",
            ) from None
        raise
    finally:
        watch.stop()
        try:
            ray.kill(counter)
        except Exception:  # the cluster is gone: so is the counter
            logging.getLogger(__name__).debug("ray.kill failed", exc_info=True)
        _replicas(summary, replicas)
        summary.add_time("ray_pipeline", time.perf_counter() - t0)
        if len(arrivals) > workers:  # worker start (model loading) vs the steady state after every worker's first
            summary.add_time("ray_first_result", arrivals[0] - t0)
            summary.add_time("ray_steady", arrivals[-1] - arrivals[workers - 1])
        writer.close()


def _where(path: str) -> str:
    """Where a worker reads an image: an object's URI, or a file's absolute path."""
    return path if is_uri(path) else str(Path(path).absolute())


def _merge(summary: RunSummary, meta: dict[str, Any]) -> None:
    inf: InferenceCounts = meta["inference"]
    summary.inference.add(inf)
    for k, v in meta["stages"].items():
        summary.add_time(k, v)


def _replicas(summary: RunSummary, seen: dict[float, list[dict[str, float]]]) -> None:
    """Forward passes, and each replica's steady state: its model time ÷ the wall time between the end of its
    first call and of its last, on its own clock (model loading and the pool's fill left out)."""
    for rows in seen.values():
        rows = sorted(rows, key=lambda r: r["t"])
        first, last = rows[0], rows[-1]
        summary.detector_passes += int(last["detector_passes"])
        summary.segmenter_passes += int(last["segmenter_passes"])
        if len(rows) >= 3:
            wall = last["t"] - first["t"]
            busy = last["forward_s"] - first["forward_s"]
            summary.replicas.append(
                {
                    "batches": len(rows),
                    "steady_s": round(wall, 3),
                    "forward_s": round(busy, 3),
                    "utilisation": round(busy / wall, 3) if wall > 0 else 0.0,
                }
            )
