"""`compare`: the run whose labels match the hand labels better wins, with eval's own numbers; prediction
files; what is not shared is said or refused; `label --images` labels only the listed images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autolabel.errors import UsageError
from autolabel.export import ExportOptions, export_run
from autolabel.quality.compare import compare, format_comparison
from autolabel.quality.evaluate import evaluate_run
from tests.helpers import cli


def two_runs(labeled_run: dict[str, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    """Run A, its COCO export as the hand labels, and B: the same candidates with a threshold that drops
    the smaller objects (its recorded decisions)."""
    a = labeled_run["run"]
    export_run(a, ["coco"], ExportOptions(coco_masks="rle"))
    gt = json.loads((a / "coco" / "annotations.json").read_text())
    for ann in gt["annotations"]:
        ann.pop("score")
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    b = tmp_path / "b"
    shutil.copytree(a, b)
    export_run(b, ["coco"], ExportOptions(coco_masks="rle", box_threshold=0.62))
    return a, b, tmp_path / "gt.json"


def test_compare_picks_the_better_run_with_the_numbers_eval_prints(labeled_run: dict, tmp_path: Path) -> None:
    a, b, gt = two_runs(labeled_run, tmp_path)
    result = compare([b, a], gt)
    assert result.best == a.name and result.images == 9 and not result.notes
    by_name = {e.name: e for e in result.entries}
    for run in (a, b):
        alone = evaluate_run(run, gt)
        entry = by_name[run.name]
        assert entry.report.overall == alone.overall and entry.report.per_class == alone.per_class
        assert entry.report.metrics == alone.metrics and entry.tuned is not None
    assert by_name[a.name].f1 == 1.0 and by_name[b.name].f1 < 0.9
    assert result.sure is not None and result.sure > 0.9
    text = format_comparison(result)
    assert f"recommended: {a.name}: F1 1.000 vs" in text and "fix:" not in text.split("recommended")[1]


def test_compare_scores_a_predictions_file_like_the_run_it_came_from(labeled_run: dict, tmp_path: Path) -> None:
    a, b, gt = two_runs(labeled_run, tmp_path)
    preds = tmp_path / "student.json"
    shutil.copy(b / "coco" / "annotations.json", preds)  # a COCO dataset with scores: B's labels
    result = compare([a, preds], gt, operating=0.0)
    by_name = {e.name: e for e in result.entries}
    assert by_name["student"].kind == "predictions"
    assert by_name["student"].report.overall["micro"]["f1"] == pytest.approx(evaluate_run(b, gt).overall["micro"]["f1"])
    results_list = [dict(x, image_id=x["image_id"]) for x in json.loads(preds.read_text())["annotations"]]
    (tmp_path / "list.json").write_text(json.dumps(results_list))  # ids of B's export = ids of the GT (A's)
    listed = compare([a, tmp_path / "list.json"], gt, operating=0.0)
    assert listed.entries[1].report.overall["micro"]["f1"] == pytest.approx(by_name["student"].f1)


def test_compare_says_what_is_left_out_and_refuses_what_cannot_be_compared(labeled_run: dict, tmp_path: Path) -> None:
    a, b, gt = two_runs(labeled_run, tmp_path)
    data = json.loads(gt.read_text())
    data["images"].append({"id": 999, "file_name": "elsewhere.png", "width": 5, "height": 5})
    (tmp_path / "more.json").write_text(json.dumps(data))
    preds = [x for x in data["annotations"] if x["image_id"] != data["images"][0]["id"]]
    partial = {**data, "images": data["images"][1:-1], "annotations": [dict(x, score=0.9) for x in preds]}
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    result = compare([a, b, tmp_path / "partial.json"], tmp_path / "more.json")
    assert result.images == 8
    assert any("partial" not in n and "1 hand-labeled images left out" in n for n in result.notes)
    with pytest.raises(UsageError, match="neither a run directory nor"):
        compare([a, tmp_path / "nothing"], gt)
    with pytest.raises(UsageError, match="no ground truth"):
        compare([a, b])
    bad = [{"image_id": 12345, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(UsageError, match="image_id 12345 is neither"):
        compare([a, tmp_path / "bad.json"], gt)
    nan = [{"image_id": data["images"][0]["id"], "category_id": 1, "bbox": [0, 0, float("nan"), 1], "score": 0.5}]
    (tmp_path / "nan.json").write_text(json.dumps(nan))
    with pytest.raises(UsageError, match="bbox must be"):
        compare([a, tmp_path / "nan.json"], gt)


def test_compare_cli_and_label_only_the_listed_images(
    labeled_run: dict, tmp_path: Path, fake_ontology_yaml: Path
) -> None:
    a, b, gt = two_runs(labeled_run, tmp_path)
    r = cli("compare", str(a), str(b), "--gt", str(gt), "--json", str(tmp_path / "cmp.json"))
    assert r.returncode == 0, r.stderr
    assert f"recommended: {a.name}" in r.stdout and json.loads((tmp_path / "cmp.json").read_text())["best"] == a.name
    (tmp_path / "list.txt").write_text("# the hand-labeled ones\nc.jpg\n\ng.png\n")
    r = cli(
        "label",
        str(fake_ontology_yaml),
        str(labeled_run["input"]),
        "-o",
        str(tmp_path / "few"),
        "--images",
        str(tmp_path / "list.txt"),
        "-f",
        "coco",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    coco = json.loads((tmp_path / "few" / "coco" / "annotations.json").read_text())
    assert sorted(im["file_name"] for im in coco["images"]) == ["c.jpg", "g.png"]
    (tmp_path / "typo.txt").write_text("c.jpg\nnot-there.png\n")
    r = cli(
        "label",
        str(fake_ontology_yaml),
        str(labeled_run["input"]),
        "-o",
        str(tmp_path / "typo"),
        "--images",
        str(tmp_path / "typo.txt"),
    )
    assert r.returncode == 2 and "not-there.png" in r.stderr


def test_a_results_list_labeling_more_images_than_are_shared_is_compared_on_the_shared_ones(
    labeled_run: dict, tmp_path: Path
) -> None:
    a, _, gt = two_runs(labeled_run, tmp_path)
    data = json.loads(gt.read_text())
    data["images"].append({"id": 999, "file_name": "elsewhere.png", "width": 5, "height": 5})
    data["annotations"].append({"id": 9999, "image_id": 999, "category_id": 1, "bbox": [0, 0, 2, 2]})
    (tmp_path / "more.json").write_text(json.dumps(data))
    listed = [dict(x, score=0.9) for x in data["annotations"]]  # labels of every hand-labeled image, 999 too
    (tmp_path / "list.json").write_text(json.dumps(listed))
    result = compare([a, tmp_path / "list.json"], tmp_path / "more.json")  # was: "image_id 999 is neither…"
    assert result.images == 9 and any("list: 1 hand-labeled images left out" in n for n in result.notes)
    assert result.entries[1].report.overall["micro"]["f1"] == 1.0
    assert "COCO results list" in result.entries[1].report.decisions
