"""YOLO-seg export, proven with ultralytics' own dataset loader and trainer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from autolabel.errors import UsageError
from autolabel.export import ExportOptions, YoloOptions, export_run
from autolabel.export.yolo import assign_splits, detections_to_yolo_lines, parse_split, yolo_image_names
from autolabel.run.run import Run
from autolabel.types import Detections


def raster(line: str, w: int, h: int) -> np.ndarray:
    pts = (np.array(line.split()[1:], dtype=float).reshape(-1, 2) * [w, h]).round().astype(np.int32)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [pts], 1)
    return m.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def holed_two_part() -> Detections:
    m = np.zeros((2, 100, 120), dtype=bool)
    m[0, 10:60, 10:60] = True
    m[0, 30:36, 30:36] = False  # hole
    m[1, 10:40, 70:110] = True
    m[1, 60:95, 70:100] = True  # second part
    return Detections([[10, 10, 60, 60], [70, 10, 110, 95]], [0, 1], [0.9, 0.8], ["a", "b"], m)


def test_one_line_per_instance_normalised_and_multipart_bridged() -> None:
    det = holed_two_part()
    lines = detections_to_yolo_lines(det, 120, 100)
    assert len(lines) == 2
    for line, mask in zip(lines, det.masks):
        vals = np.array(line.split()[1:], dtype=float)
        assert len(vals) >= 6 and len(vals) % 2 == 0 and vals.min() >= 0 and vals.max() <= 1
        assert iou(raster(line, 120, 100), mask) >= 0.9  # holes and parts round-trip
    assert lines[0].startswith("0 ") and lines[1].startswith("1 ")
    (largest,) = detections_to_yolo_lines(det.select([1]), 120, 100, multipart="largest")
    got = raster(largest, 120, 100)
    assert (got[10:40, 70:110].mean() > 0.95 and not got[60:95, 70:100].any()) or got[60:95, 70:100].mean() > 0.95
    assert not (got[10:40, 70:110].any() and got[60:95, 70:100].any())


def test_box_rows_when_no_segments() -> None:
    det = holed_two_part()
    lines = detections_to_yolo_lines(det, 120, 100, segments=False)
    assert lines[0] == "0 0.291667 0.35 0.416667 0.5"


def test_split_is_seeded_reproducible_and_sized() -> None:
    rel = [f"img{i:03d}.jpg" for i in range(100)]
    a = assign_splits(rel, (0.8, 0.2), seed=0)
    assert a == assign_splits(list(reversed(rel)), (0.8, 0.2), seed=0)
    assert sum(v == "val" for v in a.values()) == 20
    assert a != assign_splits(rel, (0.8, 0.2), seed=1)
    three = assign_splits(rel, (0.7, 0.2, 0.1), seed=0)
    assert [sum(v == s for v in three.values()) for s in ("train", "val", "test")] == [70, 20, 10]
    assert set(assign_splits(["a", "b"], (0.9, 0.1), 0).values()) == {"train", "val"}  # val never empty
    with pytest.raises(UsageError):
        parse_split("0.8,0.3")


def test_the_frames_of_a_clip_never_share_two_splits() -> None:
    clips = {f"cam{c}.mp4/{i:07d}.jpg": f"cam{c}.mp4" for c in range(5) for i in range(20 + 10 * c)}
    rel = [*clips, *(f"still{i}.jpg" for i in range(10))]
    got = assign_splits(rel, (0.7, 0.2, 0.1), seed=3, group=clips)
    for c in range(5):
        assert len({got[r] for r in rel if r.startswith(f"cam{c}.mp4/")}) == 1
    sizes = {s: sum(v == s for v in got.values()) for s in ("train", "val", "test")}
    assert all(sizes.values()) and [sizes[s] for s in ("train", "val", "test")] == [147, 42, 21]  # as asked
    assert got == assign_splits(list(reversed(rel)), (0.7, 0.2, 0.1), seed=3, group=clips)


def test_names_that_would_share_a_label_file_are_made_distinct() -> None:
    names = yolo_image_names(["a/x.jpg", "a/x.png", "b/x.jpg"])
    assert names == {"a/x.jpg": "a/x_jpg.jpg", "a/x.png": "a/x_png.png", "b/x.jpg": "b/x.jpg"}


def _cache(ds) -> dict:  # type: ignore[no-untyped-def]
    """The label cache ultralytics wrote while verifying every label file (its own bookkeeping)."""
    return np.load(Path(ds.label_files[0]).parent.with_suffix(".cache"), allow_pickle=True).item()


def test_ultralytics_loads_our_export_with_nothing_dropped_or_corrected(labeled_run: dict[str, Path]) -> None:
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset, polygon2mask

    run = labeled_run["run"]
    export_run(run, ["yolo"], ExportOptions(yolo=YoloOptions(split=(0.75, 0.25))))
    yolo = run / "yolo"
    data = check_det_dataset(str(yolo / "data.yaml"))
    assert data["names"] == {0: "square", 1: "ring"} and data["nc"] == 2
    raw = yaml.safe_load((yolo / "data.yaml").read_text())
    assert raw["train"] == "images/train" and raw["val"] == "images/val"
    # same-named files in two folders both survive; the empty image has an empty label file
    files = sorted(p.relative_to(yolo).as_posix() for p in (yolo / "labels").rglob("*.txt"))
    assert len(files) == 9 and any(f.endswith("a/x.txt") for f in files) and any(f.endswith("b/x.txt") for f in files)
    empty = next(p for p in (yolo / "labels").rglob("empty.txt"))
    assert empty.read_text() == ""

    with Run.open(run) as opened:
        ours = {r.relpath: r for r in opened.results()}
    seen = 0
    for split in ("train", "val"):
        ds = YOLODataset(img_path=data[split], data=data, task="segment", imgsz=160, augment=False)
        _nf, nm, _ne, nc, _n = _cache(ds)["results"]
        assert nm == 0 and nc == 0, "no missing or corrupt labels"
        assert _cache(ds)["msgs"] == [], "no label was corrected"
        for lab in ds.labels:
            rel = Path(lab["im_file"]).relative_to(yolo / "images" / split).as_posix()
            res = ours[rel]
            assert len(lab["segments"]) == len(res.detections)
            for seg, mask in zip(lab["segments"], res.detections.masks):  # ultralytics' own rasteriser
                got = polygon2mask((res.height, res.width), [(seg * [res.width, res.height]).reshape(-1)])
                assert iou(got.astype(bool), mask) >= 0.9
            assert lab["cls"][:, 0].tolist() == res.detections.class_id.tolist()
            seen += 1
    assert seen == len(ours) == 9


def test_reexport_replaces_files_never_appends(labeled_run: dict[str, Path]) -> None:
    run = labeled_run["run"]
    export_run(run, ["yolo"])
    labels = {p: p.read_bytes() for p in (run / "yolo" / "labels").rglob("*.txt")}
    export_run(run, ["yolo"])
    assert {p: p.read_bytes() for p in (run / "yolo" / "labels").rglob("*.txt")} == labels
    export_run(run, ["yolo"], ExportOptions(yolo=YoloOptions(split=(0.5, 0.5), seed=3)))
    imgs = [p for p in (run / "yolo" / "images").rglob("*") if p.is_file() or p.is_symlink()]
    assert len(imgs) == 9 and len(list((run / "yolo" / "labels").rglob("*.txt"))) == 9  # stale files removed
    # symlinks point at the source images; the input folder is untouched
    assert all(p.is_symlink() and p.resolve().is_relative_to(labeled_run["input"].resolve()) for p in imgs)


def test_copy_media_and_box_only_run(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    run = labeled_run["run"]
    export_run(run, ["yolo"], ExportOptions(yolo=YoloOptions(media="copy")))
    imgs = [p for p in (run / "yolo" / "images").rglob("*.png")]
    assert imgs and not any(p.is_symlink() for p in imgs)


@pytest.mark.slow
def test_ultralytics_trains_one_epoch_on_the_export(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    from ultralytics import YOLO

    run = labeled_run["run"]
    export_run(run, ["yolo"])
    model = YOLO("yolov8n-seg.yaml")  # architecture from config, no weights downloaded
    model.train(
        data=str(run / "yolo" / "data.yaml"),
        epochs=1,
        imgsz=64,
        batch=4,
        device="cpu",
        workers=0,
        plots=False,
        amp=False,
        project=str(tmp_path / "train"),
        name="t",
        verbose=False,
        val=True,
    )
    assert (tmp_path / "train" / "t" / "weights" / "last.pt").exists()
