"""The models behind the server: one copy in memory, one thread running them, requests batched.

Every request thread hands its images to the model thread and waits; the model thread takes what is
waiting (up to `batch_size` images, lingering a few milliseconds for more) and runs one forward pass for
all of them, so many concurrent requests cost few passes. Interactive requests (a box to segment, a text
prompt) run on the same thread, in turn. Images of `--run` are answered from its store with its decisions
(no model); new images under the run's folder are labeled and stored in the run (a later export includes
them), each in its own short transaction under the run lock.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.config.plan import fingerprint, inference_settings
from autolabel.decisions import DecisionSettings, decide
from autolabel.errors import UsageError
from autolabel.export.records import decisions_digest
from autolabel.fsutil import RunLock
from autolabel.inference.stages import InferenceCounts, infer_batch
from autolabel.run.run import Run
from autolabel.run.store import RunStore, file_signature, store_path
from autolabel.storage import is_uri
from autolabel.types import CandidateResult, Candidates, Detections

if TYPE_CHECKING:
    from autolabel.api import Labeler

LINGER = 0.01  # seconds the model thread waits for more images before a pass


@dataclass
class Stats:
    requests: int = 0
    images: int = 0
    forward_passes: int = 0
    from_run: int = 0
    stored: int = 0
    not_stored: int = 0  # new images the run could not take (busy, or outside its folder)
    errors: int = 0
    interactive: int = 0
    interactive_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: float) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {k: v for k, v in vars(self).items() if k != "lock"}


@dataclass
class _Job:
    image: np.ndarray | None
    call: Callable[[], Any] | None
    future: Future[Any] = field(default_factory=Future)


STOP = _Job(None, None)  # queued by close(): the model thread ends after the jobs before it


class Engine:
    def __init__(self, labeler: Labeler, run_dir: Path | None = None, batch_size: int = 8) -> None:
        self.labeler, self.run_dir, self.batch_size = labeler, run_dir, batch_size
        self.classes = tuple(labeler.classes)
        self.stats = Stats()
        self.dec: DecisionSettings = labeler.plan.decisions
        fp = fingerprint(inference_settings(labeler.plan))
        self.source: str | None = None
        self.done: dict[str, str | None] = {}
        if run_dir is not None:
            with Run.open(run_dir) as run:
                if run.meta.fingerprint != fp:
                    raise UsageError(
                        f"--run {run_dir} was labeled with other inference settings than this ontology's",
                        hint="serve it with the ontology (and model options) it was labeled with",
                    )
                self.dec, self.source = run.decisions(), run.source
                self.done = run.store.done_signatures()
        self.model_version = f"autolabel-{fp[:10]}-{decisions_digest(self.dec)[:6]}"
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._store_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="autolabel-models", daemon=True)
        self._thread.start()

    # ---- the model thread
    def _loop(self) -> None:
        held: _Job | None = None  # a job that ended the last batch, run next
        while True:
            job = held or self._queue.get()
            held = None
            if job is STOP:
                return
            if job.call is not None:
                self._run(job)
                continue
            batch, deadline = [job], time.monotonic() + LINGER
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is STOP or nxt.call is not None:  # the batch so far goes first
                    held = nxt
                    break
                batch.append(nxt)
            self._label(batch)

    def _run(self, job: _Job) -> None:
        try:
            assert job.call is not None
            job.future.set_result(job.call())
        except Exception as e:
            job.future.set_exception(e)

    def _label(self, batch: list[_Job]) -> None:
        images = [j.image for j in batch if j.image is not None]
        try:
            cands = infer_batch(
                images, self.labeler.plan, self.labeler.detector, self.labeler.segmenter, InferenceCounts()
            )
        except Exception as e:  # a model error fails these requests, not the server
            for j in batch:
                j.future.set_exception(e)
            return
        self.stats.add(forward_passes=1, images=len(images))
        for j, c in zip(batch, cands):
            j.future.set_result(c)

    # ---- called from request threads
    def candidates(self, image: np.ndarray) -> Candidates:
        job = _Job(image, None)
        self._queue.put(job)
        return job.future.result()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the model thread (interactive requests), in turn with the batches."""
        job = _Job(None, fn)
        self._queue.put(job)
        return job.future.result()

    def decide(self, c: Candidates, width: int, height: int) -> Detections:
        return decide(c, width, height, self.dec)

    def relpath(self, kind: str, where: str) -> str | None:
        """The image's path in the run, when it is under the run's folder (or bucket prefix)."""
        if self.source is None:
            return None
        if kind == "uri" and is_uri(self.source):
            prefix = self.source.rstrip("/") + "/"
            return where[len(prefix) :] if where.startswith(prefix) else None
        if kind == "file" and not is_uri(self.source):
            p, root = Path(where).absolute(), Path(self.source).absolute()
            return p.relative_to(root).as_posix() if root in p.parents else None
        return None

    def stored(self, relpath: str, signature: str | None) -> tuple[Detections, int, int] | None:
        """The run's labels of an image it holds unchanged, with its decisions; None otherwise."""
        if self.run_dir is None or relpath not in self.done:
            return None
        have = self.done[relpath]
        if have is not None and signature is not None and have != signature:
            return None
        with Run.open(self.run_dir) as run:
            res = next(iter(run.results(self.dec, relpaths=[relpath])), None)
        if res is not None:
            self.stats.add(from_run=1)
        return None if res is None else (res.detections, res.width, res.height)

    def keep(self, relpath: str | None, signature: str | None, c: Candidates, width: int, height: int) -> bool:
        """Store a new image's candidates in the run (one transaction under the run lock)."""
        if self.run_dir is None or relpath is None:
            if self.run_dir is not None:
                self.stats.add(not_stored=1)
            return False
        with self._store_lock:
            try:
                with RunLock(self.run_dir, what="serving", wait=5.0):
                    store = RunStore(store_path(self.run_dir))
                    try:
                        with store.transaction():
                            store.put_result(CandidateResult(relpath, width, height, c), signature)
                    finally:
                        store.close()
            except UsageError:  # another command holds the run: answer, do not store
                self.stats.add(not_stored=1)
                return False
            self.done[relpath] = signature
        self.stats.add(stored=1)
        return True

    def signature(self, kind: str, where: str) -> str | None:
        try:
            return file_signature(where) if kind == "file" else None
        except OSError:  # not there (any more): the read says so
            return None

    def close(self) -> None:
        self._queue.put(STOP)
        self._thread.join(timeout=60)
