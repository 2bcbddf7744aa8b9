"""`autolabel sample`: the images most worth hand-labeling."""

from __future__ import annotations

from pathlib import Path

import pytest

from autolabel.quality.sample import ImageValue, pick
from tests.helpers import cli


def test_every_class_is_covered_then_the_folder_is_spread() -> None:
    values = [ImageValue(f"a/{i:03d}.png", 5.0, frozenset({"car"})) for i in range(50)]
    values += [ImageValue(f"b/{i:03d}.png", 0.1, frozenset({"car"})) for i in range(50)]
    values.append(ImageValue("b/rare.png", 0.0, frozenset({"car", "bicycle"})))
    picked = pick(values, 10, ("car", "bicycle"))
    rels = [v.relpath for v in picked]
    assert len(picked) == 10 and "b/rare.png" in rels  # the only bicycle, although its scores are certain
    assert sum(r.startswith("b/") for r in rels) >= 4  # spread over the folder, not the 10 most uncertain of a/


def test_sample_cli_writes_a_list_and_a_fiftyone_view(labeled_run: dict[str, Path]) -> None:
    fo = pytest.importorskip("fiftyone")
    run = labeled_run["run"]
    r = cli("sample", str(run), "-n", "4", "--dataset-name", "al-sample-view")
    assert r.returncode == 0, r.stderr
    rels = (run / "sample.txt").read_text().split()
    assert (len(rels) == 4 and "square, ring" in r.stdout) or "ring, square" in r.stdout
    view = fo.load_dataset("al-sample-view").load_saved_view("to-label")
    assert sorted(view.values("relpath")) == sorted(rels)


def test_sample_hands_the_images_to_annotation_tools_and_their_review_comes_back(
    labeled_run: dict[str, Path], tmp_path: Path
) -> None:
    import json
    import xml.etree.ElementTree as ET

    run = labeled_run["run"]
    r = cli("sample", str(run), "-n", "3", "--no-fiftyone", "-f", "labelstudio,cvat")
    assert r.returncode == 0, r.stderr
    picked = (run / "sample.txt").read_text().split()
    tasks = json.loads((run / "sample" / "labelstudio" / "tasks.json").read_text())
    assert [t["data"]["relpath"] for t in tasks] == sorted(picked)
    assert all(t["predictions"][0]["result"] for t in tasks if t["data"]["relpath"] != "empty.png")
    xml_images = ET.parse(run / "sample" / "cvat" / "annotations.xml").getroot().findall("image")
    assert sorted(im.get("name") for im in xml_images) == sorted(picked)  # type: ignore[type-var]
    assert not (run / "labelstudio").exists()  # the run's own exports are not touched
    for k, t in enumerate(tasks):  # a reviewer accepts every pre-annotation
        t["id"], t["annotations"] = k + 1, [{"id": k + 1, "result": t["predictions"][0]["result"]}]
    (tmp_path / "review.json").write_text(json.dumps(tasks))
    r = cli("import", str(run), str(tmp_path / "review.json"), "-f", "")
    assert r.returncode == 0, r.stderr
    gt = json.loads((run / "groundtruth.json").read_text())
    assert sorted(im["file_name"] for im in gt["images"]) == sorted(picked)
