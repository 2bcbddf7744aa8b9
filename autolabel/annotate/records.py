"""What a corrections file says: the images people reviewed, as (class, full-image mask) labels."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from autolabel.masks import decode_rle, encode_rle


@dataclass
class Reviewed:
    """One image as the reviewers left it: (class name, mask) per label, kept as COCO RLE (a large export of
    many images stays small in memory); `labels` decodes them to full-image masks for one image at a time."""

    relpath: str
    width: int
    height: int
    rles: list[tuple[str, dict]] = field(default_factory=list)
    track_ids: list[int] | None = None  # a video frame's: the track id of each label (kept into COCO/MOT)

    def add(self, label: str, mask: np.ndarray, track_id: int | None = None) -> None:
        """One label (an empty mask, e.g. a polygon drawn outside the image, is no label)."""
        if not mask.any():
            return
        self.rles.append((label, encode_rle(mask)))
        if track_id is not None:
            if self.track_ids is None:
                self.track_ids = []
            self.track_ids.append(track_id)

    @property
    def labels(self) -> list[tuple[str, np.ndarray]]:
        return [(c, decode_rle(r)) for c, r in self.rles]


@dataclass
class Corrections:
    source: str  # "Label Studio JSON", "CVAT XML", "COCO"
    images: dict[str, Reviewed] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # skipped / rejected / not reviewed, with why
    unmatched: list[str] = field(default_factory=list)  # image references that are not run images
    ignored: Counter = field(default_factory=Counter)  # result types that carry no object shape
    notes: list[str] = field(default_factory=list)  # what the reader decided that a person should know
