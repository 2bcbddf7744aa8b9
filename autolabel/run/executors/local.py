"""The one-process executor: decode threads → the three-stage pipeline (`pipeline.py`: prepare,
models, finish) → a store writer thread that commits one image per transaction.

It only moves batches: the labeling itself is `inference.infer_batch` (prepare → model → finish), the
same for every executor.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from autolabel.backends.base import Detector, Segmenter
from autolabel.errors import AutolabelError, ImageError
from autolabel.images import load_image
from autolabel.progress import Progress
from autolabel.run.executors.pipeline import FailureStreak, Pipeline
from autolabel.run.settings import LabelJob, RunSettings, RunSummary
from autolabel.run.store import RunStore, store_path
from autolabel.run.store_health import store_error
from autolabel.types import Done, ImageInfo, Outcome, Skipped

_Loaded = tuple[ImageInfo, "np.ndarray | None", str | None]


def fixed_batches(images: list[ImageInfo], done: set[str], batch_size: int) -> list[list[ImageInfo]]:
    """The batches still to run: fixed slices of the full sorted image list, kept when any image in them
    is not done. A resumed run thus sees exactly the batches of an uninterrupted one (same padding, same
    batched kernels), so its results are identical; done images in a partly done slice are recomputed
    but not written again."""
    slices = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    return [b for b in slices if any(im.relpath not in done for im in b)]


def prefetch(
    pending: list[ImageInfo], settings: RunSettings, summary: RunSummary, stop: threading.Event
) -> Generator[_Loaded, None, None]:
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
    """Owns its own store connection and commits what is waiting, up to `GROUP` images, per transaction:
    each image lands whole or not at all, as before; grouping only saves commits when results arrive faster
    than one commit per image (a Ray driver fed by many replicas)."""

    GROUP = 64

    def __init__(self, output_p: Path, summary: RunSummary, progress: Progress) -> None:
        super().__init__(name="store-writer", daemon=True)
        self.q: queue.Queue[Outcome | None] = queue.Queue(maxsize=8)
        self.output_p, self.summary, self.progress = output_p, summary, progress
        self.error: BaseException | None = None
        self.stopping = False

    def run(self) -> None:
        store = RunStore(store_path(self.output_p))
        try:
            while (group := self._next_group()) is not None:
                t = time.perf_counter()
                with store.transaction():
                    for item in group:
                        if isinstance(item, Done):
                            store.put_result(item.result, item.signature)
                        else:
                            store.put_skipped(item.relpath, item.reason)
                self.summary.processed += sum(isinstance(item, Done) for item in group)
                self.summary.add_time("store", time.perf_counter() - t)
                for _ in group:
                    self.progress.advance()
                if self.stopping:
                    break
        except (sqlite3.Error, OSError) as e:
            why = store_error(store_path(self.output_p), e)
            self.error = AutolabelError(f"cannot write the run store {store_path(self.output_p)}: {e}", hint=why.hint)
        except BaseException as e:  # surfaced to the main thread
            self.error = e
        finally:
            store.close()

    def _next_group(self) -> list[Outcome] | None:
        """The next outcome and what else is waiting already (None once closed and empty)."""
        item = self.q.get()
        if item is None:
            return None
        group = [item]
        while len(group) < self.GROUP:
            try:
                nxt = self.q.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self.stopping = True
                break
            group.append(nxt)
        return group

    def put(self, item: Outcome) -> None:
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


MIN_OUTAGE = 8  # images in a row that the image source failed to give with a systematic error


class SourceFailure(AutolabelError):
    """The image source (a bucket, its endpoint, its credentials) failed on many images in a row."""

    exit_code = 1


class SourceOutage:
    """Counts images in a row that could not be fetched for a reason that is not the image's (the endpoint is
    down, credentials are missing or refused): past `limit`, the run stops instead of trying, and skipping,
    every remaining image."""

    SYSTEMATIC = ("cannot fetch after", "access denied", "no credentials")

    def __init__(self, limit: int) -> None:
        self.limit, self.count, self.last = limit, 0, ""

    def image_done(self, why: str | None) -> None:
        if not why or not why.startswith(self.SYSTEMATIC):
            self.count = 0
            return
        self.count, self.last = self.count + 1, why
        if self.count >= self.limit:
            raise SourceFailure(
                f"the image source failed on {self.count} images in a row: {self.last}",
                hint="this is not one bad image: check the endpoint, network and credentials; finished images "
                "are kept and a rerun of the same command resumes",
            )


def run_local(job: LabelJob, detector: Detector, segmenter: Segmenter | None) -> None:
    """Label the job's batches in this process: decode ahead, the three-stage pipeline, one writer."""
    batches, done, plan, settings, summary = job.batches, job.done, job.plan, job.settings, job.summary
    output_p, progress = job.output_dir, job.progress
    stop = threading.Event()
    writer = StoreWriter(output_p, summary, progress)
    writer.start()

    def emit(item: Outcome) -> None:  # results of images already in the store are not written again
        if item.relpath not in done:
            writer.put(item)

    pipe = Pipeline(plan, detector, segmenter, summary, emit, FailureStreak(settings.max_same_failures))
    outage = SourceOutage(max(settings.max_same_failures * settings.batch_size, MIN_OUTAGE))
    loaded = prefetch([im for b in batches for im in b], settings, summary, stop)
    t0 = time.perf_counter()
    try:
        for slice_ in batches:
            batch: list[tuple[ImageInfo, np.ndarray]] = []
            t = time.perf_counter()
            for _ in slice_:
                info, img, why = next(loaded)
                outage.image_done(why)
                if img is None:
                    emit(Skipped(info.relpath, why or "unreadable"))
                else:
                    batch.append((info, img))
            summary.add_time("models_wait_decode", time.perf_counter() - t)
            if batch:
                pipe.push(batch)
        pipe.drain()
    except KeyboardInterrupt:
        pipe.drain(run_ready=False)  # batches past the models are kept: a stop loses only what was in them
        raise
    finally:
        summary.add_time("inference", time.perf_counter() - t0)  # wall time of the model loop
        stop.set()
        loaded.close()  # stops the decode threads now, not when garbage-collected
        pipe.close()
        writer.close()
