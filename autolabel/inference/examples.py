"""Example boxes at run time: the ontology's `examples:` read from the labeled folder (or absolute paths),
checked, fingerprinted, and handed to the detectors that take them (`set_examples`) before the first image."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.backends.base import Detector
from autolabel.config.ontology import Ontology
from autolabel.errors import ImageError, UsageError

Loaded = tuple[dict[int, list[tuple[np.ndarray, np.ndarray]]], set[int]]  # per prompt index; text-off prompts


def example_path(image: str, root: str | Path | None) -> str:
    """An example's image: absolute as given, else under the labeled folder (or bucket prefix)."""
    from autolabel.storage import is_uri, join

    if Path(image).is_absolute() or is_uri(image) or root is None:
        return image
    return join(str(root), image) if is_uri(str(root)) else str(Path(root) / image)


def load_examples(ontology: Ontology, root: str | Path | None) -> Loaded:
    """Every example's image decoded and its box checked against it; a missing image or a box outside its
    image is a UsageError naming the example."""
    from autolabel.images import load_image

    out: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    text_off: set[int] = set()
    for ex in ontology.examples:
        k = ontology.prompts.index(ex.prompt)
        for i, (image, box) in enumerate(ex.boxes):
            where = f"examples.{ex.prompt}[{i}]"
            path = example_path(image, root)
            try:
                img = load_image(path)
            except (ImageError, FileNotFoundError) as e:
                raise UsageError(
                    f"{where}: cannot read '{path}': {getattr(e, 'message', e)}",
                    hint="example images are relative to the labeled folder, or absolute paths",
                ) from None
            h, w = img.shape[:2]
            if box[2] > w or box[3] > h:
                raise UsageError(f"{where}: box {list(box)} reaches outside '{image}' ({w}×{h} pixels)")
            out.setdefault(k, []).append((img, np.asarray(box, dtype=np.float64)))
        if not ex.text:
            text_off.add(k)
    return out, text_off


def example_signatures(ontology: Ontology, root: str | Path | None) -> dict[str, str]:
    """What each example image is (a hash of its bytes): part of the run's fingerprint, as the examples
    change the candidates."""
    from autolabel.storage import fetch, is_uri

    out = {}
    for ex in ontology.examples:
        for image, _box in ex.boxes:
            path = example_path(image, root)
            try:
                data = fetch(path) if is_uri(path) else Path(path).read_bytes()
            except OSError:
                data = b""  # reported by load_examples, with the fix
            out[image] = hashlib.sha256(data).hexdigest()[:16]
    return out


def give_examples(detector: Detector, loaded: Loaded) -> None:
    """Hand the examples to the detector (each detector of an ensemble)."""
    from autolabel.inference.ensemble import parts

    for part in parts(detector):
        target: Any = part
        if not callable(getattr(target, "set_examples", None)):
            raise UsageError(f"detector {type(part).__name__} cannot take example boxes")
        target.set_examples(*loaded)
