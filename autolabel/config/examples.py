"""Validation of `examples:`: example boxes that define (or help find) a prompt's objects.

    examples:
      widget:                                  # a prompt of `ontology:`
        - {image: shelf/001.jpg, box: [412, 80, 470, 160]}   # relative to the labeled folder
        - {image: shelf/007.jpg, box: [33, 210, 90, 300]}
      gizmo: {boxes: [{image: a.jpg, box: [1, 2, 30, 40]}], text: false}   # by its examples alone

Only detectors that take examples (OWLv2's image queries, SAM 3's exemplar prompts) accept them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from autolabel.config.ontology import DetectorConfig, Examples
from autolabel.errors import shown

if TYPE_CHECKING:
    from autolabel.config.validate import Validator

SHAPE = "a list of {image: PATH, box: [x0, y0, x1, y1]} (pixels), or {boxes: [...], text: false}"


def examples(v: Validator, m: Any, prompts: list[str], detectors: tuple[DetectorConfig, ...]) -> tuple[Examples, ...]:
    if m is None:
        return ()
    if not isinstance(m, dict):
        v.err("examples", f"must be a mapping of prompt: {SHAPE}")
        return ()
    out = []
    for prompt, spec in m.items():
        key = f"examples.{prompt}"
        if prompt not in prompts:
            v.err(key, "is not a prompt of `ontology:`; examples belong to a prompt (and so to its class)")
            continue
        text, items = True, spec
        if isinstance(spec, dict):
            text, items = spec.get("text", True), spec.get("boxes")
            if set(spec) - {"text", "boxes"} or not isinstance(text, bool):
                v.err(key, f"must be {SHAPE}, got {shown(spec)}")
                continue
        boxes = _boxes(v, key, items)
        if boxes:
            out.append(Examples(prompt, boxes, text))
    if out:
        _check_detectors(v, detectors)
    return tuple(out)


def _boxes(v: Validator, key: str, items: Any) -> tuple[tuple[str, tuple[float, float, float, float]], ...]:
    if not isinstance(items, list) or not items:
        v.err(key, f"must be {SHAPE}")
        return ()
    out = []
    for i, item in enumerate(items):
        box: Any = item.get("box") if isinstance(item, dict) else None
        image: Any = item.get("image") if isinstance(item, dict) else None
        ok = isinstance(item, dict) and set(item) == {"image", "box"} and isinstance(image, str) and image.strip()
        if not ok or not isinstance(box, list) or len(box) != 4 or not all(_finite(x) for x in box):
            v.err(f"{key}[{i}]", f"must be {{image: PATH, box: [x0, y0, x1, y1]}}, got {shown(item)}")
            continue
        x0, y0, x1, y1 = (float(x) for x in box)
        if x1 <= x0 or y1 <= y0 or min(x0, y0) < 0:
            v.err(f"{key}[{i}].box", f"needs 0 <= x0 < x1 and 0 <= y0 < y1 (pixels), got {box}")
            continue
        out.append((image.strip(), (x0, y0, x1, y1)))
    return tuple(out)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_detectors(v: Validator, detectors: tuple[DetectorConfig, ...]) -> None:
    from autolabel.backends import backend_class

    for i, d in enumerate(detectors):
        try:
            takes = bool(getattr(backend_class(d.backend, "detector"), "EXAMPLES", False))
        except Exception:  # an unknown backend is reported by itself
            continue
        if not takes:
            key = "detector.backend" if len(detectors) == 1 else f"detector[{i}].backend"
            v.err(key, f"'{d.backend}' cannot take example boxes; owlv2 and sam3 can (`examples:`)")
        elif d.tiling is not None:
            v.err("examples", "example boxes and detector.tiling do not go together yet; remove one of them")
