"""Pins the bytes of small COCO and YOLO exports: a refactor must not change a single byte of what
users get. The hashes were taken before the package was reorganised (issue: Structure) and held through
it; the YOLO ones changed once, on purpose, when YOLO polygons moved from pixel edges to pixel centres (exact
for ultralytics' rasteriser, tests/export/test_yolo_geometry.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

PINNED = {
    "coco-polygon": "19be18131894f383ee0999bfc16273f574d2f84efe36d63bc4052d9a79f24b04",
    "coco-rle": "3c723e21dc66b4840cc32dceec9d7908595d76c20c82603d7da1e6a4b2937b61",
    "yolo-merge": "c13b83503ba79d1f603d7faeaa1323506f8e9ab88cb7389c7685bea9a5601e8f",
    "yolo-largest-simplified": "8629c698d1e62426bde048280602787f4c1b3d1ebfdd8ca1db9e1a945018ffed",
}


def _tree_digest(root: Path) -> str:
    """sha256 over every file's relative path, kind and bytes (data.yaml's absolute `path` left out)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            h.update(f"L {rel} -> {Path(p.readlink()).name}\n".encode())
        elif p.is_file():
            data = p.read_bytes()
            if p.name == "data.yaml":
                data = b"\n".join(line for line in data.split(b"\n") if not line.startswith(b"path:"))
            h.update(f"F {rel} {hashlib.sha256(data).hexdigest()}\n".encode())
    return h.hexdigest()


def _export(run: Path, fmt: str, **kw: object) -> Path:
    from autolabel.export import ExportOptions, YoloOptions, export_run

    yolo = YoloOptions(**{k: v for k, v in kw.items() if k in ("multipart", "split", "seed")})
    opts = ExportOptions(
        coco_masks=str(kw.get("coco_masks", "polygon")), yolo=yolo, polygon_tolerance=kw.get("polygon_tolerance")
    )  # type: ignore[arg-type]
    export_run(run, [fmt], opts)
    return run / fmt


@pytest.mark.parametrize(
    "key,fmt,kw",
    [
        ("coco-polygon", "coco", {}),
        ("coco-rle", "coco", {"coco_masks": "rle"}),
        ("yolo-merge", "yolo", {"split": (0.6, 0.2, 0.2)}),
        ("yolo-largest-simplified", "yolo", {"multipart": "largest", "polygon_tolerance": 1.0}),
    ],
)
def test_export_bytes_are_pinned(labeled_run: dict[str, Path], key: str, fmt: str, kw: dict) -> None:
    out = _export(labeled_run["run"], fmt, **kw)
    assert _tree_digest(out) == PINNED[key]
