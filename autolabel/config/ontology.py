"""Ontology YAML: prompts → classes, model choices and thresholds, validated into frozen dataclasses.

Example::

    ontology:              # caption prompt: class name (many prompts may share a class)
      pickup truck: truck
      lorry: truck
      car: car
    classes:               # optional per-class settings
      truck: {box_threshold: 0.3}
    detector: {backend: grounding_dino, model: IDEA-Research/grounding-dino-tiny, box_threshold: 0.35}
    segmenter: {backend: sam2, model: facebook/sam2.1-hiera-tiny}

Class ids are 0-based in order of first appearance in `ontology:` (COCO category id = class id + 1).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from autolabel.masks import MaskCleanup

TOP_KEYS = (
    "ontology",
    "negatives",
    "classes",
    "detector",
    "segmenter",
    "postprocess",
    "masks",
    "video",
    "fusion",
    "verifier",
    "examples",
)
REMOVED_KEYS = {
    "detector.text_threshold": "removed: a box's score is its best prompt's token score and box_threshold alone "
    "decides (a box that fires on no prompt is dropped and counted); delete this line",
}


def did_you_mean(key: str, valid: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"


@dataclass(frozen=True)
class Range:
    """Where a numeric setting is valid (bounds inclusive, None: unbounded). Every number must also be
    finite; `nullable` settings may be null (off)."""

    lo: float | None = None
    hi: float | None = None
    integer: bool = False
    nullable: bool = False


def num(
    default: Any, lo: float | None = None, hi: float | None = None, integer: bool = False, nullable: bool = False
) -> Any:
    """A numeric setting and its valid range, declared once: the validator reads the range from here."""
    return field(default=default, metadata={"range": Range(lo, hi, integer, nullable)})


def field_range(cls: type, name: str) -> Range | None:
    """The Range of a numeric field declared with `num`, else None."""
    f = {f.name: f for f in fields(cls)}.get(name)
    return None if f is None else f.metadata.get("range")


@dataclass(frozen=True)
class TilingConfig:
    """SAHI-style tiling: square tiles of `tile` pixels overlapping by `overlap` (fraction of a tile); the
    whole image is detected too unless `whole_image` is false."""

    tile: int = num(640, 32, integer=True)
    overlap: float = num(0.2, 0.0, 0.9)
    whole_image: bool = True
    merge_ios: float = num(
        0.5, 0.0, 1.0
    )  # boxes of one prompt from different tiles overlapping this much (of the smaller) merge


@dataclass(frozen=True)
class DetectorConfig:
    backend: str = "mm_grounding_dino"  # LLMDet-T by default: see README, "Backends"
    model: str | None = None  # None → the backend's default hub id
    box_threshold: float = num(
        0.35, 0.0, 1.0
    )  # decision: a candidate is exported when its score reaches this (per class)
    candidate_threshold: float = num(
        0.1, 0.0, 1.0
    )  # inference: candidates scoring this (or the lowest class threshold) are stored
    max_candidates: int = num(
        300, 1, integer=True
    )  # inference: at most this many candidates per image, highest scores first
    tiling: TilingConfig | None = None  # inference: also detect on overlapping tiles (small objects)
    min_presence: float | None = num(
        None, 0.0, 1.0, nullable=True
    )  # decision (SAM 3): drop candidates whose prompt's presence score (concept in the image?) is under this
    options: dict[str, Any] = field(default_factory=dict)  # the backend's own options (`autolabel backends`)


@dataclass(frozen=True)
class SegmenterConfig:
    backend: str = "sam2"  # "none" → box-only dataset
    model: str | None = None
    multimask: bool = False  # ask for 3 masks per box and keep the one with the best predicted IoU
    mask_threshold: float = num(0.0)  # logit threshold for binarising masks
    options: dict[str, Any] = field(default_factory=dict)  # the backend's own options (`autolabel backends`)


@dataclass(frozen=True)
class PostprocessConfig:
    nms_iou: float = num(0.5, 0.0, 1.0)  # class-wise NMS
    cross_class_iou: float | None = num(0.9, 0.0, 1.0, nullable=True)  # one object, one class; null: off
    min_box_area: float = num(0.0, 0.0)  # pixels²
    max_box_fraction: float = num(1.0, 0.0, 1.0)  # drop boxes covering more than this fraction of the image
    max_detections: int = num(100, 1, integer=True)  # per image, after NMS, highest scores first
    negative_iou: float = num(
        0.5, 0.0, 1.0
    )  # a detection overlapping a higher-scored negative-prompt detection this much goes


@dataclass(frozen=True)
class MasksConfig:
    fill_holes_below: int = num(0, 0, integer=True)  # pixels; holes smaller than this are filled
    drop_islands_below: int = num(0, 0, integer=True)  # pixels; separate parts smaller than this are dropped
    keep_largest_part: bool = False
    polygon_tolerance: float = num(0.0, 0.0)  # pixels; Douglas-Peucker simplification of exported polygons

    @property
    def cleanup(self) -> MaskCleanup:
        return MaskCleanup(self.fill_holes_below, self.drop_islands_below, self.keep_largest_part)


TRACKERS = ("auto", "detect", "sam2", "sam3")  # auto: sam2 with a SAM 2 segmenter, else detect


@dataclass(frozen=True)
class VideoConfig:
    """Videos in the input: which decoded frames become dataset frames (inference: in the fingerprint) and
    how their detections are linked into tracks (`tracker: detect`; the `track_*` settings are decisions,
    re-run at export)."""

    stride: int = num(1, 1, integer=True)  # every stride-th decoded frame
    fps: float | None = num(None, 1e-3, nullable=True)  # or this many frames a second, by their timestamps
    max_frames: int | None = num(None, 1, integer=True, nullable=True)  # per clip
    tracker: str = "auto"
    detect_every: int = num(5, 1, integer=True)  # tracker sam2: the detector runs on every n-th sampled frame
    max_objects: int = num(32, 1, integer=True)  # tracker sam2: objects followed at once per clip
    track_iou: float = num(0.3, 0.0, 1.0)  # box IoU (to the track's predicted box) that continues a track
    track_low: float = num(0.1, 0.0, 1.0)  # weaker detections continue a track but never start one
    track_max_missed: int = num(30, 0, integer=True)  # sampled frames a track may go unseen before it ends
    scene_cut: float | None = num(0.5, 0.0, 1.0, nullable=True)  # colour change that ends every track; null: off
    model: str | None = None  # tracker sam3: SAM 3's video model (default: the detector's model)

    def sampling_json(self) -> dict[str, Any]:
        """What changes the frames written of a clip."""
        return {"stride": self.stride, "fps": self.fps, "max_frames": self.max_frames}


@dataclass(frozen=True)
class FusionConfig:
    """An ensemble (`detector:` a list of two or more detector sections): how the candidates of its
    sources become one object each. Decisions, re-run at export; see `autolabel.fusion`."""

    iou: float = num(0.5, 0.0, 1.0)  # mask IoU (box IoU without masks) at which two sources saw one object
    score: str = "mean"  # mean: weighted mean over all sources (agreement lifts) | max: the best source's
    mask: str = "best"  # best: the best-scored member's mask | vote: the pixels most members' weight covers
    weights: tuple[float, ...] = ()  # per source, in the list's order; () → every source weighs 1
    box_threshold: float = num(0.3, 0.0, 1.0)  # on the fused score: every class's default threshold
    source_thresholds: tuple[float, ...] = ()  # a source's own box_threshold, when given: cut before fusion


@dataclass(frozen=True)
class VerifierConfig:
    """A vision-language model asked about the doubtful candidates: those scoring in [low, high) (of an
    ontology prompt) are cropped and asked `question`; its P(yes) is stored per candidate (not in the run's
    fingerprint: adding or changing a verifier keeps the candidates). `low`, `high` and `min_yes` are
    decisions too: a doubtful candidate whose answer is under `min_yes` is not exported."""

    backend: str = "vlm"
    model: str | None = None  # None → the backend's default hub id
    question: str = "Is this {a} {class}? Answer yes or no."  # {class}, {prompt}; {a}: 'a' or 'an'
    low: float = num(0.2, 0.0, 1.0)
    high: float = num(0.5, 0.0, 1.0)
    min_yes: float = num(0.5, 0.0, 1.0)
    batch_size: int = num(16, 1, integer=True)  # crops per forward pass
    options: dict[str, Any] = field(default_factory=dict)  # the backend's own options (`autolabel backends`)


@dataclass(frozen=True)
class Examples:
    """Example boxes of one prompt (`examples:` in the ontology): each an image (relative to the labeled
    folder, or absolute) and an xyxy pixel box on it. `text: false` finds the prompt by its examples alone."""

    prompt: str
    boxes: tuple[tuple[str, tuple[float, float, float, float]], ...]
    text: bool = True


@dataclass(frozen=True)
class Ontology:
    """A validated ontology. `prompts[i]` maps to class `prompt_class[i]` (index into `classes`)."""

    prompts: tuple[str, ...]
    prompt_class: tuple[int, ...]
    classes: tuple[str, ...]
    class_box_threshold: tuple[float | None, ...]
    negatives: tuple[str, ...] = ()
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    masks: MasksConfig = field(default_factory=MasksConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    source: str = "<memory>"
    sources: tuple[DetectorConfig, ...] = ()  # an ensemble's detectors (`detector` is the first); () for one
    fusion: FusionConfig = field(default_factory=FusionConfig)
    verifier: VerifierConfig | None = None
    examples: tuple[Examples, ...] = ()

    @property
    def ensemble(self) -> bool:
        return len(self.sources) > 1

    @property
    def all_prompts(self) -> tuple[str, ...]:
        """What the detector is asked: the ontology prompts, then the negative prompts."""
        return self.prompts + self.negatives

    def candidate_floor(self) -> float:
        """The lowest score stored as a candidate: candidate_threshold or any lower class threshold (an
        ensemble's fused scores start at 0: a source that found nothing counts 0)."""
        if self.ensemble:
            return 0.0
        return min(
            [self.detector.candidate_threshold] + [self.box_threshold_of_class(c) for c in range(len(self.classes))]
        )

    def box_threshold_of_class(self, class_id: int) -> float:
        t = self.class_box_threshold[class_id]
        if t is None:
            return self.fusion.box_threshold if self.ensemble else self.detector.box_threshold
        return t

    def with_overrides(self, **sections: dict[str, Any]) -> Ontology:
        """Replace fields of sections, e.g. `with_overrides(detector={"model": "/models/gd"})`; None values
        are ignored."""
        changes = {}
        for name, values in sections.items():
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                changes[name] = replace(getattr(self, name), **values)
        if "detector" in changes and self.ensemble:  # `--detector-model` and the like: the first source
            changes["sources"] = (changes["detector"], *self.sources[1:])
        return replace(self, **changes) if changes else self

    def canonical(self) -> dict[str, Any]:
        """Everything that changes results, as plain JSON data (for fingerprints and run metadata)."""
        d = asdict(self)
        d.pop("source")
        if not self.ensemble:
            d.pop("sources")
            d.pop("fusion")
        if self.verifier is None:
            d.pop("verifier")
        if not self.examples:
            d.pop("examples")
        return json.loads(json.dumps(d))
