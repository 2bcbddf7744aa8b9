"""What a corrections file says: the images people reviewed, as (class, full-image mask) labels."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Reviewed:
    """One image as the reviewers left it: (class name, full-image mask) per label."""

    relpath: str
    width: int
    height: int
    labels: list[tuple[str, np.ndarray]] = field(default_factory=list)
    track_ids: list[int] | None = None  # a video frame's: the track id of each label (kept into COCO/MOT)


@dataclass
class Corrections:
    source: str  # "Label Studio JSON", "CVAT XML", "COCO"
    images: dict[str, Reviewed] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # skipped / rejected / not reviewed, with why
    unmatched: list[str] = field(default_factory=list)  # image references that are not run images
    ignored: Counter = field(default_factory=Counter)  # result types that carry no object shape
    notes: list[str] = field(default_factory=list)  # what the reader decided that a person should know
