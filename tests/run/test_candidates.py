"""Label once, decide later: candidates in the store, decisions at export, tune, negatives."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from autolabel.api import label_folder
from autolabel.errors import RunStoreError, UsageError
from autolabel.export import ExportOptions, export_run
from autolabel.run import labeling as engine
from autolabel.run.settings import RunSettings
from autolabel.run.store import RunStore, store_path
from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import cli, import_blocker, write_images

COCO128 = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco-sample" / "coco128_train2017"


def n_annotations(run: Path, cat: int | None = None) -> int:
    anns = json.loads((run / "coco" / "annotations.json").read_text())["annotations"]
    return sum(1 for a in anns if cat is None or a["category_id"] == cat)


@pytest.fixture
def run(tmp_path: Path, fake_ontology_yaml: Path) -> Path:
    write_images(tmp_path / "in", [f"im{i}.png" for i in range(4)])
    label_folder(
        fake_ontology_yaml, tmp_path / "in", tmp_path / "out", ["coco"], backends=(FakeDetector(), FakeSegmenter())
    )
    return tmp_path / "out"


def test_a_changed_threshold_in_the_ontology_reruns_no_model(
    run: Path, fake_ontology_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert n_annotations(run) == 8
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        fake_ontology_yaml.read_text() + "classes:\n  ring: {box_threshold: 0.99}\n"
        "postprocess: {nms_iou: 0.3}\nmasks: {fill_holes_below: 200, polygon_tolerance: 1.0}\n"
    )

    def no_models(*a: object) -> None:
        raise AssertionError("a decision change must not load a model")

    monkeypatch.setattr(engine, "load_models", no_models)
    summary, _ = label_folder(strict, tmp_path / "in", run, ["coco"])
    assert summary.processed == 0 and summary.already_done == 4
    assert n_annotations(run, cat=1) == 4 and n_annotations(run, cat=2) == 0
    assert summary.decisions.below_threshold == 4
    # the store keeps the candidates, so going back restores the rings
    label_folder(fake_ontology_yaml, tmp_path / "in", run, ["coco"])
    assert n_annotations(run, cat=2) == 4


def test_export_thresholds_with_torch_and_transformers_unimportable(run: Path, tmp_path: Path) -> None:
    env = import_blocker(tmp_path, ["torch", "transformers"])
    r = cli("export", str(run), "-f", "coco", "--box-threshold", "0.63", env=env)
    assert r.returncode == 0, r.stderr
    scores = [a["score"] for a in json.loads((run / "coco" / "annotations.json").read_text())["annotations"]]
    assert min(scores) >= 0.63 and len(scores) == 4  # the rings (larger, higher score) only
    th = tmp_path / "th.yaml"
    th.write_text("classes:\n  square: {box_threshold: 0.99}\n")
    r = cli("export", str(run), "-f", "coco", "--thresholds", str(th), env=env)
    assert r.returncode == 0, r.stderr
    assert n_annotations(run, cat=1) == 0 and n_annotations(run, cat=2) == 4
    th.write_text("classes:\n  sqare: {box_threshold: 2}\n")
    r = cli("export", str(run), "-f", "coco", "--thresholds", str(th), env=env)
    assert r.returncode == 2 and "classes.sqare.box_threshold: must be a number in [0, 1]" in r.stderr


def test_a_threshold_below_the_candidate_floor_is_refused(run: Path) -> None:
    with pytest.raises(UsageError, match=r"below the run's candidate floor 0.1"):
        export_run(run, ["coco"], ExportOptions(box_threshold=0.05))


def test_a_store_of_the_old_format_is_never_misread(run: Path, fake_ontology_yaml: Path, tmp_path: Path) -> None:
    con = sqlite3.connect(store_path(run))
    con.execute("UPDATE meta SET value = '1' WHERE key = 'result_format'")
    con.commit()
    con.close()
    with pytest.raises(RunStoreError, match=r"older autolabel .*format 1") as e:
        export_run(run, ["coco"])
    assert "--overwrite" in (e.value.hint or "")
    with pytest.raises(RunStoreError, match="older autolabel"):
        label_folder(fake_ontology_yaml, tmp_path / "in", run, ["coco"], backends=(FakeDetector(), FakeSegmenter()))
    summary, _ = label_folder(
        fake_ontology_yaml,
        tmp_path / "in",
        run,
        ["coco"],
        RunSettings(overwrite=True),
        backends=(FakeDetector(), FakeSegmenter()),
    )
    assert summary.processed == 4 and n_annotations(run) == 8


def test_candidates_below_the_box_threshold_are_stored(run: Path) -> None:
    store = RunStore(store_path(run))
    try:
        meta = store.get_meta()
        assert meta is not None and meta.settings["detector.candidate_floor"] == 0.1
        assert meta.prompts == ["red square", "blue ring", "crimson block"]
        c = next(store.iter_candidates()).candidates
        assert c.masks is not None and len(c.masks) == len(c) == 2 and c.score is not None
    finally:
        store.close()


def test_negative_prompts_are_detected_and_never_exported(tmp_path: Path) -> None:
    # the fake detector names blobs by colour: "green" is the negative; each image has a green square
    ont = tmp_path / "neg.yaml"
    ont.write_text(
        "ontology:\n  red square: square\nnegatives: [green thing]\n"
        "detector: {backend: 'tests.fakes:FakeDetector'}\nsegmenter: {backend: 'tests.fakes:FakeSegmenter'}\n"
    )
    write_images(tmp_path / "in", ["a.png", "b.png"])
    summary, _ = label_folder(ont, tmp_path / "in", tmp_path / "out", ["coco"])
    assert summary.decisions.negatives_detected == 2 and summary.inference.unmatched == {"blue": 2}
    assert n_annotations(tmp_path / "out") == 2  # the red squares only; negatives never exported
    data = json.loads((tmp_path / "out" / "coco" / "annotations.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["square"]


@pytest.mark.slow
@pytest.mark.skipif(not COCO128.exists(), reason="needs ../shared/data/coco-sample")
def test_default_decisions_keep_every_distinct_coco_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exact ground truth through the pipeline: the defaults (mask-IoU NMS and dedup) delete nothing."""
    gt = json.loads((COCO128 / "instances_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in gt["categories"]}
    from collections import Counter

    counts = Counter(names[a["category_id"]] for a in gt["annotations"] if not a["iscrowd"])
    classes = [n for n, _ in counts.most_common(12)]
    expected = sum(counts[c] for c in classes)
    monkeypatch.setenv("AUTOLABEL_GT_JSON", str(COCO128 / "instances_train2017.json"))
    monkeypatch.setenv("AUTOLABEL_GT_IMAGES", str(COCO128 / "images"))
    ont = {"ontology": {c: c for c in classes}, "detector": {"backend": "tests.gt_backend:GroundTruthEngine"}}
    summary, _ = label_folder(ont, COCO128 / "images", tmp_path / "out", ["coco"], RunSettings(batch_size=8))
    assert expected == 550
    assert summary.decisions.nms_removed == 0 and summary.decisions.dedup_removed == 0
    assert sum(summary.objects_per_class.values()) == expected - summary.decisions.empty_masks
    assert summary.decisions.empty_masks == 0


def synthetic_candidates(seed: int, n_images: int) -> tuple[list, dict]:
    """Two classes with known score distributions: true boxes score high, false ones low."""
    from autolabel.types import Candidates

    rng = np.random.default_rng(seed)
    cands, gt_images, gt_anns = [], [], []
    for i in range(n_images):
        boxes, scores, pidx = [], [], []
        for k, (tp_lo, fp_hi) in enumerate(((0.55, 0.45), (0.35, 0.25))):
            for j in range(3):  # three true objects per class
                x = 40 * j + 200 * k
                box = [x, 10, x + 30, 40]
                gt_anns.append(
                    {
                        "id": len(gt_anns) + 1,
                        "image_id": i + 1,
                        "category_id": k + 1,
                        "iscrowd": 0,
                        "bbox": [x, 10, 30, 30],
                        "area": 900,
                    }
                )
                boxes.append(box)
                scores.append(rng.uniform(tp_lo, 1.0))
                pidx.append(k)
            for j in range(2):  # two false ones, far from everything
                x = 40 * j + 200 * k
                boxes.append([x, 100, x + 30, 130])
                scores.append(rng.uniform(0.1, fp_hi))
                pidx.append(k)
        cands.append(Candidates(xyxy=boxes, score=scores, prompt_index=pidx))
        gt_images.append({"id": i + 1, "file_name": f"im{i}.png", "width": 400, "height": 200})
    gt = {
        "images": gt_images,
        "annotations": gt_anns,
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    return cands, gt


def make_run(run_dir: Path, cands: list) -> None:
    from autolabel.config.load import parse_ontology
    from autolabel.config.plan import decision_settings, fingerprint, inference_settings, make_plan
    from autolabel.run.store import RunMeta
    from autolabel.types import CandidateResult

    ont = parse_ontology(
        {
            "ontology": {"cat": "cat", "dog": "dog"},
            "segmenter": "none",
            "detector": {"backend": "tests.fakes:FakeDetector"},
        }
    )
    plan = make_plan(ont)
    settings = inference_settings(plan, identities=False)
    run_dir.mkdir(parents=True)
    store = RunStore(store_path(run_dir))
    store.set_meta(
        RunMeta(
            fingerprint(settings),
            str(run_dir),
            ["cat", "dog"],
            settings,
            ["cat", "dog"],
            decision_settings(ont).to_json(),
        )
    )
    for i, c in enumerate(cands):
        store.put_result(CandidateResult(f"im{i}.png", 400, 200, c))
    store.close()


def test_tune_finds_the_known_best_thresholds_and_they_hold_on_held_out_images(tmp_path: Path) -> None:
    from autolabel.quality.choose import collect
    from autolabel.quality.groundtruth import load_ground_truth, read_coco
    from autolabel.quality.tune import tune_run
    from autolabel.run.run import Run

    cands, gt = synthetic_candidates(0, 40)
    make_run(tmp_path / "run", cands)
    tune_imgs = [im for im in gt["images"] if im["id"] <= 20]
    (tmp_path / "tune.json").write_text(json.dumps({**gt, "images": tune_imgs}))
    (tmp_path / "held.json").write_text(json.dumps({**gt, "images": [im for im in gt["images"] if im["id"] > 20]}))
    run = Run.open(tmp_path / "run")
    try:
        dec = run.decisions()
        assert run.meta.candidate_floor == 0.1
        report = tune_run(run, tmp_path / "tune.json", "f1", 0.5)
        th = report.thresholds()
        assert 0.45 - 0.05 < th["cat"] < 0.55 + 0.05 and 0.25 - 0.05 < th["dog"] < 0.35 + 0.05
        assert all(c.f == 1.0 and c.n_gt == 60 for c in report.classes)
        held = load_ground_truth(read_coco(tmp_path / "held.json"), run.images(), dec.classes)
        assert len(held) == 20
        cands = list(run.candidates(held))
        matches = collect(cands, held, dec.with_thresholds(per_class=th), 0.5)
        for name in ("cat", "dog"):
            p, r, _, _ = matches[name].at(-1)
            assert (p, r) == (1.0, 1.0), name  # the optimum, on images tune never saw
        default = collect(cands, held, dec, 0.5)  # the default 0.35 loses dog recall or cat precision
        assert default["cat"].at(-1)[0] < 1.0 or default["dog"].at(-1)[1] < 1.0
    finally:
        run.close()


def test_tune_cli_writes_yaml_curves_and_export_applies_them(tmp_path: Path) -> None:
    cands, gt = synthetic_candidates(1, 10)
    make_run(tmp_path / "run", cands)
    gt["categories"].append({"id": 3, "name": "horse"})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r = cli("tune", str(tmp_path / "run"), "--gt", str(tmp_path / "gt.json"), env={"MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr
    assert "cat" in r.stdout and "precision" in r.stdout
    th = tmp_path / "run" / "thresholds.yaml"
    assert th.exists() and (tmp_path / "run" / "thresholds_pr.png").stat().st_size > 1000
    from autolabel.config.thresholds import load_thresholds

    tuned = load_thresholds(th)
    assert set(tuned) == {"cat", "dog"}
    r = cli("export", str(tmp_path / "run"), "-f", "coco", "--thresholds", str(th))
    assert r.returncode == 0, r.stderr
    assert n_annotations(tmp_path / "run") == 60  # exactly the true objects


def test_eval_reports_precision_recall_f1_and_ap_by_category_id(tmp_path: Path) -> None:
    from autolabel.quality.eval_text import format_report
    from autolabel.quality.evaluate import evaluate_run

    cands, gt = synthetic_candidates(2, 6)
    make_run(tmp_path / "run", cands)
    # category ids in the GT file in another order than the ontology, and a class without GT
    gt["categories"] = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
    for a in gt["annotations"]:
        a["category_id"] = 3 if a["category_id"] == 1 else 7
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] == 3]  # no dog ground truth
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    rep = evaluate_run(tmp_path / "run", tmp_path / "gt.json")
    assert rep.per_class["cat"]["bbox_AP"] > 0.9  # exact boxes: attached to the right class
    assert rep.per_class["dog"]["bbox_AP"] is None  # no ground truth: n/a, not a number
    assert rep.per_class["cat"]["recall"] == 1.0 and 0 < rep.per_class["cat"]["precision"] <= 1.0
    assert "n/a" in format_report(rep)
