"""The thresholds an export was made with are the run's state: eval, preview, review, later exports and
a `label` rerun apply them and say so, until an export replaces or resets them. (Before, `eval` scored the
ontology's thresholds after `export --thresholds tuned.yaml`, and the next `label` silently restored them.)"""

from __future__ import annotations

import json
from pathlib import Path

from autolabel.api import label_folder
from autolabel.config.thresholds import load_thresholds
from autolabel.export import ExportOptions, export_run
from autolabel.overrides import ThresholdOverrides
from autolabel.quality.evaluate import evaluate_run
from autolabel.quality.preview import write_previews
from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import write_images


def squares(run: Path) -> int:
    coco = json.loads((run / "coco" / "annotations.json").read_text())
    square = next(c["id"] for c in coco["categories"] if c["name"] == "square")
    return sum(a["category_id"] == square for a in coco["annotations"])


def test_the_thresholds_an_export_was_made_with_are_what_every_later_command_applies(
    labeled_run: dict[str, Path], fake_ontology_yaml: Path, tmp_path: Path
) -> None:
    run = labeled_run["run"]
    export_run(run, ["coco"])
    gt = json.loads((run / "coco" / "annotations.json").read_text())
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    assert squares(run) > 0
    (tmp_path / "tuned.yaml").write_text("classes:\n  square: {box_threshold: 0.9}\n")
    tuned = ExportOptions(class_thresholds=load_thresholds(tmp_path / "tuned.yaml"), thresholds_source="tuned.yaml")
    report = export_run(run, ["coco"], tuned)
    assert report.applied == "ontology + tuned.yaml (1 class threshold)" and squares(run) == 0
    assert report.shadowed == ["square: 0.3 (ontology) → 0.9"]

    r = evaluate_run(run, tmp_path / "gt.json")  # scores what was exported
    assert r.decisions == report.applied and r.per_class["square"]["pred"] == 0 and r.per_class["square"]["gt"] > 0
    other = evaluate_run(run, tmp_path / "gt.json", ThresholdOverrides())  # other thresholds, before exporting them
    assert other.decisions == "ontology" and other.per_class["square"]["pred"] > 0
    _, _, applied = write_previews(run, n=3)
    assert applied == report.applied

    export_run(run, ["coco"])  # a plain export keeps them
    assert squares(run) == 0
    write_images(labeled_run["input"], ["new.png"])
    summary, _ = label_folder(
        fake_ontology_yaml, labeled_run["input"], run, ["coco"], backends=(FakeDetector(), FakeSegmenter())
    )
    assert summary.processed == 1 and summary.applied == report.applied and squares(run) == 0
    assert summary.shadowed == ["square: 0.3 (ontology) → 0.9"]

    back = export_run(run, ["coco"], ExportOptions(reset_thresholds=True))
    assert back.applied == "ontology" and back.shadowed == [] and squares(run) > 0
    assert evaluate_run(run, tmp_path / "gt.json").decisions == "ontology"


def test_an_empty_or_suspicious_dataset_is_named_with_the_fix(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "in", [f"im{i:02d}.png" for i in range(12)])
    run = tmp_path / "run"
    label_folder(fake_ontology_yaml, tmp_path / "in", run, ["coco"], backends=(FakeDetector(), FakeSegmenter()))
    high = export_run(run, ["coco"], ExportOptions(box_threshold=0.99))
    assert high.warnings[0].startswith("the dataset is empty: ") and high.warnings[0].endswith(" → 0 kept")
    square = next(w for w in high.warnings if w.startswith("square:"))
    assert square.startswith("square: 12 candidates, 0 kept: 12 under its threshold 0.99, best 0.6")
    assert square.endswith(" — lower its threshold or run `autolabel tune`")
    floor = export_run(run, ["coco"], ExportOptions(box_threshold=0.1))
    assert any("keeps all 12 candidates (threshold 0.1 = the candidate floor)" in w for w in floor.warnings)
    assert export_run(run, ["coco"], ExportOptions(reset_thresholds=True)).warnings == []
