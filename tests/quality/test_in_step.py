"""One decision set, every view in step: each export records the decisions it was written with; the commands
that touch a run name the exports made with other decisions; review rebuilds an unedited FiftyOne dataset;
a threshold chosen on purpose is not called suspicious; the empty-class warning names the real cause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autolabel.api import label_folder
from autolabel.decisions import DecisionCounts
from autolabel.export import ExportOptions, export_run
from autolabel.export.records import stale_exports
from autolabel.run.run import Run
from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import cli, write_images


def test_an_export_with_new_decisions_names_the_exports_left_behind(
    labeled_run: dict[str, Path], tmp_path: Path
) -> None:
    run = labeled_run["run"]
    first = export_run(run, ["coco", "yolo", "cvat"])
    assert first.stale is None
    (tmp_path / "gt.json").write_bytes((run / "coco" / "annotations.json").read_bytes())
    r = cli("export", str(run), "-f", "coco", "--box-threshold", "0.8")
    assert r.returncode == 0, r.stderr
    assert "out of step with the run's decisions (ontology + --box-threshold 0.8)" in r.stderr
    assert "cvat (written with: ontology); yolo (written with: ontology)" in r.stderr
    assert f"refresh: autolabel export {run} -f cvat,yolo" in r.stderr
    assert "every class: 0.8 (ontology: 0.3)" in r.stderr  # said once, not per class
    for command in (["eval", "--gt", str(tmp_path / "gt.json")], ["preview", "-n", "1"]):
        r = cli(command[0], str(run), *command[1:])
        assert r.returncode == 0 and "out of step with the run's decisions" in r.stderr, (command, r.stderr)
    export_run(run, ["yolo", "cvat"])  # refreshed: in step again
    with Run.open(run) as opened:
        assert stale_exports(opened) == []
    r = cli("preview", str(run), "-n", "1")
    assert "out of step" not in r.stderr
    back = export_run(run, ["coco"], ExportOptions(reset_thresholds=True))
    assert back.stale is not None and "cvat, yolo" not in back.stale and "-f cvat,yolo" in back.stale


def test_exports_of_a_subset_or_elsewhere_do_not_count_as_the_runs(
    labeled_run: dict[str, Path], tmp_path: Path
) -> None:
    run = labeled_run["run"]
    export_run(run, ["coco"])
    export_run(run, ["yolo"], ExportOptions(box_threshold=0.5), relpaths=["c.jpg"], out_dir=tmp_path / "sub")
    with Run.open(run) as opened:
        assert [s.format for s in stale_exports(opened)] == []  # the sample export was not recorded


def test_a_threshold_chosen_by_tune_is_said_not_flagged(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "in", [f"im{i:02d}.png" for i in range(12)])
    run = tmp_path / "run"
    label_folder(fake_ontology_yaml, tmp_path / "in", run, ["coco"], backends=(FakeDetector(), FakeSegmenter()))
    (tmp_path / "tuned.yaml").write_text("classes:\n  square: {box_threshold: 0.99}\n")
    note = "no ground truth on the 4 images but 3 detections (all false): raised"
    report = {"images": 4, "metric": "f1", "classes": [{"name": "square", "note": note, "n_gt": 0, "n_det": 3}]}
    (tmp_path / "tuned.json").write_text(json.dumps(report))
    r = cli("export", str(run), "-f", "coco", "--thresholds", str(tmp_path / "tuned.yaml"))
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if "square:" in x and "candidates" in x)
    assert line.startswith("note: square:") and "warning" not in line and "lower its threshold" not in line
    assert "chosen by autolabel tune in tuned.yaml (" + note in line and "0 objects, 3 detections" in line
    r = cli("export", str(run), "-f", "coco")  # the choice is the run's state: later exports say the same
    assert "note: square:" in r.stderr and "lower its threshold" not in r.stderr


@pytest.mark.parametrize(
    ("below", "later", "expected"),
    [
        (221, 0, "cat: 222 candidates, 1 kept: 221 under its threshold 0.5, best 0.55 — lower its threshold"),
        (0, 221, "cat: 222 candidates, 1 kept: 221 dropped by NMS/size/dedup/negatives — check nms_iou"),
        (200, 21, "200 under its threshold 0.5, best 0.55; 21 dropped by NMS/size/dedup/negatives — lower"),
    ],
)
def test_the_empty_class_warning_names_the_real_cause(below: int, later: int, expected: str) -> None:
    counts = DecisionCounts()
    counts.add_class("cat", below + later + 1, 1, 0.55, below)
    (line,) = counts.warnings({"cat": 0.5}, floor=0.1)
    assert expected in line


fo = pytest.importorskip("fiftyone")


def test_review_rebuilds_an_unedited_dataset_made_with_other_decisions(labeled_run: dict[str, Path]) -> None:
    from autolabel.quality.review import prepare_dataset

    run = labeled_run["run"]
    name = "autolabel-test-in-step"
    export_run(run, ["fiftyone"], ExportOptions(dataset_name=name))
    before = len(fo.load_dataset(name).distinct("autolabel.detections.id"))
    export_run(run, ["coco"], ExportOptions(box_threshold=0.9))  # the run's decisions change
    said: list[str] = []
    ds = prepare_dataset(run, name, echo=said.append)
    assert said[0] == "decisions: ontology + --box-threshold 0.9"
    assert "was made with other decisions: rebuilt" in said[1]
    assert len(ds.distinct("autolabel.detections.id")) < before
    said.clear()
    ds = prepare_dataset(run, name, echo=said.append)
    assert said == ["decisions: ontology + --box-threshold 0.9"]  # in step now: nothing rebuilt

    sample = ds.first()  # a person edits the dataset in the App: it is kept, and said
    sample.tags.append("reject")
    sample.save()
    export_run(run, ["coco"], ExportOptions(reset_thresholds=True))
    said.clear()
    ds = prepare_dataset(run, name, echo=said.append)
    assert said[0] == "decisions: ontology" and "holds review edits" in said[1] and "--refresh" in said[1]
    assert "reject" in ds.first().tags
    fo.delete_dataset(name)
