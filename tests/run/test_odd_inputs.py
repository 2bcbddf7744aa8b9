"""Legal but odd inputs never crash a run or corrupt an export (each failed before this round's fixes)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from autolabel.api import label_folder
from autolabel.errors import RunStoreError, UsageError
from autolabel.export import export_run
from autolabel.run.store import RunStore, store_path
from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import scene, write_images


def _label(ont: Path, data: Path, out: Path, formats: tuple[str, ...] = ("coco", "yolo")):  # type: ignore[no-untyped-def]
    return label_folder(ont, data, out, list(formats), backends=(FakeDetector(), FakeSegmenter()))


def test_a_file_name_that_is_not_utf8_is_skipped_with_the_reason_and_the_run_completes(
    fake_ontology_yaml: Path, tmp_path: Path
) -> None:
    data = tmp_path / "in"
    write_images(data, ["ok.png"])
    bad = os.fsencode(data) + b"/bad\xff\xfe.png"
    scene().save(bad.decode("utf-8", "surrogateescape"))
    for _ in range(2):  # and every rerun goes on too
        summary, written = _label(fake_ontology_yaml, data, tmp_path / "out")
        assert summary.skipped == [("bad\\xff\\xfe.png", "file name is not valid UTF-8: rename the file")]
        assert "coco" in written and "yolo" in written
    assert "bad\\xff\\xfe.png" in (tmp_path / "out" / "skipped.txt").read_text()


def test_255_byte_file_names_export(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    name = "x" * 251 + ".png"  # the longest name Linux allows
    write_images(tmp_path / "in", [name])
    _, written = _label(fake_ontology_yaml, tmp_path / "in", tmp_path / "out")
    assert (tmp_path / "out" / "yolo" / "labels" / "train" / ("x" * 251 + ".txt")).exists(), written


def test_emoji_and_accented_class_names_read_back_identically_in_ultralytics(tmp_path: Path) -> None:
    from ultralytics.data.utils import check_det_dataset

    ont = tmp_path / "o.yaml"
    ont.write_text(
        'ontology:\n  red square: "🚲 bike"\n  blue ring: anneau déjà vu\n'
        "detector: {backend: tests.fakes:FakeDetector, box_threshold: 0.3}\n"
        "segmenter: {backend: tests.fakes:FakeSegmenter}\n",
        encoding="utf-8",
    )
    write_images(tmp_path / "in", [f"im{i}.png" for i in range(4)])
    _label(ont, tmp_path / "in", tmp_path / "out", ("yolo",))
    data = check_det_dataset(str(tmp_path / "out" / "yolo" / "data.yaml"))
    assert list(data["names"].values()) == ["🚲 bike", "anneau déjà vu"]


def test_a_damaged_store_row_is_a_clear_error_and_a_rerun_relabels_it(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png", "b.png"])
    _label(fake_ontology_yaml, tmp_path / "in", tmp_path / "out", ("coco",))
    before = (tmp_path / "out" / "coco" / "annotations.json").read_bytes()
    store = RunStore(store_path(tmp_path / "out"))
    store.conn.execute("UPDATE images SET width = 0 WHERE relpath = 'a.png'")
    store.close()
    with pytest.raises(RunStoreError, match=r"row of 'a\.png' is damaged"):
        export_run(tmp_path / "out", ["coco"])
    assert (tmp_path / "out" / "coco" / "annotations.json").read_bytes() == before
    summary, _ = _label(fake_ontology_yaml, tmp_path / "in", tmp_path / "out", ("coco",))
    assert summary.processed == 1 and (tmp_path / "out" / "coco" / "annotations.json").read_bytes() == before


def test_a_moved_input_folder_stops_the_yolo_export_and_keeps_the_previous_one(
    fake_ontology_yaml: Path, tmp_path: Path
) -> None:
    from autolabel.export import ExportOptions, YoloOptions

    write_images(tmp_path / "in", ["a.png", "b.png"])
    _label(fake_ontology_yaml, tmp_path / "in", tmp_path / "out", ("yolo",))
    data_yaml = (tmp_path / "out" / "yolo" / "data.yaml").read_text()
    shutil.move(tmp_path / "in", tmp_path / "moved")
    for media in ("symlink", "copy"):
        with pytest.raises(UsageError, match="is gone \\(was the input folder moved"):
            export_run(tmp_path / "out", ["yolo"], ExportOptions(yolo=YoloOptions(media=media)))
        assert (tmp_path / "out" / "yolo" / "data.yaml").read_text() == data_yaml
        assert not list((tmp_path / "out").glob(".yolo.*"))


def test_an_unreadable_folder_is_reported_not_skipped_silently(
    fake_ontology_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_images(tmp_path / "in", ["a.png", "locked/b.png"])
    real_walk = os.walk

    def walk(top, onerror=None, **kw):  # type: ignore[no-untyped-def]  # as a folder without read permission does
        for dirpath, dirnames, filenames in real_walk(top, onerror=onerror, **kw):
            if "locked" in dirnames and onerror is not None:
                dirnames.remove("locked")
                onerror(PermissionError(13, "Permission denied", str(Path(dirpath) / "locked")))
            yield dirpath, dirnames, filenames

    monkeypatch.setattr(os, "walk", walk)
    summary, _ = _label(fake_ontology_yaml, tmp_path / "in", tmp_path / "out", ("coco",))
    assert summary.skipped == [("locked/", "folder cannot be read: Permission denied")]


def test_odd_but_legal_names_never_block_an_export(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    """A backslash name (`a\\..\\..\\x.png`, one legal Linux file name) used to make every export refuse
    ("outside the output directory"); each format now writes it under a safe name and COCO keeps the original."""
    import json

    from autolabel.annotate.importing import import_corrections
    from autolabel.fsutil import export_name

    odd = "a\\..\\..\\x.png"
    write_images(tmp_path / "in", [odd, "a_.._.._x.png", "plain.png"])  # the second collides once made safe
    summary, written = _label(fake_ontology_yaml, tmp_path / "in", tmp_path / "out", ("coco", "yolo", "cvat"))
    assert sorted(written) == ["coco", "cvat", "yolo"] and not summary.skipped
    out = tmp_path / "out"
    coco = json.loads((out / "coco" / "annotations.json").read_text())
    assert odd in [im["file_name"] for im in coco["images"]]
    labels = sorted(p.name for p in (out / "yolo" / "labels").rglob("*.txt"))
    assert len(labels) == 3 and len(set(labels)) == 3
    assert (out / "cvat" / "images" / export_name(odd)).is_file()
    assert not list(tmp_path.glob("x.png")) and not (tmp_path / "in" / "x.png").exists()  # nothing escaped
    report = import_corrections(out, out / "cvat" / "annotations.xml", [], reviewed="all")
    assert report.reviewed == 3 and not report.unmatched  # the safe name matches its image back
    assert export_name("photos//dbl.jpg") == "photos/_/dbl.jpg" and export_name("../x") == "__/x"
    long = export_name("d/" + "y" * 300 + ".jpg").split("/")[1]
    assert len(long.encode()) <= 255 and long.endswith(".jpg")


def test_small_traps_are_refused_cleanly(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    """`--polygon-tolerance inf` (an OpenCV error), a JPEG named .mp4 (taken as a one-frame clip), an import
    into a folder autolabel then refuses (a `.lock` left behind in the user's folder)."""
    import json

    from autolabel.annotate.importing import import_corrections
    from tests.helpers import cli

    pytest.importorskip("av")
    write_images(tmp_path / "in", ["a.png"])
    scene().save(tmp_path / "in" / "photo.mp4", format="JPEG")
    summary, _ = _label(fake_ontology_yaml, tmp_path / "in", tmp_path / "out")
    (why,) = [w for r, w in summary.skipped if r == "photo.mp4"]
    assert why.startswith("not a video but an image") and "rename it" in why
    r = cli("export", str(tmp_path / "out"), "-f", "coco", "--polygon-tolerance", "inf")
    assert r.returncode == 2 and "--polygon-tolerance inf: must be a finite number" in r.stderr, r.stderr
    mine = tmp_path / "mine"
    (mine / "coco").mkdir(parents=True)
    (mine / "coco" / "annotations.json").write_text(json.dumps({"someone": "else's"}))
    export_run(tmp_path / "out", ["coco"])
    with pytest.raises(UsageError, match="not written by autolabel"):
        import_corrections(
            tmp_path / "out", tmp_path / "out" / "coco" / "annotations.json", ["coco"], mine, reviewed="all"
        )
    assert sorted(p.name for p in mine.iterdir()) == ["coco"]  # no .lock left in the user's folder
