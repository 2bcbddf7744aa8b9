"""The one-process executor, a pipeline: decode ahead in threads → detect batch k+1 on the main thread
while a second thread segments batch k (embedding, mask decoding, upsampling, RLE) → store writer thread.

It only moves batches: the labeling itself is `inference.detect_stage` + `segment_stage` (together
`infer_batch`), the same for every executor.
A batch that fails inside a model is retried image by image so one bad image only skips itself; the
same model error on `max_same_failures` batches in a row stops the run (a backend bug, a CUDA error, an
out-of-memory at batch size 1 would otherwise skip every image).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .errors import AutolabelError, ImageError, NonFiniteError, UsageError
from .images import load_image
from .inference import InferenceCounts, detect_stage, infer_batch, segment_stage
from .plan import RunPlan
from .runinfo import Progress, RunSettings, RunSummary
from .store import RunStore, file_signature, store_path
from .types import CandidateResult, ImageInfo

_Loaded = tuple[ImageInfo, "np.ndarray | None", str | None]


class ModelFailure(AutolabelError):
    """The same model error on several batches in a row: the run stops (finished images are kept)."""

    exit_code = 1


def fixed_batches(images: list[ImageInfo], done: set[str], batch_size: int) -> list[list[ImageInfo]]:
    """The batches still to run: fixed slices of the full sorted image list, kept when any image in them
    is not done. A resumed run thus sees exactly the batches of an uninterrupted one (same padding, same
    batched kernels), so its results are identical; done images in a partly done slice are recomputed
    but not written again."""
    slices = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    return [b for b in slices if any(im.relpath not in done for im in b)]


def prefetch(pending: list[ImageInfo], settings: RunSettings, summary: RunSummary,
             stop: threading.Event) -> Iterator[_Loaded]:
    """Decode images in worker threads, yielding in order, at most a few batches ahead."""
    lock = threading.Lock()

    def load(info: ImageInfo) -> _Loaded:
        t = time.perf_counter()
        try:
            img: np.ndarray | None = load_image(info.path, settings.max_image_pixels)
            why = None
        except ImageError as e:
            img, why = None, e.message
        with lock:
            summary.add_time("decode", time.perf_counter() - t)
        return info, img, why

    # ahead: up to two batches, but never more decoded pixels than `prefetch_bytes` (12 MP photos are
    # 36 MB each), and always at least one full batch so the model never waits on its own batch
    most, least = max(2 * settings.batch_size, 4), settings.batch_size
    sizes: list[int] = []

    def room(n_ahead: int) -> bool:
        avg = sum(sizes[-16:]) / len(sizes[-16:]) if sizes else 0
        return n_ahead < least or (n_ahead < most and (n_ahead + 1) * avg <= settings.prefetch_bytes)

    with ThreadPoolExecutor(max_workers=settings.decode_workers, thread_name_prefix="decode") as pool:
        futures: list[Future[_Loaded]] = []
        it = iter(pending)
        nxt = next(it, None)
        while (futures or nxt is not None) and not stop.is_set():
            while nxt is not None and room(len(futures)):
                futures.append(pool.submit(load, nxt))
                nxt = next(it, None)
            result = futures.pop(0).result()
            if result[1] is not None:
                sizes.append(int(result[1].nbytes))
            yield result
        for f in futures:
            f.cancel()


class StoreWriter(threading.Thread):
    """Owns its own store connection and commits one image per transaction."""

    def __init__(self, output_p: Path, summary: RunSummary, progress: Progress) -> None:
        super().__init__(name="store-writer", daemon=True)
        self.q: queue.Queue[Any] = queue.Queue(maxsize=8)
        self.output_p, self.summary, self.progress = output_p, summary, progress
        self.error: BaseException | None = None

    def run(self) -> None:
        store = RunStore(store_path(self.output_p))
        try:
            while (item := self.q.get()) is not None:
                t = time.perf_counter()
                if isinstance(item[0], CandidateResult):
                    store.put_result(*item)
                    self.summary.processed += 1
                else:
                    store.put_skipped(*item)
                self.summary.add_time("store", time.perf_counter() - t)
                self.progress.advance()
        except sqlite3.Error as e:
            self.error = AutolabelError(f"cannot write the run store {store_path(self.output_p)}: {e}",
                                        hint="free disk space or fix permissions, then rerun: done images are kept")
        except BaseException as e:  # surfaced to the main thread
            self.error = e
        finally:
            store.close()

    def put(self, item: Any) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        while self.is_alive():  # a writer that died must not leave us blocked on a full queue
            try:
                self.q.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        self.join()
        if self.error is not None:
            raise self.error


def _signature(info: ImageInfo) -> str | None:
    try:
        return file_signature(info.path)
    except OSError:
        return None


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
                     "a rerun of the same command resumes (AUTOLABEL_DEBUG=1 shows the traceback)")


@dataclass
class _Inflight:
    """A batch whose segment stage runs in the background while the next batch is detected."""

    batch: list[tuple[ImageInfo, np.ndarray]]
    future: Future[Any]
    counts: InferenceCounts
    times: dict[str, float]


class _Pipeline:
    def __init__(self, plan: RunPlan, detector: Any, segmenter: Any, summary: RunSummary,
                 emit: Callable[[Any], None], streak: FailureStreak) -> None:
        self.plan, self.detector, self.segmenter = plan, detector, segmenter
        self.summary, self.emit, self.streak = summary, emit, streak
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment")
        self.inflight: _Inflight | None = None

    def push(self, batch: list[tuple[ImageInfo, np.ndarray]]) -> None:
        """Detect `batch` now, then hand its segment stage to the background thread."""
        images = [img for _, img in batch]
        counts, times = InferenceCounts(), {}
        try:
            cands, own = detect_stage(images, self.plan, self.detector, counts, times)
        except (KeyboardInterrupt, UsageError, NonFiniteError):
            raise
        except Exception:  # noqa: BLE001 - retried image by image, in order, below
            self.drain()
            self._fallback(batch)
            return
        self.drain()  # batch k-1's masks, while this batch's detection is already done
        future = self.pool.submit(segment_stage, images, self.plan, self.segmenter, cands, own, times)
        self.inflight = _Inflight(batch, future, counts, times)

    def drain(self) -> None:
        job, self.inflight = self.inflight, None
        if job is None:
            return
        try:
            cands = job.future.result()
        except (KeyboardInterrupt, UsageError, NonFiniteError):
            raise
        except Exception:  # noqa: BLE001
            self._fallback(job.batch)
            return
        self.summary.inference.add(job.counts)
        for k, v in job.times.items():
            self.summary.add_time(k, v)
        for (info, img), c in zip(job.batch, cands):
            self.emit((CandidateResult(info.relpath, int(img.shape[1]), int(img.shape[0]), c), _signature(info)))
        self.streak.batch_done([], len(job.batch))

    def _fallback(self, batch: list[tuple[ImageInfo, np.ndarray]]) -> None:
        errors: list[str] = []
        label_batch(batch, self.plan, self.detector, self.segmenter, self.summary, self.emit, errors)
        self.streak.batch_done(errors, len(batch))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def run_local(batches: list[list[ImageInfo]], done: set[str], plan: RunPlan, settings: RunSettings,
              detector: Any, segmenter: Any, output_p: Path, summary: RunSummary, progress: Progress) -> None:
    stop = threading.Event()
    writer = StoreWriter(output_p, summary, progress)
    writer.start()

    def emit(item: Any) -> None:  # results of images already in the store are not written again
        relpath = item[0].relpath if isinstance(item[0], CandidateResult) else item[0]
        if relpath not in done:
            writer.put(item)

    pipe = _Pipeline(plan, detector, segmenter, summary, emit, FailureStreak(settings.max_same_failures))
    loaded = prefetch([im for b in batches for im in b], settings, summary, stop)
    t0 = time.perf_counter()
    try:
        for slice_ in batches:
            batch: list[tuple[ImageInfo, np.ndarray]] = []
            for _ in slice_:
                info, img, why = next(loaded)
                if img is None:
                    emit((info.relpath, why or "unreadable"))
                else:
                    batch.append((info, img))
            if batch:
                pipe.push(batch)
        pipe.drain()
    except KeyboardInterrupt:
        pipe.drain()  # the batch being segmented is kept: a stop loses only what was being detected
        raise
    finally:
        summary.add_time("inference", time.perf_counter() - t0)  # wall time of the model loop
        stop.set()
        loaded.close()  # stops the decode threads now, not when garbage-collected
        pipe.close()
        writer.close()


def label_batch(batch: list[tuple[ImageInfo, np.ndarray]], plan: RunPlan, detector: Any, segmenter: Any,
                summary: RunSummary, emit: Callable[[Any], None], errors: list[str]) -> None:
    """Label a batch; when it fails inside a model, retry image by image and skip the failures."""
    counts = InferenceCounts()
    t = time.perf_counter()
    try:
        cands = infer_batch([img for _, img in batch], plan, detector, segmenter, counts, summary.stage_seconds)
    except (KeyboardInterrupt, UsageError, NonFiniteError):
        raise
    except Exception as e:
        if len(batch) == 1:
            why = f"model error: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            errors.append(why)
            emit((batch[0][0].relpath, why))
            return
        for one in batch:
            label_batch([one], plan, detector, segmenter, summary, emit, errors)
        return
    summary.inference.add(counts)
    summary.add_time("inference_batches", time.perf_counter() - t)
    for (info, img), c in zip(batch, cands):
        emit((CandidateResult(info.relpath, int(img.shape[1]), int(img.shape[0]), c), _signature(info)))
