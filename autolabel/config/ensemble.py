"""Validation of an ensemble: `detector:` a list of detector sections, and the `fusion:` section.

detector:
  - {backend: mm_grounding_dino}
  - {backend: owlv2, candidate_threshold: 0.05, box_threshold: 0.1}   # its own cut before fusion
fusion: {iou: 0.5, score: mean, mask: best, weights: [1, 1], box_threshold: 0.3}
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from autolabel.config.ontology import DetectorConfig, FusionConfig, did_you_mean, field_range
from autolabel.errors import shown
from autolabel.fusion import MASKS, SCORES

if TYPE_CHECKING:
    from autolabel.config.validate import Validator

FUSION_KEYS = ("iou", "score", "mask", "weights", "box_threshold")


def detectors(v: Validator, m: Any) -> tuple[DetectorConfig, tuple[DetectorConfig, ...]]:
    """(the first detector, every source of an ensemble or () for a single detector)."""
    if not isinstance(m, list):
        return v.section(m, "detector", DetectorConfig), ()
    if not m:
        v.err("detector", "an empty list; give one detector section, or a list of two or more (an ensemble)")
        return DetectorConfig(), ()
    sources = tuple(v.section(s, f"detector[{i}]", DetectorConfig) for i, s in enumerate(m))
    return sources[0], (sources if len(sources) > 1 else ())


def source_thresholds(m: Any, sources: tuple[DetectorConfig, ...]) -> tuple[float, ...]:
    """A source's `box_threshold`, where the list gives one, is its own cut before fusion; else none (0)."""
    if not sources or not isinstance(m, list):
        return ()
    given = [isinstance(s, dict) and "box_threshold" in s for s in m]
    return tuple(src.box_threshold if g else 0.0 for src, g in zip(sources, given))


def fusion(v: Validator, m: Any, sources: tuple[DetectorConfig, ...], cuts: tuple[float, ...]) -> FusionConfig:
    out = FusionConfig(source_thresholds=cuts)
    if m is None:
        return out
    if not sources:
        v.err("fusion", "fuses the detectors of an ensemble: make `detector:` a list of two or more sections")
        return out
    if not isinstance(m, dict):
        v.err("fusion", f"must be a mapping such as {{iou: 0.5, score: mean}}, got {shown(m)}")
        return out
    values: dict[str, Any] = {}
    for k, val in m.items():
        key = f"fusion.{k}"
        if k in ("iou", "box_threshold"):
            rng = field_range(FusionConfig, k)
            assert rng is not None
            values[k] = v.number(key, val, rng)
        elif k in ("score", "mask"):
            choices = SCORES if k == "score" else MASKS
            if val not in choices:
                v.err(key, f"must be one of {', '.join(choices)}, got {shown(val)}")
            else:
                values[k] = val
        elif k == "weights":
            values[k] = weights(v, val, len(sources))
        else:
            v.err(key, "unknown key" + did_you_mean(str(k), FUSION_KEYS))
    return replace(out, **values)


def weights(v: Validator, val: Any, n: int) -> tuple[float, ...]:
    ok = isinstance(val, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in val)
    if not ok or len(val) != n or not all(0 < x < float("inf") for x in val):
        v.err("fusion.weights", f"must be {n} positive numbers, one per detector in the list, got {shown(val)}")
        return ()
    return tuple(float(x) for x in val)
