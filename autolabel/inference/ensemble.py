"""An ensemble's detectors (`detector:` a list) as one detector: each runs once on every batch, in the
ontology's order, and every box says which found it (`source`). Fusion is a decision (`autolabel.fusion`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from autolabel.backends.base import Detector, ForwardStats, Images, PromptBoxes


@dataclass
class Ensemble:
    """Several detectors (or engines) behind the `Detector` protocol. `detect` joins their boxes per image
    with `source` set; the pipeline's model stage runs `parts` one by one instead (each on its own floor,
    each engine keeping its own masks)."""

    parts: list[Detector]
    floors: list[float]  # each source's candidate_threshold
    kind: str = "detector"
    has_scores: bool = True
    segments: bool = False

    def __post_init__(self) -> None:
        self.kind = "engine" if all(p.kind == "engine" for p in self.parts) else "detector"
        self.has_scores = all(p.has_scores for p in self.parts)
        self.segments = all(p.segments for p in self.parts)

    @property
    def stats(self) -> ForwardStats:
        """The forward passes and seconds of every detector, summed."""
        out = ForwardStats()
        for p in self.parts:
            out.passes += p.stats.passes
            out.seconds += p.stats.seconds
        return out

    @stats.setter
    def stats(self, value: ForwardStats) -> None:
        raise AttributeError("an ensemble's stats are its detectors' own")

    def detect(self, images: Images, prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        per_source = [p.detect(images, prompts, max(min_score, f)) for p, f in zip(self.parts, self.floors)]
        out = []
        for i in range(len(images)):
            parts = [with_source(raw[i], s) for s, raw in enumerate(per_source)]
            out.append(PromptBoxes.merge(parts, self.has_scores))
        return out


def parts(detector: Detector) -> list[Detector]:
    """The detectors behind `detector`: an ensemble's, or the detector itself."""
    return list(detector.parts) if isinstance(detector, Ensemble) else [detector]


def with_source(pb: PromptBoxes, source: int) -> PromptBoxes:
    return replace(pb, source=np.full(len(pb.prompt_index), source, dtype=np.int64))
