"""Ensembles end to end: label with several detectors, store each candidate's source, fuse at export,
tune the fusion; a single detector's run is what it always was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from autolabel.api import label_folder
from autolabel.errors import UsageError
from autolabel.run.run import Run
from tests.helpers import write_images

FAKE = {"ontology": {"red square": "square", "blue ring": "ring", "crimson block": "square"}}
DET = {"backend": "tests.fakes:FakeDetector", "box_threshold": 0.3}
SEG = {"backend": "tests.fakes:FakeSegmenter"}
COCO = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco-sample" / "tiny_coco_train2017"

# The exports of this single-detector run, made by autolabel before ensembles existed (af5c832).
BEFORE = {
    "coco/annotations.json": "cf10de7eb3ba1a6ec8896af1e2eeadcfac61294dca0678a2a655bf11e93a1461",
    "yolo/labels/train/a.txt": "516539f8e54702316950763017b6dae9dc466e7a814c26069f4bdc7d7f5fe64d",
    "yolo/labels/train/b.txt": "b59638c9999ec9e3566dca9b7c3ac4f09ab92ba69125a41d7b4aea07ccd13284",
    "yolo/labels/train/c/d.txt": "3c553d038e51872f7d23c59b48d59480a8bc5a35a3c048e7df3d3d32dc4b7a27",
    "yolo/labels/val/e.txt": "bb1463927a55ad203e0ac7ef66ba7526099e298619facf86ffcc09e19a10eec9",
}


def test_a_single_detector_exports_byte_identical_files_to_before(tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png", "b.png", "c/d.png", "e.jpg"])
    label_folder({**FAKE, "detector": DET, "segmenter": SEG}, tmp_path / "in", tmp_path / "out", ["coco", "yolo"])
    got = {rel: hashlib.sha256((tmp_path / "out" / rel).read_bytes()).hexdigest() for rel in BEFORE}
    assert got == BEFORE
    with Run.open(tmp_path / "out") as run:
        assert all(c.candidates.source is None for c in run.candidates())
        assert "ensemble" not in run.meta.settings and "fusion" not in run.decisions().to_json()


def test_an_ensemble_stores_every_source_and_fuses_at_export(tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png", "b.png", "c.png"])
    ont = {**FAKE, "detector": [DET, {**DET, "backend": "tests.fakes:FakeEngine"}], "segmenter": SEG}
    summary, _ = label_folder(ont, tmp_path / "in", tmp_path / "out", ["coco"])
    single, _ = label_folder({**FAKE, "detector": DET, "segmenter": SEG}, tmp_path / "in", tmp_path / "one", ["coco"])
    with Run.open(tmp_path / "out") as run:
        cands = list(run.candidates())
        assert run.meta.settings["ensemble"][1]["backend"] == "tests.fakes:FakeEngine"
    for r in cands:
        c = r.candidates
        assert c.source is not None and c.masks is not None
        a, b = np.flatnonzero(c.source == 0), np.flatnonzero(c.source == 1)
        assert len(a) == len(b) > 0
        np.testing.assert_array_equal(c.xyxy[a], c.xyxy[b])  # the same blobs found twice …
        for i, j in zip(a, b):  # … masks by the segmenter for the box detector, the engine's own for the engine
            box = c.xyxy[j].astype(int)
            assert c.masks[j].sum() == (box[2] - box[0]) * (box[3] - box[1])
            assert c.masks[i].sum() <= c.masks[j].sum()
    # both sources agree on every object: fused, each object once, at the mean of the two scores
    assert summary.objects_per_class == single.objects_per_class
    coco = json.loads((tmp_path / "out" / "coco" / "annotations.json").read_text())
    assert len(coco["annotations"]) == sum(single.objects_per_class.values())


def test_ensemble_ontology_is_checked() -> None:
    def problems(text: str) -> str:
        with pytest.raises(UsageError) as e:
            load_ontology_text(text)
        return e.value.message

    base = "ontology: {cat: cat}\n"
    assert "fusion: fuses the detectors of an ensemble" in problems(base + "fusion: {iou: 0.5}\n")
    two = base + "detector: [{backend: owlv2}, {backend: grounding_dino}]\n"
    msg = problems(two + "fusion: {score: median, weights: [1], iuo: 0.5}\n")
    assert "fusion.score: must be one of mean, max" in msg
    assert "fusion.weights: must be 2 positive numbers" in msg and "did you mean 'iou'" in msg
    assert "detector[1].box_treshold: unknown key; did you mean 'box_threshold'" in problems(
        base + "detector: [{backend: owlv2}, {backend: owlv2, box_treshold: 0.2}]\n"
    )
    assert "detector[0].backend" in problems(base + "detector: [{backend: nope}, {backend: owlv2}]\n")
    assert "with an ensemble use tracker: detect" in problems(two + "video: {tracker: sam2}\n")
    ont = load_ontology_text(two.replace("{backend: grounding_dino}", "{backend: grounding_dino, box_threshold: 0.2}"))
    assert ont.ensemble and ont.fusion.source_thresholds == (0.0, 0.2) and ont.candidate_floor() == 0.0
    assert ont.box_threshold_of_class(0) == ont.fusion.box_threshold


def load_ontology_text(text: str):  # type: ignore[no-untyped-def]
    from autolabel.config.load import parse_ontology

    return parse_ontology(yaml.safe_load(text), "o.yaml")


@pytest.mark.skipif(not COCO.exists(), reason="needs ../shared/data/coco-sample")
def test_tune_chooses_fusion_and_export_applies_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from autolabel.cli import app

    monkeypatch.setenv("AUTOLABEL_GT_JSON", str(COCO / "instances_train2017_small.json"))
    monkeypatch.setenv("AUTOLABEL_GT_IMAGES", str(COCO / "images"))
    noisy = {"backend": "tests.gt_backend:NoisyGroundTruthEngine", "candidate_threshold": 0.05}
    ont = {"ontology": {"person": "person", "car": "car"}, "detector": [{**noisy, "seed": 1}, {**noisy, "seed": 2}]}
    (tmp_path / "o.yaml").write_text(yaml.safe_dump(ont))
    cli = CliRunner()
    run_dir = tmp_path / "run"
    r = cli.invoke(app, ["label", str(tmp_path / "o.yaml"), str(COCO / "images"), "-o", str(run_dir), "-f", "coco"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["tune", str(run_dir), "--gt", str(COCO / "instances_train2017_small.json")])
    assert r.exit_code == 0, r.output
    assert "ensemble: scores calibrated per detector" in r.output and "detector 1: a " in r.output
    tuned = yaml.safe_load((run_dir / "thresholds.yaml").read_text())
    assert len(tuned["fusion"]["calibration"]) == 2
    assert {v["fusion"] for v in tuned["classes"].values()} <= {"mean", "max"}
    r = cli.invoke(app, ["export", str(run_dir), "--thresholds", str(run_dir / "thresholds.yaml"), "-f", "coco"])
    assert r.exit_code == 0, r.output
    assert "ensemble fusion and calibration" in r.output
    with Run.open(run_dir) as run:
        dec = run.decisions()
        assert dec.fusion is not None and dec.fusion.calibration == tuple(map(tuple, tuned["fusion"]["calibration"]))
        assert [dec.fusion.method(k) for k in range(2)] == [tuned["classes"][c]["fusion"] for c in dec.classes]
    from pycocotools.coco import COCO as CocoApi

    CocoApi(str(run_dir / "coco" / "annotations.json"))
    bad = tmp_path / "one.yaml"
    bad.write_text(yaml.safe_dump({"ontology": ont["ontology"], "detector": noisy}))
    one = tmp_path / "one"
    assert cli.invoke(app, ["label", str(bad), str(COCO / "images"), "-o", str(one)]).exit_code == 0
    r = cli.invoke(app, ["export", str(one), "--thresholds", str(run_dir / "thresholds.yaml")])
    assert r.exit_code != 0 and "fusion settings are for an ensemble" in r.output
