"""Error breakdown: every cause on a hand-built image, the fix it names, and the counts eval agrees with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autolabel.decisions import DecisionSettings, decide
from autolabel.quality.breakdown import Breakdown, ClassErrors, fix_for
from autolabel.quality.eval_text import format_report
from autolabel.quality.evaluate import evaluate_run
from autolabel.quality.groundtruth import GtImage
from autolabel.types import Candidates
from tests.quality.test_review import gt_from_run

PROMPTS = ("cup", "mug", "bottle", "plate")  # mug is switched off, plate is a negative prompt
DEC = DecisionSettings(
    classes=("cup", "bottle"),
    prompt_class=(0, 0, 1),
    prompts=PROMPTS,
    class_thresholds=(0.5, 0.5),
    negative_threshold=0.5,
    min_box_area=20.0,
    prompts_off=("mug",),
)
GT = {  # class → boxes (x0, y0, x1, y1)
    "cup": [
        (0, 0, 10, 10),  # found
        (20, 0, 30, 10),  # candidate at 0.3: under the threshold
        (40, 0, 50, 10),  # cup 0.8 and bottle 0.95 on it: de-duplicated, the bottle stays (wrong class)
        (60, 0, 70, 10),  # a cup label twice as tall: mislocalised (a miss and a false positive)
        (80, 0, 90, 10),  # nothing at all
        (80, 40, 90, 50),  # suppressed by the negative prompt 'plate'
        (95, 95, 99, 99),  # 16 px², under min_box_area
        (40, 80, 50, 90),  # only a bottle there: labeled as the wrong class
        (60, 40, 70, 50),  # found only by the switched-off prompt 'mug'
    ],
    "bottle": [(0, 50, 10, 60), (20, 50, 30, 60), (22, 50, 32, 60)],  # the third is removed by NMS
}
CANDS = [  # (box, score, prompt)
    ((0, 0, 10, 10), 0.9, "cup"),
    ((20, 0, 30, 10), 0.3, "cup"),
    ((40, 0, 50, 10), 0.8, "cup"),
    ((40, 0, 50, 10), 0.95, "bottle"),
    ((60, 0, 70, 25), 0.9, "cup"),
    ((80, 40, 90, 50), 0.9, "cup"),
    ((80, 40, 90, 50), 0.95, "plate"),
    ((95, 95, 99, 99), 0.9, "cup"),
    ((40, 80, 50, 90), 0.9, "bottle"),
    ((60, 40, 70, 50), 0.9, "mug"),
    ((0, 50, 10, 57), 0.9, "bottle"),  # IoU 0.7 with its bottle: found
    ((0, 53, 10, 60), 0.85, "bottle"),  # IoU 0.7 with the same bottle, 0.4 with the first: a duplicate
    ((20, 50, 30, 60), 0.9, "bottle"),
    ((22, 50, 32, 60), 0.8, "bottle"),
    ((50, 80, 60, 90), 0.9, "bottle"),  # on nothing: background
]


def hand_built() -> tuple[Candidates, GtImage]:
    cands = Candidates(
        xyxy=np.array([c[0] for c in CANDS], dtype=np.float64),
        score=np.array([c[1] for c in CANDS]),
        prompt_index=np.array([PROMPTS.index(c[2]) for c in CANDS], dtype=np.int64),
    )
    gt = GtImage()
    for name, boxes in GT.items():
        gt.by_class[name] = (None, np.array(boxes, dtype=np.float64), np.zeros(len(boxes), dtype=bool))
    return cands, gt


def test_every_cause_of_the_breakdown_on_a_hand_built_image() -> None:
    cands, gt = hand_built()
    b = Breakdown(DEC)
    b.add(decide(cands, 100, 100, DEC), cands, 100, 100, gt)
    errors = b.finish()
    cup, bottle = errors["cup"], errors["bottle"]
    assert cup.tp == 1
    assert cup.misses == {
        "below threshold": 1,
        "dedup": 1,
        "mislocalised": 1,
        "no candidate": 1,
        "negative prompt": 1,
        "size limits": 1,
        "wrong class": 1,
        "prompt off": 1,
    }
    assert cup.false_positives == {"mislocalised": 1}
    assert cup.dedup_with == {"bottle": 1} and cup.confused_with == {"bottle": 1}
    assert bottle.tp == 2 and bottle.misses == {"NMS": 1}
    assert bottle.false_positives == {"duplicate": 1, "background": 1, "wrong class": 2}
    assert cup.per_prompt["cup"]["miss: below threshold"] == 1 and cup.per_prompt["mug"] == {"miss: prompt off": 1}
    assert bottle.per_prompt["bottle"]["false: wrong class"] == 2


def test_the_fix_names_the_largest_error_source() -> None:
    e = ClassErrors(misses={"below threshold": 9, "no candidate": 3}, below_scores=[0.31, 0.2])
    assert fix_for("bicycle", e, 0.35, DEC) == (
        "bicycle: 9 of 12 misses had a candidate under the threshold 0.35 (best 0.31) — lower it or run "
        "`autolabel tune`"
    )
    e = ClassErrors(misses={"dedup": 6}, dedup_with={"bottle": 6})
    assert "6 of 6 misses removed by cross-class dedup with bottle (6)" in fix_for("cup", e, 0.3, DEC)
    e = ClassErrors(misses={"no candidate": 1}, false_positives={"background": 5})
    assert "5 of 5 false positives are on background — raise the threshold 0.3" in fix_for("cup", e, 0.3, DEC)
    assert fix_for("cup", ClassErrors(), 0.3, DEC) == ""


def test_eval_breakdown_adds_up_to_the_counts_eval_reports(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    gt = gt_from_run(labeled_run["run"], tmp_path)
    drop = {a["id"] for a in gt["annotations"] if a["category_id"] == 2}
    gt["annotations"] = [a for a in gt["annotations"] if a["id"] not in drop][:-1]  # rings: all false now
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r = evaluate_run(labeled_run["run"], tmp_path / "gt.json")
    for name, e in r.errors.items():
        row = r.per_class[name]
        assert e.tp + sum(e.misses.values()) == row["gt"]
        assert e.tp + sum(e.false_positives.values()) == row["pred"]
    assert r.errors["ring"].false_positives == {"background": 8}
    assert "fix: ring: 8 of 8 false positives are on background" in format_report(r)
    saved = json.loads(json.dumps(r.to_json()))
    ring = saved["errors"]["ring"]
    assert ring["false_positives"] == {"background": 8} and "below_scores" not in ring
