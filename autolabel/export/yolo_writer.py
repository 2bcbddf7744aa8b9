"""The YOLO writer (`-f yolo`): the dataset is built in a staging folder beside `yolo/` and swapped in
when complete. Only a folder autolabel wrote (its `data.yaml` says so) is ever replaced; a `yolo/` that is a
symlink (to a bigger disk) is written where it points. The converters are in `yolo.py`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from autolabel.errors import ImageError, UsageError
from autolabel.export.base import MEDIA_MODES, ExportContext
from autolabel.export.yolo import SPLITS, assign_splits, data_yaml, detections_to_yolo_lines, yolo_image_names
from autolabel.fsutil import safe_join, write_text_atomic
from autolabel.storage import fetch
from autolabel.types import ImageResult
from autolabel.video.clip import clip_of

MARK = "# YOLO dataset written by autolabel."  # the first line of every data.yaml autolabel writes


def place_media(src: Path | str, dst: Path, mode: str) -> None:
    if isinstance(src, str):  # an object in a bucket: downloaded (it cannot be linked)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".al-{os.getpid()}.tmp")
        try:
            tmp.write_bytes(fetch(src))
        except ImageError as e:
            raise UsageError(f"cannot download '{src}' for the YOLO export: {e.message}") from None
        os.replace(tmp, dst)
        return
    if not src.is_file():
        raise UsageError(
            f"the labeled image '{src}' is gone (was the input folder moved or renamed?)",
            hint="put it back, or relabel from its new place into a new --output; the previous export is kept",
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".al-{os.getpid()}.tmp")  # short: a 255-byte file name still fits
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    if mode == "symlink":
        os.symlink(src.resolve(), tmp)
    elif mode == "hardlink":
        try:
            os.link(src, tmp)
        except OSError:  # another file system: a copy is the only way
            shutil.copy2(src, tmp)
    else:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def aside_path(real: Path, what: str) -> Path:
    return real.with_name(f".{real.name}.{what}-{os.getpid()}")


def swap_in(staging: Path, real: Path) -> None:
    """Put a finished staging folder in place of `real` (the old one set aside, then removed)."""
    old = aside_path(real, "old")
    if real.exists():
        os.replace(real, old)
    os.replace(staging, real)
    if old.exists():
        shutil.rmtree(old)


def _leftovers(real: Path) -> list[Path]:
    """Staging and set-aside folders of earlier exports of `real`, newest first (any process)."""
    found = [p for p in real.parent.glob(f".{real.name}.*") if p.name.split(".")[-1].startswith(("staging", "old"))]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def recover_swap(real: Path) -> None:
    """Finish or undo exports that were killed while swapping (called under the run lock, so no other
    export is running): the previous complete dataset comes back if the new one never arrived;
    staging and set-aside folders are removed."""
    leftovers = _leftovers(real)
    if not real.exists():
        for p in leftovers:
            if ".old" in p.name:
                os.replace(p, real)
                break
    for p in _leftovers(real):
        shutil.rmtree(p)


def is_autolabel_yolo(path: Path) -> bool:
    try:
        with open(path / "data.yaml", encoding="utf-8") as f:
            return f.readline().startswith(MARK)
    except (OSError, UnicodeDecodeError):
        return False


class YoloExporter:
    """`-f yolo`: an ultralytics dataset in `yolo/`, swapped in whole, so an interrupted export leaves the
    previous complete dataset (or none), never a mix of two splits. Every image of the export takes part
    in the seeded split."""

    name = "yolo"

    def __init__(self) -> None:
        self.staging: Path | None = None

    def open(self, ctx: ExportContext) -> None:
        options = ctx.options.yolo
        if options.media not in MEDIA_MODES:
            raise UsageError(f"--media '{options.media}': valid: {', '.join(MEDIA_MODES)}")
        self.ctx, self.options = ctx, options
        self.final = (ctx.out_dir / "yolo").absolute()
        self.real = self.final.resolve() if self.final.is_symlink() else self.final
        recover_swap(self.real)
        if self.real.exists() and any(self.real.iterdir()) and not is_autolabel_yolo(self.real):
            raise UsageError(
                f"'{self.final}' exists and was not written by autolabel (no autolabel data.yaml): not replacing it",
                hint="move it away, or export to another directory (-o)",
            )
        self.staging = staging = aside_path(self.real, "staging")
        staging.mkdir(parents=True)
        relpaths = [r for r, _, _ in ctx.images]
        clips = {r: c for r in relpaths if (c := clip_of(r, ctx.clips)) is not None}
        self.splits = assign_splits(relpaths, options.split, options.seed, clips)
        self.names = yolo_image_names(relpaths)
        self.counts = {s: 0 for s in SPLITS}

    def add(self, result: ImageResult) -> None:
        assert self.staging is not None, "open() first"
        split, name = self.splits[result.relpath], self.names[result.relpath]
        img_dst = safe_join(self.staging / "images" / split, name)
        label = safe_join(self.staging / "labels" / split, str(PurePosixPath(name).with_suffix(".txt")))
        src = self.ctx.location(result.relpath) if self.ctx.remote else Path(self.ctx.location(result.relpath))
        place_media(src, img_dst, self.options.media)
        lines = detections_to_yolo_lines(
            result.detections,
            result.width,
            result.height,
            self.ctx.has_masks,
            self.options.multipart,
            self.ctx.polygon_tolerance,
        )
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        self.counts[split] += 1

    def close(self) -> str:
        assert self.staging is not None, "open() first"
        write_text_atomic(self.staging / "data.yaml", data_yaml(self.final, self.ctx.classes, self.counts))
        swap_in(self.staging, self.real)
        self.staging = None
        split = ", ".join(f"{k} {v}" for k, v in self.counts.items() if v)
        return f"{self.final / 'data.yaml'} ({split})"

    def abort(self) -> None:
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging = None
