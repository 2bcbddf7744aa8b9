"""`tune` on few hand labels: thresholds between scores, thin classes shrunk, false-positive-only classes
raised, an honest estimate for unseen images (each failed with the previous `tune`)."""

from __future__ import annotations

import numpy as np

from autolabel.quality.choose import choose, shrink
from autolabel.quality.matching import ClassMatches


def matches(scores: list[float], tp: list[bool], n_gt: int) -> ClassMatches:
    m = ClassMatches()
    m.add(np.asarray(scores), np.asarray(tp), np.zeros(len(scores), bool), n_gt)
    return m


def test_one_true_positive_does_not_set_the_threshold_on_its_own_score() -> None:
    t = choose(matches([0.4326], [True], 1), 1.0, 0.1)
    assert t is not None and 0.1 < t < 0.4326  # halfway to the floor: a bicycle at 0.43 elsewhere is kept


def test_a_class_without_ground_truth_but_false_positives_is_raised_above_them() -> None:
    m = matches([0.2, 0.31, 0.38, 0.4, 0.42, 0.5, 0.61], [False] * 7, 0)
    own = choose(m, 1.0, 0.1)
    assert own is not None and own > 0.61
    assert shrink(own, 0.35, m, 0.35) > 0.55  # seven pieces of evidence outweigh the pooled choice


def test_a_thin_class_is_shrunk_toward_the_pooled_choice() -> None:
    thin = matches([0.9], [True], 1)
    own = choose(thin, 1.0, 0.1)
    assert own is not None and abs(shrink(own, 0.4, thin, 0.35) - 0.4) < abs(own - 0.4)


def test_the_bench_simulation_beats_the_defaults_and_the_previous_tune_on_16_and_64_images() -> None:
    from bench.tune import run

    result = run(seeds=6)
    small, large = result["tuned on 16"], result["tuned on 64"]
    assert small["tune"] > small["previous tune"] > small["defaults"]
    assert large["tune"] >= large["previous tune"] > large["defaults"]
    worse = int(large["tune - previous (mean, std error, seeds better/worse/tied)"][2].split("/")[1])
    assert worse == 0  # with 64 images the shrinkage must not cost: never worse on any seed


def test_a_thresholds_file_switches_a_prompt_off_without_a_model(labeled_run: dict, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    import pytest

    from autolabel.config.thresholds import read_thresholds_file
    from autolabel.errors import UsageError
    from autolabel.export import ExportOptions, export_run

    run = labeled_run["run"]
    (tmp_path / "t.yaml").write_text("prompts:\n  red square: off\n")
    _, off = read_thresholds_file(tmp_path / "t.yaml")
    report = export_run(run, ["coco"], ExportOptions(prompts_off=off, thresholds_source="t.yaml"))
    assert report.applied == "ontology + prompts off: red square" and report.decisions.prompts_off > 0
    coco = json.loads((run / "coco" / "annotations.json").read_text())
    assert coco["annotations"] and all(a["prompt"] != "red square" for a in coco["annotations"])
    with pytest.raises(UsageError, match="prompts off: purple is not a prompt of the run"):
        export_run(run, ["coco"], ExportOptions(prompts_off=("purple",)))


def test_tune_reports_which_wording_works_per_prompt(labeled_run: dict, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from autolabel.export import ExportOptions, export_run
    from autolabel.quality.tune import format_tune, tune_run
    from autolabel.run.run import Run

    run = labeled_run["run"]
    export_run(run, ["coco"], ExportOptions(coco_masks="rle"))
    (tmp_path / "gt.json").write_text((run / "coco" / "annotations.json").read_text())
    with Run.open(run) as opened:
        report = tune_run(opened, tmp_path / "gt.json")
    square = next(c for c in report.classes if c.name == "square")
    by_prompt = {p.prompt: p for p in square.prompts}
    assert by_prompt["red square"].recall == 1.0 and by_prompt["red square"].adds == 1.0
    assert by_prompt["crimson block"].detections == 0 and by_prompt["crimson block"].adds == 0.0
    assert "prompt 'crimson block': precision 0.000, recall 0.000 alone, adds +0.000 recall" in format_tune(report)
    assert report.expected.folds == 5 and 0.0 <= report.expected.low <= report.expected.f <= report.expected.high
    assert "expected_on_unseen_images" in json.loads(json.dumps(report.to_json()))
