"""Decisions are pure: literal candidates in, Detections out."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from autolabel.config.load import parse_ontology
from autolabel.config.plan import decision_settings
from autolabel.decisions import DecisionCounts, decide
from autolabel.masks import MaskCleanup
from autolabel.types import Candidates, RleMasks


def masks(shape: tuple[int, int], *rects: tuple[int, int, int, int]) -> RleMasks:
    """One mask per (x0, y0, x1, y1) rectangle."""
    m = np.zeros((len(rects), *shape), dtype=bool)
    for i, (x0, y0, x1, y1) in enumerate(rects):
        m[i, y0:y1, x0:x1] = True
    return RleMasks.from_dense(m)


ONT = parse_ontology(
    {
        "ontology": {"person": "person", "chair": "chair"},
        "negatives": ["poster of a person"],
        "classes": {"chair": {"box_threshold": 0.5}},
        "detector": {"box_threshold": 0.3},
    }
)
S = decision_settings(ONT)


def test_per_class_thresholds_apply_to_candidates() -> None:
    c = Candidates(
        xyxy=[[0, 0, 4, 4], [5, 5, 9, 9], [0, 5, 4, 9]],
        score=[0.35, 0.45, 0.6],
        prompt_index=[0, 1, 1],
        masks=masks((10, 10), (0, 0, 4, 4), (5, 5, 9, 9), (0, 5, 4, 9)),
    )
    counts = DecisionCounts()
    det = decide(c, 10, 10, S, counts)
    assert det.class_id.tolist() == [1, 0] and det.confidence.tolist() == [0.6, 0.35]  # chair 0.45 < 0.5
    assert counts.below_threshold == 1 and counts.kept == 2 and counts.candidates == 3
    lower = S.with_thresholds(per_class={"chair": 0.4})
    assert len(decide(c, 10, 10, lower)) == 3


def test_nms_uses_mask_iou_so_a_person_on_a_chair_and_crowds_survive() -> None:
    # two boxes overlapping a lot (box IoU 0.6) whose masks barely overlap: two people side by side
    c = Candidates(
        xyxy=[[0, 0, 10, 10], [0, 0, 10, 6]],
        score=[0.9, 0.8],
        prompt_index=[0, 0],
        masks=masks((10, 10), (0, 0, 10, 4), (0, 4, 10, 6)),
    )
    assert len(decide(c, 10, 10, S)) == 2
    # same boxes, same masks: a real duplicate goes
    d = Candidates(
        xyxy=[[0, 0, 10, 10], [0, 0, 10, 9]],
        score=[0.9, 0.8],
        prompt_index=[0, 0],
        masks=masks((10, 10), (0, 0, 10, 10), (0, 0, 10, 9)),
    )
    counts = DecisionCounts()
    assert len(decide(d, 10, 10, S, counts)) == 1 and counts.nms_removed == 1
    # box-only runs fall back to box IoU
    boxes = Candidates(xyxy=[[0, 0, 10, 10], [0, 0, 10, 9]], score=[0.9, 0.8], prompt_index=[0, 0])
    assert len(decide(boxes, 10, 10, S)) == 1


def test_cross_class_dedup_on_masks() -> None:
    c = Candidates(
        xyxy=[[0, 0, 10, 10], [0, 0, 10, 10]],
        score=[0.9, 0.8],
        prompt_index=[0, 1],
        masks=masks((10, 10), (0, 0, 10, 10), (0, 0, 10, 10)),
    )
    counts = DecisionCounts()
    det = decide(c, 10, 10, S, counts)
    assert det.class_id.tolist() == [0] and counts.dedup_removed == 1
    assert len(decide(c, 10, 10, replace(S, cross_class_iou=None))) == 2


def test_negative_prompt_suppresses_a_lower_scored_overlapping_positive() -> None:
    # prompt 2 is the negative "poster of a person"
    c = Candidates(
        xyxy=[[0, 0, 10, 10], [0, 0, 10, 10], [20, 0, 30, 10]],
        score=[0.7, 0.8, 0.9],
        prompt_index=[0, 2, 0],
        masks=masks((10, 40), (0, 0, 10, 10), (0, 0, 10, 10), (20, 0, 30, 10)),
    )
    counts = DecisionCounts()
    det = decide(c, 40, 10, S, counts)
    assert det.xyxy.tolist() == [[20, 0, 30, 10]]  # the person inside the poster is gone; the negative never shows
    assert counts.negative_suppressed == 1 and counts.negatives_detected == 1
    # a positive that scores higher than the negative stays
    c.score = np.array([0.95, 0.8, 0.9])
    assert len(decide(c, 40, 10, S)) == 2
    # below the threshold a negative does not count
    c.score = np.array([0.7, 0.2, 0.9])
    assert len(decide(c, 40, 10, S)) == 2


def test_cleanup_tight_boxes_empty_masks_size_and_max_detections() -> None:
    m = np.zeros((3, 20, 20), dtype=bool)
    m[0, 2:10, 2:10] = True
    m[0, 5, 5] = False  # a 1-pixel hole
    m[0, 15, 15] = True  # a 1-pixel island
    m[2, 0:20, 0:20] = True  # covers the whole image
    c = Candidates(
        xyxy=[[0, 0, 12, 12], [0, 0, 5, 5], [0, 0, 20, 20]],
        score=[0.9, 0.8, 0.7],
        prompt_index=[0, 0, 1],
        masks=RleMasks.from_dense(m),
    )
    s = replace(S, cleanup=MaskCleanup(fill_holes_below=5, drop_islands_below=5), max_box_fraction=0.9)
    counts = DecisionCounts()
    det = decide(c, 20, 20, s, counts)
    assert det.xyxy.tolist() == [[2, 2, 10, 10]]  # tight box of the cleaned mask; island dropped
    assert det.masks is not None and det.masks[0].sum() == 64  # hole filled
    assert counts.empty_masks == 1 and counts.bad_size == 1
    many = Candidates(
        xyxy=[[i, 0, i + 1, 1] for i in range(10)], score=np.linspace(0.9, 0.4, 10), prompt_index=[0] * 10
    )
    counts = DecisionCounts()
    assert len(decide(many, 20, 20, replace(S, max_detections=3), counts)) == 3 and counts.over_max == 7


def test_scoreless_candidates_skip_thresholds_and_keep_order() -> None:
    c = Candidates(xyxy=[[0, 0, 4, 4], [0, 0, 4, 4], [6, 6, 9, 9]], score=None, prompt_index=[1, 1, 0])
    det = decide(c, 10, 10, S)
    assert det.confidence is None and det.xyxy.tolist() == [[0, 0, 4, 4], [6, 6, 9, 9]]


def test_min_presence_drops_candidates_of_concepts_sam3_says_are_absent() -> None:
    from autolabel.decisions import BELOW, KEPT, DecisionSettings, decide_kept
    from autolabel.run.store import candidates_from_json, candidates_to_json
    from autolabel.types import Candidates

    c = Candidates(
        xyxy=[[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]],
        score=[0.6, 0.6, 0.6],
        prompt_index=[0, 1, 1],
        presence=[0.9, 0.3, 0.3],
        source=[0, 1, 1],
        verified=[np.nan, 0.8, np.nan],
    )
    back = candidates_from_json(candidates_to_json(c), 60, 60)  # every array survives the store
    assert back.presence is not None and back.source is not None and back.verified is not None
    np.testing.assert_allclose(back.presence, c.presence)  # type: ignore[arg-type]
    np.testing.assert_array_equal(back.source, c.source)  # type: ignore[arg-type]
    np.testing.assert_array_equal(np.isnan(back.verified), [True, False, True])
    s = DecisionSettings(classes=("a", "b"), prompt_class=(0, 1), prompts=("a", "b"), class_thresholds=(0.5, 0.5))
    why = np.zeros(3, dtype=np.int64)
    assert len(decide_kept(back, 60, 60, s, reasons=why)[0]) == 3
    from dataclasses import replace

    det, _ = decide_kept(back, 60, 60, replace(s, min_presence=0.5), reasons=why)
    assert len(det) == 1 and list(why) == [KEPT, BELOW, BELOW]
    assert (
        "min_presence" not in s.to_json()
        and DecisionSettings.from_json(replace(s, min_presence=0.5).to_json()).min_presence == 0.5
    )
