"""Small things a new user tripped over (each failed before)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autolabel.config.plan import diff_settings
from tests.helpers import cli, write_images


def test_what_differs_names_added_and_removed_prompts_whole() -> None:
    old = {"ontology.prompts": ["a very long prompt about a small grey cat on a sofa", "dog"]}
    new = {"ontology.prompts": ["dog", "kitten"]}
    assert diff_settings(old, new) == [
        "ontology.prompts: + kitten, − a very long prompt about a small grey cat on a sofa"
    ]


def test_validate_says_an_engine_runs_no_segmenter(tmp_path: Path) -> None:
    p = tmp_path / "o.yaml"
    p.write_text("ontology:\n  cat: cat\ndetector: {backend: sam3}\n")
    r = cli("validate", str(p))
    assert r.returncode == 0, r.stderr
    assert "segmenter: none (the engine makes masks)" in r.stdout and "sam2" not in r.stdout


def test_export_quiet_prints_nothing(labeled_run: dict[str, Path]) -> None:
    r = cli("export", str(labeled_run["run"]), "-f", "coco", "-q")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr


def test_labeler_knows_its_classes_and_supervision_gets_names(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    from autolabel import Labeler
    from tests.fakes import FakeDetector, FakeSegmenter

    write_images(tmp_path, ["a.png"])
    labeler = Labeler(fake_ontology_yaml, backends=(FakeDetector(), FakeSegmenter()))
    assert labeler.classes == ("square", "ring")
    sv = labeler.label([tmp_path / "a.png"])[0].to_supervision()
    assert sorted(set(sv.data["class_name"].tolist())) == ["ring", "square"]


def test_eval_says_n_a_where_there_is_nothing_to_measure(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    from autolabel.export import ExportOptions, export_run
    from autolabel.quality.eval_text import format_report
    from autolabel.quality.evaluate import evaluate_run

    export_run(labeled_run["run"], ["coco"], ExportOptions(coco_masks="rle"))
    gt = json.loads((labeled_run["run"] / "coco" / "annotations.json").read_text())
    square = next(c["id"] for c in gt["categories"] if c["name"] == "square")
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] != square]  # no square in the GT
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r = evaluate_run(labeled_run["run"], tmp_path / "gt.json")
    assert r.per_class["square"]["recall"] is None and r.per_class["square"]["precision"] == 0.0
    line = next(x for x in format_report(r).splitlines() if x.startswith("square"))
    assert line.split()[-3:] == ["0.000", "n/a", "n/a"] and np.isfinite(r.per_class["ring"]["recall"] or 0)


def test_a_reader_that_leaves_the_pipe_early_is_no_error(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    export = cli("export", str(labeled_run["run"]), "-f", "coco", "-q")
    assert export.returncode == 0, export.stderr
    gt = labeled_run["run"] / "coco" / "annotations.json"
    cmd = f"{sys.executable} -m autolabel.cli eval {labeled_run['run']} --gt {gt} | true"  # the reader leaves at once
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert "unexpected" not in r.stderr and "Traceback" not in r.stderr, r.stderr
