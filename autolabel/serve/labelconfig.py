"""A Label Studio project's labeling config read for an ML backend: which image the tasks carry, which tag
the regions go to (BrushLabels, else PolygonLabels, else RectangleLabels on that image), and which of its
labels are the ontology's classes (by name; case-insensitive when that is unambiguous). Regions are
written as `-f labelstudio` writes them: Label Studio's brush RLE, polygons or rectangles in percent."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from autolabel.errors import UsageError
from autolabel.export.base import percent
from autolabel.masks import box_mask, external_polygons, mask_to_xyxy
from autolabel.tool_rle import ls_encode
from autolabel.types import Detections

REGION_TAGS = ("BrushLabels", "PolygonLabels", "RectangleLabels")
MAX_CONFIG = 1_000_000  # characters


@dataclass(frozen=True)
class Target:
    image_name: str  # the <Image name=…>
    image_key: str  # the task data key of the image ($image → image)
    tag: str  # BrushLabels, PolygonLabels or RectangleLabels
    from_name: str
    label_of: dict[str, str]  # ontology class → the config's label
    unknown_labels: tuple[str, ...] = ()  # labels of the config the ontology does not have
    missing_classes: tuple[str, ...] = ()  # classes of the ontology the config does not have
    text_area: str | None = None  # a <TextArea> on the image: a typed text prompt
    class_of: dict[str, str] = field(default_factory=dict)  # the config's label → ontology class


def read_config(config: Any, classes: tuple[str, ...]) -> Target:
    """The target of a labeling config; a UsageError says why the config cannot take the ontology's regions."""
    if not isinstance(config, str) or not config.strip():
        raise UsageError("the label config is missing (expected the project's labeling config XML)")
    if len(config) > MAX_CONFIG:
        raise UsageError(f"the label config is over {MAX_CONFIG} characters")
    try:
        root = ET.fromstring(config)
    except ET.ParseError as e:
        raise UsageError(f"the label config is not XML ({e})") from None
    image = next((el for el in root.iter("Image") if el.get("name")), None)
    if image is None or not (image.get("value") or "").startswith("$"):
        raise UsageError('the label config has no <Image name="…" value="$…">: an image project is needed')
    name = str(image.get("name"))
    tags = [el for t in REGION_TAGS for el in root.iter(t) if el.get("toName") == name and el.get("name")]
    if not tags:
        raise UsageError(f"the label config has no {', '.join(REGION_TAGS)} on the image '{name}'")
    tag = tags[0]
    labels = [str(lab.get("value")) for lab in tag.iter("Label") if lab.get("value") is not None]
    label_of = _match(labels, classes)
    if not label_of:
        raise UsageError(
            f'no label of the config\'s <{tag.tag} name="{tag.get("name")}"> is a class of the ontology',
            hint=f"labels: {', '.join(labels[:20]) or 'none'}; classes: {', '.join(classes)}",
        )
    text = next((el.get("name") for el in root.iter("TextArea") if el.get("toName") == name), None)
    return Target(
        name,
        str(image.get("value"))[1:],
        tag.tag,
        str(tag.get("name")),
        label_of,
        tuple(lab for lab in labels if lab not in label_of.values()),
        tuple(c for c in classes if c not in label_of),
        text,
        {v: k for k, v in label_of.items()},
    )


def _match(labels: list[str], classes: tuple[str, ...]) -> dict[str, str]:
    out = {c: c for c in classes if c in labels}
    folded: dict[str, list[str]] = {}
    for lab in labels:
        folded.setdefault(lab.casefold(), []).append(lab)
    for c in classes:
        if c not in out and len(folded.get(c.casefold(), [])) == 1:
            out[c] = folded[c.casefold()][0]
    return out


def regions(det: Detections, classes: tuple[str, ...], t: Target, width: int, height: int) -> list[dict[str, Any]]:
    """Label Studio results for one image's labels (classes the config lacks are left out)."""
    out: list[dict[str, Any]] = []
    for i in range(len(det)):
        label = t.label_of.get(classes[int(det.class_id[i])])
        if label is None:
            continue
        common: dict[str, Any] = {
            "from_name": t.from_name,
            "to_name": t.image_name,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
        }
        if det.confidence is not None:
            common["score"] = round(float(det.confidence[i]), 4)
        out += _shapes(det, i, label, t.tag, width, height, common)
    return out


def _shapes(det: Detections, i: int, label: str, tag: str, w: int, h: int, common: dict) -> list[dict[str, Any]]:
    if tag == "RectangleLabels":
        x0, y0, x1, y1 = (float(v) for v in det.xyxy[i])
        value = {"x": percent(x0, w), "y": percent(y0, h), "width": percent(x1 - x0, w), "height": percent(y1 - y0, h)}
        return [
            {
                "id": f"r{i}",
                "type": "rectanglelabels",
                **common,
                "value": {**value, "rotation": 0, "rectanglelabels": [label]},
            }
        ]
    mask = det.masks[i] if det.masks is not None else box_mask(det.xyxy[i], h, w)
    if mask_to_xyxy(mask) is None:
        return []
    if tag == "BrushLabels":
        brush: dict[str, Any] = {"format": "rle", "rle": ls_encode(mask), "brushlabels": [label]}
        return [{"id": f"r{i}", "type": "brushlabels", **common, "value": brush}]
    out = []
    for k, poly in enumerate(external_polygons(mask, 0.0)):
        points = [[percent(x, w), percent(y, h)] for x, y in poly]
        rid = f"r{i}" + (f"p{k}" if k else "")
        out.append(
            {
                "id": rid,
                "type": "polygonlabels",
                **common,
                "value": {"points": points, "closed": True, "polygonlabels": [label]},
            }
        )
    return out
