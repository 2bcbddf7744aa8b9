"""Backend contracts. Backends are small adapters: tensors in, NumPy out; no exporter imports."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from autolabel.types import RleMasks


@dataclass
class PromptBoxes:
    """Raw detector output for one image, before class mapping.

    - `xyxy`: float (N, 4) absolute pixels; `scores`: float (N,) or None (model gives no score).
    - `prompt_index`: int (N,) index into the prompt list the detector was given.
    - `masks`: RleMasks (or bool (N, H, W)) when the backend also segments (SAM 3), else None.
    - `unmatched`: phrases/queries the model produced that map to no prompt, by text.
    - `presence`: float (N,) SAM 3's presence score of each box's prompt (its score includes it), else None.
    - `source`: int (N,) which detector of an ensemble found each box, else None.
    """

    xyxy: np.ndarray
    scores: np.ndarray | None
    prompt_index: np.ndarray
    masks: RleMasks | np.ndarray | None = None
    unmatched: dict[str, int] = field(default_factory=dict)
    presence: np.ndarray | None = None
    source: np.ndarray | None = None

    @classmethod
    def empty(cls, with_scores: bool = True) -> PromptBoxes:
        return cls(np.zeros((0, 4)), np.zeros((0,)) if with_scores else None, np.zeros((0,), dtype=np.int64))

    @classmethod
    def merge(cls, parts: Sequence[PromptBoxes], with_scores: bool = True) -> PromptBoxes:
        """One image's boxes from several passes (caption chunks, tiles, prompts) as one PromptBoxes:
        rows in order, `unmatched` summed; scores kept only when every part has them, masks only when
        every part has them (RleMasks of one image)."""
        if not parts:
            return cls.empty(with_scores)
        if len(parts) == 1:
            return parts[0]
        unmatched: dict[str, int] = {}
        for p in parts:
            for k, v in p.unmatched.items():
                unmatched[k] = unmatched.get(k, 0) + v
        scores = [p.scores for p in parts]
        masks = [p.masks for p in parts]
        return cls(
            np.concatenate([np.asarray(p.xyxy, dtype=np.float64).reshape(-1, 4) for p in parts]),
            np.concatenate(scores) if with_scores and all(s is not None for s in scores) else None,  # type: ignore[arg-type]
            np.concatenate([np.asarray(p.prompt_index, dtype=np.int64).reshape(-1) for p in parts]),
            RleMasks.concatenate(masks) if all(isinstance(m, RleMasks) for m in masks) else None,  # type: ignore[arg-type]
            unmatched,
            _joined([p.presence for p in parts]),
            _joined([p.source for p in parts]),
        )


def _joined(arrays: list[np.ndarray | None]) -> np.ndarray | None:
    """Per-row arrays of several parts, joined when every part has one."""
    if any(a is None for a in arrays):
        return None
    return np.concatenate([np.asarray(a).reshape(-1) for a in arrays])


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


Options = dict[str, Any]  # a backend's OPTIONS: {name: default} or {name: (default, choices)}


def option_values(declared: Options, given: dict[str, Any] | None) -> dict[str, Any]:
    """A backend's option values: the defaults it declares (once, in OPTIONS) with `given` on top."""
    return {**{k: v[0] if isinstance(v, tuple) else v for k, v in declared.items()}, **(given or {})}


Images = Sequence[np.ndarray]  # RGB uint8 (H, W, 3) arrays
Shapes = Sequence[tuple[int, int]]  # (height, width) of each image


