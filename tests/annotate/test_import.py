"""`autolabel import`: corrections from Label Studio, CVAT and COCO back into a run — what changed, ground
truth for eval/tune, a corrected dataset."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from autolabel.annotate.importing import import_corrections
from autolabel.errors import UsageError
from autolabel.export import ExportOptions, export_run
from autolabel.run.run import Run
from autolabel.tool_rle import ls_decode, ls_encode
from tests.helpers import cli


def _ls_export(run_dir: Path) -> list[dict]:
    """What Label Studio's JSON export looks like after review: tasks with ids, predictions and annotations
    (here every task starts unreviewed)."""
    export_run(run_dir, ["labelstudio"])
    tasks = json.loads((run_dir / "labelstudio" / "tasks.json").read_text())
    for k, t in enumerate(tasks, start=1):
        t["id"], t["annotations"] = k, []
    return tasks


def _annotate(task: dict, result: list[dict], **extra: object) -> None:
    task["annotations"].append({"id": len(task["annotations"]) + 1, "result": result, "was_cancelled": False, **extra})


def _by_rel(tasks: list[dict], rel: str) -> dict:
    return next(t for t in tasks if t["data"]["relpath"] == rel)


def _run_masks(run_dir: Path, rel: str) -> list[tuple[str, np.ndarray]]:
    with Run.open(run_dir) as run:
        res = next(run.results(relpaths=[rel]))
        return [(run.classes[int(c)], res.detections.masks[i]) for i, c in enumerate(res.detections.class_id)]


def test_label_studio_review_is_counted_saved_as_ground_truth_and_exported(labeled_run: dict, tmp_path: Path) -> None:
    run_dir = labeled_run["run"]
    tasks = _ls_export(run_dir)
    # c.jpg: accepted as is; g.png: the ring deleted, the square called a ring, a new square drawn;
    # h.png: the square's mask edited; i.png skipped; j.png: reviewed, then the review rejected
    _annotate(_by_rel(tasks, "c.jpg"), copy.deepcopy(_by_rel(tasks, "c.jpg")["predictions"][0]["result"]))
    g = copy.deepcopy(_by_rel(tasks, "g.png")["predictions"][0]["result"])
    square = next(r for r in g if r["value"]["brushlabels"] == ["square"])
    square["value"]["brushlabels"] = ["ring"]
    drawn = np.zeros((120, 160), bool)
    drawn[100:110, 5:25] = True
    new = {**square, "id": "n1", "value": {"format": "rle", "rle": ls_encode(drawn), "brushlabels": ["square"]}}
    _annotate(_by_rel(tasks, "g.png"), [square, new])
    h = copy.deepcopy(_by_rel(tasks, "h.png")["predictions"][0]["result"])
    sq = next(r for r in h if r["value"]["brushlabels"] == ["square"])
    m = ls_decode(sq["value"]["rle"], 120, 160)
    ys = np.nonzero(m)[0]
    m[ys.min() : ys.min() + 6, :] = False  # a reviewer trims the top rows
    sq["value"]["rle"] = ls_encode(m)
    _annotate(_by_rel(tasks, "h.png"), h)
    _by_rel(tasks, "i.png")["annotations"].append({"id": 9, "result": [], "was_cancelled": True})
    _annotate(_by_rel(tasks, "j.png"), [], reviews=[{"accepted": False}])
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))

    report = import_corrections(run_dir, path, ["coco"], options=ExportOptions(coco_masks="rle"))

    assert report.reviewed == 3
    assert sorted(report.left_out) == [
        "a/x.png: not reviewed",
        "b/x.png: not reviewed",
        "d/e/f.png: not reviewed",
        "empty.png: not reviewed",
        "i.png: skipped in Label Studio",
        "j.png: rejected in review",
    ]
    sq_c, ring_c = report.changes["square"], report.changes["ring"]
    assert (sq_c.predicted, sq_c.unchanged, sq_c.edited, sq_c.reclassified, sq_c.added) == (3, 1, 1, 1, 1)
    assert (ring_c.predicted, ring_c.unchanged, ring_c.removed) == (3, 2, 1)
    assert ring_c.correction_rate == pytest.approx(1 / 3)

    gt = json.loads((run_dir / "groundtruth.json").read_text())
    assert sorted(im["file_name"] for im in gt["images"]) == ["c.jpg", "g.png", "h.png"]
    corrected = json.loads((run_dir / "corrected" / "coco" / "annotations.json").read_text())
    assert len(corrected["images"]) == 9  # the others as the run labeled them
    g_id = next(im["id"] for im in corrected["images"] if im["file_name"] == "g.png")
    g_anns = [a for a in corrected["annotations"] if a["image_id"] == g_id]
    cats = {c["id"]: c["name"] for c in corrected["categories"]}
    assert sorted(cats[a["category_id"]] for a in g_anns) == ["ring", "square"]
    got = next(a for a in g_anns if cats[a["category_id"]] == "square")
    assert np.array_equal(mask_utils.decode(got["segmentation"]).astype(bool), drawn)
    assert "score" not in got  # a human's label carries no score
    saved = json.loads((run_dir / "corrections.json").read_text())
    assert saved["all"]["predicted"] == 6 and saved["source"] == "Label Studio JSON"


def test_eval_and_tune_read_the_imported_ground_truth(labeled_run: dict, tmp_path: Path) -> None:
    run_dir = labeled_run["run"]
    r = cli("eval", str(run_dir))
    assert r.returncode == 2 and "autolabel import" in r.stderr
    tasks = _ls_export(run_dir)
    for rel in ("c.jpg", "g.png"):
        task = _by_rel(tasks, rel)
        keep = [x for x in task["predictions"][0]["result"] if x["value"]["brushlabels"] == ["square"]]
        _annotate(task, copy.deepcopy(keep))  # the reviewers removed every ring
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    r = cli("import", str(run_dir), str(tmp_path / "export.json"), "-f", "")
    assert r.returncode == 0, r.stderr
    assert "2 reviewed images" in r.stdout and "ground truth:" in r.stdout
    r = cli("eval", str(run_dir))
    assert r.returncode == 0, r.stderr
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev["images_matched"] == 2
    assert ev["per_class"]["ring"]["gt"] == 0 and ev["per_class"]["ring"]["precision"] == 0.0  # the removed rings
    assert ev["per_class"]["square"]["recall"] == 1.0
    r = cli("tune", str(run_dir))
    assert r.returncode == 0, r.stderr


def _cvat_edited(run_dir: Path, out: Path, edit: tuple[str, ...]) -> Path:
    """The run's CVAT export with one label deleted on each image of `edit` (the others untouched)."""
    export_run(run_dir, ["cvat"])
    tree = ET.parse(run_dir / "cvat" / "annotations.xml")
    for im in tree.getroot().iter("image"):
        if im.get("name") in edit:
            im.remove(im.findall("mask")[0])  # a reviewer deletes one label
    tree.write(out)
    return out


