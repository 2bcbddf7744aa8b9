"""CVAT for images 1.1 (`-f cvat`): `cvat/annotations.xml`, streamed image by image and written atomically.

Upload it to a CVAT task made of the same images (Actions → Upload annotations → "CVAT 1.1"); image
`name`s are the paths relative to the labeled folder, as CVAT names files uploaded with their folders.

Traps handled: masks in CVAT's own RLE over the mask's box (counts start with a run of 0s, the box is
`left, top, width, height` in whole pixels, and the counts always add up to width × height); polygons
(on request) have at least three points, one `<polygon>` per part sharing a `group_id`, so multi-part
masks stay one object; every label used is declared in `<meta>`; no timestamp, so a rerun is
byte-identical.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

import numpy as np

from autolabel.errors import UsageError
from autolabel.export.base import TOOL_MASKS, ExportContext
from autolabel.export.labelstudio import PALETTE
from autolabel.fsutil import StreamedFile, head_lines
from autolabel.masks import external_polygons
from autolabel.tool_rle import cvat_encode
from autolabel.types import ImageResult

MARK = "<!-- CVAT for images 1.1, written by autolabel -->"  # the second line of every file we write


def _n(v: float) -> str:
    return f"{float(v):.2f}"


def cvat_meta(classes: list[str], size: int, name: str) -> str:
    labels = "".join(
        f"<label><name>{escape(c)}</name><color>{PALETTE[i % len(PALETTE)]}</color><type>any</type>"
        "<attributes></attributes></label>"
        for i, c in enumerate(classes)
    )
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
            out.append(f'<box {common} xtl="{_n(x0)}" ytl="{_n(y0)}" xbr="{_n(x1)}" ybr="{_n(y1)}"></box>')
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
                points = ";".join(f"{_n(x)},{_n(y)}" for x, y in poly)
                out.append(f'<polygon {common}{grouped} points="{points}"></polygon>')
    return out, group


class CvatExporter:
    """`-f cvat`: CVAT for images 1.1 XML in `cvat/annotations.xml`."""

    name = "cvat"

    def __init__(self) -> None:
        self.file: StreamedFile | None = None
        self.n = 0
        self.group = 1

    def open(self, ctx: ExportContext) -> None:
        if ctx.options.tool_masks not in TOOL_MASKS:
            raise UsageError(f"--tool-masks '{ctx.options.tool_masks}': valid: {', '.join(TOOL_MASKS)}")
        self.path = ctx.out_dir / "cvat" / "annotations.xml"
        if self.path.exists() and [x.strip() for x in head_lines(self.path, 2)[1:]] != [MARK]:
            raise UsageError(
                f"'{self.path}' exists and was not written by autolabel: not replacing it",
                hint="move it away, or export to another directory (-o)",
            )
        self.ctx = ctx
        self.file = StreamedFile(self.path)
        name = str(ctx.info.get("model_version", "autolabel"))
        self.file.write(f'<?xml version="1.0" encoding="utf-8"?>\n{MARK}\n<annotations>\n  <version>1.1</version>\n')
        self.file.write(cvat_meta(ctx.classes, len(ctx.images), name))

    def add(self, result: ImageResult) -> None:
        assert self.file is not None, "open() first"
        ctx = self.ctx
        shapes, self.group = image_shapes(
            result, ctx.classes, ctx.options.tool_masks, ctx.polygon_tolerance, self.group
        )
        body = "".join(f"    {s}\n" for s in shapes)
        self.file.write(
            f'  <image id="{self.n}" name={quoteattr(result.relpath)} width="{result.width}" '
            f'height="{result.height}">\n{body}  </image>\n'
        )
        self.n += 1

    def close(self) -> str:
        assert self.file is not None, "open() first"
        self.file.write("</annotations>\n")
        self.file.commit()
        return f"{self.path} ({self.n} images)"

    def abort(self) -> None:
        if self.file is not None:
            self.file.discard()
