"""Exports are as safe as labeling: one export of a run at a time (the run lock names who holds it),
staging per process, only what autolabel wrote is ever replaced, kills leave the old or the new export
whole. Each test here failed before the exporters took the lock and checked ownership."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autolabel.errors import UsageError
from autolabel.export import ExportOptions, YoloOptions, export_run
from tests.export.test_export_pinned import _tree_digest
from tests.helpers import REPO, hold_run_lock, write_images


def _export_cmd(run: Path, seed: int, formats: str = "coco,yolo") -> list[str]:
    return [
        sys.executable,
        "-m",
        "autolabel.cli",
        "export",
        str(run),
        "-f",
        formats,
        "--seed",
        str(seed),
        "--split",
        "0.5,0.3,0.2",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _digest_of(run: Path, seed: int) -> str:
    export_run(run, ["yolo"], ExportOptions(yolo=YoloOptions(split=(0.5, 0.3, 0.2), seed=seed)))
    return _tree_digest(run / "yolo")


def test_an_export_while_another_process_holds_the_run_is_refused_naming_it(labeled_run: dict[str, Path]) -> None:
    run = labeled_run["run"]
    export_run(run, ["coco"])
    before = (run / "coco" / "annotations.json").read_bytes()
    with hold_run_lock(run, "exporting") as other:
        with pytest.raises(UsageError, match=rf"another autolabel process \(pid {other.pid}\) is exporting into"):
            export_run(run, ["coco"], ExportOptions(coco_masks="rle"))
    assert (run / "coco" / "annotations.json").read_bytes() == before


def test_concurrent_export_processes_end_with_one_whole_export(labeled_run: dict[str, Path]) -> None:
    run = labeled_run["run"]
    whole = {_digest_of(run, 1), _digest_of(run, 2)}
    for _ in range(3):
        procs = [
            subprocess.Popen(_export_cmd(run, s), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for s in (1, 2)
        ]
        results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
        assert any(code == 0 for code, _ in results)
        for code, err in results:
            assert code == 0 or (code == 2 and "another autolabel process" in err), err
        assert _tree_digest(run / "yolo") in whole
        assert not list(run.glob(".yolo.*"))


def test_exports_never_replace_a_folder_or_file_autolabel_did_not_write(labeled_run: dict[str, Path]) -> None:
    run = labeled_run["run"]
    precious = run / "yolo" / "labels" / "precious.txt"
    precious.parent.mkdir(parents=True)
    precious.write_text("hand-made\n")
    with pytest.raises(UsageError, match="was not written by autolabel"):
        export_run(run, ["yolo"])
    assert precious.read_text() == "hand-made\n"
    mine = run / "coco" / "annotations.json"
    mine.parent.mkdir()
    mine.write_text('{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(UsageError, match="was not written by autolabel"):
        export_run(run, ["coco"])
    assert mine.read_text().startswith('{"images": []')
    precious.unlink()
    precious.parent.rmdir()  # an empty folder is fine to fill
    export_run(run, ["yolo"])
    assert (run / "yolo" / "data.yaml").exists()


def test_a_symlinked_yolo_folder_is_written_where_it_points(labeled_run: dict[str, Path], tmp_path: Path) -> None:
    run = labeled_run["run"]
    bigger = tmp_path / "bigger-disk" / "yolo"
    bigger.mkdir(parents=True)
    (run / "yolo").symlink_to(bigger)
    for seed in (1, 2):
        export_run(run, ["yolo"], ExportOptions(yolo=YoloOptions(seed=seed)))
        assert (run / "yolo").is_symlink() and (bigger / "data.yaml").exists()
    assert sorted(p.name for p in bigger.parent.iterdir()) == ["yolo"]  # no staging left beside it


def test_sigkill_at_random_points_of_an_export_leaves_the_old_or_the_new_one_whole(
    fake_ontology_yaml: Path, tmp_path: Path
) -> None:
    from autolabel.api import label_folder
    from autolabel.export.yolo_writer import recover_swap
    from tests.fakes import FakeDetector, FakeSegmenter

    write_images(tmp_path / "in", [f"im{i:02d}.png" for i in range(40)])
    run = tmp_path / "run"
    label_folder(fake_ontology_yaml, tmp_path / "in", run, ["yolo"], backends=(FakeDetector(), FakeSegmenter()))
    new, old = _digest_of(run, 2), _digest_of(run, 1)
    rng = random.Random(0)
    for _ in range(5):
        p = subprocess.Popen(_export_cmd(run, 2, "yolo"), env=_env(), stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 4.0))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        recover_swap(run / "yolo")  # what the next export (or label) does first, under the run lock
        assert _tree_digest(run / "yolo") in {old, new}
        assert not list(run.glob(".yolo.*"))
        _digest_of(run, 1)  # back to the old one for the next round


def test_ctrl_c_at_any_point_of_an_export_ends_as_130_with_the_exports_whole(
    fake_ontology_yaml: Path, tmp_path: Path
) -> None:
    """An interrupt that landed inside pycocotools ended as `unexpected TypeError … __array__()` (exit 1), and
    one during the last images was lost (exit 0): Ctrl-C is now taken between images, or after the swap."""
    import json

    from autolabel.api import label_folder
    from tests.fakes import FakeDetector, FakeSegmenter

    write_images(tmp_path / "in", [f"im{i:03d}.png" for i in range(300)])
    run = tmp_path / "run"
    label_folder(fake_ontology_yaml, tmp_path / "in", run, ["coco"], backends=(FakeDetector(), FakeSegmenter()))
    rng = random.Random(1)
    interrupted = 0
    for _ in range(8):
        (run / ".lock").write_text("")
        p = subprocess.Popen(
            _export_cmd(run, 3, "coco,yolo"), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while "exporting" not in ((run / ".lock").read_text() if (run / ".lock").exists() else ""):
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        if p.poll() is not None:  # finished before the signal: nothing to interrupt
            p.communicate()
            continue
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        interrupted += 1
        assert p.returncode == 130 and "interrupted" in err and "unexpected" not in err, (p.returncode, err)
        json.loads((run / "coco" / "annotations.json").read_text())  # whole: the old one or the new one
        assert not list(run.glob(".yolo.*")) and not list(run.glob("coco/.al-*"))
    assert interrupted >= 4


fo = pytest.importorskip("fiftyone")


def test_a_fiftyone_export_killed_while_swapping_is_repaired_not_taken_for_review_edits(
    labeled_run: dict[str, Path],
) -> None:
    from autolabel.export.fiftyone_labels import OLD, STAGING

    run, name = labeled_run["run"], "al-safety-swap"
    export_run(run, ["fiftyone"], ExportOptions(dataset_name=name))
    n = len(fo.load_dataset(name))
    # a kill between "set the old dataset aside" and "rename the new one in": both are left behind
    fo.load_dataset(name).name = f"{name}{OLD}-4242"
    fo.Dataset(f"{name}{STAGING}-4242", persistent=True)
    written = export_run(run, ["fiftyone"], ExportOptions(dataset_name=name)).written
    assert "kept" not in written["fiftyone"]
    assert len(fo.load_dataset(name)) == n
    assert not [d for d in fo.list_datasets() if d.startswith(name + ".")]


def test_fiftyone_dir_with_other_files_is_refused_before_anything_changes(
    labeled_run: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "shared-folder"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    with pytest.raises(UsageError, match="not written by autolabel"):
        export_run(
            labeled_run["run"], ["fiftyone"], ExportOptions(dataset_name="al-safety-dir", fiftyone_dir=str(target))
        )
    assert (target / "notes.txt").read_text() == "mine\n" and not fo.dataset_exists("al-safety-dir")
    empty = tmp_path / "fo-export"
    for _ in range(2):  # its own earlier export is replaced
        export_run(
            labeled_run["run"], ["fiftyone"], ExportOptions(dataset_name="al-safety-dir", fiftyone_dir=str(empty))
        )
    assert (empty / "metadata.json").exists()


def test_a_corrected_export_never_writes_into_the_labeled_folder(labeled_run: dict[str, Path]) -> None:
    from autolabel.quality.review import export_from_dataset

    name = "al-safety-corrected"
    export_run(labeled_run["run"], ["fiftyone"], ExportOptions(dataset_name=name))
    (labeled_run["input"] / "yolo" / "labels").mkdir(parents=True)
    (labeled_run["input"] / "yolo" / "labels" / "precious.txt").write_text("x\n")
    with pytest.raises(UsageError, match="inside the labeled folder"):
        export_from_dataset(name, ["coco", "yolo"], labeled_run["input"], ExportOptions())
    assert (labeled_run["input"] / "yolo" / "labels" / "precious.txt").read_text() == "x\n"
    written = export_from_dataset(name, ["coco", "yolo"], None, ExportOptions())  # default: RUN/corrected
    assert written["coco"] == str(labeled_run["run"] / "corrected" / "coco" / "annotations.json")


def test_disk_full_during_a_copied_yolo_export_says_so_and_leaves_nothing_behind(
    labeled_run: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil as real_shutil

    from autolabel.export import ExportError, yolo_writer

    run = labeled_run["run"]
    export_run(run, ["yolo"])
    before = _tree_digest(run / "yolo")
    copies = {"n": 0}

    def copy2(src: str, dst: str) -> None:
        copies["n"] += 1
        if copies["n"] > 2:
            raise OSError(28, "No space left on device", str(dst))
        real_shutil.copy2(src, dst)

    monkeypatch.setattr(yolo_writer.shutil, "copy2", copy2)
    with pytest.raises(ExportError, match="No space left on device") as e:
        export_run(run, ["yolo"], ExportOptions(yolo=YoloOptions(media="copy")))
    assert "previous export is kept" in (e.value.hint or "") and "--media symlink" in (e.value.hint or "")
    assert _tree_digest(run / "yolo") == before and not list(run.glob(".yolo.*"))


def test_a_full_disk_leaves_no_staging_even_when_another_clean_up_fails(
    labeled_run: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full during `export --media copy`: the COCO clean-up failed too (closing its temporary file
    flushes), which stopped the YOLO one and left `.yolo.staging-PID`; and it ended as `unexpected OSError`."""
    import errno

    from autolabel.export import ExportError, yolo_writer
    from autolabel.export import coco as coco_mod

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    run = labeled_run["run"]
    monkeypatch.setattr(yolo_writer.YoloExporter, "add", full)
    monkeypatch.setattr(coco_mod.CocoExporter, "abort", full)
    with pytest.raises(ExportError, match="No space left on device") as e:
        export_run(run, ["coco", "yolo"], ExportOptions(yolo=YoloOptions(media="copy")))
    assert "--media symlink needs almost no space" in (e.value.hint or "")
    assert not list(run.glob(".yolo.staging-*")) and not (run / "yolo").exists()
