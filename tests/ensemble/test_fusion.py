"""Fusion of an ensemble's candidates: a decision on stored candidates (no model)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autolabel.decisions import BELOW, KEPT, NMS, DecisionSettings, decide_kept
from autolabel.fusion import FusionSettings, calibrated, fuse
from autolabel.types import Candidates, RleMasks


def _masks(boxes: list[list[int]], h: int = 100, w: int = 200) -> RleMasks:
    dense = np.zeros((len(boxes), h, w), dtype=bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        dense[i, y0:y1, x0:x1] = True
    return RleMasks.from_dense(dense)


def _cands(boxes: list[list[int]], scores: list[float], prompts: list[int], sources: list[int]) -> Candidates:
    return Candidates(
        xyxy=np.asarray(boxes, dtype=np.float64),
        score=scores,
        prompt_index=prompts,
        masks=_masks(boxes),
        source=sources,
    )


def _dec(fusion: FusionSettings | None, thresholds: tuple[float, ...] = (0.3, 0.3)) -> DecisionSettings:
    return DecisionSettings(
        classes=("cat", "dog"), prompt_class=(0, 1), prompts=("cat", "dog"), class_thresholds=thresholds, fusion=fusion
    )


F = FusionSettings(("a", "b"))


def test_two_sources_on_one_object_become_one_with_the_mean_score() -> None:
    c = _cands(
        [[10, 10, 50, 50], [11, 10, 50, 51], [100, 10, 140, 50], [100, 60, 140, 90]],
        [0.8, 0.4, 0.6, 0.5],
        [0, 0, 0, 1],
        [0, 1, 1, 0],
    )
    class_id = np.array([0, 0, 0, 1])
    fused, group, best = fuse(c, class_id, F)
    assert len(fused) == 3 and list(group) == [0, 0, 1, 2] and list(best) == [0, 2, 3]
    # found by both: (0.8 + 0.4) / 2; by one of two: half its score (the other counts 0)
    np.testing.assert_allclose(fused.score, [0.6, 0.3, 0.25])
    np.testing.assert_array_equal(fused.xyxy[0], c.xyxy[0])  # the best member's box and mask
    assert fused.masks is not None and fused.masks.rles[0] == c.masks.rles[0]  # type: ignore[union-attr]
    mx, _, _ = fuse(c, class_id, replace(F, score="max"))
    np.testing.assert_allclose(mx.score, [0.8, 0.6, 0.5])


def test_different_classes_and_one_source_never_fuse() -> None:
    same_place = [[10, 10, 50, 50], [10, 10, 50, 50], [10, 10, 50, 50]]
    c = _cands(same_place, [0.9, 0.8, 0.7], [0, 1, 0], [0, 1, 0])  # cat a, dog b, cat a again
    fused, group, _ = fuse(c, np.array([0, 1, 0]), F)
    assert len(fused) == 3 and list(group) == [0, 1, 2]  # NMS decides a source's own duplicates


def test_weights_calibration_and_source_thresholds() -> None:
    c = _cands([[10, 10, 50, 50], [10, 10, 50, 50]], [0.9, 0.2], [0, 0], [0, 1])
    f = replace(F, weights=(1.0, 3.0))
    fused, _, _ = fuse(c, np.zeros(2, dtype=np.int64), f)
    np.testing.assert_allclose(fused.score, [(0.9 + 3 * 0.2) / 4])
    cal = replace(F, calibration=((1.0, 0.0), (10.0, -1.0)))
    p = calibrated(np.array([0.9, 0.2]), np.array([0, 1]), cal)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-np.array([0.9, 1.0]))))
    fused, _, best = fuse(c, np.zeros(2, dtype=np.int64), cal)
    assert list(best) == [1]  # after calibration source b's 0.2 outranks a's 0.9: its box and mask lead
    cut, group, _ = fuse(c, np.zeros(2, dtype=np.int64), replace(F, source_thresholds=(0.0, 0.5)))
    assert list(group) == [0, -1] and cut.score is not None and cut.score[0] == pytest.approx(0.45)


def test_vote_keeps_what_most_members_cover() -> None:
    boxes = [[10, 10, 50, 50], [20, 10, 60, 50], [15, 10, 55, 50]]
    c = _cands(boxes, [0.9, 0.8, 0.7], [0, 0, 0], [0, 1, 2])
    f = FusionSettings(("a", "b", "c"), iou=0.3, mask="vote")
    fused, _, _ = fuse(c, np.zeros(3, dtype=np.int64), f)
    m = fused.masks[0]  # type: ignore[index]
    cols = np.flatnonzero(m.any(axis=0))
    assert (cols.min(), cols.max()) == (15, 54)  # columns at least two of three masks cover (10–49, 20–59, 15–54)


def test_decisions_run_on_fused_objects_and_members_share_their_fate() -> None:
    c = _cands(
        [[10, 10, 50, 50], [11, 10, 50, 51], [100, 10, 140, 50], [12, 11, 49, 50]],
        [0.8, 0.6, 0.4, 0.5],
        [0, 0, 0, 0],
        [0, 1, 1, 0],
    )
    why = np.full(4, -1)
    det, at = decide_kept(c, 200, 100, _dec(F), reasons=why)
    assert len(det) == 1 and list(at) == [0]
    assert det.confidence is not None and det.confidence[0] == pytest.approx(0.7)
    # 0 and 1 one object (kept); 2 alone: 0.2 < 0.3; 3 (source a again) with nothing of b left: 0.25, below
    assert list(why) == [KEPT, KEPT, BELOW, BELOW]
    looser = decide_kept(c, 200, 100, _dec(F, (0.2, 0.2)), reasons=why)[0]
    assert len(looser) == 2 and list(why) == [KEPT, KEPT, KEPT, NMS]


def test_a_single_detector_is_decided_as_before() -> None:
    c = _cands([[10, 10, 50, 50], [11, 10, 50, 51]], [0.8, 0.6], [0, 0], [0, 1])
    single = replace(c, source=None)
    a, b = decide_kept(single, 200, 100, _dec(F)), decide_kept(single, 200, 100, _dec(None))
    np.testing.assert_array_equal(a[1], b[1])
    assert "fusion" not in _dec(None).to_json()
    back = DecisionSettings.from_json(_dec(replace(F, class_score=("max", ""))).to_json())
    assert back.fusion is not None and back.fusion.method(0) == "max" and back.fusion.method(1) == "mean"
