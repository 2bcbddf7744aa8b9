"""Synthetic test images with known shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .fakes import BACKGROUND, COLORS


def scene(width: int = 160, height: int = 120, seed: int = 0) -> Image.Image:
    """A grey image with a red square, a blue ring (a disk with a hole) and a small green square."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(img)
    ox, oy = int(rng.integers(0, 10)), int(rng.integers(0, 10))
    d.rectangle([10 + ox, 10 + oy, 49 + ox, 44 + oy], fill=COLORS["red"])
    d.ellipse([70 + ox, 20 + oy, 120 + ox, 70 + oy], fill=COLORS["blue"])
    d.ellipse([90 + ox, 40 + oy, 100 + ox, 50 + oy], fill=BACKGROUND)  # the hole
    d.rectangle([130, 90, 141, 101], fill=COLORS["green"])
    return img


def write_images(root: Path, names: list[str], size: tuple[int, int] = (160, 120)) -> list[Path]:
    paths = []
    for i, name in enumerate(names):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        scene(*size, seed=i).save(p)
        paths.append(p)
    return paths