@runtime_checkable
class Detector(Protocol):
    """Finds boxes for text prompts. `kind` is "detector" (or "engine", see `Engine`); `has_scores` is
    False for models that give no score (Florence-2); `OPTIONS` (class attribute) its own ontology keys."""

    kind: str
    has_scores: bool
    segments: bool  # True when it returns masks itself (an engine: then no segmenter runs)
    stats: ForwardStats

    def detect(self, images: Images, prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        """One PromptBoxes per image. Candidates below `min_score` (the candidate floor) may be dropped."""
        ...


@runtime_checkable
class StagedDetector(Detector, Protocol):
    """A detector whose CPU preprocessing runs apart from its forward pass (the pipeline's prepare
    stage): `detect(images, …)` == `detect_prepared(prepare(images), shapes, …)`."""

    def prepare(self, images: Images) -> Any:
        """Model inputs for the batch (resized, normalised, padded), made off the model thread."""
        ...

    def detect_prepared(
        self, inputs: Any, shapes: Shapes, prompts: Sequence[str], min_score: float
    ) -> list[PromptBoxes]:
        """The forward pass on prepared inputs; `shapes` are the original (height, width) of each image."""
        ...


@runtime_checkable
class Engine(Detector, Protocol):
    """Text → masks in one model (SAM 3): `segments` is True and each PromptBoxes carries `masks`."""


@runtime_checkable
class Segmenter(Protocol):
    """Turns boxes into masks: one image embedding per image, all its boxes in one decoder call."""

    kind: str  # "segmenter"
    stats: ForwardStats

    def segment(self, images: Images, boxes: Sequence[np.ndarray]) -> list[Any]:
        """`boxes[i]` is (N_i, 4) xyxy pixels of `images[i]`; returns N_i masks of (H_i, W_i) per image,
        as RleMasks (preferred: bounded memory) or a bool (N_i, H_i, W_i) array."""
        ...


@runtime_checkable
class StagedSegmenter(Segmenter, Protocol):
    """A segmenter split into the pipeline's three stages:
    `segment(images, boxes)` == `[finish(r, h, w) for r in segment_raw(prepare(images), shapes, boxes)]`."""

    def prepare(self, images: Images) -> Any:
        """Model inputs for the batch, made off the model thread."""
        ...

    def segment_raw(self, inputs: Any, shapes: Shapes, boxes: Sequence[np.ndarray]) -> list[Any]:
        """The forward passes: low-res mask logits per image (None for an image without boxes)."""
        ...

    def finish(self, raw: Any, height: int, width: int) -> RleMasks:
        """Low-res logits of one image → its full-size masks as RLE (CPU, off the model thread)."""
        ...


@runtime_checkable
class PromptChecker(Protocol):
    """A detector that can refuse prompts before the first image (a text encoder's token limit)."""

    def check_prompts(self, prompts: Sequence[str]) -> None:
        """Raise UsageError naming the prompt the model cannot take."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """Answers a yes/no question about boxes of one image (a vision-language model, or a plugin)."""

    stats: ForwardStats

    def verify(self, image: np.ndarray, boxes: np.ndarray, questions: Sequence[str]) -> np.ndarray:
        """image: RGB uint8 (H, W, 3); boxes: (K, 4) xyxy pixels; one question per box → P(yes), float (K,)."""
        ...


REQUIRED = {  # what each kind must have, checked when a backend (plugin or not) is loaded
    "detector": ("detect", "stats", "has_scores"),
    "engine": ("detect", "stats", "has_scores"),
    "segmenter": ("segment", "stats"),
    "verifier": ("verify", "stats"),
}
STAGED = {
    "detector": ("prepare", "detect_prepared"),
    "engine": (),
    "segmenter": ("prepare", "segment_raw", "finish"),
    "verifier": (),
}


def check_backend_object(obj: object, kind: str, name: str) -> None:
    """A loaded backend has every method its `kind` needs, and either all of its kind's staged methods
    or none of them; otherwise a UsageError naming what is missing."""
    from autolabel.errors import UsageError

    missing = [m for m in REQUIRED[kind] if not hasattr(obj, m)]
    staged = [m for m in STAGED[kind] if callable(getattr(obj, m, None))]
    if staged and len(staged) < len(STAGED[kind]):
        missing += [m for m in STAGED[kind] if m not in staged]
    if missing:
        raise UsageError(
            f"backend '{name}' is a {kind} but has no {', '.join(repr(m) for m in missing)}",
            hint=f"a {kind} implements {', '.join(REQUIRED[kind])}"
            + (f" (and, to run in the pipeline's stages, all of {', '.join(STAGED[kind])})" if STAGED[kind] else "")
            + "; see autolabel/backends/base.py",
        )
