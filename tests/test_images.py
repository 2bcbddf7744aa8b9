from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autolabel.errors import ImageError, UsageError
from autolabel.images import discover_images, load_image


def test_discovery_is_recursive_sorted_case_insensitive_and_keeps_relative_paths(tmp_path: Path) -> None:
    for rel in [
        "b/x.JPG",
        "a/x.jpg",
        "top.PNG",
        "c/d/e.webp",
        "f.TIFF",
        "g.bmp",
        "h.jpeg",
        "notes.txt",
        ".hidden.jpg",
        ".cache/i.jpg",
    ]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(p, format="PNG") if not rel.endswith(".txt") else p.write_text("x")
    rels = [i.relpath for i in discover_images(tmp_path)]
    assert rels == ["a/x.jpg", "b/x.JPG", "c/d/e.webp", "f.TIFF", "g.bmp", "h.jpeg", "top.PNG"]


def test_discovery_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        discover_images(tmp_path / "nope")
    f = tmp_path / "f.jpg"
    f.write_bytes(b"")
    with pytest.raises(UsageError, match="not a folder"):
        discover_images(f)


def _exif_rotated(path: Path) -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(path, exif=exif.tobytes())


def test_exif_transpose_gives_displayed_orientation(tmp_path: Path) -> None:
    p = tmp_path / "r.jpg"
    _exif_rotated(p)
    arr = load_image(p)
    assert arr.shape == (40, 20, 3)  # width/height swapped after transpose
    assert arr[2, 10, 2] > 200 and arr[-2, 10, 0] > 200  # blue now on top, red below


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "1", "I;16"])
def test_modes_become_rgb_uint8(tmp_path: Path, mode: str) -> None:
    base = Image.new("RGB", (8, 6), (200, 100, 50))
    if mode == "I;16":
        img = Image.fromarray(np.full((6, 8), 65535 // 2, dtype=np.uint16))
        p = tmp_path / "x.png"
    else:
        img = base.convert(mode)
        p = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(p)
    arr = load_image(p)
    assert arr.dtype == np.uint8 and arr.shape == (6, 8, 3)
    if mode == "I;16":
        assert 120 <= arr[0, 0, 0] <= 135  # scaled from 16 bits, not clipped to white
    if mode in ("RGBA", "P", "CMYK"):
        assert abs(int(arr[0, 0, 0]) - 200) < 8


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"this is text, not an image", "not an image"), ("truncated", "cannot decode")],
)
def test_bad_files_raise_image_error_with_reason(tmp_path: Path, content: object, reason: str) -> None:
    p = tmp_path / "bad.jpg"
    if content == "truncated":
        Image.new("RGB", (64, 64), (1, 2, 3)).save(p, quality=95)
        p.write_bytes(p.read_bytes()[:200])
    else:
        p.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match=reason):
        load_image(p)


def test_decompression_bomb_limit_is_configurable(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(p)
    with pytest.raises(ImageError, match="too large"):
        load_image(p, max_pixels=1000)
    assert load_image(p, max_pixels=20000).shape == (100, 100, 3)
