"""Exports written from hand-made masks (every shape a format can get wrong), and the annotation tools'
own Python environments (label-studio with its SDK, datumaro: they pin other NumPy / OpenCV versions, so
`make test` installs them beside the project's, see the Makefile)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autolabel.export import ExportContext, ExportOptions, write_exports
from autolabel.types import Detections, ImageResult

CLASSES = ["cat", "dog"]


def _masks(h: int, w: int) -> list[np.ndarray]:
    parts = np.zeros((h, w), bool)  # two parts of one object
    parts[5:15, 5:20] = True
    parts[30:40, 50:58] = True
    ring = np.zeros((h, w), bool)  # a hole
    yy, xx = np.mgrid[:h, :w]
    d = (yy - 25) ** 2 + (xx - 30) ** 2
    ring[(d < 15**2) & (d >= 6**2)] = True
    pixel = np.zeros((h, w), bool)  # one pixel
    pixel[h - 3, 2] = True
    edge = np.zeros((h, w), bool)  # touching three borders
    edge[h - 8 :, :] = True
    return [parts, ring, pixel, edge]


def handmade_results() -> list[ImageResult]:
    out = []
    for k, (rel, w, h) in enumerate([("a/one.png", 64, 48), ("b/two.png", 80, 50)]):
        masks = _masks(h, w)
        from autolabel.masks import mask_to_xyxy

        boxes = np.stack([mask_to_xyxy(m) for m in masks])
        det = Detections(
            boxes,
            np.array([0, 1, 0, 1]) if k == 0 else np.array([1, 1, 0, 0]),
            np.array([0.91, 0.55, 0.42, 0.77]),
            ["cat", "dog", "cat", "dog"],
            np.stack(masks),
        )
        out.append(ImageResult(rel, w, h, det))
    return out


def write_handmade(tmp_path: Path, formats: list[str], **options: object) -> tuple[Path, list[ImageResult]]:
    """Exports of `handmade_results()` into tmp_path/out (images under tmp_path/data); returns (out, results)."""
    results = handmade_results()
    for r in results:
        p = tmp_path / "data" / r.relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (r.width, r.height), (90, 90, 90)).save(p)
    ctx = ExportContext(
        out_dir=tmp_path / "out",
        classes=CLASSES,
        images=[(r.relpath, r.width, r.height) for r in results],
        input_root=tmp_path / "data",
        has_masks=True,
        options=ExportOptions(**options),  # type: ignore[arg-type]
        polygon_tolerance=0.0,
        info={"model_version": "autolabel test"},
    )
    write_exports(ctx, formats, results)
    return tmp_path / "out", results


def tool_python(kind: str) -> str:
    """The Python of an annotation tool's environment (`labelstudio`, `datumaro`). `make test` provides them
    (and sets AUTOLABEL_REQUIRE_TOOLS, so a missing one fails there instead of skipping)."""
    path = os.environ.get(f"AUTOLABEL_{kind.upper()}_PYTHON", "")
    if path and Path(path).is_file():
        return path
    if os.environ.get("AUTOLABEL_REQUIRE_TOOLS"):
        pytest.fail(f"AUTOLABEL_{kind.upper()}_PYTHON is not set to a Python with {kind}: run `make test`")
    pytest.skip(f"no {kind} environment (make test sets AUTOLABEL_{kind.upper()}_PYTHON)")


def run_tool(kind: str, script: str, *args: str, timeout: float = 300) -> str:
    """Run `script` with the tool's Python; its stdout (a failure shows its stderr)."""
    p = subprocess.run([tool_python(kind), "-c", script, *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout
