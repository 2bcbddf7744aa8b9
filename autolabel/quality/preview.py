"""`autolabel preview`: overlay images (masks, boxes, class names, scores) and a contact sheet."""

from __future__ import annotations

import colorsys
import hashlib
from pathlib import Path

import numpy as np

from autolabel.fsutil import atomic_write, export_name, safe_join
from autolabel.images import load_image
from autolabel.overrides import ThresholdOverrides
from autolabel.run.run import Run
from autolabel.types import ImageResult


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per class (golden-ratio hues)."""
    h = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def render_overlay(image: np.ndarray, res: ImageResult, classes: list[str], alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 (H, W, 3) with each instance's mask tinted, its box drawn and 'class score' written."""
    import cv2

    out = image.astype(np.float32).copy()
    det = res.detections
    for i in range(len(det)):
        color = np.array(class_color(int(det.class_id[i])), dtype=np.float32)
        if det.masks is not None:
            m = det.masks[i]
            out[m] = out[m] * (1 - alpha) + color * alpha
    canvas = out.clip(0, 255).astype(np.uint8)
    scale = max(canvas.shape[:2]) / 640
    thick = max(1, int(round(2 * scale)))
    for i in range(len(det)):
        rgb = class_color(int(det.class_id[i]))
        x0, y0, x1, y1 = (int(round(v)) for v in det.xyxy[i])
        cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), rgb, thick)
        if det.masks is not None:
            contours, _ = cv2.findContours(det.masks[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(canvas, contours, -1, rgb, max(1, thick // 2))
        text = classes[int(det.class_id[i])] + ("" if det.confidence is None else f" {det.confidence[i]:.2f}")
        fs = max(0.35, 0.5 * scale)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, max(1, thick // 2))
        ty = max(y0, th + base + 2)
        cv2.rectangle(canvas, (x0, ty - th - base - 2), (x0 + tw + 4, ty), rgb, -1)
        cv2.putText(
            canvas, text, (x0 + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), max(1, thick // 2), cv2.LINE_AA
        )
    return canvas


def contact_sheet(tiles: list[np.ndarray], captions: list[str], cols: int = 4, tile: int = 320) -> np.ndarray:
    import cv2

    rows = max(1, -(-len(tiles) // cols))
    sheet = np.full((rows * (tile + 24), cols * tile, 3), 255, dtype=np.uint8)
    for k, (img, cap) in enumerate(zip(tiles, captions)):
        h, w = img.shape[:2]
        s = tile / max(h, w)
        small = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        y, x = r * (tile + 24), c * tile
        sheet[y : y + small.shape[0], x : x + small.shape[1]] = small
        cv2.putText(sheet, cap[:40], (x + 4, y + tile + 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def _save(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    with atomic_write(path, "wb") as f:
        Image.fromarray(rgb).save(f, format="JPEG", quality=90)


def write_previews(
    run_dir: str | Path,
    n: int = 16,
    out_dir: str | Path | None = None,
    seed: int | None = None,
    cols: int = 4,
    overrides: ThresholdOverrides | None = None,
) -> tuple[Path, int, str]:
    """Overlays for `n` images (the first n by path, or a seeded sample) and a contact sheet of them, with
    the run's recorded decisions (or `overrides`). Returns the sheet, the count and which decisions."""
    run = Path(run_dir)
    out = Path(out_dir) if out_dir else run / "preview"
    with Run.open(run) as opened:
        rels = [r for r, _, _ in opened.images()]
        if seed is not None:
            rels = sorted(rels, key=lambda r: hashlib.sha256(f"{seed}:{r}".encode()).hexdigest())
        tiles, caps = [], []
        applied = opened.applied(overrides).describe()
        for res in opened.results(opened.decisions(overrides), relpaths=rels[:n]):  # only the images drawn
            img = load_image(opened.location(res.relpath))
            overlay = render_overlay(img, res, opened.classes)
            _save(safe_join(out, str(Path(export_name(res.relpath)).with_suffix(".jpg"))), overlay)
            tiles.append(overlay)
            caps.append(f"{res.relpath} ({len(res.detections)})")
    sheet = out / "contact_sheet.jpg"
    _save(sheet, contact_sheet(tiles, caps, cols=cols))
    return sheet, len(tiles), applied
