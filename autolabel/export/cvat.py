"""CVAT (`-f cvat`): a folder laid out as a CVAT dataset export, staged and swapped in whole.

    cvat/annotations.xml              CVAT for images 1.1: the still images and their labels
    cvat/images/<relpath>             the still images (links, or copies with --media copy)
    cvat/videos/<clip>/annotations.xml   CVAT for video 1.1: one task per clip, its objects as <track>s
    cvat/videos/<clip>/images/frame_000000.jpg   the clip's sampled frames, in order

Each `annotations.xml` sits beside its `images/`, as in a dataset CVAT exports, so CVAT's own import and
datumaro (`-f cvat`) find the images. Upload a still-image file to a CVAT task made of the same images
(Actions → Upload annotations → "CVAT 1.1"); image `name`s are the paths relative to the labeled folder, as
CVAT names files uploaded with their folders. A clip's task is made of its `images/` frames.

Traps handled: masks in CVAT's own RLE over the mask's box (counts start with a run of 0s, the box is
`left, top, width, height` in whole pixels, and the counts always add up to width × height); polygons
(on request) have at least three points, one `<polygon>` per part sharing a `group_id`, so multi-part
masks stay one object; every label used is declared in `<meta>`; no timestamp, so a rerun is
byte-identical.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from autolabel.errors import UsageError
from autolabel.export.base import TOOL_MASKS, ExportContext, coord
from autolabel.export.cvat_video import ClipTracks, cvat_labels
from autolabel.export.yolo_writer import aside_path, place_media, recover_swap, swap_in
from autolabel.fsutil import StreamedFile, export_names, head_lines, safe_join
from autolabel.masks import external_polygons
from autolabel.tool_rle import cvat_encode
from autolabel.types import ImageResult
from autolabel.video.clip import clip_of, sequence_names

MARK = "<!-- CVAT for images 1.1, written by autolabel -->"  # the second line of every file we write


def cvat_meta(classes: list[str], size: int, name: str) -> str:
    labels = cvat_labels(classes)
    return (
        f"  <meta><task><name>{escape(name)}</name><size>{size}</size><mode>annotation</mode>"
        f"<overlap>0</overlap><labels>{labels}</labels></task></meta>\n"
    )


def image_shapes(
    result: ImageResult, classes: list[str], masks: str, tolerance: float, group: int
) -> tuple[list[str], int]:
    """The `<mask>` / `<polygon>` / `<box>` elements of one image's labels, and the next free group id
    (`group` numbers the parts of multi-part polygons)."""
    det = result.detections
    out: list[str] = []
    for i in range(len(det)):
        label = quoteattr(classes[int(det.class_id[i])])
        common = f'label={label} source="auto" occluded="0" z_order="0"'
        mask = det.masks[i] if det.masks is not None else None
        if mask is None:
            x0, y0, x1, y1 = det.xyxy[i]
            out.append(f'<box {common} xtl="{coord(x0)}" ytl="{coord(y0)}" xbr="{coord(x1)}" ybr="{coord(y1)}"></box>')
        elif masks == "rle":
            enc = cvat_encode(np.asarray(mask, dtype=bool))
            if enc is None:
                continue
            counts, left, top, width, height = enc
            rle = ", ".join(map(str, counts))
            out.append(
                f'<mask {common} rle="{rle}" left="{left}" top="{top}" width="{width}" height="{height}"></mask>'
            )
        else:
            polys = external_polygons(mask, tolerance)
            grouped = f' group_id="{group}"' if len(polys) > 1 else ""
            group += len(polys) > 1
            for poly in polys:
                points = ";".join(f"{coord(x)},{coord(y)}" for x, y in poly)
                out.append(f'<polygon {common}{grouped} points="{points}"></polygon>')
    return out, group


class CvatExporter:
    """`-f cvat`: CVAT for images 1.1 (still images) and CVAT for video 1.1 (one file per clip, tracks) in
    `cvat/`, each beside its images."""

    name = "cvat"

    def __init__(self) -> None:
        self.file: StreamedFile | None = None
        self.staging: Path | None = None
        self.clip: ClipTracks | None = None
        self.n = self.clips = 0
        self.group = 1

    def open(self, ctx: ExportContext) -> None:
        if ctx.options.tool_masks not in TOOL_MASKS:
            raise UsageError(f"--tool-masks '{ctx.options.tool_masks}': valid: {', '.join(TOOL_MASKS)}")
        self.real = ctx.out_dir / "cvat"
        recover_swap(self.real)
        if self.real.exists() and any(self.real.iterdir()) and not _is_ours(self.real):
            raise UsageError(
                f"'{self.real / 'annotations.xml'}' exists and was not written by autolabel: not replacing it",
                hint="move it away, or export to another directory (-o)",
            )
        self.ctx = ctx
        self.staging = aside_path(self.real, "staging")
        self.staging.mkdir(parents=True)
        self.stills = sum(1 for r, _, _ in ctx.images if clip_of(r, ctx.clips) is None)
        self.names = sequence_names(ctx.clips)
        self.image_names = export_names(r for r, _, _ in ctx.images)
        self.file = StreamedFile(self.staging / "annotations.xml")
        name = str(ctx.info.get("model_version", "autolabel"))
        self.file.write(f'<?xml version="1.0" encoding="utf-8"?>\n{MARK}\n<annotations>\n  <version>1.1</version>\n')
        self.file.write(cvat_meta(ctx.classes, self.stills, name))

    def add(self, result: ImageResult) -> None:
        assert self.file is not None and self.staging is not None, "open() first"
        ctx = self.ctx
        if result.clip is not None:
            if self.clip is None or self.clip.clip.relpath != result.clip:
                self._finish_clip()
                name = self.names[result.clip]
                self.clip = ClipTracks(ctx.clips[result.clip], name, ctx.classes, ctx.polygon_tolerance)
            self.clip.add(result, ctx.location(result.relpath))
            return
        shapes, self.group = image_shapes(
            result, ctx.classes, ctx.options.tool_masks, ctx.polygon_tolerance, self.group
        )
        body = "".join(f"    {s}\n" for s in shapes)
        name = self.image_names[result.relpath]  # where images/ holds it (the relative path, made writable)
        self.file.write(
            f'  <image id="{self.n}" name={quoteattr(name)} width="{result.width}" '
            f'height="{result.height}">\n{body}  </image>\n'
        )
        self.n += 1
        if not ctx.remote:  # a bucket's images stay there: attach it to the CVAT task as cloud storage
            place_media(
                Path(ctx.location(result.relpath)),
                safe_join(self.staging / "images", name),
                ctx.options.yolo.media,
            )

    def _finish_clip(self) -> None:
        if self.clip is None or self.staging is None:
            return
        self.clip.write(self.staging / "videos", self.ctx.options.yolo.media)
        self.clips += 1
        self.clip = None

    def close(self) -> str:
        assert self.file is not None and self.staging is not None, "open() first"
        self._finish_clip()
        self.file.write("</annotations>\n")
        self.file.commit()
        self.file = None
        swap_in(self.staging, self.real)
        self.staging = None
        clips = f", {self.clips} clips as tracks in {self.real / 'videos'}" if self.clips else ""
        return f"{self.real / 'annotations.xml'} ({self.n} images{clips})"

    def abort(self) -> None:
        if self.file is not None:
            self.file.discard()
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging = None


def _is_ours(folder: Path) -> bool:
    """A `cvat/` folder autolabel wrote: its annotations.xml carries the mark on its second line."""
    xml = folder / "annotations.xml"
    return xml.is_file() and [x.strip() for x in head_lines(xml, 2)[1:]] == [MARK]
