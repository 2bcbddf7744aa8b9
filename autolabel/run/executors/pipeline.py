"""The local executor's pipeline: three stages of consecutive batches run at the same time.

    prepare thread  : batch k+1  resize / normalise / pad into batch tensors (backends' `prepare`)
    caller's thread : batch k    the model forwards only (detector, then the segmenter's passes)
    finish thread   : batch k-1  low-res masks → full-size RLE, then results to the store

so the device never waits for CPU work that does not need it. Each stage is `inference`'s, the same
functions `infer_batch` runs in sequence for every other executor.
A batch that fails inside a model is retried image by image so one bad image only skips itself; the
same model error on `max_same_failures` batches in a row stops the run (a backend bug, a CUDA error, an
out-of-memory at batch size 1 would otherwise skip every image).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autolabel.backends.base import Detector, Segmenter
from autolabel.config.plan import RunPlan
from autolabel.errors import AutolabelError, NonFiniteError, UsageError
from autolabel.inference.stages import InferenceCounts, finish_stage, infer_batch, model_stage, prepare_stage
from autolabel.run.settings import RunSummary
from autolabel.types import CandidateResult, Candidates, Done, ImageInfo, Outcome, Skipped

_Batch = list[tuple[ImageInfo, np.ndarray]]
_FATAL = (KeyboardInterrupt, UsageError, NonFiniteError)  # never retried image by image


class ModelFailure(AutolabelError):
    """The same model error on several batches in a row: the run stops (finished images are kept)."""

    exit_code = 1


class FailureStreak:
    """Counts consecutive batches whose every image failed with the same model error."""

    def __init__(self, limit: int) -> None:
        self.limit, self.key, self.count = limit, "", 0

    def batch_done(self, errors: list[str], n_images: int) -> None:
        if not errors or len(errors) < n_images or len(set(errors)) != 1:
            self.key, self.count = "", 0
            return
        self.count = self.count + 1 if errors[0] == self.key else 1
        self.key = errors[0]
        if self.count >= self.limit:
            raise ModelFailure(
                f"the model failed on {self.count} batches in a row with the same error: {self.key}",
                hint="this is not one bad image: look for a backend bug, a CUDA error or out-of-memory "
                "(try --batch-size 1, --precision fp32 or --device cpu); finished images are kept and "
                "a rerun of the same command resumes (AUTOLABEL_DEBUG=1 shows the traceback)",
            )


def signature(path: str) -> str | None:
    """The file's size:mtime as the store keeps it, or None when it cannot be read."""
    from autolabel.run.store import file_signature

    try:
        return file_signature(path)
    except OSError:
        return None


def done(info: ImageInfo, img: np.ndarray, cands: Candidates) -> Done:
    """An image's outcome: its size after EXIF transpose, its candidates and its file's signature."""
    sig = info.signature or signature(info.path)  # an object: as listed; a file: as it is now
    return Done(CandidateResult(info.relpath, int(img.shape[1]), int(img.shape[0]), cands), sig)


@dataclass
class _Job:
    batch: _Batch
    future: Future[Any]  # prepare_stage's, then finish_stage's
    counts: InferenceCounts = field(default_factory=InferenceCounts)
    times: dict[str, float] = field(default_factory=dict)


