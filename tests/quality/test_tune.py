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


def test_the_bench_simulation_beats_the_defaults_and_the_previous_tune_on_16_images() -> None:
    from bench.tune import run

    result = run(seeds=4)["tuned on 16"]
    assert result["tune"] > result["previous tune"] > result["defaults"]
