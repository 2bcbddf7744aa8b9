"""The labeling run's lifecycle: plan → identity checks → models → lock → videos' frames → executor (and
the `tracker: sam2` clips) → summary.

Per-image candidates are committed to the run store as they are made; a rerun skips what is done
(and relabels images whose file changed). A run directory belongs to one input folder and one set of
inference settings; a finished run is only discarded (`overwrite`) once the new run's models are
loaded and its lock is held.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autolabel.config.ontology import Ontology
from autolabel.config.plan import RunPlan, diff_settings, fingerprint, inference_settings, make_plan
from autolabel.errors import RunStoreError, UsageError
from autolabel.fsutil import RunLock, is_within, write_text_atomic
from autolabel.inference.examples import Loaded
from autolabel.inference.models import (
    Models,
    check_prompts,
    load_detector,
    load_models,
    load_video_model,
    preflight_models,
    with_tiling,
)
from autolabel.progress import Progress
from autolabel.run.clips import FRAMES_DIR, clip_frames, forget_gone, videos_pending
from autolabel.run.executors.local import fixed_batches, run_local
from autolabel.run.executors.tracked import run_tracked
from autolabel.run.inputs import discover_input
from autolabel.run.settings import LabelJob, RunSettings, RunSummary
from autolabel.run.store import STORE_NAME, RunMeta, RunStore, file_signature, store_path
from autolabel.run.store_health import quick_check, set_aside
from autolabel.storage import MANIFEST, is_uri
from autolabel.types import ImageInfo
from autolabel.video.clip import Clip

__all__ = ["run_labeling"]

SKIPPED_NAME = "skipped.txt"
SUMMARY_NAME = "summary.json"
EXPORT_NAMES = (
    "coco",
    "yolo",
    "mot",
    FRAMES_DIR,
    SKIPPED_NAME,
    SUMMARY_NAME,
    "eval.json",
    "preview",
)  # never corrected/ (review work)


def check_output_dir(input_root: Path, output_dir: Path) -> None:
    if is_within(output_dir, input_root):
        raise UsageError(
            f"output directory '{output_dir}' is inside the input folder '{input_root}'",
            hint="autolabel never writes into the input folder; choose an --output outside it",
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"output '{output_dir}' exists and is not a directory")
    visible = output_dir.is_dir() and any(not p.name.startswith(".") for p in output_dir.iterdir())
    if visible and not store_path(output_dir).exists():
        raise RunStoreError(
            f"output directory '{output_dir}' is not empty and holds no autolabel run ({STORE_NAME})",
            hint="choose a new or empty --output directory",
        )


@dataclass
class OpenedRun:
    exists: bool
    discard: bool  # --overwrite of an incompatible run: cleared once models are loaded and the lock held
    done: dict[str, str | None]  # relpath → signature of done images


def _same_source(recorded: str, source: str) -> bool:
    if is_uri(recorded) or is_uri(source):
        return recorded.rstrip("/") == source.rstrip("/")
    return Path(recorded) == Path(source)


def open_run(output_dir: Path, input_root: str, fp: str, settings: dict[str, Any], overwrite: bool) -> OpenedRun:
    """Check an existing run belongs to this input folder and these inference settings. With `overwrite`,
    a store that cannot be read (damaged, another version) is discarded instead."""
    path = store_path(output_dir)
    if not path.exists():
        return OpenedRun(False, False, {})
    try:
        store = RunStore(path)
    except RunStoreError:
        if overwrite and quick_check(path):  # damaged pages: relabel it all (the file is set aside first)
            return OpenedRun(True, True, {})
        raise
    try:
        return _compare_run(store, output_dir, input_root, fp, settings, overwrite)
    except RunStoreError:
        if overwrite:
            return OpenedRun(True, True, {})
        raise
    finally:
        store.close()


def _compare_run(
    store: RunStore, output_dir: Path, input_root: str, fp: str, settings: dict[str, Any], overwrite: bool
) -> OpenedRun:
    meta = store.get_meta()
    if meta is None:
        return OpenedRun(True, False, store.done_signatures())
    problems = []
    same = _same_source(meta.input_root, input_root)
    if not same:
        problems.append(f"input folder: {meta.input_root} → {input_root}")
    problems += diff_settings(meta.settings, settings) if meta.fingerprint != fp else []
    if problems and not overwrite:
        what = "another input folder" if not same else "other settings"
        raise RunStoreError(
            f"'{output_dir}' holds a run of {what}; what differs:\n  " + "\n  ".join(problems),
            hint="choose another --output directory, or rerun with --overwrite to discard that run "
            "(thresholds, NMS and clean-up are not in this list: change them freely)",
        )
    return OpenedRun(True, bool(problems), {} if problems else store.done_signatures())


def discard_run(output_p: Path) -> None:
    """Clear the store and remove the previous run's exports (other class ids must not survive). A damaged
    store cannot be cleared: it is set aside (kept for salvage) and a new one made."""
    path = store_path(output_p)
    try:
        store = RunStore(path)
        try:
            store.clear()
        finally:
            store.close()
    except (RunStoreError, sqlite3.DatabaseError):
        if not quick_check(path):  # not damage (a full disk, permissions): said as it is
            raise
        set_aside(path)
    for name in EXPORT_NAMES:
        p = output_p / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _unchanged(images: list[ImageInfo], done: dict[str, str | None]) -> set[str]:
    """Done images whose file is the same as when it was labeled (size + mtime)."""
    out = set()
    for im in images:
        sig = done.get(im.relpath, "missing")
        if sig == "missing":
            continue
        try:
            if sig is None or sig == (im.signature or file_signature(im.path)):
                out.add(im.relpath)
        except OSError:
            pass
    return out


def run_labeling(
    ontology: Ontology,
    input_path: str | Path,
    output_dir: str | Path,
    settings: RunSettings | None = None,
    progress: Progress | None = None,
    backends: Models | None = None,
) -> RunSummary:
    """Label every image and video under `input_path` (a folder, one image or video file, or a bucket
    prefix) into the run store in `output_dir`; a video's sampled frames are images of the run
    (`run.clips`). Resumes a run with the same input folder and inference settings.
    `backends` injects (detector, segmenter) instead of loading the plan's models."""
    t_start = time.perf_counter()
    settings = settings or RunSettings()
    if settings.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {settings.batch_size}")
    output_p = Path(output_dir)
    found = discover_input(input_path, settings.limit, output_p, settings.relist, settings.images)
    input_root, images, problems = found.source, found.images, found.problems
    if not is_uri(input_root):
        check_output_dir(Path(input_root), output_p)
    RunLock.check(output_p)  # before any model is loaded: a busy directory is refused at once
    plan = make_plan(ontology)
    fp_settings = inference_settings(plan)
    examples = None
    if ontology.examples:  # read and checked before any model is loaded; what they are is fingerprinted
        from autolabel.inference.examples import example_signatures, load_examples

        fp_settings["examples.images"] = example_signatures(ontology, input_root)
        examples = load_examples(ontology, input_root)
    meta = RunMeta(
        fingerprint(fp_settings),
        input_root,
        list(ontology.classes),
        fp_settings,
        list(ontology.all_prompts),
        plan.decisions.to_json(),
    )
    opened = open_run(output_p, input_root, meta.fingerprint, fp_settings, settings.overwrite)
    fresh = not opened.exists or opened.discard
    clip_settings = plan.clip_settings()
    pending = len(_unchanged(images, opened.done)) < len(images)
    pending = pending or videos_pending(found.videos, output_p, opened.done, fresh, clip_settings)
    models = _models(plan, settings, backends, examples) if pending else None  # a finished run loads none
    output_p.mkdir(parents=True, exist_ok=True)
    with RunLock(output_p):
        _start(output_p, opened.discard, meta, problems)
        frames, clips = clip_frames(found.videos, output_p, ontology.video, clip_settings, progress)
        images = sorted(images + frames, key=lambda im: im.relpath)
        done = _unchanged(images, opened.done)
        if models is None and len(done) < len(images):
            models = _models(plan, settings, backends, examples)  # a video changed while it was being checked
        if settings.limit is None and settings.images is None and not found.single_file:  # forget deleted files
            listed = {im.relpath for im in images} | {v.relpath for v in found.videos} | {r for r, _ in problems}
            forget_gone(output_p, sorted(set(opened.done) - {im.relpath for im in images}), set(clips), listed)
        if found.manifest is not None:  # a fresh listing of object storage: kept for reruns
            write_text_atomic(output_p / MANIFEST, found.manifest)
        summary = RunSummary(
            images_total=len(images),
            already_done=len(done),
            changed=sum(1 for im in images if im.relpath in opened.done and im.relpath not in done),
        )
        _label(images, done, plan, settings, models, output_p, summary, progress or Progress(), clips)
        if plan.ontology.verifier is not None and not summary.interrupted:
            summary.verifier = _verify(output_p, plan, images, settings)
    summary.wall_seconds = time.perf_counter() - t_start
    write_text_atomic(output_p / SUMMARY_NAME, json.dumps(summary.to_json(), indent=2) + "\n")
    return summary


