from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from autolabel.export import ExportContext, ExportOptions, write_exports
from autolabel.export.coco import detections_to_coco_annotations
from autolabel.masks import mask_iou
from autolabel.types import Detections, ImageResult

H, W = 60, 80


def holed_and_two_part() -> Detections:
    holed = np.zeros((H, W), dtype=bool)
    holed[5:35, 5:35] = True
    holed[15:20, 15:20] = False  # a 5×5 hole
    parts = np.zeros((H, W), dtype=bool)
    parts[40:55, 10:30] = True
    parts[40:58, 50:75] = True
    boxes = np.array([[5, 5, 35, 35], [10, 40, 75, 58]], dtype=float)
    return Detections(boxes, [0, 1], [0.91234567, 0.5], ["red square", "blue ring"], np.stack([holed, parts]))


def write(tmp_path: Path, det: Detections, fmt: str, classes: list[str] = ["square", "ring"]) -> Path:  # noqa: B006
    results = [ImageResult("sub/a.png", W, H, det), ImageResult("other/a.png", W, H, Detections.empty())]
    sizes = sorted((r.relpath, r.width, r.height) for r in results)
    return write_coco(tmp_path, classes, sizes, sorted(results, key=lambda r: r.relpath), fmt)


def write_coco(
    out: Path, classes: list[str], sizes: list[tuple[str, int, int]], results: list[ImageResult], fmt: str = "polygon"
) -> Path:
    ctx = ExportContext(out, classes, sizes, out, True, ExportOptions(coco_masks=fmt), 0.0)
    return Path(write_exports(ctx, ["coco"], results)["coco"])


@pytest.mark.parametrize("fmt", ["polygon", "rle"])
def test_pycocotools_reads_back_our_masks(tmp_path: Path, fmt: str) -> None:
    det = holed_and_two_part()
    coco = COCO(str(write(tmp_path, det, fmt)))
    img = next(i for i in coco.dataset["images"] if i["file_name"] == "sub/a.png")
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
    assert [a["category_id"] for a in anns] == [1, 2]  # ids from 1
    for ann, mask in zip(anns, det.masks):
        assert ann["iscrowd"] == 0  # even with a hole and with two parts
        assert ann["area"] == int(mask.sum())  # mask area, not box area
        got = coco.annToMask(ann).astype(bool)
        if fmt == "rle":
            assert (got == mask).all()
        else:
            assert mask_iou(got, mask) >= 0.95
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
    # polygons: one per part, holes are not extra polygons
    if fmt == "polygon":
        assert len(anns[0]["segmentation"]) == 1 and len(anns[1]["segmentation"]) == 2
        assert (coco.annToMask(anns[1]).astype(bool) == det.masks[1]).all()  # hole-free: exact
        filled = det.masks[0].copy()
        filled[15:20, 15:20] = True
        assert (coco.annToMask(anns[0]).astype(bool) == filled).all()  # outer outline: the hole is filled


def test_same_file_name_in_two_folders_both_survive(tmp_path: Path) -> None:
    data = json.loads(write(tmp_path, holed_and_two_part(), "polygon").read_text())
    assert [i["file_name"] for i in data["images"]] == ["other/a.png", "sub/a.png"]
    assert len({i["id"] for i in data["images"]}) == 2


def test_score_none_is_omitted_never_faked() -> None:
    det = holed_and_two_part()
    det.confidence = None
    anns = detections_to_coco_annotations(det, image_id=1, first_id=1)
    assert all("score" not in a for a in anns)
    anns = detections_to_coco_annotations(holed_and_two_part(), image_id=1, first_id=7)
    assert [a["score"] for a in anns] == [0.9123, 0.5] and [a["id"] for a in anns] == [7, 8]
    assert anns[0]["prompt"] == "red square"


def test_box_only_annotations_use_box_area_and_no_segmentation() -> None:
    det = Detections(np.array([[1.5, 2, 11.5, 7]]), [0], [0.8], ["car"])
    (ann,) = detections_to_coco_annotations(det, 1, 1)
    assert ann["bbox"] == [1.5, 2, 10, 5] and ann["area"] == 50 and "segmentation" not in ann


def test_rerun_is_byte_identical_and_valid_with_no_annotations(tmp_path: Path) -> None:
    a = write(tmp_path / "1", holed_and_two_part(), "polygon").read_bytes()
    b = write(tmp_path / "2", holed_and_two_part(), "polygon").read_bytes()
    assert a == b
    p = write_coco(tmp_path / "empty", ["x"], [("a.png", 4, 4)], [ImageResult("a.png", 4, 4, Detections.empty())])
    data = json.loads(p.read_text())
    assert data["annotations"] == [] and len(data["images"]) == 1
    write_coco(tmp_path / "empty", ["x"], [], [])
    assert json.loads(p.read_text())["images"] == []
