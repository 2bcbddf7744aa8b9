"""The mask encodings of the annotation tools (not COCO's): Label Studio's brush RLE and CVAT's RLE.

Label Studio (`brushlabels`, `value.format == "rle"`): the image as RGBA bytes (height × width × 4,
row-major), run-length packed bit by bit as in thi.ng's rle-pack: a 32-bit value count, a 5-bit word
size − 1, four 4-bit run-length field widths − 1, then tokens `1 | size index (2 bits) | run − 1 | value`
(a run) or `0 | size index | n − 1 | n values` (literals), zero-padded to a byte. Label Studio and its
SDK read the mask from the alpha channel (non-zero = inside); we write 255 in all four channels.

CVAT (`<mask rle="…" left top width height>`): counts of alternating 0/1 runs over the mask's box,
row-major, starting with a (possibly empty) run of 0s; the box is given as left, top, width, height in
whole pixels.
"""

from __future__ import annotations

import numpy as np

from autolabel.errors import UsageError

LS_RUN_BITS = (3, 4, 8, 16)  # the field widths of a run length (the SDK's and the editor's defaults)
_LS_MAX_RUN = 1 << LS_RUN_BITS[-1]


def _runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, values) of the runs of equal values in a 1-D array."""
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=flat.dtype)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [flat.size])))
    return lengths.astype(np.int64), flat[starts]


def _pack_bits(values: np.ndarray, widths: np.ndarray) -> list[int]:
    """Concatenate each value's `width` low bits (most significant first), zero-pad to bytes."""
    widths = widths.astype(np.int64)
    field = np.repeat(np.arange(values.size), widths)
    ends = np.cumsum(widths)
    offset = np.arange(int(ends[-1])) - np.repeat(ends - widths, widths)
    shift = (widths[field] - 1 - offset).astype(np.uint64)
    bits = ((values.astype(np.uint64)[field] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits).tolist()  # packbits pads the last byte with zeros


def ls_encode(mask: np.ndarray) -> list[int]:
    """A boolean (H, W) mask → Label Studio's brush RLE bytes (as the list of ints its JSON holds)."""
    lengths, values = _runs(np.asarray(mask, dtype=bool).ravel())
    lengths = lengths * 4  # the four RGBA bytes of a pixel share its value
    chunks = -(-lengths // _LS_MAX_RUN)  # runs longer than the widest field are split
    runs = np.full(int(chunks.sum()), _LS_MAX_RUN, dtype=np.int64)
    runs[np.cumsum(chunks) - 1] = lengths - (chunks - 1) * _LS_MAX_RUN
    run_values = np.where(np.repeat(values, chunks), 255, 0)
    size_index = np.searchsorted(np.array([1 << b for b in LS_RUN_BITS]), runs)
    size_bits = np.asarray(LS_RUN_BITS)[size_index]
    n = runs.size
    fields = np.empty((n, 4), dtype=np.int64)
    widths = np.empty((n, 4), dtype=np.int64)
    fields[:, 0], widths[:, 0] = 1, 1
    fields[:, 1], widths[:, 1] = size_index, 2
    fields[:, 2], widths[:, 2] = runs - 1, size_bits
    fields[:, 3], widths[:, 3] = run_values, 8
    h, w = mask.shape
    header = [h * w * 4, 7, *[b - 1 for b in LS_RUN_BITS]]
    header_widths = [32, 5, 4, 4, 4, 4]
    return _pack_bits(np.concatenate((header, fields.ravel())), np.concatenate((header_widths, widths.ravel())))


def ls_decode(rle: list[int] | bytes, height: int, width: int) -> np.ndarray:
    """Label Studio brush RLE → boolean (height, width) mask (alpha > 0), as its SDK decodes it."""
    data = bytes(rle)
    if len(data) >= 4 and int.from_bytes(data[:4], "big") == height * width * 4:
        most = (61 + 14 * height * width * 4) // 8 + 2  # every value a run of one: 14 bits each
        if len(data) > most:
            raise UsageError(
                f"a Label Studio brush mask holds {len(data)} bytes, more than a {height}×{width} mask can take "
                f"({most}): junk after the mask",
                hint="the export is damaged; export it again from Label Studio",
            )
    bits = "".join(f"{b:08b}" for b in data)
    pos = 0

    def read(k: int) -> int:
        nonlocal pos
        if pos + k > len(bits):
            raise UsageError("a Label Studio brush mask (rle) ends early: the export is damaged")
        pos += k
        return int(bits[pos - k : pos], 2)

    num, word = read(32), read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    if num != height * width * 4:
        raise UsageError(
            f"a Label Studio brush mask holds {num} values, not {height}×{width}×4",
            hint="original_width/original_height of the result do not match its rle",
        )
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        is_run = read(1)
        j = min(i + 1 + read(sizes[read(2)]), num)
        if is_run:
            out[i:j] = read(word)
            i = j
        else:
            for k in range(i, j):
                out[k] = read(word)
            i = j
    if len(bits) - pos >= 8:
        raise UsageError(
            f"a Label Studio brush mask has {(len(bits) - pos) // 8} bytes after its mask: junk after the mask",
            hint="the export is damaged; export it again from Label Studio",
        )
    return out.reshape(height, width, 4)[:, :, 3] > 0


def cvat_encode(mask: np.ndarray) -> tuple[list[int], int, int, int, int] | None:
    """A boolean (H, W) mask → (counts, left, top, width, height) of CVAT's RLE; None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    top, left = int(ys.min()), int(xs.min())
    height, width = int(ys.max()) - top + 1, int(xs.max()) - left + 1
    lengths, values = _runs(mask[top : top + height, left : left + width].ravel())
    counts = ([0] if values[0] else []) + lengths.tolist()
    return counts, left, top, width, height


def cvat_decode(counts: list[int], left: int, top: int, width: int, height: int, img_h: int, img_w: int) -> np.ndarray:
    """CVAT RLE (counts over the box, starting with 0s) → boolean (img_h, img_w) mask."""
    if sum(counts) != width * height or min(counts, default=0) < 0:
        raise UsageError(
            f"a CVAT mask's rle covers {sum(counts)} pixels, not its box's {width}×{height}",
            hint="the annotation file is damaged or not CVAT for images 1.1",
        )
    if left < 0 or top < 0 or left + width > img_w or top + height > img_h:
        raise UsageError(f"a CVAT mask's box ({left}, {top}, {width}×{height}) lies outside its {img_w}×{img_h} image")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    crop = np.repeat(values, counts).reshape(height, width)
    full = np.zeros((img_h, img_w), dtype=bool)
    full[top : top + height, left : left + width] = crop
    return full