def _models(
    plan: RunPlan, settings: RunSettings, backends: Models | None, examples: Loaded | None = None
) -> Models | None:
    """The models of a local run (checked prompts, tiling, examples given); for Ray (None) the workers load
    them, the driver only checks they can be loaded."""
    if settings.ray is not None and examples is not None:
        raise UsageError("example boxes (`examples:`) are not sent to Ray workers yet", hint="label without --ray")
    if settings.ray is not None:
        from autolabel.run.executors.ray import import_ray

        import_ray()  # an install hint before anything else
        preflight_models(plan)
        return None
    detector, segmenter = backends if backends is not None else load_models(plan, settings.device, settings.precision)
    detector = with_tiling(detector, plan)
    check_prompts(detector, plan)
    if examples is not None:
        from autolabel.inference.examples import give_examples

        give_examples(detector, examples)
    return detector, segmenter


def _verify(output_p: Path, plan: RunPlan, images: list[ImageInfo], settings: RunSettings) -> dict[str, Any]:
    """The verifier's pass over the doubtful candidates (loaded only when one is unanswered)."""
    from autolabel.inference.models import load_verifier
    from autolabel.run.verify import verify_run

    counts = verify_run(
        output_p,
        plan,
        images,
        lambda: load_verifier(plan, settings.device, settings.precision),
        settings.max_image_pixels,
    )
    return counts.to_json()