def test_cvat_and_coco_corrections_import_too(labeled_run: dict, tmp_path: Path) -> None:
    run_dir = labeled_run["run"]
    export_run(run_dir, ["coco"], ExportOptions(coco_masks="rle"))
    report = import_corrections(run_dir, _cvat_edited(run_dir, tmp_path / "cvat.xml", ("c.jpg",)), [])
    assert report.source == "CVAT XML" and report.reviewed == 1 and report.unreviewed == 8
    assert sum(c.removed for c in report.changes.values()) == 1
    assert sum(c.unchanged for c in report.changes.values()) == sum(c.predicted for c in report.changes.values()) - 1

    # the run's own labels, every image checked by a person: --reviewed all
    report = import_corrections(run_dir, run_dir / "coco" / "annotations.json", [], reviewed="all")
    assert report.source == "COCO" and report.reviewed == 9
    assert all(c.correction_rate == 0 for c in report.changes.values() if c.predicted)


def test_only_what_a_person_reviewed_becomes_ground_truth(labeled_run: dict, tmp_path: Path) -> None:
    """A CVAT task export holds every image: 2 edited of 9 import as 2 reviewed (the report says 7 were left
    out and how to include them); eval scores against those 2 and says where they came from."""
    run_dir = labeled_run["run"]
    xml = _cvat_edited(run_dir, tmp_path / "cvat.xml", ("c.jpg", "g.png"))
    r = cli("import", str(run_dir), str(xml), "-f", "")
    assert r.returncode == 0, r.stderr
    assert "CVAT XML: 2 reviewed images (auto)" in r.stdout and "7 unchanged and not handed over" in r.stdout
    assert "7 images of the file were left out as not reviewed" in r.stdout and "--reviewed all" in r.stdout
    gt = json.loads((run_dir / "groundtruth.json").read_text())
    assert sorted(im["file_name"] for im in gt["images"]) == ["c.jpg", "g.png"]
    assert gt["info"]["imports"][0]["source"] == "CVAT XML" and gt["info"]["imports"][0]["images"] == 2
    r = cli("eval", str(run_dir))
    assert r.returncode == 0, r.stderr
    assert "groundtruth.json: 2 images — 2 from CVAT XML cvat.xml (reviewed: auto)" in r.stdout
    assert json.loads((run_dir / "eval.json").read_text())["images_matched"] == 2
    r = cli("tune", str(run_dir))
    assert r.returncode == 0 and "2 from CVAT XML cvat.xml" in r.stdout, r.stderr

    # images handed over for review by `sample -f cvat` count as reviewed even when accepted unchanged
    r = cli("sample", str(run_dir), "-n", "3", "-f", "cvat", "--no-fiftyone")
    assert r.returncode == 0 and "handed over for review" in r.stdout, r.stderr
    handed = json.loads((run_dir / "sample" / "handed_over.json").read_text())["images"]
    report = import_corrections(run_dir, xml, [])
    assert report.reviewed == len(set(handed) | {"c.jpg", "g.png"})
    # or a list of the images people checked; or only the changed ones
    (tmp_path / "checked.txt").write_text("h.png\nc.jpg\n")
    assert import_corrections(run_dir, xml, [], reviewed=str(tmp_path / "checked.txt")).reviewed == 2
    assert import_corrections(run_dir, xml, [], reviewed="changed").reviewed == 2
    gt = json.loads((run_dir / "groundtruth.json").read_text())
    r = cli("eval", str(run_dir))
    assert f"groundtruth.json: {len(gt['images'])} images" in r.stdout
    with pytest.raises(UsageError, match="--reviewed 'sometimes'"):
        import_corrections(run_dir, xml, [], reviewed="sometimes")
    untouched = _cvat_edited(run_dir, tmp_path / "untouched.xml", ())  # nobody changed anything
    (run_dir / "sample" / "handed_over.json").unlink()
    with pytest.raises(UsageError, match="holds no reviewed image") as e:
        import_corrections(run_dir, untouched, [])
    assert "--reviewed all" in (e.value.hint or "")


