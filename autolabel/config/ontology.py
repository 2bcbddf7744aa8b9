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

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from autolabel.errors import OntologyError
from autolabel.masks import MaskCleanup

TOP_KEYS = ("ontology", "negatives", "classes", "detector", "segmenter", "postprocess", "masks")
REMOVED_KEYS = {
    "detector.text_threshold": "removed: a box's score is its best prompt's token score and box_threshold alone "
    "decides (a box that fires on no prompt is dropped and counted); delete this line",
}


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
    source: str = "<memory>"

    @property
    def all_prompts(self) -> tuple[str, ...]:
        """What the detector is asked: the ontology prompts, then the negative prompts."""
        return self.prompts + self.negatives

    def candidate_floor(self) -> float:
        """The lowest score stored as a candidate: candidate_threshold or any lower class threshold."""
        return min(
            [self.detector.candidate_threshold] + [self.box_threshold_of_class(c) for c in range(len(self.classes))]
        )

    def box_threshold_of_class(self, class_id: int) -> float:
        t = self.class_box_threshold[class_id]
        return self.detector.box_threshold if t is None else t

    def with_overrides(self, **sections: dict[str, Any]) -> Ontology:
        """Replace fields of sections, e.g. `with_overrides(detector={"model": "/models/gd"})`; None values
        are ignored."""
        changes = {}
        for name, values in sections.items():
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                changes[name] = replace(getattr(self, name), **values)
        return replace(self, **changes) if changes else self

    def canonical(self) -> dict[str, Any]:
        """Everything that changes results, as plain JSON data (for fingerprints and run metadata)."""
        d = asdict(self)
        d.pop("source")
        return json.loads(json.dumps(d))


# ---------------------------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[arg-type]
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_ontology(path: str | Path) -> Ontology:
    """Read and validate an ontology file. Raises OntologyError naming the file and key."""
    p = Path(path)
    if not p.is_file():
        raise OntologyError(
            f"{p}: ontology file not found", hint="pass the path of a YAML file, e.g. ontologies/example.yaml"
        )
    try:
        text = p.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as e:
        raise OntologyError(f"{p}: not a UTF-8 text file ({e.reason})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise OntologyError(f"{p}: invalid YAML{where}: {problem}", hint="check indentation and quoting") from None
    return parse_ontology(data, source=str(p))


def parse_ontology(data: Any, source: str = "<memory>") -> Ontology:
    """Validate already-parsed YAML data. All problems are reported together in one OntologyError."""
    from autolabel.config.validate import Validator

    v = Validator(source)
    ont = v.ontology(data)
    if v.problems:
        first, *rest = v.problems
        msg = first if not rest else first + "".join(f"\n  {r}" for r in rest)
        raise OntologyError(msg, hint="see the ontology format in README.md, or run `autolabel validate FILE`")
    assert ont is not None
    return ont