class Pipeline:
    MAX_FINISHING = 1  # batches past the models not yet written (bounds the memory of their masks)

    def __init__(
        self,
        plan: RunPlan,
        detector: Detector,
        segmenter: Segmenter | None,
        summary: RunSummary,
        emit: Callable[[Outcome], None],
        streak: FailureStreak,
    ) -> None:
        self.plan, self.detector, self.segmenter = plan, detector, segmenter
        self.summary, self.emit, self.streak = summary, emit, streak
        self.prep_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
        self.finish_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finish")
        self.ready: _Job | None = None  # being prepared, next for the models
        self.finishing: deque[_Job] = deque()  # past the models, finished in order by one thread

    def push(self, batch: _Batch) -> None:
        """Start preparing `batch`, then run the models on the batch prepared before it."""
        images = [img for _, img in batch]
        job = _Job(batch, None)  # type: ignore[arg-type]
        job.future = self.prep_pool.submit(prepare_stage, images, self.plan, self.detector, self.segmenter, job.times)
        previous, self.ready = self.ready, job
        if previous is not None:
            self._models(previous)

    def _models(self, job: _Job) -> None:
        try:
            t = time.perf_counter()
            prepared = job.future.result()
            self.summary.add_time("models_wait_prepare", time.perf_counter() - t)
            staged = model_stage(prepared, self.plan, self.detector, self.segmenter, job.counts, job.times)
        except _FATAL:
            raise
        except Exception:
            self._finished(keep=0)
            self._fallback(job.batch)
            return
        job.future = self.finish_pool.submit(finish_stage, staged, self.plan, self.segmenter, job.times)
        self.finishing.append(job)
        self._finished(keep=self.MAX_FINISHING)  # never blocks while batch k-1 is still being finished

    def _finished(self, keep: int) -> None:
        """Write the results of finished batches, in order; wait only while more than `keep` are left."""
        t = time.perf_counter()
        while self.finishing and (len(self.finishing) > keep or self.finishing[0].future.done()):
            self._write(self.finishing.popleft())
        self.summary.add_time("models_wait_finish", time.perf_counter() - t)

    def _write(self, job: _Job) -> None:
        try:
            cands = job.future.result()
        except _FATAL:
            raise
        except Exception:
            self._fallback(job.batch)
            return
        self.summary.inference.add(job.counts)
        for k, v in job.times.items():
            self.summary.add_time(k, v)
        for (info, img), c in zip(job.batch, cands):
            self.emit(done(info, img, c))
        self.streak.batch_done([], len(job.batch))

    def drain(self, run_ready: bool = True) -> None:
        """Finish everything in flight (`run_ready=False`: drop the batch not yet in the models)."""
        job, self.ready = self.ready, None
        if job is not None and run_ready:
            self._models(job)
        self._finished(keep=0)

    def _fallback(self, batch: _Batch) -> None:
        errors: list[str] = []
        label_batch(batch, self.plan, self.detector, self.segmenter, self.summary, self.emit, errors)
        self.streak.batch_done(errors, len(batch))

    def close(self) -> None:
        self.prep_pool.shutdown(wait=True, cancel_futures=True)
        self.finish_pool.shutdown(wait=True, cancel_futures=True)


def label_batch(
    batch: _Batch,
    plan: RunPlan,
    detector: Detector,
    segmenter: Segmenter | None,
    summary: RunSummary,
    emit: Callable[[Outcome], None],
    errors: list[str],
) -> None:
    """Label a batch in one go; when it fails inside a model, retry image by image and skip the failures."""
    counts = InferenceCounts()
    t = time.perf_counter()
    try:
        cands = infer_batch([img for _, img in batch], plan, detector, segmenter, counts, summary.stage_seconds)
    except _FATAL:
        raise
    except Exception as e:
        if len(batch) == 1:
            why = f"model error: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            errors.append(why)
            emit(Skipped(batch[0][0].relpath, why))
            return
        for one in batch:
            label_batch([one], plan, detector, segmenter, summary, emit, errors)
        return
    summary.inference.add(counts)
    summary.add_time("inference_batches", time.perf_counter() - t)
    for (info, img), c in zip(batch, cands):
        emit(done(info, img, c))


@dataclass
class StageLocks:
    """One lock per stage: batches labeled by concurrent calls (a Ray replica's) overlap as in the local
    pipeline — one batch preparing, one in the models, one finishing — never two in one stage."""

    prepare: threading.Lock = field(default_factory=threading.Lock)
    models: threading.Lock = field(default_factory=threading.Lock)
    finish: threading.Lock = field(default_factory=threading.Lock)


def label_staged(
    batch: _Batch,
    plan: RunPlan,
    detector: Detector,
    segmenter: Segmenter | None,
    summary: RunSummary,
    emit: Callable[[Outcome], None],
    errors: list[str],
    locks: StageLocks,
) -> None:
    """`label_batch` with each stage under its lock, for callers that label several batches at once."""
    counts, times = InferenceCounts(), dict[str, float]()
    images = [img for _, img in batch]
    try:
        with locks.prepare:
            prepared = prepare_stage(images, plan, detector, segmenter, times)
        with locks.models:
            staged = model_stage(prepared, plan, detector, segmenter, counts, times)
        with locks.finish:
            cands = finish_stage(staged, plan, segmenter, times)
    except _FATAL:
        raise
    except Exception:
        with locks.prepare, locks.models, locks.finish:  # image by image, alone (same lock order: no deadlock)
            label_batch(batch, plan, detector, segmenter, summary, emit, errors)
        return
    summary.inference.add(counts)
    for k, v in times.items():
        summary.add_time(k, v)
    for (info, img), c in zip(batch, cands):
        emit(done(info, img, c))
