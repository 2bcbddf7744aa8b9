"""Nothing lost: SIGKILL at any point and rerun gives byte-identical exports; Ctrl-C stops cleanly;
bad and odd images are labeled or skipped with a reason; the input folder is never modified."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO, scene, write_images

NAMES = [f"set{i % 3}/img{i:02d}.png" for i in range(12)]


def start(ont: Path, data: Path, out: Path, delay: float = 0.0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUTOLABEL_FAKE_DELAY": str(delay)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autolabel.cli",
            "label",
            str(ont),
            str(data),
            "-o",
            str(out),
            "-f",
            "coco,yolo",
            "-b",
            "2",
            "-q",
        ],
        env=env,
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def done_count(out: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{out / 'run.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM images WHERE status='done'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def exports(out: Path) -> dict[str, bytes]:
    files = {"coco": (out / "coco" / "annotations.json").read_bytes()}
    for p in sorted((out / "yolo" / "labels").rglob("*.txt")):
        files[p.relative_to(out).as_posix()] = p.read_bytes()
    return files


def tree_state(root: Path) -> dict[str, tuple[int, str]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    write_images(tmp_path / "in", NAMES)
    return tmp_path / "in"


def test_sigkill_at_several_points_then_rerun_gives_identical_exports(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    ref = tmp_path / "ref"
    p = start(fake_ontology_yaml, data, ref)
    assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else ""
    reference = exports(ref)
    before = tree_state(data)

    out = tmp_path / "killed"
    for kill_after in (0, 3, 7):  # before the first commit, and twice mid-run, resuming in between
        p = start(fake_ontology_yaml, data, out, delay=0.15)
        deadline = time.time() + 120
        while time.time() < deadline and done_count(out) <= kill_after and p.poll() is None:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        assert done_count(out) < len(NAMES), "killed before finishing"
    p = start(fake_ontology_yaml, data, out)
    assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["already_done"] + summary["processed"] == len(NAMES)
    assert summary["processed"] <= len(NAMES) - 7  # earlier work was kept, not redone
    assert exports(out) == reference
    assert not list(out.rglob(".*.tmp")), "no half-written file remains"
    assert tree_state(data) == before, "the input folder is never modified"


def test_ctrl_c_stops_cleanly_with_a_summary_and_resumes(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUTOLABEL_FAKE_DELAY": "0.2"}
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autolabel.cli",
            "label",
            str(fake_ontology_yaml),
            str(data),
            "-o",
            str(out),
            "-f",
            "coco",
            "-b",
            "1",
        ],
        env=env,
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and done_count(out) < 2:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    n = done_count(out)
    assert 2 <= n < len(NAMES)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "autolabel.cli",
            "label",
            str(fake_ontology_yaml),
            str(data),
            "-o",
            str(out),
            "-f",
            "coco",
            "-q",
        ],
        env={**env, "AUTOLABEL_FAKE_DELAY": "0"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["already_done"] == n


def _odd_images(root: Path) -> dict[str, str | None]:
    """name → expected skip reason (None: must be labeled)."""
    root.mkdir(parents=True, exist_ok=True)
    base = scene(160, 120)
    base.save(root / "ok.png")
    (root / "zero.jpg").write_bytes(b"")
    base.save(root / "trunc.jpg", quality=90)
    (root / "trunc.jpg").write_bytes((root / "trunc.jpg").read_bytes()[:300])
    base.save(root / "trunc.png")
    (root / "trunc.png").write_bytes((root / "trunc.png").read_bytes()[:200])
    (root / "notes.jpg").write_text("not an image")
    base.convert("CMYK").save(root / "cmyk.jpg", quality=95)
    Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257).save(root / "gray16.png")
    base.convert("P").save(root / "palette.png")
    base.convert("LA").save(root / "la.png")
    base.convert("RGBA").save(root / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    base.transpose(Image.Transpose.ROTATE_90).save(root / "exif.jpg", exif=exif.tobytes(), quality=95)
    Image.new("RGB", (4000, 3000), (128, 128, 128)).save(root / "huge.png")
    base.save(root / "naïve café ü.png")
    base.save(root / "with space.png")
    return {
        "ok.png": None,
        "zero.jpg": "empty file",
        "trunc.jpg": "cannot decode",
        "trunc.png": "cannot decode",
        "notes.jpg": "not an image",
        "cmyk.jpg": None,
        "gray16.png": None,
        "palette.png": None,
        "la.png": None,
        "rgba.png": None,
        "exif.jpg": None,
        "huge.png": "too large",
        "naïve café ü.png": None,
        "with space.png": None,
    }


def test_odd_and_bad_images_are_labeled_or_skipped_with_reason(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    expected = _odd_images(tmp_path / "odd")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "autolabel.cli",
            "label",
            str(fake_ontology_yaml),
            str(tmp_path / "odd"),
            "-o",
            str(out),
            "-f",
            "coco,yolo",
            "-q",
            "--max-image-pixels",
            "5000000",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 3, r.stderr  # finished, with skipped images
    skipped = dict(line.split("\t") for line in (out / "skipped.txt").read_text().splitlines())
    assert set(skipped) == {k for k, v in expected.items() if v}
    for name, why in skipped.items():
        assert expected[name] in why, (name, why)
    coco = COCO(str(out / "coco" / "annotations.json"))
    labeled = {i["file_name"]: i for i in coco.dataset["images"]}
    assert set(labeled) == {k for k, v in expected.items() if v is None}
    assert (labeled["exif.jpg"]["width"], labeled["exif.jpg"]["height"]) == (160, 120)  # after EXIF transpose
    for name in ("ok.png", "cmyk.jpg", "palette.png", "rgba.png", "exif.jpg", "naïve café ü.png", "with space.png"):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[labeled[name]["id"]]))
        assert {a["category_id"] for a in anns} == {1, 2}, name  # the red square and blue ring were found
    # a second run retries the skipped images and still completes
    r2 = subprocess.run(
        [
            sys.executable,
            "-m",
            "autolabel.cli",
            "label",
            str(fake_ontology_yaml),
            str(tmp_path / "odd"),
            "-o",
            str(out),
            "-f",
            "coco",
            "-q",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r2.returncode == 3 and "huge.png" not in (out / "skipped.txt").read_text()  # default limit admits it


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_skipped(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    from autolabel.config.load import load_ontology
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings
    from tests.fakes import FakeDetector, FakeSegmenter

    write_images(tmp_path / "in", ["a.png", "b.png"])
    (tmp_path / "in" / "b.png").chmod(0)
    s = run_labeling(
        load_ontology(fake_ontology_yaml),
        tmp_path / "in",
        tmp_path / "out",
        RunSettings(),
        backends=(FakeDetector(), FakeSegmenter()),
    )
    assert s.skipped == [("b.png", "permission denied")]


def test_symlinked_input_files_are_labeled_and_exports_stay_inside(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    from autolabel.config.load import load_ontology
    from autolabel.export import export_run
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings
    from tests.fakes import FakeDetector, FakeSegmenter

    elsewhere = tmp_path / "elsewhere"
    write_images(elsewhere, ["real.png"])
    write_images(tmp_path / "in", ["a.png"])
    (tmp_path / "in" / "link.png").symlink_to(elsewhere / "real.png")
    out = tmp_path / "out"
    run_labeling(
        load_ontology(fake_ontology_yaml),
        tmp_path / "in",
        out,
        RunSettings(),
        backends=(FakeDetector(), FakeSegmenter()),
    )
    export_run(out, ["coco", "yolo"])
    written = [p for p in out.rglob("*") if p.is_file() and not p.is_symlink()]
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written)
    assert sorted(p.name for p in (out / "yolo" / "labels").rglob("*.txt")) == ["a.txt", "link.txt"]
    assert (elsewhere / "real.png").stat().st_size > 0 and len(list(elsewhere.iterdir())) == 1