def test_a_reimport_replaces_only_the_images_it_holds(labeled_run: dict, tmp_path: Path) -> None:
    run_dir = labeled_run["run"]
    tasks = _ls_export(run_dir)
    _annotate(_by_rel(tasks, "c.jpg"), [])
    _annotate(_by_rel(tasks, "g.png"), [])
    (tmp_path / "one.json").write_text(json.dumps(tasks))
    import_corrections(run_dir, tmp_path / "one.json", [])
    tasks = _ls_export(run_dir)
    _annotate(_by_rel(tasks, "g.png"), copy.deepcopy(_by_rel(tasks, "g.png")["predictions"][0]["result"]))
    (tmp_path / "two.json").write_text(json.dumps(tasks))
    import_corrections(run_dir, tmp_path / "two.json", [])
    gt = json.loads((run_dir / "groundtruth.json").read_text())
    ids = {im["file_name"]: im["id"] for im in gt["images"]}
    assert sorted(ids) == ["c.jpg", "g.png"]
    assert not [a for a in gt["annotations"] if a["image_id"] == ids["c.jpg"]]  # kept: empty after review
    assert [a for a in gt["annotations"] if a["image_id"] == ids["g.png"]]  # replaced by the second review


def test_nothing_reviewed_or_foreign_images_are_a_clear_error(labeled_run: dict, tmp_path: Path) -> None:
    run_dir = labeled_run["run"]
    tasks = _ls_export(run_dir)
    (tmp_path / "none.json").write_text(json.dumps(tasks))
    with pytest.raises(UsageError, match="holds no reviewed image"):
        import_corrections(run_dir, tmp_path / "none.json", [])
    foreign = [{"id": 1, "data": {"image": "/data/upload/1/0badc0de-zzz.png"}, "annotations": [{"result": []}]}]
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    with pytest.raises(UsageError, match="no reviewed image") as e:
        import_corrections(run_dir, tmp_path / "foreign.json", [])
    assert "zzz.png" in (e.value.hint or "")
    (tmp_path / "min.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(UsageError, match="not a Label Studio JSON export"):
        import_corrections(run_dir, tmp_path / "min.json", [])
    assert not (run_dir / "groundtruth.json").exists()


def test_uploaded_label_studio_names_match_by_base_name(labeled_run: dict, tmp_path: Path) -> None:
    run_dir = labeled_run["run"]
    tasks = [{"id": 1, "data": {"image": "/data/upload/3/8f2a1c0e-c.jpg"}, "annotations": [{"result": []}]}]
    (tmp_path / "up.json").write_text(json.dumps(tasks))
    report = import_corrections(run_dir, tmp_path / "up.json", [])
    assert report.reviewed == 1 and report.changes["square"].removed == 1
