"""Review loop: eval against ground truth, previews, saved views, corrected re-export, the App."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from autolabel.export import ExportOptions, export_run
from autolabel.quality.eval_text import format_report
from autolabel.quality.evaluate import evaluate_run
from autolabel.quality.preview import write_previews
from tests.helpers import REPO


def gt_from_run(run: Path, tmp_path: Path) -> dict:
    export_run(run, ["coco"], ExportOptions(coco_masks="rle"))
    return json.loads((run / "coco" / "annotations.json").read_text())


def test_eval_identical_labels_score_exactly_one(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    gt = gt_from_run(labeled_run["run"], tmp_path)
    for a in gt["annotations"]:
        a.pop("score")
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r = evaluate_run(labeled_run["run"], tmp_path / "gt.json")
    for t in ("bbox", "segm"):
        assert r.metrics[t] == {"mAP": 1.0, "AP50": 1.0, "AP75": 1.0, "AR100": 1.0}
    assert r.images_matched == 9 and not r.classes_only_in_gt and not r.images_only_in_run
    assert r.per_class["ring"]["bbox_AP"] == 1.0 and r.per_class["ring"]["gt"] == 8
    assert "mAP 1.000" in format_report(r)


def test_eval_known_perturbation_and_reported_mismatches(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    gt = gt_from_run(labeled_run["run"], tmp_path)
    extra = []
    next_id = max(a["id"] for a in gt["annotations"]) + 1
    for a in [a for a in gt["annotations"] if a["category_id"] == 2]:  # one missed ring per real ring
        extra.append(
            {
                "id": next_id,
                "image_id": a["image_id"],
                "category_id": 2,
                "bbox": [0, 110, 6, 6],
                "area": 36,
                "iscrowd": 0,
            }
        )
        next_id += 1
    gt["annotations"] += extra
    gt["categories"][0]["name"] = "box"  # 'square' is called 'box' in this ground truth
    gt["images"].append({"id": 99, "file_name": "not/labeled.png", "width": 10, "height": 10})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r = evaluate_run(labeled_run["run"], tmp_path / "gt.json")
    # ring: precision 1.0 up to recall 0.5, then nothing → 51 of COCO's 101 recall points
    assert r.metrics["bbox"]["mAP"] == pytest.approx(51 / 101, abs=1e-6)
    assert r.metrics["bbox"]["AR100"] == pytest.approx(0.5)
    assert r.classes_only_in_gt == ["box"] and r.classes_only_in_run == ["square"]
    assert r.images_only_in_gt == ["not/labeled.png"]
    assert "box" in format_report(r) and "not evaluated" in format_report(r)


def test_eval_cli_writes_json(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    gt = gt_from_run(labeled_run["run"], tmp_path)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r = subprocess.run(
        [sys.executable, "-m", "autolabel.cli", "eval", str(labeled_run["run"]), "--gt", str(tmp_path / "gt.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((labeled_run["run"] / "eval.json").read_text())["metrics"]["segm"]["mAP"] == 1.0


def test_preview_overlays_and_contact_sheet(labeled_run: dict[str, Path]) -> None:
    from PIL import Image

    sheet, n, applied = write_previews(labeled_run["run"], n=5)
    assert applied == "ontology"
    assert n == 5 and sheet.exists()
    assert Image.open(sheet).size == (4 * 320, 2 * (320 + 24))
    over = np.asarray(Image.open(labeled_run["run"] / "preview" / "a" / "x.jpg"))
    orig = np.asarray(Image.open(labeled_run["input"] / "a" / "x.png"))
    assert over.shape == orig.shape
    assert np.abs(over[60, 95].astype(int) - orig[60, 95].astype(int)).sum() > 30  # ring tinted


fo = pytest.importorskip("fiftyone")


def test_saved_views_and_corrected_reexport_drop_rejected(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    from autolabel.quality.review import export_from_dataset, prepare_dataset

    ds = prepare_dataset(labeled_run["run"], "al-review-1", refresh=True)
    assert set(ds.list_saved_views()) >= {
        "low-confidence",
        "tiny-masks",
        "class-overlaps",
        "no-labels",
        "rejected-images",
        "rejected-labels",
    }
    assert [s["relpath"] for s in ds.load_saved_view("no-labels")] == ["empty.png"]
    assert len(ds.load_saved_view("tiny-masks")) == 0 and len(ds.load_saved_view("class-overlaps")) == 0
    total = ds.count("autolabel.detections")
    # the user rejects one image, rejects one label, deletes another and relabels a third
    samples = list(ds.sort_by("relpath"))
    samples[0].tags.append("reject")
    samples[0].save()
    dets = samples[1]["autolabel"].detections
    rejected_in_1 = dets[0]
    rejected_in_1.tags.append("reject")
    samples[1].save()
    s2 = samples[2]
    s2["autolabel"].detections = s2["autolabel"].detections[1:]
    s2["autolabel"].detections[0].label = "disk"
    s2.save()
    n_first = len(samples[0]["autolabel"].detections)
    assert len(ds.load_saved_view("rejected-images")) == 1 and len(ds.load_saved_view("rejected-labels")) == 1
    written = export_from_dataset("al-review-1", ["coco", "yolo"], tmp_path / "corrected", ExportOptions())
    coco = COCO(written["coco"])
    assert len(coco.dataset["images"]) == 8
    assert samples[0]["relpath"] not in {i["file_name"] for i in coco.dataset["images"]}
    assert len(coco.dataset["annotations"]) == total - n_first - 1 - 1
    assert [c["name"] for c in coco.dataset["categories"]] == ["square", "ring", "disk"]
    assert sum(1 for a in coco.dataset["annotations"] if a["category_id"] == 3) == 1
    lines = [
        ln for p in (tmp_path / "corrected" / "yolo" / "labels").rglob("*.txt") for ln in p.read_text().splitlines()
    ]
    assert len(lines) == len(coco.dataset["annotations"])
    # untouched images survive the App round trip (masks cropped to the box and back) unchanged
    export_run(labeled_run["run"], ["coco"])
    orig = COCO(str(labeled_run["run"] / "coco" / "annotations.json"))
    for rel in [s["relpath"] for s in samples[3:]]:
        a = [
            (x["category_id"], x["bbox"], x["area"], x["segmentation"])
            for x in orig.loadAnns(
                orig.getAnnIds(imgIds=[i["id"] for i in orig.dataset["images"] if i["file_name"] == rel])
            )
        ]
        b = [
            (x["category_id"], x["bbox"], x["area"], x["segmentation"])
            for x in coco.loadAnns(
                coco.getAnnIds(imgIds=[i["id"] for i in coco.dataset["images"] if i["file_name"] == rel])
            )
        ]
        assert a == b, rel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_review_serves_the_app_and_stops_on_ctrl_c(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    port = _free_port()
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autolabel.cli",
            "review",
            str(labeled_run["run"]),
            "--remote",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--dataset-name",
            "al-review-app",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        body, deadline = "", time.time() + 180
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    body = resp.read().decode("utf-8", "replace")
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(1)
        assert "<html" in body.lower(), "the App answered with its page"
        shot = _screenshot(f"http://127.0.0.1:{port}/datasets/al-review-app", tmp_path / "app.png")
        if shot is not None:
            assert shot.stat().st_size > 10_000
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert f"127.0.0.1:{port}" in out or str(port) in out
    assert "App stopped" in out


def _screenshot(url: str, path: Path) -> Path | None:
    """Headless Chromium screenshot of the App (optional: None when no browser is installed)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={path.parent / 'chrome'}",
            "--virtual-time-budget=15000",
            "--window-size=1400,900",
            f"--screenshot={path}",
            url,
        ],
        capture_output=True,
        timeout=120,
    )
    return path if path.exists() else None


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium (make browser installs it)")
def test_app_screenshot_shows_the_dataset(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    test_review_serves_the_app_and_stops_on_ctrl_c(labeled_run, tmp_path)
    assert (tmp_path / "app.png").exists()


def test_ctrl_c_while_the_app_is_still_starting_stops_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The App answers HTTP before launch_app returns: a Ctrl-C then must not escape as exit 130."""
    from autolabel.quality import review as review_mod

    closed: list[str] = []

    class FakeFo:
        def launch_app(self, *a: object, **k: object) -> None:
            raise KeyboardInterrupt

        def close_app(self) -> None:
            closed.append("closed")

    class FakeDs:
        def list_saved_views(self) -> list[str]:
            return ["no-labels"]

    monkeypatch.setattr(review_mod, "import_fiftyone", lambda: FakeFo())
    said: list[str] = []
    review_mod.launch(FakeDs(), 5151, "127.0.0.1", True, echo=said.append)
    assert (
        closed == ["closed"] and said[0].startswith("FiftyOne App: http://127.0.0.1:5151") and said[-1] == "App stopped"
    )
