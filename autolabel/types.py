"""The one record type that flows from backends to exporters.

No torch, no transformers here: backends convert tensors to NumPy at their boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Detections:
    """Instances found in one image, as a struct of arrays (N instances).

    - `xyxy`: float64 (N, 4), absolute pixel coordinates of the image after EXIF transpose.
    - `class_id`: int64 (N,), 0-based ontology class ids.
    - `confidence`: float64 (N,) or None when the model gives no score (Florence-2). Never a fake 1.0.
    - `prompt`: the ontology prompt each instance matched, length N.
    - `masks`: bool (N, H, W) full-image masks, an `RleMasks` (decoded one instance at a time, the
      form the run store and the decisions use), or None for box-only results. `masks[i]` is (H, W) bool
      either way.
    """

    xyxy: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray | None
    prompt: list[str] = field(default_factory=list)
    masks: np.ndarray | RleMasks | None = None
    class_names: tuple[str, ...] | None = None  # the names of class ids, when known (the Python API sets them)

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
        if isinstance(self.masks, RleMasks):
            if len(self.masks) != n:
                raise ValueError(f"Detections: {n} boxes but {len(self.masks)} masks")
        elif self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            if self.masks.ndim != 3 or len(self.masks) != n:
                raise ValueError(f"Detections: masks must be (N, H, W) with N={n}, got {self.masks.shape}")

    def __len__(self) -> int:
        return len(self.xyxy)

    def to_supervision(self, classes: list[str] | tuple[str, ...] | None = None) -> Any:
        """A `supervision.Detections` (xyxy, mask, confidence, class_id; prompts and class names in `data`)."""
        try:
            import supervision as sv
        except ImportError:
            from autolabel.errors import MissingDependencyError

            raise MissingDependencyError(
                "to_supervision() needs the 'supervision' package", hint="pip install supervision"
            ) from None
        masks = self.masks.dense() if isinstance(self.masks, RleMasks) else self.masks
        data: dict[str, Any] = {"prompt": np.array(self.prompt, dtype=object)}
        classes = classes if classes is not None else self.class_names
        if classes is not None:
            data["class_name"] = np.array([classes[int(c)] for c in self.class_id], dtype=object)
        return sv.Detections(
            xyxy=self.xyxy.astype(np.float32),
            mask=masks,
            confidence=self.confidence,
            class_id=self.class_id.astype(int),
            data=data,
        )

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
            class_names=self.class_names,
        )

    @classmethod
    def concatenate(cls, parts: list[Detections]) -> Detections:
        """Join several Detections of the same image (e.g. one per caption chunk)."""
        parts = [p for p in parts if len(p)] or parts[:1]
        if not parts:
            return cls.empty()
        has_conf = all(p.confidence is not None for p in parts)
        has_masks = all(p.masks is not None for p in parts)
        masks: np.ndarray | RleMasks | None = None
        if has_masks and all(isinstance(p.masks, RleMasks) for p in parts):
            masks = RleMasks.concatenate([p.masks for p in parts])  # type: ignore[misc]
        elif has_masks:
            masks = np.concatenate(
                [np.asarray(p.masks if not isinstance(p.masks, RleMasks) else p.masks.dense()) for p in parts]
            )
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]) if has_conf else None,
            prompt=[s for p in parts for s in p.prompt],
            masks=masks,
            class_names=parts[0].class_names,
        )


class RleMasks:
    """N instance masks of one (height, width) image as COCO compressed RLE (pycocotools dicts with
    `counts` bytes). `masks[i]` decodes one (H, W) bool mask; indexing with an array/list gives a subset.
    Areas and IoUs are computed on the RLE without decoding."""

    def __init__(self, rles: list[dict], height: int, width: int) -> None:
        self.rles = list(rles)
        self.height, self.width = int(height), int(width)

    def __len__(self) -> int:
        return len(self.rles)

    def __getitem__(self, key: Any) -> Any:
        from pycocotools import mask as mask_utils

        if isinstance(key, (int, np.integer)):
            return mask_utils.decode(self.rles[int(key)]).astype(bool)
        idx = np.arange(len(self.rles))[key] if isinstance(key, slice) else np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return RleMasks([self.rles[int(i)] for i in idx], self.height, self.width)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.rles), self.height, self.width)

    def areas(self) -> np.ndarray:
        from pycocotools import mask as mask_utils

        if not self.rles:
            return np.zeros((0,), dtype=np.int64)
        return np.asarray(mask_utils.area(self.rles), dtype=np.int64).reshape(-1)

    def iou(self, other: RleMasks) -> np.ndarray:
        """(len(self), len(other)) pairwise mask IoU."""
        from pycocotools import mask as mask_utils

        if not self.rles or not other.rles:
            return np.zeros((len(self.rles), len(other.rles)))
        return np.asarray(mask_utils.iou(self.rles, other.rles, [0] * len(other.rles)), dtype=np.float64).reshape(
            len(self.rles), len(other.rles)
        )

    def dense(self) -> np.ndarray:
        """(N, H, W) bool; only for small images (tests, edges that need a full stack)."""
        out = np.zeros((len(self.rles), self.height, self.width), dtype=bool)
        for i in range(len(self.rles)):
            out[i] = self[i]
        return out

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> RleMasks:
        from pycocotools import mask as mask_utils

        m = np.asarray(masks, dtype=bool)
        rles = [mask_utils.encode(np.asfortranarray(x.astype(np.uint8))) for x in m]
        return cls(rles, m.shape[1], m.shape[2])

    @classmethod
    def concatenate(cls, parts: list[RleMasks]) -> RleMasks:
        return cls([r for p in parts for r in p.rles], parts[0].height, parts[0].width)


CANDIDATES_FORMAT = 2  # how candidates are stored: 1 filtered detections (before decide-later); 2 candidates


@dataclass
class Candidates:
    """Everything inference found in one image, before any decision (thresholds, NMS, clean-up).

    - `xyxy`: float64 (N, 4) detector boxes in absolute pixels.
    - `score`: float64 (N,), or None when the model gives no score (Florence-2).
    - `prompt_index`: int64 (N,) index into the run's prompt list (ontology prompts, then negatives).
    - `masks`: RleMasks (N,) of the whole image, or None for a box-only run.
    - `mask_score`: float64 (N,) the segmenter's predicted mask IoU where the model gives one, else None.
    - `track_id`, `keyframe`: a video frame tracked at inference (`tracker: sam2`): int64 (N,) object ids of
      the clip, and bool (N,) whether the detector saw the object on this frame (its score is that
      detection's; elsewhere the object's last keyframe score). None otherwise.
    - `source`: int64 (N,) which detector of an ensemble (`detector:` a list) found each candidate, in the
      ontology's order; None for a single detector.
    - `presence`: float64 (N,) SAM 3's image-level presence score of the candidate's prompt (its `score` is
      the per-query score times it); None for other models.
    - `verified`: float64 (N,) a verifier's probability that the candidate is its class, NaN where it was
      not asked; None for a run without a verifier.
    """

    xyxy: np.ndarray
    score: np.ndarray | None
    prompt_index: np.ndarray
    masks: RleMasks | None = None
    mask_score: np.ndarray | None = None
    track_id: np.ndarray | None = None
    keyframe: np.ndarray | None = None
    source: np.ndarray | None = None
    presence: np.ndarray | None = None
    verified: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        self.prompt_index = np.asarray(self.prompt_index, dtype=np.int64).reshape(-1)
        n = len(self.xyxy)
        for name in ("score", "mask_score", "presence", "verified"):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))
        if self.track_id is not None:
            self.track_id = np.asarray(self.track_id, dtype=np.int64).reshape(-1)
        if self.source is not None:
            self.source = np.asarray(self.source, dtype=np.int64).reshape(-1)
        if self.keyframe is not None:
            self.keyframe = np.asarray(self.keyframe, dtype=bool).reshape(-1)
        for name in CANDIDATE_ARRAYS:
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"Candidates: {n} boxes but {len(v)} {name}")

    def __len__(self) -> int:
        return len(self.xyxy)

    def select(self, idx: np.ndarray) -> Candidates:
        """The candidates at `idx` (an index array), every per-candidate array with them."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)

        def at(v: Any) -> Any:
            return None if v is None else v[idx]

        return Candidates(
            self.xyxy[idx],
            at(self.score),
            self.prompt_index[idx],
            at(self.masks),
            at(self.mask_score),
            at(self.track_id),
            at(self.keyframe),
            at(self.source),
            at(self.presence),
            at(self.verified),
        )


