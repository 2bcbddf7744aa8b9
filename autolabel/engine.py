"""The labeling run: discover → decode (prefetch thread) → detect → map → segment → store (writer thread).

Per-image results are committed to the run store as they are made; a rerun skips what is done.
"""

from __future__ import annotations

import hashlib
import json
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .backends import default_model, get_spec, load_backend
from .errors import AutolabelError, ImageError, RunStoreError, UsageError
from .fsutil import RunLock, is_within, write_text_atomic
from .hub import model_identity
from .images import DEFAULT_MAX_IMAGE_PIXELS, discover_images, load_image
from .mapping import MappingCounts, finish_masks, min_threshold, to_detections
from .ontology import Ontology
from .store import RESULT_FORMAT, STORE_NAME, RunMeta, RunStore, store_path
from .types import ImageInfo, ImageResult

SKIPPED_NAME = "skipped.txt"
SUMMARY_NAME = "summary.json"


@dataclass(frozen=True)
class RunSettings:
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"
    overwrite: bool = False
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
    decode_workers: int = 2


@dataclass
class RunSummary:
    images_total: int = 0
    already_done: int = 0
    processed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    objects_per_class: dict[str, int] = field(default_factory=dict)
    counts: MappingCounts = field(default_factory=MappingCounts)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    detector_passes: int = 0
    segmenter_passes: int = 0
    wall_seconds: float = 0.0
    interrupted: bool = False

    def add_time(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    def to_json(self) -> dict[str, Any]:
        """The summary as plain data (written to summary.json in the run directory)."""
        from dataclasses import asdict

        d = asdict(self)
        d["skipped"] = [{"relpath": r, "reason": why} for r, why in self.skipped]
        d["stage_seconds"] = {k: round(v, 4) for k, v in self.stage_seconds.items()}
        return d


class Progress:
    """Progress callbacks; the CLI plugs in a rich progress bar. Default: silent."""

    def start(self, total: int, already_done: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def stop(self) -> None: ...


# --------------------------------------------------------------------------------------- fingerprint


def resolved_ontology(ontology: Ontology) -> Ontology:
    """Fill in default model ids so the fingerprint names the models actually used."""
    det = ontology.detector.model or default_model(ontology.detector.backend, "detector")
    seg_backend = ontology.segmenter.backend
    seg = ontology.segmenter.model or (default_model(seg_backend, "segmenter") if seg_backend != "none" else None)
    return ontology.with_overrides(detector={"model": det}, segmenter={"model": seg})


def run_fingerprint(ontology: Ontology) -> tuple[str, dict[str, Any]]:
    """sha256 over everything that changes per-image results: ontology, backends, model identities."""
    ont = resolved_ontology(ontology)
    settings = {
        "result_format": RESULT_FORMAT,
        "ontology": ont.canonical(),
        "detector_identity": model_identity(ont.detector.model) if ont.detector.model else None,
        "segmenter_identity": model_identity(ont.segmenter.model) if ont.segmenter.model else None,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return digest, settings


# --------------------------------------------------------------------------------------- the run


def check_output_dir(input_dir: Path, output_dir: Path) -> None:
    if is_within(output_dir, input_dir):
        raise UsageError(f"output directory '{output_dir}' is inside the input folder '{input_dir}'",
                         hint="autolabel never writes into the input folder; choose an --output outside it")
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"output '{output_dir}' exists and is not a directory")
    visible = output_dir.is_dir() and any(not p.name.startswith(".") for p in output_dir.iterdir())
    if visible and not store_path(output_dir).exists():
        raise RunStoreError(f"output directory '{output_dir}' is not empty and holds no autolabel run ({STORE_NAME})",
                            hint="choose a new or empty --output directory")


def open_run(output_dir: Path, fingerprint: str, overwrite: bool) -> tuple[RunStore | None, set[str]]:
    """Open an existing store read-only-ish and return what is done; (None, ∅) for a new run."""
    if not store_path(output_dir).exists():
        return None, set()
    store = RunStore(store_path(output_dir))
    meta = store.get_meta()
    if meta is not None and meta.fingerprint != fingerprint:
        if not overwrite:
            store.close()
            raise RunStoreError(
                f"'{output_dir}' holds a run with a different ontology, model or settings (fingerprint "
                f"{meta.fingerprint[:12]} ≠ {fingerprint[:12]})",
                hint="rerun with --overwrite to discard it, or choose another --output directory")
        store.clear()
    return store, store.done_relpaths()


def run_labeling(
    ontology: Ontology,
    input_dir: str | Path,
    output_dir: str | Path,
    settings: RunSettings = RunSettings(),
    progress: Progress | None = None,
    backends: tuple[Any, Any] | None = None,
) -> RunSummary:
    """Label every image under `input_dir` into the run store in `output_dir`. Resumes a finished or
    interrupted run with the same fingerprint. `backends` injects (detector, segmenter) for tests."""
    t_start = time.perf_counter()
    progress = progress or Progress()
    input_p, output_p = Path(input_dir), Path(output_dir)
    if settings.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {settings.batch_size}")
    images = discover_images(input_p)
    if not images:
        raise UsageError(f"no images found under '{input_p}'",
                         hint="supported extensions: .jpg .jpeg .png .bmp .webp .tif .tiff (any case)")
    check_output_dir(input_p, output_p)
    RunLock.check(output_p)  # before any model is loaded: a busy directory is refused at once
    get_spec(ontology.detector.backend, "detector")
    get_spec(ontology.segmenter.backend, "segmenter")
    fingerprint, fp_settings = run_fingerprint(ontology)
    store, done = open_run(output_p, fingerprint, settings.overwrite)
    pending = [im for im in images if im.relpath not in done]
    summary = RunSummary(images_total=len(images), already_done=len(images) - len(pending))

    detector = segmenter = None
    if pending:  # a finished run loads no model at all
        detector, segmenter = backends if backends is not None else load_models(ontology, settings)
    output_p.mkdir(parents=True, exist_ok=True)
    with RunLock(output_p):
        if store is None:
            store = RunStore(store_path(output_p))
        meta = RunMeta(fingerprint, str(input_p.resolve()), list(ontology.classes), fp_settings)
        store.set_meta(meta)
        store.close()
        progress.start(len(images), summary.already_done)
        try:
            if pending:
                _process(fixed_batches(images, done, settings.batch_size), done, ontology, settings, detector,
                         segmenter, output_p, summary, progress)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            progress.stop()
            _finish_summary(output_p, ontology, summary, detector, segmenter)
    summary.wall_seconds = time.perf_counter() - t_start
    write_text_atomic(output_p / SUMMARY_NAME, json.dumps(summary.to_json(), indent=2) + "\n")
    return summary


def preflight_models(ontology: Ontology) -> None:
    """Check every model reference resolves (local path, cached, or hub reachable) before importing torch
    and transformers (~10 s on a small CPU), so an offline user hears about a missing model at once."""
    from .hub import resolve_model

    ont = resolved_ontology(ontology)
    if ont.detector.model:
        resolve_model(ont.detector.model, "detector", "--detector-model")
    engine = get_spec(ont.detector.backend, "detector").kind == "engine"
    if ont.segmenter.model and ont.segmenter.backend != "none" and not engine:
        resolve_model(ont.segmenter.model, "segmenter", "--segmenter-model")


def load_models(ontology: Ontology, settings: RunSettings) -> tuple[Any, Any]:
    from .backends.torch_utils import resolve_device, resolve_dtype

    preflight_models(ontology)

    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.precision, device)
    detector = load_backend(ontology.detector.backend, "detector", ontology.detector, device, dtype)
    segmenter = None
    if not getattr(detector, "segments", False):
        segmenter = load_backend(ontology.segmenter.backend, "segmenter", ontology.segmenter, device, dtype)
    return detector, segmenter


def _finish_summary(output_p: Path, ontology: Ontology, summary: RunSummary, detector: Any, segmenter: Any) -> None:
    store = RunStore(store_path(output_p))
    try:
        summary.skipped = store.skipped()
        per_class = {name: 0 for name in ontology.classes}
        for res in store.iter_results(decode_masks=False):
            for c in res.detections.class_id:
                per_class[ontology.classes[int(c)]] += 1
        summary.objects_per_class = per_class
    finally:
        store.close()
    write_text_atomic(output_p / SKIPPED_NAME, "".join(f"{r}\t{why}\n" for r, why in summary.skipped))
    if detector is not None:
        summary.detector_passes = detector.stats.passes
        summary.add_time("detector", detector.stats.seconds)
    if segmenter is not None:
        summary.segmenter_passes = segmenter.stats.passes
        summary.add_time("segmenter", segmenter.stats.seconds)


# --------------------------------------------------------------------------------------- pipeline

_Loaded = tuple[ImageInfo, "np.ndarray | None", str | None]


def _prefetch(pending: list[ImageInfo], settings: RunSettings, summary: RunSummary,
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

    window = max(2 * settings.batch_size, 4)
    with ThreadPoolExecutor(max_workers=settings.decode_workers, thread_name_prefix="decode") as pool:
        futures: list[Future[_Loaded]] = []
        it = iter(pending)
        for info in it:
            futures.append(pool.submit(load, info))
            if len(futures) >= window:
                break
        while futures and not stop.is_set():
            result = futures.pop(0).result()
            nxt = next(it, None)
            if nxt is not None:
                futures.append(pool.submit(load, nxt))
            yield result
        for f in futures:
            f.cancel()


class _Writer(threading.Thread):
    """Owns its own store connection; encodes masks to RLE and commits one image per transaction."""

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
                if isinstance(item, ImageResult):
                    store.put_result(item)
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


def fixed_batches(images: list[ImageInfo], done: set[str], batch_size: int) -> list[list[ImageInfo]]:
    """The batches still to run: fixed slices of the full sorted image list, kept when any image in them
    is not done. A resumed run thus sees exactly the batches of an uninterrupted one (same padding, same
    batched kernels), so its results are identical; done images in a partly done slice are recomputed
    but not written again."""
    slices = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    return [b for b in slices if any(im.relpath not in done for im in b)]


def _process(batches: list[list[ImageInfo]], done: set[str], ontology: Ontology, settings: RunSettings,
             detector: Any, segmenter: Any, output_p: Path, summary: RunSummary, progress: Progress) -> None:
    stop = threading.Event()
    writer = _Writer(output_p, summary, progress)
    writer.start()

    def emit(item: Any) -> None:  # results of images already in the store are not written again
        relpath = item.relpath if isinstance(item, ImageResult) else item[0]
        if relpath not in done:
            writer.put(item)

    loaded = _prefetch([im for b in batches for im in b], settings, summary, stop)
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
                _label_batch(batch, ontology, detector, segmenter, summary, emit)
    finally:
        stop.set()
        loaded.close()  # stops the decode threads now, not when garbage-collected
        while writer.is_alive():  # a writer that died must not leave us blocked on a full queue
            try:
                writer.q.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        writer.join()
    if writer.error is not None:
        raise writer.error


def _label_batch(batch: list[tuple[ImageInfo, np.ndarray]], ontology: Ontology, detector: Any, segmenter: Any,
                 summary: RunSummary, emit: Callable[[Any], None]) -> None:
    """Label a batch; when the batch fails inside a model, retry image by image and skip the failures."""
    try:
        results = _infer(batch, ontology, detector, segmenter, summary)
    except (KeyboardInterrupt, UsageError):
        raise
    except Exception as e:
        if len(batch) == 1:
            emit((batch[0][0].relpath, f"model error: {type(e).__name__}: {e}"))
            return
        for one in batch:
            _label_batch([one], ontology, detector, segmenter, summary, emit)
        return
    for r in results:
        emit(r)


def _infer(batch: list[tuple[ImageInfo, np.ndarray]], ontology: Ontology, detector: Any, segmenter: Any,
           summary: RunSummary) -> list[ImageResult]:
    images = [img for _, img in batch]
    t = time.perf_counter()
    raw = detector.detect(images, list(ontology.prompts), min_threshold(ontology))
    t_det = time.perf_counter() - t
    t = time.perf_counter()
    dets = [to_detections(pb, ontology, img.shape[1], img.shape[0], summary.counts) for pb, img in zip(raw, images)]
    t_map = time.perf_counter() - t
    t = time.perf_counter()
    if segmenter is not None:
        masks = segmenter.segment(images, [d.xyxy for d in dets])
    elif ontology.segmenter.backend == "none":
        masks = [None for _ in dets]  # a box-only dataset, also with an engine that makes masks (SAM 3)
    else:
        masks = [d.masks for d in dets]  # the engine's own masks (SAM 3)
    t_seg = time.perf_counter() - t
    t = time.perf_counter()
    out = []
    for (info, img), det, m in zip(batch, dets, masks):
        det = finish_masks(det, m, ontology, summary.counts)
        out.append(ImageResult(info.relpath, int(img.shape[1]), int(img.shape[0]), det))
    summary.add_time("postprocess", t_map + time.perf_counter() - t)
    summary.add_time("detect_total", t_det)
    summary.add_time("segment_total", t_seg)
    return out
