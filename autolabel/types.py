"""The one record type that flows from backends to exporters.

No torch, no transformers here: backends convert tensors to NumPy at their boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detections:
    """Instances found in one image, as a struct of arrays (N instances).

    - `xyxy`: float64 (N, 4), absolute pixel coordinates of the image after EXIF transpose.
    - `class_id`: int64 (N,), 0-based ontology class ids.
    - `confidence`: float64 (N,) or None when the model gives no score (Florence-2). Never a fake 1.0.
    - `prompt`: the ontology prompt each instance matched, length N.
    - `masks`: bool (N, H, W) full-image masks, or None for box-only results.
    """

    xyxy: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray | None
    prompt: list[str] = field(default_factory=list)
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if self.confidence is not None:
            self.confidence = np.asarray(self.confidence, dtype=np.float64).reshape(-1)
        self.prompt = list(self.prompt)
        n = len(self.xyxy)
        if len(self.class_id) != n or len(self.prompt) != n:
            raise ValueError(f"Detections: {n} boxes but {len(self.class_id)} class ids, {len(self.prompt)} prompts")
        if self.confidence is not None and len(self.confidence) != n:
            raise ValueError(f"Detections: {n} boxes but {len(self.confidence)} confidences")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            if self.masks.ndim != 3 or len(self.masks) != n:
                raise ValueError(f"Detections: masks must be (N, H, W) with N={n}, got {self.masks.shape}")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls, with_confidence: bool = True) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4)),
            class_id=np.zeros((0,), dtype=np.int64),
            confidence=np.zeros((0,)) if with_confidence else None,
            prompt=[],
        )

    def select(self, keep: np.ndarray) -> Detections:
        """A new Detections holding the instances chosen by an index or boolean array."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        return Detections(
            xyxy=self.xyxy[idx],
            class_id=self.class_id[idx],
            confidence=None if self.confidence is None else self.confidence[idx],
            prompt=[self.prompt[i] for i in idx],
            masks=None if self.masks is None else self.masks[idx],
        )

    @classmethod
    def concatenate(cls, parts: list[Detections]) -> Detections:
        """Join several Detections of the same image (e.g. one per caption chunk)."""
        parts = [p for p in parts if len(p)] or parts[:1]
        if not parts:
            return cls.empty()
        has_conf = all(p.confidence is not None for p in parts)
        has_masks = all(p.masks is not None for p in parts)
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]) if has_conf else None,  # type: ignore[misc]
            prompt=[s for p in parts for s in p.prompt],
            masks=np.concatenate([p.masks for p in parts]) if has_masks else None,  # type: ignore[misc]
        )


@dataclass(frozen=True)
class ImageInfo:
    """One discovered image: its path relative to the input root (POSIX separators) and absolute path."""

    relpath: str
    path: str


@dataclass
class ImageResult:
    """What the run store keeps for one image: size after EXIF transpose and its Detections."""

    relpath: str
    width: int
    height: int
    detections: Detections
