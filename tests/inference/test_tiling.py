"""Tiling for small objects: tiles, seam merging, and a run that finds what the untiled one misses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from autolabel.api import label_folder
from autolabel.backends.base import PromptBoxes
from autolabel.inference.tiling import merge_boxes, tile_origins, tiles_of
from tests.fakes import BACKGROUND, COLORS


def test_tiles_cover_the_image_with_the_requested_overlap() -> None:
    assert tile_origins(300, 320, 0.2) == [0]
    assert tile_origins(1000, 320, 0.2) == [0, 256, 512, 680]  # the last flush with the edge
    tiles = tiles_of(1000, 700, 320, 0.2)
    covered = np.zeros((700, 1000), dtype=bool)
    for x0, y0, x1, y1 in tiles:
        assert x1 - x0 == 320 and y1 - y0 == 320
        covered[y0:y1, x0:x1] = True
    assert covered.all()


def test_an_object_cut_by_a_seam_comes_back_once() -> None:
    pb = PromptBoxes(
        xyxy=np.array([[310, 50, 320, 66], [310, 50, 330, 66], [400, 50, 420, 66], [310, 50, 330, 66]], dtype=float),
        scores=np.array([0.6, 0.8, 0.7, 0.5]),
        prompt_index=np.array([0, 0, 0, 1]),
    )
    m = merge_boxes(pb, 0.5)
    assert m.xyxy.tolist() == [[310, 50, 330, 66], [400, 50, 420, 66], [310, 50, 330, 66]]
    assert m.scores.tolist() == [0.8, 0.7, 0.5] and m.prompt_index.tolist() == [0, 0, 1]  # prompts never merge
    big = PromptBoxes(
        xyxy=np.array([[400, 0, 640, 50], [512, 0, 800, 50]], dtype=float),
        scores=np.array([0.9, 0.8]),
        prompt_index=np.array([0, 0]),
    )  # a large object seen in part by two tiles
    assert merge_boxes(big, 0.5).xyxy.tolist() == [[400, 0, 800, 50]]


def test_a_tiled_run_finds_small_objects_that_an_untiled_run_misses(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = Image.new("RGB", (1600, 1200), BACKGROUND)
    d = ImageDraw.Draw(img)
    squares = [(315, 600)]  # crosses the seam between the first two tile columns (tiles of 320 start 0, 256)
    while len(squares) < 12:
        x, y = int(rng.integers(20, 1560)), int(rng.integers(20, 1160))
        if all(abs(x - a) > 60 or abs(y - b) > 60 for a, b in squares):
            squares.append((x, y))
    for x, y in squares:
        d.rectangle([x, y, x + 9, y + 7], fill=COLORS["red"])
    (tmp_path / "in").mkdir()
    img.save(tmp_path / "in" / "big.png")
    base = {
        "ontology": {"red square": "square"},
        "detector": {"backend": "tests.fakes:LowResDetector"},
        "segmenter": {"backend": "tests.fakes:FakeSegmenter"},
    }
    s, _ = label_folder(base, tmp_path / "in", tmp_path / "plain", ["coco"])
    assert s.objects_per_class == {"square": 0}  # shrunk to 320 pixels, 10×8 squares vanish
    tiled = {**base, "detector": {**base["detector"], "tiling": {"tile": 320, "overlap": 0.2}}}
    s, _ = label_folder(tiled, tmp_path / "in", tmp_path / "tiled", ["coco"])
    anns = json.loads((tmp_path / "tiled" / "coco" / "annotations.json").read_text())["annotations"]
    found = sorted((a["bbox"][0], a["bbox"][1]) for a in anns)
    assert found == sorted(squares)  # every square exactly once, the one on the seam too
    assert all(a["bbox"][2:] == [10, 8] for a in anns)
