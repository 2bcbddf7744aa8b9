"""`video.tracker: sam2` in `autolabel label`, with a tiny random-weight SAM 2 video checkpoint built from a
config and the colour-blob detector plugin: the detector runs on keyframes only, SAM 2 carries the objects
between them, every frame is stored with its object ids, exports carry them; a kill -9 mid-clip then a rerun
ends byte-identical to an uninterrupted run."""

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
FRAMES, EVERY = 12, 4


@pytest.fixture(scope="module")
def sam2_video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import build_tiny_sam2_video

    return build_tiny_sam2_video(tmp_path_factory.mktemp("models") / "sam2-video")


@pytest.fixture
def setup(tmp_path: Path, sam2_video_dir: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    write_clip(data / "clip.mkv", [scene(t)[0] for t in range(FRAMES)])
    ontology = tmp_path / "ontology.yaml"
    ontology.write_text(
        yaml.safe_dump(
            {
                "ontology": {"red square": "square", "blue square": "square", "green square": "square"},
                "detector": {"backend": "tests.fakes:FakeDetector", "box_threshold": 0.3},
                "segmenter": {"backend": "sam2", "model": str(sam2_video_dir)},
                "video": {"tracker": "sam2", "detect_every": EVERY},
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


def test_sam2_tracks_between_keyframes_and_stores_every_frame(setup: tuple[Path, Path], tmp_path: Path) -> None:
    ontology, data = setup
    run = tmp_path / "run"
    summary = _label(ontology, data, run)
    assert summary["processed"] == FRAMES
    assert summary["detector_passes"] == FRAMES // EVERY  # the detector ran on the keyframes only
    rows = _rows(run)
    assert len(rows) == FRAMES and all("track_id" in c for _, c in rows)
    first = rows[0][1]
    # the three squares of the first keyframe start objects 1-3 (a random-weight mask may come out empty or
    # whole-frame: that object ends, as the tracker's rules say)
    assert first["track_id"] and set(first["track_id"]) <= {1, 2, 3} and all(first["keyframe"])
    carried = [c for k, (_, c) in enumerate(rows) if k % EVERY]
    assert all(not any(c["keyframe"]) for c in carried)  # between keyframes SAM 2 alone
    assert set(first["track_id"]) & {t for c in carried for t in c["track_id"]}  # carried to later frames
    coco = json.loads((run / "coco" / "annotations.json").read_text())
    assert all("track_id" in a["attributes"] for a in coco["annotations"])
    assert (run / "mot" / "clip" / "gt" / "gt.txt").exists()


def test_kill_9_mid_clip_resumes_at_a_saved_keyframe_byte_identical(setup: tuple[Path, Path], tmp_path: Path) -> None:
    ontology, data = setup
    ref = tmp_path / "ref"
    _label(ontology, data, ref)
    assert not list((ref / "frames" / "clip.mkv").glob(".track-state*"))  # a finished clip keeps no state
    run = tmp_path / "run"
    args = ["label", str(ontology), str(data), "-o", str(run), "-f", "coco,mot", "--device", "cpu"]
    done = killed_after(args, run, 6, {"AUTOLABEL_TRACK_STATE_SECONDS": "0"})
    assert 6 <= done < FRAMES, "killed mid-clip"
    summary = _label(ontology, data, run)
    resumed_at = FRAMES - summary["processed"]
    assert resumed_at in (4, 8) and resumed_at <= done  # at a saved keyframe whose earlier frames were stored
    assert _rows(run) == _rows(ref)
    for rel in ["coco/annotations.json", "mot/clip/gt/gt.txt"]:
        assert (run / rel).read_bytes() == (ref / rel).read_bytes(), rel


def test_under_ray_the_driver_follows_the_clip_and_the_cluster_labels_the_images(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    from PIL import Image

    ontology, data = setup
    Image.fromarray(scene(3)[0]).save(data / "still.png")
    ref, run = tmp_path / "ref", tmp_path / "ray"
    _label(ontology, data, ref)
    r = cli(
        "label", str(ontology), str(data), "-o", str(run), "-f", "coco", "--device", "cpu", "--ray", "--workers", "1"
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert json.loads((run / "summary.json").read_text())["processed"] == FRAMES + 1
    frames = [(rel, c) for rel, c in _rows(run) if rel.startswith("clip.mkv/")]
    assert frames == [(rel, c) for rel, c in _rows(ref) if rel.startswith("clip.mkv/")]  # as tracked locally
    assert [c for rel, c in _rows(run) if rel == "still.png"] == [c for rel, c in _rows(ref) if rel == "still.png"]
