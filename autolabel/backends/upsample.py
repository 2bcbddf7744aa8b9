"""Low-resolution mask logits → full-size masks as COCO RLE, computed only where a mask can be.

SAM-family decoders give (h, w) logits (256 × 256) that `post_process_masks` upsamples bilinearly to the
photo's full size before thresholding: 12 M values per mask at 12 MP, for masks that cover a few
percent of the photo. Bilinear interpolation is a convex combination of neighbouring logits, so an
output pixel can pass the threshold only next to a low-res logit that does. We find those logits,
interpolate only the output rows and columns they reach, with the same source-index arithmetic as
torch's `interpolate(mode="bilinear", align_corners=False)`, threshold the crop and write its RLE
straight into the full-image frame. Equal to `post_process_masks` except where float rounding
differs at the threshold itself (pixels within ~1e-6 of it; tested).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

UPSAMPLE_CHUNK = 16  # masks a caller hands over at a time (bounds the memory of its own low-res stack)


@lru_cache(maxsize=64)
def axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: the two source indices and their weights, as torch computes them (float32):
    src = in/out · (dst + 0.5) − 0.5, clamped at 0."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    i0 = src.astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    return i0, i1, (np.float32(1) - l1).astype(np.float32), l1


def _reach(i0: np.ndarray, i1: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Output range [start, stop) whose source indices touch the source range [lo, hi]."""
    return int(np.searchsorted(i1, lo, side="left")), int(np.searchsorted(i0, hi, side="right"))


def crop_counts(crop: np.ndarray, y0: int, x0: int, height: int, width: int) -> list[int]:
    """COCO RLE counts (column-major, zeros first) of a (height, width) mask that is `crop` at (y0, x0)
    and zero elsewhere, without making the full mask."""
    ch, cw = crop.shape
    strip = np.zeros((cw, height), dtype=np.uint8)  # the crop's columns, full height, column-major
    strip[:, y0 : y0 + ch] = crop.T
    flat = strip.ravel()
    edges = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
    runs = np.diff(edges)
    if flat.size and flat[0]:
        runs = np.concatenate(([0], runs))
    runs[0] += x0 * height
    tail = (width - x0 - cw) * height
    if len(runs) % 2 == 1:  # ends on zeros
        runs[-1] += tail
    elif tail:
        runs = np.append(runs, tail)
    return runs.tolist()


def _rle(counts: list[int], height: int, width: int) -> dict:
    from pycocotools import mask as mask_utils

    return mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)


def logits_to_rles(logits: Any, height: int, width: int, threshold: float) -> list[dict]:
    """(n, h, w) float logits (a torch tensor on any device) whose frame is the whole (height, width)
    image → n full-size RLE masks of `upsample(logits) > threshold`."""
    n, h, w = (int(s) for s in logits.shape)
    if n == 0:
        return []
    yi0, yi1, yl0, yl1 = axis_weights(h, height)
    xi0, xi1, xl0, xl1 = axis_weights(w, width)
    pos = logits > threshold
    rows_any = pos.any(dim=2).cpu().numpy()
    cols_any = pos.any(dim=1).cpu().numpy()
    out = []
    for k in range(n):
        rows, cols = np.flatnonzero(rows_any[k]), np.flatnonzero(cols_any[k])
        if not len(rows):  # nothing above the threshold: no interpolated value is either
            out.append(_rle([height * width], height, width))
            continue
        y0, y1 = _reach(yi0, yi1, int(rows[0]), int(rows[-1]))
        x0, x1 = _reach(xi0, xi1, int(cols[0]), int(cols[-1]))
        if y0 >= y1 or x0 >= x1:  # shrinking: no output pixel reads the positive logits
            out.append(_rle([height * width], height, width))
            continue
        if (y1 - y0) * (x1 - x0) > 0.5 * height * width:  # a large mask: torch's own kernel, whole frame
            out.append(_whole(logits[k], height, width, threshold))
            continue
        crop = _interpolate(logits[k], (yi0, yi1, yl0, yl1), (xi0, xi1, xl0, xl1), (y0, y1), (x0, x1))
        out.append(_rle(crop_counts((crop > threshold).cpu().numpy(), y0, x0, height, width), height, width))
    return out


def _whole(grid: Any, height: int, width: int, threshold: float) -> dict:
    import torch.nn.functional as F
    from pycocotools import mask as mask_utils

    m = F.interpolate(grid[None, None].float(), (height, width), mode="bilinear", align_corners=False)[0, 0]
    return mask_utils.encode(np.asfortranarray((m > threshold).cpu().numpy().astype(np.uint8)))


def _interpolate(grid: Any, ys: tuple, xs: tuple, yr: tuple[int, int], xr: tuple[int, int]) -> Any:
    """Bilinear values of output rows yr × columns xr from one (h, w) grid, as torch's kernel computes
    them: l0y · (l0x · a + l1x · b) + l1y · (l0x · c + l1x · d)."""
    import torch

    dev = grid.device
    yi0, yi1, yl0, yl1 = (a[yr[0] : yr[1]] for a in ys)
    xi0, xi1, xl0, xl1 = (a[xr[0] : xr[1]] for a in xs)
    r0 = int(yi0[0])
    band = grid[r0 : int(yi1[-1]) + 1].float()  # the low-res rows these output rows read

    def t(a: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

    across = band[:, t(xi0)] * t(xl0) + band[:, t(xi1)] * t(xl1)  # (rows of band, crop width)
    return across[t(yi0 - r0)] * t(yl0)[:, None] + across[t(yi1 - r0)] * t(yl1)[:, None]
