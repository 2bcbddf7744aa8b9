"""Bad input is named, bounded and refused before anything runs (each case got through before)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autolabel.config.load import load_ontology, parse_ontology
from autolabel.config.thresholds import load_thresholds
from autolabel.errors import OntologyError, UsageError

BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    )
    + "ontology: *i\n"
)


def test_a_yaml_alias_bomb_is_refused_with_a_short_message(tmp_path: Path) -> None:
    p = tmp_path / "bomb.yaml"
    p.write_text(BOMB)
    with pytest.raises(OntologyError, match="YAML aliases") as e:
        load_ontology(p)
    assert len(e.value.message) < 300


def test_messages_echo_values_bounded() -> None:
    nested: list = ["x" * 10_000]
    for _ in range(30):
        nested = [nested] * 10  # shared references: tiny in memory, huge when printed in full
    with pytest.raises(OntologyError) as e:
        parse_ontology({"ontology": {"cat": nested}})
    assert "the class name must be non-empty text" in e.value.message and len(e.value.message) < 300


@pytest.mark.parametrize(
    "backend,says",
    [
        ("os:system", "is not a backend class"),
        ("subprocess:Popen", "is not a backend class"),
        (".plugins.mine:Detector", "is not 'package.module:ClassName'"),
        ("./plugins/mine.py:Detector", "is not 'package.module:ClassName'"),
    ],
)
def test_a_backend_must_be_a_backend_class_named_by_module(backend: str, says: str) -> None:
    with pytest.raises(OntologyError, match=says):
        parse_ontology({"ontology": {"cat": "cat"}, "detector": {"backend": backend}})


def test_thresholds_files_refuse_duplicate_keys_and_non_utf8(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text("classes:\n  car: {box_threshold: 0.4}\n  car: {box_threshold: 0.6}\n")
    with pytest.raises(UsageError, match=r"duplicate key 'car' \(first on line 2\)"):
        load_thresholds(dup)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("classes:\n  caf\u00e9: {box_threshold: 0.4}\n".encode("latin-1"))
    with pytest.raises(UsageError, match="not a UTF-8 text file"):
        load_thresholds(latin)


def _gt(tmp_path: Path, anns: list[dict], cats: list[dict] | None = None) -> Path:
    p = tmp_path / "gt.json"
    images = [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}]
    p.write_text(json.dumps({"images": images, "categories": cats or [{"id": 1, "name": "cat"}], "annotations": anns}))
    return p


def test_ground_truth_is_checked_like_an_ontology_all_problems_at_once(tmp_path: Path) -> None:
    from autolabel.quality.groundtruth import read_coco

    box = [0, 0, 5, 5]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": box},
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": box},  # a repeated id: pycocotools silently miscounts
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": box},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": box, "segmentation": [[0, 0, 5]]},
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [0, 0, float("nan"), 1]},
    ]
    with pytest.raises(UsageError) as e:
        read_coco(_gt(tmp_path, anns))
    msg = e.value.message
    assert "annotations[1] (id 1): id repeats" in msg
    assert "annotations[2] (id 2): category_id 7 is not in categories" in msg
    assert "annotations[3] (id 3): segmentation polygon 0 needs an even number (>= 6)" in msg
    assert "annotations[4] (id 4): bbox must be" in msg
    with pytest.raises(UsageError, match="no annotations at all"):
        read_coco(_gt(tmp_path, []))
