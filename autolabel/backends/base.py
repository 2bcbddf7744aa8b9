"""Backend contracts. Backends are small adapters: tensors in, NumPy out; no exporter imports."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class PromptBoxes:
    """Raw detector output for one image, before class mapping.

    - `xyxy`: float (N, 4) absolute pixels; `scores`: float (N,) or None (model gives no score).
    - `prompt_index`: int (N,) index into the prompt list the detector was given.
    - `masks`: RleMasks (or bool (N, H, W)) when the backend also segments (SAM 3), else None.
    - `unmatched`: phrases/queries the model produced that map to no prompt, by text.
    """

    xyxy: np.ndarray
    scores: np.ndarray | None
    prompt_index: np.ndarray
    masks: np.ndarray | None = None
    unmatched: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, with_scores: bool = True) -> PromptBoxes:
        return cls(np.zeros((0, 4)), np.zeros((0,)) if with_scores else None, np.zeros((0,), dtype=np.int64))


@dataclass
class ForwardStats:
    """Counts and times pure model forward passes (for `make bench` ratios)."""

    passes: int = 0
    seconds: float = 0.0

    @contextmanager
    def timed(self, sync: object = None) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            if sync is not None:
                sync()  # type: ignore[operator]
            self.passes += 1
            self.seconds += time.perf_counter() - t


class Detector(Protocol):
    """Finds boxes for text prompts. Images are RGB uint8 (H, W, 3) NumPy arrays.
    `kind` is "detector", or "engine" when it makes masks itself; `OPTIONS` its own ontology keys."""

    kind: str
    has_scores: bool
    segments: bool  # True when it returns masks itself (then no segmenter runs)
    stats: ForwardStats

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        """One PromptBoxes per image. Candidates below `min_score` (the lowest class threshold) may be dropped."""
        ...


class Segmenter(Protocol):
    """Turns boxes into masks: one image embedding per image, all its boxes in one decoder call."""

    kind: str  # "segmenter"
    stats: ForwardStats

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[Any]:
        """`boxes[i]` is (N_i, 4) xyxy pixels of `images[i]`; returns N_i masks of (H_i, W_i) per image,
        as RleMasks (preferred: bounded memory) or a bool (N_i, H_i, W_i) array."""
        ...
