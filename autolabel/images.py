"""Image input, in one place: discovery, decoding to RGB uint8 after EXIF transpose."""

from __future__ import annotations

import io
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.errors import ImageError, UsageError
from autolabel.types import ImageInfo

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970  # Pillow's default decompression-bomb limit


def display_name(relpath: str) -> str:
    """A relative path as text that can be stored and printed: bytes that are not UTF-8 (kept by Python
    as surrogates) are shown as \\xNN escapes."""
    return relpath.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def discover_images(
    root: str | Path, problems: list[tuple[str, str]] | None = None, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
) -> list[ImageInfo]:
    """All images (files with these `extensions`) under `root`, recursively, case-insensitive extensions,
    sorted by relative path.

    Relative paths use '/' and keep sub-folders, so `a/x.jpg` and `b/x.jpg` stay distinct. Hidden
    files and folders (starting with '.') are skipped. Symlinked files are followed; symlinked folders
    are not walked (no cycles). Folders that cannot be read, and images whose name is not valid UTF-8
    (no dataset format can hold it), are left out and added to `problems` as (relpath, reason).
    """
    problems = problems if problems is not None else []
    root_p = Path(root)
    if not root_p.exists():
        raise UsageError(f"input folder '{root}' does not exist")
    if not root_p.is_dir():
        raise UsageError(f"input '{root}' is not a folder", hint="pass the folder that holds the images")
    found: list[ImageInfo] = []

    def unreadable(e: OSError) -> None:
        where = Path(e.filename).relative_to(root_p).as_posix() if e.filename else "?"
        problems.append((display_name(where) + "/", f"folder cannot be read: {e.strerror or e}"))

    for dirpath, dirnames, filenames in os.walk(root_p, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(extensions):
                continue
            full = Path(dirpath) / name
            rel = full.relative_to(root_p).as_posix()
            if display_name(rel) != rel:
                problems.append((display_name(rel), "file name is not valid UTF-8: rename the file"))
                continue
            found.append(ImageInfo(relpath=rel, path=str(full)))
    found.sort(key=lambda i: i.relpath)
    return found


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale integer images wider than 8 bits (16-bit PNG/TIFF) and float images to uint8."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return ((np.nan_to_num(arr) - lo) * scale).clip(0, 255).astype(np.uint8)
    # integer: 16-bit data stored in I;16 / I mode. Use the full 16-bit range unless values exceed it.
    hi = int(arr.max()) if arr.size else 0
    bits = 16 if hi <= 65535 else 32
    return (arr.astype(np.float64) / (2**bits - 1) * 255).round().clip(0, 255).astype(np.uint8)


def _pil_open() -> Any:
    """Pillow's own Image.open. ultralytics, once imported, replaces it process-wide with a wrapper that
    tries to install a HEIF plugin on unidentifiable files (ModuleNotFoundError offline); its original
    is kept in `ultralytics.utils.patches._image_open`."""
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", None) or Image.open


def load_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode one image to RGB uint8 (H, W, 3), after EXIF transpose.

    Grayscale, palette, LA/RGBA (alpha dropped), CMYK, 16-bit and float inputs are converted.
    Raises ImageError with a reason for empty, truncated, unreadable, non-image or too-large files.
    """
    from autolabel.storage import fetch, is_uri

    try:
        if is_uri(path):  # an object in a bucket: fetched here, where it is decoded
            data = fetch(str(path))
            if not data:
                raise ImageError("empty object (0 bytes)")
            return _decode(io.BytesIO(data), max_pixels)
        source = Path(path)
        if source.stat().st_size == 0:
            raise ImageError("empty file (0 bytes)")
        return _decode(source, max_pixels)
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as e:
        raise ImageError(f"cannot decode: {e}") from None


def decode_image(data: bytes, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """`load_image` for bytes already read (an upload, a download)."""
    if not data:
        raise ImageError("empty image (0 bytes)")
    return _decode(io.BytesIO(data), max_pixels)


def _decode(source: Any, max_pixels: int | None) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _pil_open()(source) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                return _pil_to_rgb(im)
    except ImageError:
        raise
    except PermissionError:
        raise ImageError("permission denied") from None
    except UnidentifiedImageError:
        raise ImageError("not an image (Pillow cannot identify the file)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"too large ({e}); raise the limit with --max-image-pixels") from None
    except OSError as e:
        raise ImageError(f"cannot decode: {e}") from None
    except Exception as e:
        raise ImageError(f"cannot decode: {type(e).__name__}: {e}") from None


def _pil_to_rgb(im: object) -> np.ndarray:
    mode = im.mode  # type: ignore[attr-defined]
    if mode in ("RGB",):
        return np.asarray(im, dtype=np.uint8).copy()
    if mode in ("P", "PA", "1", "L", "LA", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "La", "RGBX"):
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()  # type: ignore[attr-defined]
    arr = _to_uint8(np.asarray(im))  # I;16*, I, F: scale, don't clip
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])
