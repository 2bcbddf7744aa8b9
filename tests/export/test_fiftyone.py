"""FiftyOne export, proven by FiftyOne itself (in a fresh process) and by its COCO importer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autolabel.export import ExportOptions, export_run
from autolabel.run.run import Run
from tests.helpers import REPO

fo = pytest.importorskip("fiftyone")


def test_dataset_reloads_in_a_new_process_with_boxes_masks_and_prompts(labeled_run: dict[str, Path]) -> None:
    run = labeled_run["run"]
    written = export_run(run, ["fiftyone"], ExportOptions(dataset_name="al-test-1")).written
    assert "al-test-1" in written["fiftyone"]
    code = """
import json, fiftyone as fo
ds = fo.load_dataset("al-test-1")
out = {"persistent": ds.persistent, "n": len(ds), "classes": ds.default_classes, "samples": {}}
for s in ds.iter_samples():
    out["samples"][s["relpath"]] = {
        "filepath": s.filepath, "w": s.metadata.width, "h": s.metadata.height,
        "dets": [{"label": d.label, "box": d.bounding_box, "conf": d.confidence, "prompt": d["prompt"],
                  "mask_shape": list(d.mask.shape), "mask_sum": int(d.mask.sum())} for d in s["autolabel"].detections]}
print(json.dumps(out))
"""
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, cwd=REPO, timeout=300
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["persistent"] and got["n"] == 9 and got["classes"] == ["square", "ring"]
    opened = Run.open(run)
    for res in opened.results():
        s = got["samples"][res.relpath]
        assert Path(s["filepath"]) == (labeled_run["input"] / res.relpath).resolve()
        assert (s["w"], s["h"]) == (res.width, res.height)
        assert len(s["dets"]) == len(res.detections)
        for d, box, mask, conf, prompt in zip(
            s["dets"], res.detections.xyxy, res.detections.masks, res.detections.confidence, res.detections.prompt
        ):
            x0, y0, x1, y1 = box
            np.testing.assert_allclose(
                d["box"], [x0 / res.width, y0 / res.height, (x1 - x0) / res.width, (y1 - y0) / res.height]
            )
            assert d["mask_shape"] == [int(y1 - y0), int(x1 - x0)]  # cropped to the box
            assert d["mask_sum"] == int(mask.sum())  # nothing of the mask lost by the crop
            assert d["conf"] == pytest.approx(conf) and d["prompt"] == prompt
    opened.close()


def test_reexport_replaces_the_dataset_and_writes_a_directory(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    run = labeled_run["run"]
    export_run(run, ["fiftyone"], ExportOptions(dataset_name="al-test-2"))
    export_run(run, ["fiftyone"], ExportOptions(dataset_name="al-test-2", fiftyone_dir=str(tmp_path / "fo")))
    assert len(fo.load_dataset("al-test-2")) == 9  # replaced, not appended
    again = fo.Dataset.from_dir(
        dataset_dir=str(tmp_path / "fo"), dataset_type=fo.types.FiftyOneDataset, name="al-test-2-disk"
    )
    assert len(again) == 9 and again.count("autolabel.detections") == fo.load_dataset("al-test-2").count(
        "autolabel.detections"
    )


def test_fiftyone_imports_our_coco_file_with_masks(labeled_run: dict[str, Path]) -> None:
    run = labeled_run["run"]
    export_run(run, ["coco"])
    ds = fo.Dataset.from_dir(
        dataset_type=fo.types.COCODetectionDataset,
        data_path=str(labeled_run["input"]),
        labels_path=str(run / "coco" / "annotations.json"),
        label_types=["segmentations"],
        name="al-test-coco",
        include_id=True,
    )
    coco = json.loads((run / "coco" / "annotations.json").read_text())
    assert len(ds) == len(coco["images"]) == 9
    assert ds.count("segmentations.detections") == len(coco["annotations"])
    dets = [d for s in ds for d in (s["segmentations"].detections if s["segmentations"] else [])]
    assert all(d.mask is not None and d.mask.any() for d in dets)
    assert {d.label for d in dets} == {"square", "ring"}


def test_scoreless_runs_give_confidence_none(
    labeled_run: dict[str, Path], tmp_path: Path, fake_ontology_yaml: Path
) -> None:
    from autolabel.config.load import load_ontology
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings
    from tests.fakes import FakeDetector, FakeSegmenter

    out = tmp_path / "noscore"
    run_labeling(
        load_ontology(fake_ontology_yaml),
        labeled_run["input"],
        out,
        RunSettings(),
        backends=(FakeDetector(with_scores=False), FakeSegmenter()),
    )
    export_run(out, ["fiftyone"], ExportOptions(dataset_name="al-test-noscore"))
    confs = fo.load_dataset("al-test-noscore").values("autolabel.detections.confidence", unwind=True)
    assert confs and all(c is None for c in confs)


def test_reexport_keeps_a_dataset_with_review_edits(labeled_run: dict[str, Path]) -> None:
    run = labeled_run["run"]
    export_run(run, ["fiftyone"], ExportOptions(dataset_name="al-test-kept"))
    ds = fo.load_dataset("al-test-kept")
    s = ds.first()
    s.tags.append("reject")
    s.save()
    written = export_run(run, ["fiftyone"], ExportOptions(dataset_name="al-test-kept")).written
    assert "kept" in written["fiftyone"] and "--from-fiftyone" in written["fiftyone"]
    assert len(fo.load_dataset("al-test-kept").match_tags("reject")) == 1  # the edit survived
    export_run(run, ["fiftyone"], ExportOptions(dataset_name="al-test-kept", replace_edited_dataset=True))
    assert len(fo.load_dataset("al-test-kept").match_tags("reject")) == 0


def test_two_exports_into_one_dataset_take_turns_or_are_refused(
    labeled_run: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs exporting to one --dataset-name at once deleted each other's staging (DatasetNotFoundError):
    the second waits its turn, and past the wait is refused with the reason."""
    import subprocess
    import sys

    from autolabel.errors import UsageError
    from autolabel.export import ExportOptions, export_run
    from tests.helpers import REPO

    hold = "import sys, time; from autolabel.export.fiftyone import dataset_lock; dataset_lock('shared-ds'); "
    hold += "print('held', flush=True); time.sleep(float(sys.argv[1]))"
    holder = subprocess.Popen([sys.executable, "-c", hold, "30"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    monkeypatch.setenv("AUTOLABEL_FIFTYONE_LOCK_WAIT", "1")
    with pytest.raises(
        UsageError, match=r"FiftyOne dataset 'shared-ds': another autolabel process \(pid \d+\) is exporting into it"
    ):
        export_run(labeled_run["run"], ["fiftyone"], ExportOptions(dataset_name="shared-ds"))
    holder.kill()
    holder.wait()
    short = subprocess.Popen([sys.executable, "-c", hold, "2"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert short.stdout is not None and short.stdout.readline().strip() == "held"
    monkeypatch.setenv("AUTOLABEL_FIFTYONE_LOCK_WAIT", "60")
    report = export_run(labeled_run["run"], ["fiftyone"], ExportOptions(dataset_name="shared-ds"))  # waits its turn
    assert report.written["fiftyone"].startswith("dataset 'shared-ds'")
    short.wait()
