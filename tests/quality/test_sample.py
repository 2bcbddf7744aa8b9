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