# the per-candidate arrays of `Candidates` besides `xyxy` (each None or one value per candidate)
CANDIDATE_ARRAYS = (
    "score",
    "prompt_index",
    "masks",
    "mask_score",
    "track_id",
    "keyframe",
    "source",
    "presence",
    "verified",
)


@dataclass
class CandidateResult:
    """What the run store keeps for one image: size after EXIF transpose and its candidates."""

    relpath: str
    width: int
    height: int
    candidates: Candidates


@dataclass(frozen=True)
class Done:
    """One image labeled: its candidates, and its file's signature when it was read (None: unknown)."""

    result: CandidateResult
    signature: str | None

    @property
    def relpath(self) -> str:
        return self.result.relpath


@dataclass(frozen=True)
class Skipped:
    """One image not labeled, and why (unreadable, too large, a model error on it alone)."""

    relpath: str
    reason: str


Outcome = Done | Skipped  # what an executor hands the run store for each image


@dataclass(frozen=True)
class ImageInfo:
    """One discovered image: its path relative to the input root (POSIX separators), its absolute path or
    object-storage URI, and (for objects) its signature as listed (local files are signed when read)."""

    relpath: str
    path: str
    signature: str | None = None


@dataclass
class ImageResult:
    """One decided image: size after EXIF transpose and its Detections. A frame of a video also knows its
    clip (the video's relpath), its index among the clip's decoded frames, its time (s) and the track id
    of each detection (the same id is the same object across the clip's frames)."""

    relpath: str
    width: int
    height: int
    detections: Detections
    clip: str | None = None
    frame_index: int | None = None
    time: float | None = None
    track_ids: np.ndarray | None = None


def normalize_prompt(prompt: str) -> str:
    """Prompts compare case- and whitespace-insensitively (Grounding DINO lowercases its caption)."""
    return re.sub(r"\s+", " ", prompt.strip()).lower()
