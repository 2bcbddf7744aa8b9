"""`autolabel sample RUN -n 50`: the images most worth hand-labeling for `tune` and `eval`.

1. Every class is covered: for each class (rarest first) the image where it is most uncertain.
2. The rest spread over the folder: the images (sorted by path) are cut into as many stretches as
   images are still wanted, and each stretch gives its most uncertain image.

An image is uncertain where its candidates score near their class's threshold (within `margin`): a
threshold moved there changes its labels, so a hand label there says the most about where it belongs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autolabel.decisions import DecisionSettings
from autolabel.run.run import Run
from autolabel.types import CandidateResult

MARGIN = 0.15


@dataclass(frozen=True)
class ImageValue:
    relpath: str
    uncertainty: float  # candidates near their threshold, each weighted by how near
    classes: frozenset[str]  # classes with a candidate near or above their threshold


def value_of(c: CandidateResult, dec: DecisionSettings, margin: float) -> ImageValue:
    cand = c.candidates
    n_pos = len(dec.prompt_class)
    pos = cand.prompt_index < n_pos
    if cand.score is None or not pos.any():
        return ImageValue(c.relpath, 0.0, frozenset())
    cls = np.asarray(dec.prompt_class)[cand.prompt_index[pos]]
    thr = np.asarray(dec.class_thresholds)[cls]
    gap = cand.score[pos] - thr
    near = np.clip(1.0 - np.abs(gap) / margin, 0.0, None)
    seen = {dec.classes[int(k)] for k in cls[gap > -margin]}
    return ImageValue(c.relpath, float(near.sum()), frozenset(seen))


def pick(values: list[ImageValue], n: int, classes: tuple[str, ...]) -> list[ImageValue]:
    """Every class covered first (rarest first), then the most uncertain image of each stretch of the folder."""
    chosen: dict[str, ImageValue] = {}
    by_class = {c: [v for v in values if c in v.classes] for c in classes}
    for c in sorted(classes, key=lambda c: len(by_class[c])):
        if len(chosen) >= n or any(c in v.classes for v in chosen.values()) or not by_class[c]:
            continue
        best = max(by_class[c], key=lambda v: (v.uncertainty, v.relpath))
        chosen[best.relpath] = best
    rest = [v for v in sorted(values, key=lambda v: v.relpath) if v.relpath not in chosen]
    wanted = min(n - len(chosen), len(rest))
    for stretch in np.array_split(np.arange(len(rest)), wanted) if wanted > 0 else []:
        best = max((rest[i] for i in stretch), key=lambda v: (v.uncertainty, v.relpath))
        chosen[best.relpath] = best
    return sorted(chosen.values(), key=lambda v: v.relpath)


def sample_run(run: Run, n: int, margin: float = MARGIN) -> list[ImageValue]:
    """The `n` images of the run most worth hand-labeling, under its current decisions."""
    dec = run.decisions()
    values = [value_of(c, dec, margin) for c in run.candidates()]
    return pick(values, n, dec.classes)
