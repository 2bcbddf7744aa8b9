"""The Python API: Labeler loads models once, labels paths / PIL images / arrays, and runs folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import REPO, scene, write_images

ONT = {
    "ontology": {"red square": "square", "blue ring": "ring"},
    "detector": {"backend": "tests.fakes:FakeDetector"},
    "segmenter": {"backend": "tests.fakes:FakeSegmenter"},
}


def test_label_paths_pil_and_arrays_give_full_size_masks(tmp_path: Path) -> None:
    from autolabel import Labeler

    write_images(tmp_path, ["a.png"])
    det = FakeDetector()
    labeler = Labeler(ONT, backends=(det, FakeSegmenter()), batch_size=2)
    out = labeler.label([tmp_path / "a.png", scene(100, 80, seed=1), np.array(scene(140, 100, seed=2))])
    assert det.calls == [2, 1]  # batched as the CLI batches
    assert [d.masks.shape for d in out] == [(2, 120, 160), (2, 80, 100), (2, 100, 140)]
    assert all(d.masks.dtype == bool and sorted(d.prompt) == ["blue ring", "red square"] for d in out)
    assert out[0].class_id.tolist() == [1, 0]
    ring = out[0].masks[0]
    assert ring[0:5].sum() == 0 and ring.sum() > 1500  # a disk with a hole, not its box
    single = labeler.label(np.array(scene()))  # one image → a list of one
    assert len(single) == 1
    from autolabel.errors import UsageError

    with pytest.raises(UsageError, match="RGB uint8"):
        labeler.label([np.zeros((10, 10), dtype=np.float32)])


def test_label_folder_is_the_resumable_cli_run(tmp_path: Path) -> None:
    from autolabel import Labeler

    write_images(tmp_path / "in", ["a.png", "b.png", "c.png"])
    labeler = Labeler(ONT, backends=(FakeDetector(), FakeSegmenter()))
    s = labeler.label_folder(tmp_path / "in", tmp_path / "out", formats=["coco"])
    assert s.processed == 3 and s.objects_per_class == {"square": 3, "ring": 3}
    again = labeler.label_folder(tmp_path / "in", tmp_path / "out", formats=["coco"])
    assert again.processed == 0 and again.already_done == 3


def test_to_supervision(tmp_path: Path) -> None:
    sv = pytest.importorskip("supervision")
    from autolabel import Labeler

    d = Labeler(ONT, backends=(FakeDetector(), FakeSegmenter())).label([np.array(scene())])[0]
    s = d.to_supervision(["square", "ring"])
    assert isinstance(s, sv.Detections) and len(s) == 2 and s.mask.shape == (2, 120, 160)
    assert list(s.data["class_name"]) == ["ring", "square"]


def test_import_autolabel_loads_no_model_library() -> None:
    code = "import sys, autolabel; autolabel.Labeler; assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
