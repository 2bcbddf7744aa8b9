"""`autolabel train`: a tiny YOLO student trained offline on a run's labels, scored on held-out hand labels
next to the teacher; resumed after kill -9; refusals (offline download, finished name, overlap, bad --set)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autolabel.export import ExportOptions, export_run
from tests.helpers import REPO, cli

pytest.importorskip("ultralytics")
TINY = ["--model", "yolov8n-seg.yaml", "--imgsz", "64", "--batch", "4", "--device", "cpu", "--set", "workers=0"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"YOLO_CONFIG_DIR": str(tmp_path / "ultralytics"), "YOLO_OFFLINE": "1"}


def hand_labels(run: Path, tmp_path: Path, split: str = "val") -> Path:
    """Three of the run's images (those the YOLO export put in `split`, first) with its labels as the hand labels."""
    export_run(run, ["coco", "yolo"], ExportOptions(coco_masks="rle"))
    gt = json.loads((run / "coco" / "annotations.json").read_text())
    folder = run / "yolo" / "images" / split
    in_split = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    first = sorted(gt["images"], key=lambda im: im["file_name"] not in in_split)
    gt["images"] = first[:3] if split == "val" else [im for im in first if im["file_name"] in in_split]
    keep = {im["id"] for im in gt["images"]}
    gt["annotations"] = [
        {k: v for k, v in a.items() if k != "score"} for a in gt["annotations"] if a["image_id"] in keep
    ]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    return tmp_path / "gt.json"


def test_train_scores_the_student_on_held_out_hand_labels_next_to_the_teacher(
    labeled_run: dict, tmp_path: Path, env: dict[str, str]
) -> None:
    run = labeled_run["run"]
    gt = hand_labels(run, tmp_path)
    r = cli("train", str(run), *TINY, "--epochs", "1", "--gt", str(gt), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "3 hand-labeled images held out" in out and "on 3 held-out hand-labeled images" in out
    assert "teacher (the run's labels)" in out and "1.000  1.000  1.000  1.000  1.000" in out  # its own labels
    assert "student (confidence >= 0.25)" in out
    folder = run / "train" / "student"
    assert (folder / "weights" / "best.pt").is_file() and (folder / "results.csv").is_file()
    trained = (folder / "train.txt").read_text()
    held = json.loads((folder / "student_eval.json").read_text())["held_out"]
    assert len(held) == 3 and not any(Path(h).name in trained for h in held)
    again = cli("train", str(run), *TINY, "--epochs", "1", "--gt", str(gt), env=env)
    assert again.returncode == 2 and "is a finished training" in again.stderr


def test_train_resumes_after_kill_9(labeled_run: dict, tmp_path: Path, env: dict[str, str]) -> None:
    run = labeled_run["run"]
    gt = hand_labels(run, tmp_path)
    args = [sys.executable, "-m", "autolabel.cli", "train", str(run), *TINY, "--epochs", "8", "--gt", str(gt)]
    e = {**os.environ, "PYTHONPATH": str(REPO), **env}
    proc = subprocess.Popen(args, env=e, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = run / "train" / "student" / "results.csv"
    deadline = time.monotonic() + 240
    while not (results.is_file() and len(results.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(results.read_text().splitlines()) - 1
    assert 2 <= done < 8, "killed too late to test the resume"
    r = cli("train", str(run), *TINY, "--epochs", "8", "--gt", str(gt), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming" in r.stdout and "on 3 held-out hand-labeled images" in r.stdout
    epochs = [int(float(line.split(",")[0])) for line in results.read_text().splitlines()[1:]]
    assert epochs == list(range(1, 9))  # every epoch once: resumed, not started over


def test_train_refuses_a_download_offline_and_bad_arguments(
    labeled_run: dict, tmp_path: Path, env: dict[str, str]
) -> None:
    run = labeled_run["run"]
    t = time.monotonic()
    r = cli("train", str(run), "--model", "yolo11n-seg.pt", env=env)
    assert r.returncode == 2 and time.monotonic() - t < 60
    assert "yolo11n-seg.pt" in r.stderr and "offline" in r.stderr
    assert "--model /path/to/yolo11n-seg.pt" in r.stderr and "--model yolo11n-seg.yaml" in r.stderr
    assert not (run / "train" / "student" / "weights").exists()
    r = cli("train", str(run), *TINY, "--epochs", "1", "--set", "not_an_arg=1", "--name", "bad", env=env)
    assert r.returncode == 2 and "not_an_arg" in r.stderr
    r = cli("train", str(run), *TINY, "--set", "epochs=3", env=env)
    assert r.returncode == 2 and "--epochs" in r.stderr


def test_train_warns_loudly_when_the_hand_labels_are_training_images(
    labeled_run: dict, tmp_path: Path, env: dict[str, str]
) -> None:
    run = labeled_run["run"]
    gt = hand_labels(run, tmp_path, split="train")
    r = cli("train", str(run), *TINY, "--epochs", "1", "--gt", str(gt), "--no-hold-out", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "WARNING: every hand-labeled image is in the student's training images: it is not scored" in r.stdout


def test_the_python_api_returns_the_student_and_teacher_scores(
    labeled_run: dict, tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import autolabel

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    run = labeled_run["run"]
    gt = hand_labels(run, tmp_path)
    result = autolabel.train(
        run, model="yolov8n-seg.yaml", epochs=1, imgsz=64, batch=4, device="cpu", gt=gt, extra={"workers": 0}
    )
    assert result.teacher is not None and result.student is not None
    assert result.teacher.overall["micro"]["f1"] == 1.0 and result.student.images_matched == 3
    assert result.weights.is_file() and not result.resumed


def test_a_hand_labeled_image_of_another_size_is_held_out_but_not_scored(
    labeled_run: dict, tmp_path: Path, env: dict[str, str]
) -> None:
    run = labeled_run["run"]
    gt = hand_labels(run, tmp_path)
    data = json.loads(gt.read_text())
    first = data["images"][0]
    first["width"] += 1  # the hand labels of an image of another size cannot be compared
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != first["id"]]
    gt.write_text(json.dumps(data))
    r = cli("train", str(run), *TINY, "--epochs", "1", "--gt", str(gt), env=env)
    assert r.returncode == 0, r.stderr[-3000:]  # was: KeyError, exit 1
    assert "3 hand-labeled images held out" in r.stdout and "on 2 held-out hand-labeled images" in r.stdout


def test_a_training_refused_for_other_labels_leaves_its_folder_as_it_was(
    labeled_run: dict, tmp_path: Path, env: dict[str, str]
) -> None:
    run = labeled_run["run"]
    gt = hand_labels(run, tmp_path)
    folder = run / "train" / "student"
    (folder / "weights").mkdir(parents=True)
    files = {
        folder / "autolabel_train.json": json.dumps({"learns_from": "other labels", "model": "x.yaml"}),
        folder / "weights" / "last.pt": "a checkpoint torch cannot read",
        folder / "train.txt": "what it was trained on\n",
        folder / "results.csv": "epoch,loss\n1,0.5\n2,0.4\n",
    }
    for path, text in files.items():
        path.write_text(text)
    r = cli("train", str(run), *TINY, "--epochs", "1", "--gt", str(gt), env=env)
    assert r.returncode == 2 and "was trained on other labels" in r.stderr
    assert {p: p.read_text() for p in files} == files  # was: last.pt set aside, train.txt rewritten
    assert sorted(p.name for p in folder.rglob("*")) == sorted({"weights", *(p.name for p in files)})