def _start(output_p: Path, discard: bool, meta: RunMeta, problems: list[tuple[str, str]]) -> None:
    """Under the run lock: discard an incompatible run (--overwrite), record this run's metadata, and record
    what cannot be labeled at all as skipped."""
    if discard:
        discard_run(output_p)
    store = RunStore(store_path(output_p))
    try:
        store.set_meta(meta)
        with store.transaction():
            for relpath, why in problems:
                store.put_skipped(relpath, why)
    finally:
        store.close()


def _label(
    images: list[ImageInfo],
    done: set[str],
    plan: RunPlan,
    settings: RunSettings,
    models: Models | None,
    output_p: Path,
    summary: RunSummary,
    progress: Progress,
    clips: dict[str, Clip],
) -> None:
    """Run the pending batches through the executor (and, with `tracker: sam2`, the clips through their
    sessions); a stop (Ctrl-C, SIGTERM) keeps what is done."""
    progress.start(len(images), summary.already_done)
    tracked = clips if plan.tracker in ("sam2", "sam3") else {}
    in_clips = {r for c in tracked.values() for r in c.frame_relpaths()}
    try:
        pending = [im for im in images if im.relpath not in in_clips]
        done_here = done & {im.relpath for im in pending}
        batches = fixed_batches(pending, done_here, settings.batch_size) if len(done_here) < len(pending) else []
        if batches and settings.ray is not None:
            from autolabel.run.executors.ray import run_ray

            run_ray(LabelJob(batches, done, plan, settings, output_p, summary, progress), settings.ray)
        elif batches and models is not None:
            run_local(LabelJob(batches, done, plan, settings, output_p, summary, progress), *models)
        if not done.issuperset(in_clips):  # under --ray too: a clip is followed in order, here
            detector = models[0] if models is not None else None
            if detector is None and plan.tracker == "sam2":
                detector = load_detector(plan, settings.device, settings.precision)
            video, device = load_video_model(plan, settings.device, settings.precision)
            frames = {im.relpath: im for im in images if im.relpath in in_clips}
            job = LabelJob([], done, plan, settings, output_p, summary, progress)
            run_tracked(job, tracked, frames, detector, video, device)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        progress.stop()
        _finish_summary(output_p, summary, models)


def _finish_summary(output_p: Path, summary: RunSummary, models: Models | None) -> None:
    store = RunStore(store_path(output_p))
    try:
        summary.skipped = store.skipped()
    finally:
        store.close()
    write_text_atomic(output_p / SKIPPED_NAME, "".join(f"{r}\t{why}\n" for r, why in summary.skipped))
    detector, segmenter = models if models is not None else (None, None)
    if detector is not None:
        summary.detector_passes = detector.stats.passes
        summary.add_time("detector", detector.stats.seconds)
    if segmenter is not None:
        summary.segmenter_passes = segmenter.stats.passes
        summary.add_time("segmenter", segmenter.stats.seconds)
