"""Label Studio and CVAT exports: their own mask encodings, exact on every shape, and the files' structure.
(The tools' own decoders read the same files in tests/annotate/test_tools_golden.py.)"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from autolabel.errors import UsageError
from autolabel.tool_rle import cvat_decode, cvat_encode, ls_decode, ls_encode
from tests.tools import write_handmade


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (48, 64), (600, 500)])
def test_label_studio_rle_round_trips_random_and_long_runs(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    noisy = rng.random(shape) < 0.3
    solid = np.zeros(shape, bool)
    solid[: shape[0] // 2] = True  # runs longer than the 16-bit field (600×250×4 values) are split
    for m in (noisy, solid, ~solid, np.zeros(shape, bool)):
        rle = ls_encode(m)
        assert all(0 <= b < 256 for b in rle)
        assert np.array_equal(ls_decode(rle, *shape), m)


def test_label_studio_rle_header_says_rgba_values_and_8_bit_words() -> None:
    rle = bytes(ls_encode(np.ones((2, 3), bool)))
    assert int.from_bytes(rle[:4], "big") == 2 * 3 * 4
    assert rle[4] >> 3 == 7  # word size − 1


def test_cvat_rle_starts_with_zeros_and_covers_its_box() -> None:
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    m[2, 3] = False
    counts, left, top, width, height = cvat_encode(m) or ([], 0, 0, 0, 0)
    assert (left, top, width, height) == (3, 2, 6, 3)
    assert sum(counts) == width * height and counts[0] == 1  # the first pixel of the box is outside
    assert np.array_equal(cvat_decode(counts, left, top, width, height, 10, 12), m)
    full = np.ones((4, 4), bool)
    assert cvat_encode(full) == ([0, 16], 0, 0, 4, 4)
    assert cvat_encode(np.zeros((4, 4), bool)) is None


def test_label_studio_tasks_hold_the_masks_exactly(tmp_path: Path) -> None:
    out, results = write_handmade(tmp_path, ["labelstudio"])
    tasks = json.loads((out / "labelstudio" / "tasks.json").read_text())
    assert [t["data"]["relpath"] for t in tasks] == ["a/one.png", "b/two.png"]
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=data/a/one.png"  # relative to the document root
    for task, res in zip(tasks, results):
        pred = task["predictions"][0]
        assert pred["model_version"] == "autolabel test"
        assert pred["score"] == min(r["score"] for r in pred["result"]) == 0.42
        assert len(pred["result"]) == len(res.detections)
        for r, mask, cid in zip(pred["result"], res.detections.masks, res.detections.class_id):
            assert (r["original_width"], r["original_height"]) == (res.width, res.height)
            assert r["value"]["brushlabels"] == [["cat", "dog"][cid]]
            assert r["from_name"] == "mask" and r["to_name"] == "image"
            assert np.array_equal(ls_decode(r["value"]["rle"], res.height, res.width), mask)
    config = (out / "labelstudio" / "config.xml").read_text()
    root = ET.fromstring(config)
    assert [lab.get("value") for lab in root.iter("Label")] == ["cat", "dog", "cat", "dog"]
    assert "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT" in (out / "labelstudio" / "README.md").read_text()


def test_label_studio_polygons_are_percent_and_one_region_per_part(tmp_path: Path) -> None:
    out, results = write_handmade(tmp_path, ["labelstudio"], tool_masks="polygon")
    task = json.loads((out / "labelstudio" / "tasks.json").read_text())[0]
    res = results[0]
    regions = task["predictions"][0]["result"]
    assert [r["id"] for r in regions] == ["r0", "r0p1", "r1", "r2", "r3"]  # the two-part cat gives two regions
    for r in regions:
        assert r["type"] == "polygonlabels" and r["from_name"] == "polygon"
        pts = np.asarray(r["value"]["points"])
        assert pts.min() >= 0 and pts.max() <= 100
    parts = [np.asarray(r["value"]["points"]) * [res.width / 100, res.height / 100] for r in regions[:2]]
    union = mask_utils.merge(mask_utils.frPyObjects([p.ravel().tolist() for p in parts], res.height, res.width))
    assert np.array_equal(mask_utils.decode(union).astype(bool), res.detections.masks[0])


def test_cvat_xml_holds_the_masks_exactly_and_declares_its_labels(tmp_path: Path) -> None:
    out, results = write_handmade(tmp_path, ["cvat"])
    root = ET.parse(out / "cvat" / "annotations.xml").getroot()
    assert root.findtext("version") == "1.1"
    assert [n.text for n in root.iter("name") if n.text in ("cat", "dog")] == ["cat", "dog"]
    images = root.findall("image")
    assert [im.get("name") for im in images] == ["a/one.png", "b/two.png"]
    for im, res in zip(images, results):
        masks = im.findall("mask")
        assert len(masks) == len(res.detections)
        for el, mask in zip(masks, res.detections.masks):
            counts = [int(c) for c in el.get("rle", "").split(",")]
            box = [int(el.get(k, "-1")) for k in ("left", "top", "width", "height")]
            assert sum(counts) == box[2] * box[3]
            assert np.array_equal(cvat_decode(counts, *box, res.height, res.width), mask)


def test_cvat_polygons_group_the_parts_of_one_object(tmp_path: Path) -> None:
    out, _ = write_handmade(tmp_path, ["cvat"], tool_masks="polygon")
    root = ET.parse(out / "cvat" / "annotations.xml").getroot()
    polys = root.find("image").findall("polygon")  # type: ignore[union-attr]
    assert [p.get("group_id") for p in polys] == ["1", "1", None, None, None]
    for p in polys:
        assert len(p.get("points", "").split(";")) >= 3


def test_tool_exports_never_replace_files_autolabel_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "out" / "labelstudio").mkdir(parents=True)
    (tmp_path / "out" / "labelstudio" / "tasks.json").write_text("[]  mine")
    with pytest.raises(UsageError, match="not written by autolabel"):
        write_handmade(tmp_path, ["labelstudio"])
    assert (tmp_path / "out" / "labelstudio" / "tasks.json").read_text() == "[]  mine"
    (tmp_path / "out" / "cvat").mkdir(parents=True)
    (tmp_path / "out" / "cvat" / "annotations.xml").write_text("<annotations/>")
    with pytest.raises(UsageError, match="not written by autolabel"):
        write_handmade(tmp_path, ["cvat"])
    write_handmade(tmp_path / "again", ["labelstudio", "cvat"])
    write_handmade(tmp_path / "again", ["labelstudio", "cvat"])  # its own files it replaces


def test_label_studio_root_must_be_above_the_labeled_folder(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(UsageError, match="not inside --labelstudio-root"):
        write_handmade(tmp_path, ["labelstudio"], labelstudio_root=str(tmp_path / "elsewhere"))
    out, _ = write_handmade(tmp_path, ["labelstudio"], labelstudio_root=str(tmp_path.parent))
    task = json.loads((out / "labelstudio" / "tasks.json").read_text())[0]
    assert task["data"]["image"] == f"/data/local-files/?d={tmp_path.name}/data/a/one.png"


def test_tool_exports_are_byte_identical_on_rerun(tmp_path: Path) -> None:
    out, _ = write_handmade(tmp_path, ["labelstudio", "cvat"])
    first = [(out / p).read_bytes() for p in ("labelstudio/tasks.json", "cvat/annotations.xml")]
    write_handmade(tmp_path, ["labelstudio", "cvat"])
    assert [(out / p).read_bytes() for p in ("labelstudio/tasks.json", "cvat/annotations.xml")] == first


def test_the_coco_export_stays_cvat_importable(tmp_path: Path) -> None:
    """Valid RLE sizes, polygons of an even number (>= 6) of values, multi-part masks as one annotation
    (cvat#6014, #8432): also with simplified polygons."""
    for masks, tolerance in (("polygon", None), ("polygon", 3.0), ("rle", None)):
        out, results = write_handmade(
            tmp_path / f"{masks}{tolerance}", ["coco"], coco_masks=masks, polygon_tolerance=tolerance
        )
        data = json.loads((out / "coco" / "annotations.json").read_text())
        sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
        assert len(data["annotations"]) == sum(len(r.detections) for r in results)
        for a in data["annotations"]:
            seg = a["segmentation"]
            if masks == "rle":
                assert tuple(seg["size"]) == sizes[a["image_id"]]
            else:
                assert seg and all(len(p) >= 6 and len(p) % 2 == 0 for p in seg)
        if masks == "polygon":
            assert len(data["annotations"][0]["segmentation"]) == 2  # two parts, one object
