from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from autolabel.api import label_folder
from autolabel.config.load import parse_ontology
from autolabel.config.plan import decision_settings
from autolabel.decisions import DecisionCounts, decide
from autolabel.errors import RunStoreError, UsageError
from autolabel.export import export_run
from autolabel.run.settings import RunSettings
from autolabel.types import Candidates
from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import write_images

NAMES = ["a/x.png", "b/x.png", "c.jpg", "d/e/f.png", "g.png"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    write_images(tmp_path / "in", NAMES)
    return tmp_path / "in"


def run(ont_path: Path, data: Path, out: Path, det: FakeDetector | None = None, **kw: object):
    det = det or FakeDetector()
    summary, _ = label_folder(
        ont_path, data, out, ["coco"], RunSettings(batch_size=2, **kw), backends=(det, FakeSegmenter())
    )
    return summary, det


def test_labels_every_image_maps_prompts_and_keeps_holes(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary, det = run(fake_ontology_yaml, data, out)
    assert summary.processed == 5 and not summary.skipped and not summary.interrupted
    assert summary.objects_per_class == {"square": 5, "ring": 5}
    assert summary.inference.unmatched == {"green": 5}  # no prompt names green: dropped and counted
    assert det.calls == [2, 2, 1]  # batched
    export_run(out, ["coco"])
    coco = COCO(str(out / "coco" / "annotations.json"))
    assert [i["file_name"] for i in coco.dataset["images"]] == sorted(NAMES)
    ring = next(a for a in coco.dataset["annotations"] if a["category_id"] == 2)
    assert ring["prompt"] == "blue ring" and ring["iscrowd"] == 0
    assert 1800 < ring["area"] < 2000  # disk of Ø51 minus a hole of Ø11: the mask area, not the box area (2601)


def test_rerun_resumes_without_loading_models_and_exports_identically(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run(fake_ontology_yaml, data, out)
    export_run(out, ["coco"])
    first = (out / "coco" / "annotations.json").read_bytes()
    # no backends given: a finished run must not try to load any model
    summary, _ = label_folder(fake_ontology_yaml, data, out, ["coco"])
    assert summary.processed == 0 and summary.already_done == 5
    export_run(out, ["coco"])
    assert (out / "coco" / "annotations.json").read_bytes() == first


def test_interrupted_run_resumes_with_identical_result(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    class Interrupting(FakeDetector):
        def detect(self, images, prompts, min_score):  # type: ignore[no-untyped-def]
            if len(self.calls) == 1:
                raise KeyboardInterrupt
            return super().detect(images, prompts, min_score)

    out = tmp_path / "out"
    summary, _ = run(fake_ontology_yaml, data, out, det=Interrupting())
    assert summary.interrupted and summary.processed == 2
    summary, det = run(fake_ontology_yaml, data, out)
    assert summary.already_done == 2 and summary.processed == 3 and det.calls == [2, 1]
    export_run(out, ["coco"])
    ref = tmp_path / "ref"
    run(fake_ontology_yaml, data, ref)
    export_run(ref, ["coco"])
    assert (out / "coco" / "annotations.json").read_bytes() == (ref / "coco" / "annotations.json").read_bytes()


def test_changed_settings_are_an_error_unless_overwrite(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(fake_ontology_yaml, data, out)
    changed = tmp_path / "changed.yaml"
    changed.write_text(fake_ontology_yaml.read_text().replace("crimson block", "scarlet block"))
    with pytest.raises(RunStoreError, match="other settings") as e:
        run(changed, data, out)
    assert "ontology.prompts: " in e.value.message and "scarlet block" in e.value.message  # what changed, by key
    assert "--overwrite" in (e.value.hint or "")
    summary, _ = run(changed, data, out, overwrite=True)
    assert summary.processed == 5 and summary.already_done == 0


def test_output_dir_safety(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="inside the input folder"):
        run(fake_ontology_yaml, data, data / "labels")
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(RunStoreError, match="not empty"):
        run(fake_ontology_yaml, data, other)
    assert sorted(p.name for p in other.iterdir()) == ["thesis.tex"]
    with pytest.raises(UsageError, match="no images or videos found"):
        run(fake_ontology_yaml, tmp_path / "other", tmp_path / "o2")


def test_bad_images_are_skipped_with_reason_and_the_run_completes(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    (data / "broken.jpg").write_bytes(b"")
    (data / "text.png").write_text("hello")
    out = tmp_path / "out"
    summary, _ = run(fake_ontology_yaml, data, out)
    assert summary.processed == 5
    assert dict(summary.skipped) == {
        "broken.jpg": "empty file (0 bytes)",
        "text.png": "not an image (Pillow cannot identify the file)",
    }
    assert (out / "skipped.txt").read_text().splitlines()[0].startswith("broken.jpg\t")


def test_a_model_failure_on_one_image_skips_only_that_image(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    class FailsOnSmall(FakeDetector):
        def detect(self, images, prompts, min_score):  # type: ignore[no-untyped-def]
            if any(img.shape[1] == 7 for img in images):
                raise RuntimeError("shape mismatch")
            return super().detect(images, prompts, min_score)

    from PIL import Image

    Image.new("RGB", (7, 7)).save(data / "c2.png")
    summary, _ = run(fake_ontology_yaml, data, tmp_path / "out", det=FailsOnSmall())
    assert summary.processed == 5
    assert summary.skipped == [("c2.png", "model error: RuntimeError: shape mismatch")]


def test_per_class_threshold_and_scoreless_detector(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(fake_ontology_yaml.read_text() + "classes:\n  ring: {box_threshold: 0.99}\n")
    summary, _ = run(strict, data, tmp_path / "o1")
    assert summary.objects_per_class == {"square": 5, "ring": 0} and summary.decisions.below_threshold == 5
    summary, _ = run(fake_ontology_yaml, data, tmp_path / "o2", det=FakeDetector(with_scores=False))
    export_run(tmp_path / "o2", ["coco"])
    anns = json.loads((tmp_path / "o2" / "coco" / "annotations.json").read_text())["annotations"]
    assert len(anns) == 10 and all("score" not in a for a in anns)


def test_store_commits_each_image(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(fake_ontology_yaml, data, out)
    rows = sqlite3.connect(out / "run.sqlite").execute("SELECT relpath, status, width, height FROM images").fetchall()
    assert sorted(rows) == sorted((n, "done", 160, 120) for n in NAMES)


def test_mapping_nms_and_cross_class_dedup() -> None:
    ont = parse_ontology(
        {
            "ontology": {"car": "car", "automobile": "car", "truck": "truck"},
            "postprocess": {"nms_iou": 0.5, "cross_class_iou": 0.8},
        }
    )
    cand = Candidates(
        xyxy=np.array([[0, 0, 10, 10], [0, 0, 10, 11], [0, 0, 10, 10.5], [50, 50, 60, 60]], dtype=float),
        score=np.array([0.6, 0.9, 0.7, 0.4]),
        prompt_index=np.array([0, 1, 2, 2]),
    )
    counts = DecisionCounts()
    det = decide(cand, 100, 100, decision_settings(ont), counts)
    # the two "car" boxes (different prompts, same class) merge by NMS; the truck duplicate goes by dedup
    assert det.prompt == ["automobile", "truck"] and det.class_id.tolist() == [0, 1]
    assert counts.nms_removed == 1 and counts.dedup_removed == 1
    no_dedup = replace(decision_settings(ont), cross_class_iou=None)
    assert len(decide(cand, 100, 100, no_dedup)) == 3


def test_mask_cleanup_from_the_ontology_fills_the_ring_hole(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    filled = tmp_path / "filled.yaml"
    filled.write_text(fake_ontology_yaml.read_text() + "masks:\n  fill_holes_below: 200\n")
    for ont, out in ((fake_ontology_yaml, tmp_path / "o1"), (filled, tmp_path / "o2")):
        run(ont, data, out)
        export_run(out, ["coco"])
    areas = [
        sorted(
            a["area"]
            for a in json.loads((o / "coco" / "annotations.json").read_text())["annotations"]
            if a["category_id"] == 2
        )
        for o in (tmp_path / "o1", tmp_path / "o2")
    ]
    assert all(b - a > 60 for a, b in zip(*areas))  # the Ø11 hole (~90 px) is filled


def test_a_failing_store_write_surfaces_instead_of_hanging(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autolabel.run import store as store_mod

    def disk_full(self, result, signature=None):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store_mod.RunStore, "put_result", disk_full)
    from autolabel.errors import AutolabelError

    with pytest.raises(AutolabelError, match=r"cannot write the run store .*disk is full") as e:
        run(fake_ontology_yaml, data, tmp_path / "out")
    assert "rerun" in (e.value.hint or "")


def test_resume_recomputes_the_same_fixed_batches(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(fake_ontology_yaml, data, out)  # batches of 2 over the 5 sorted images: [a/x b/x] [c d/e/f] [g]
    con = sqlite3.connect(out / "run.sqlite")
    con.execute("DELETE FROM images WHERE relpath = 'd/e/f.png'")
    con.commit()
    con.close()
    summary, det = run(fake_ontology_yaml, data, out)
    assert det.calls == [2]  # the slice [c.jpg, d/e/f.png] again, exactly as in the first run
    assert summary.processed == 1 and summary.already_done == 4


def test_a_second_run_on_a_busy_directory_is_refused(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    from tests.helpers import hold_run_lock

    out = tmp_path / "out"
    run(fake_ontology_yaml, data, out)
    with hold_run_lock(out):  # another process labeling into it
        with pytest.raises(UsageError, match=r"another autolabel process .* is labeling into") as e:
            run(fake_ontology_yaml, data, out)
        assert "resumes" in (e.value.hint or "")
    summary, _ = run(fake_ontology_yaml, data, out)  # lock released: fine again
    assert summary.already_done == 5
    (tmp_path / "only-lock").mkdir()
    (tmp_path / "only-lock" / ".lock").write_text("")  # killed before the store existed
    summary, _ = run(fake_ontology_yaml, data, tmp_path / "only-lock")
    assert summary.processed == 5
