"""Messages that say what is wrong and what to do: every problem of a thresholds file at once (with the
closest class), a plugin that cannot be imported (how plugins are found), tune naming the hand-labeled
classes the run does not have, eval's overall row."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import cli, write_images


def test_a_thresholds_file_reports_every_problem_with_the_closest_class(labeled_run: dict, tmp_path: Path) -> None:
    run = labeled_run["run"]
    bad = tmp_path / "t.yaml"
    bad.write_text("classes:\n  squar: {box_threshold: 0.5}\n  ring: {box_threshold: 1.5}\n")
    for command in (["export", "-f", "coco"], ["preview"], ["eval", "--gt", str(tmp_path / "gt.json")]):
        r = cli(command[0], str(run), *command[1:], "--thresholds", str(bad))
        assert r.returncode == 2, r.stderr
        assert "classes.squar: not a class of the run; did you mean 'square'?" in r.stderr, r.stderr
        assert "classes.ring.box_threshold: must be a number in [0, 1], got 1.5" in r.stderr


def test_a_plugin_that_cannot_be_imported_says_how_plugins_are_found(tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png"])
    (tmp_path / "o.yaml").write_text(
        "ontology:\n  red square: square\ndetector:\n  backend: oracle:Oracle\nsegmenter:\n  backend: none\n"
    )
    r = cli("label", str(tmp_path / "o.yaml"), str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "No module named 'oracle'" in r.stderr
    assert "put oracle.py" in r.stderr and "PYTHONPATH" in r.stderr and "pip install" in r.stderr
    assert "autolabel[models]" not in r.stderr


def test_tune_names_ground_truth_classes_the_run_lacks_and_eval_has_an_overall_row(
    labeled_run: dict, tmp_path: Path
) -> None:
    from autolabel.export import ExportOptions, export_run

    run = labeled_run["run"]
    export_run(run, ["coco"], ExportOptions(coco_masks="rle"))
    gt = json.loads((run / "coco" / "annotations.json").read_text())
    gt["categories"].append({"id": 99, "name": "zebra"})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r = cli("tune", str(run), "--gt", str(tmp_path / "gt.json"))
    assert r.returncode == 0, r.stderr
    assert "classes only in the ground truth (not tuned): zebra" in r.stdout
    r = cli("eval", str(run), "--gt", str(tmp_path / "gt.json"))
    assert r.returncode == 0, r.stderr
    micro = next(line for line in r.stdout.splitlines() if line.startswith("all (micro)"))
    assert micro.split()[-3:] == ["1.000", "1.000", "1.000"] and "1.000" in micro.split()[2]
    ev = json.loads((run / "eval.json").read_text())
    assert ev["overall"]["micro"]["f1"] == 1.0 and ev["overall"]["macro"]["bbox_mAP"] == 1.0
    assert ev["overall"]["micro"]["tp"] == ev["overall"]["micro"]["gt"] > 0
