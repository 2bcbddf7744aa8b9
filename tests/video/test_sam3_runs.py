"""`video.tracker: sam3` in `autolabel label`, with a tiny random-weight Sam3VideoModel: SAM 3 follows the
ontology's prompts through the clip (every frame stored with its object ids, exports carry them); a run
killed (kill -9) mid-clip resumes to byte-identical exports, as `tracker: sam2` does."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.helpers import cli, killed_after
from tests.video.clips import scene, write_clip

pytest.importorskip("av")
pytest.importorskip("transformers")
pytestmark = pytest.mark.slow
FRAMES = 8


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.tiny_models import build_tiny_sam3, build_tiny_sam3_video

    root = tmp_path_factory.mktemp("models")
    image = build_tiny_sam3(root / "sam3")
    return image, build_tiny_sam3_video(root / "sam3-video", image)


@pytest.fixture
def setup(tmp_path: Path, models: tuple[Path, Path]) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    write_clip(data / "clip.mkv", [scene(t)[0] for t in range(FRAMES)])
    ontology = tmp_path / "ontology.yaml"
    ontology.write_text(
        yaml.safe_dump(
            {
                "ontology": {"red square": "square", "blue square": "square", "green square": "square"},
                "detector": {"backend": "sam3", "model": str(models[0]), "box_threshold": 0.0},
                "video": {"tracker": "sam3", "model": str(models[1]), "max_objects": 6},
            }
        )
    )
    return ontology, data


def _label(ontology: Path, data: Path, run: Path) -> dict:
    r = cli("label", str(ontology), str(data), "-o", str(run), "-f", "coco,mot", "--device", "cpu")
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads((run / "summary.json").read_text())


def _rows(run: Path) -> list[tuple[str, dict]]:
    with sqlite3.connect(run / "run.sqlite") as db:
        rows = db.execute("SELECT relpath, result FROM images WHERE status = 'done' ORDER BY relpath").fetchall()
    return [(r, json.loads(text)) for r, text in rows]


def test_sam3_tracks_the_prompts_and_a_cut_short_run_resumes_byte_identical(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    ontology, data = setup
    ref = tmp_path / "ref"
    summary = _label(ontology, data, ref)
    assert summary["processed"] == FRAMES
    rows = _rows(ref)
    assert len(rows) == FRAMES and all(c["track_id"] and all(c["keyframe"]) for _, c in rows)
    assert set(rows[0][1]["track_id"]) & set(rows[-1][1]["track_id"])  # objects keep their ids through the clip
    coco = json.loads((ref / "coco" / "annotations.json").read_text())
    assert coco["annotations"] and all("track_id" in a["attributes"] for a in coco["annotations"])
    assert (ref / "mot" / "clip" / "gt" / "gt.txt").read_text().strip()
    again = _label(ontology, data, ref)
    assert again["processed"] == 0
    run = tmp_path / "run"
    args = ["label", str(ontology), str(data), "-o", str(run), "-f", "coco,mot", "--device", "cpu"]
    done = killed_after(args, run, 4)
    assert 4 <= done < FRAMES, "killed mid-clip"
    resumed = _label(ontology, data, run)
    assert resumed["processed"] == FRAMES - done  # followed again from the start; stored frames stay
    assert _rows(run) == rows
    for rel in ["coco/annotations.json", "mot/clip/gt/gt.txt"]:
        assert (run / rel).read_bytes() == (ref / rel).read_bytes(), rel


def test_tracker_sam3_needs_the_sam3_detector() -> None:
    from autolabel.config.load import parse_ontology
    from autolabel.errors import UsageError

    with pytest.raises(UsageError) as e:
        parse_ontology({"ontology": {"cat": "cat"}, "video": {"tracker": "sam3"}})
    assert "sam3 follows the prompts with SAM 3's video model" in e.value.message
